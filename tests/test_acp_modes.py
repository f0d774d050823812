"""The session's permission mode as an editor sees it over ``cc-api acp``, on the wire, against a real gateway on the
mock model."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ccapi.testing import MockModel, Reply
from tests.gateway import Gateway
from tests.test_acp_protocol import Wire, _run, _text


def test_a_mode_the_console_switches_while_a_prompt_runs_moves_the_editors_mode_picker(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The console switches the session to ``plan`` while the editor's prompt runs: the editor hears of it
    (``current_mode_update``) rather than showing the old mode until the session is loaded again (the agent
    followed only the turn's own events, and a ``PATCH``'s ``session.updated`` belongs to no turn)."""
    mock_model.script(Reply(text="too late", first_byte_delay=30))

    async def run() -> tuple[dict[str, Any], Wire]:
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            prompt = wire.request("session/prompt", sessionId=session_id, prompt=_text("plan it"))
            while not mock_model.message_requests(include_side=False):  # noqa: ASYNC110 - the mock records in its thread
                await asyncio.sleep(0.1)
            changed = gateway.client.patch(f"/api/sessions/{session_id}", json={"permission_mode": "plan"})
            assert changed.status_code == 200, changed.text
            await wire.until(lambda: wire.updates("current_mode_update"))
            wire.send(method="session/cancel", params={"sessionId": session_id})
            answered = await asyncio.wait_for(prompt, 30)
        return answered, wire

    answered, wire = _run(run())

    assert answered["result"]["stopReason"] == "cancelled", answered
    assert [u["currentModeId"] for u in wire.updates("current_mode_update")] == ["plan"]
