"""ACP's ``$/cancel_request`` on the wire (``cc-api acp`` against a real gateway on the mock model, as root: built-in
tool calls wait for approval): it cancels only a prompt that is still running. One of a prompt already answered
came through as ``session/cancel`` of its session, which stopped the newer prompt running there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway
from tests.test_acp_protocol import Wire, _run, _text


def test_a_cancel_request_of_an_answered_prompt_leaves_the_sessions_next_prompt_running(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The editor's SDK drops the first prompt's request after its answer came (its caller went away late) while
    the second prompt waits for a permission dialog: the second prompt goes on to its end once allowed."""
    target = tmp_path / "out.txt"
    mock_model.script(
        Reply(text="first"),
        Reply(tool_uses=(ToolUse("Bash", {"command": f"touch {target}"}),)),
        Reply(text="second"),
    )

    async def run() -> tuple[str, dict[str, Any], Wire]:
        async with Wire(gateway) as wire:
            session_id = await wire.new_session(tmp_path)
            first = wire.request("session/prompt", sessionId=session_id, prompt=_text("one"))
            assert (await asyncio.wait_for(first, 30))["result"]["stopReason"] == "end_turn"
            first_id = wire._next
            second = wire.request("session/prompt", sessionId=session_id, prompt=_text("two"))
            [dialog] = await wire.until(lambda: wire.requests("session/request_permission"))
            wire.send(method="$/cancel_request", params={"requestId": first_id})
            await wire.call("session/list", cwd=str(tmp_path))  # the agent has read the cancel by its answer
            wire.send(id=dialog["id"], result={"outcome": {"outcome": "selected", "optionId": "allow"}})
            answered = await asyncio.wait_for(second, 30)
        return session_id, answered, wire

    session_id, answered, wire = _run(run())

    assert answered["result"]["stopReason"] == "end_turn", answered
    assert target.exists() and wire.text().endswith("second")
    types = [e["type"] for e in gateway.events(session_id)]
    assert "turn.interrupted" not in types and types.count("turn.completed") == 2
