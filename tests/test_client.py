"""``ccapi.client``: the typed native client, its tool loop and its resuming event stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ccapi.client import AsyncClient, CCAPIError, Client, Event, ToolResult, Turn
from ccapi.testing import MockError, MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA, result_text, tool_results_sent
from tests.gateway import Gateway

WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}


class DroppingStream(httpx.SyncByteStream):
    """Passes ``keep`` chunks of an event stream through, then fails like a dropped connection."""

    def __init__(self, inner: httpx.SyncByteStream, keep: int, transport: DroppingTransport) -> None:
        self.inner, self.keep, self.transport = inner, keep, transport

    def __iter__(self) -> Iterator[bytes]:
        for n, chunk in enumerate(self.inner):
            if n == self.keep:
                self.transport.cuts += 1
                raise httpx.ReadError("connection dropped by the test")
            yield chunk

    def close(self) -> None:
        self.inner.close()


class DroppingTransport(httpx.HTTPTransport):
    """Drops the first ``drops`` event-stream connections after a few chunks each. ``cuts`` counts the
    connections really dropped: on a busy machine a batch may carry the turn's end before the cut."""

    def __init__(self, drops: int, keep: int) -> None:
        super().__init__()
        self.drops, self.keep, self.streams, self.cuts = drops, keep, 0, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/events/stream"):
            self.streams += 1
            if self.streams <= self.drops:
                response.stream = DroppingStream(response.stream, self.keep, self)  # type: ignore[arg-type]
        return response


def test_tool_loop_drives_a_client_tool_session_end_to_end(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)),
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Nowhere"}),)),
        Reply(text="Oslo is cold; Nowhere does not exist."),
    )
    asked = []

    def get_weather(city: str) -> dict:
        asked.append(city)
        if city == "Nowhere":
            raise LookupError("no such city")
        return {"city": city, "celsius": -3}

    with Client(gateway.base_url) as cc:
        session = cc.create_session(tools=[WEATHER], metadata={"by": "client"})
        assert session.status == "idle" and session.tools[0]["name"] == "get_weather"
        turn = cc.run_tools(session.id, "Weather in Oslo?", {"get_weather": get_weather})
        assert turn.status == "completed" and turn.text.endswith("Oslo is cold; Nowhere does not exist.")
        assert asked == ["Oslo", "Nowhere"]
        events = cc.events(session.id, limit=1000)
        assert cc.get_session(session.id).turn_count == 1
    sent = tool_results_sent(mock_model)
    assert result_text(sent[0]) == '{"city":"Oslo","celsius":-3}' and not sent[0].get("is_error")
    assert sent[1]["is_error"] is True and "LookupError: no such city" in result_text(sent[1])
    assert [e.type for e in events].count("tool_result") == 2 and events[-1].type == "turn.completed"


def test_async_tool_loop_with_a_coroutine_tool(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)), Reply(text="Rome: 23C."))

    async def get_weather(city: str) -> str:
        await asyncio.sleep(0)
        return f"{city}: 23C"

    async def scenario() -> str:
        async with AsyncClient(gateway.base_url) as cc:
            session = await cc.create_session(tools=[WEATHER])
            turn = await cc.run_tools(session.id, "Rome?", {"get_weather": get_weather})
            return turn.text

    assert asyncio.run(scenario()) == "Rome: 23C."
    assert result_text(tool_results_sent(mock_model)[0]) == "Rome: 23C"


def test_dropped_event_stream_resumes_without_gaps(gateway: Gateway, mock_model: MockModel) -> None:
    mock_model.script(Reply(text=" ".join(f"word{n}" for n in range(60)), chunk_delay=0.02))
    transport = DroppingTransport(drops=3, keep=2)
    with (
        Client(gateway.base_url) as plain,
        Client(http=httpx.Client(base_url=gateway.base_url, transport=transport, timeout=60)) as dropping,
    ):
        session = plain.create_session()
        accepted = gateway.client.post(f"/api/sessions/{session.id}/turns", json={"input": "talk", "background": True})
        assert accepted.status_code == 202
        seen: list[Event] = list(dropping.stream_events(session.id, until=lambda e: e.type == "turn.completed"))
        logged = plain.events(session.id, limit=1000)
    assert transport.cuts >= 1 and transport.streams == transport.cuts + 1  # every dropped connection resumed
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # no gap, no repeat
    assert seen == logged
    text = "".join(e.data["text"] for e in seen if e.type == "message.delta")
    assert text == " ".join(f"word{n}" for n in range(60))


def test_async_stream_resumes_from_an_event_id(gateway: Gateway, mock_model: MockModel) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        async with AsyncClient(gateway.base_url) as cc:
            session = await cc.create_session()
            await cc.send(session.id, "hello")
            everything = [e.seq async for e in cc.stream_events(session.id, until=lambda e: e.ends_turn)]
            rest = [e.seq async for e in cc.stream_events(session.id, after=3, until=lambda e: e.ends_turn)]
            return everything, rest

    everything, rest = asyncio.run(scenario())
    assert everything[0] == 1 and rest == everything[3:]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_the_readme_example_as_root_with_is_sandbox_yes(
    make_gateway, mock_model: MockModel, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Python example, run as printed, as root with ``IS_SANDBOX=yes`` (as some shells and containers
    set it): it completes with its tool; and a turn the model refuses comes back failed with the upstream reason,
    its event loop stopping at ``turn.failed`` instead of waiting for ever."""
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    [example] = re.findall(r"## Python client.*?```python\n(.*?)```", readme, flags=re.S)
    gw = make_gateway(IS_SANDBOX="yes", CC_API_SANDBOX=None)
    code = example.replace("http://127.0.0.1:8000", gw.base_url)

    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Vancouver"}),)), Reply(text="12C, cloudy."))
    exec(code, {})  # the README's own code
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "completed 12C, cloudy." and printed[-1].endswith(" turn.completed")
    assert result_text(tool_results_sent(mock_model)[0]) == '{"city":"Vancouver","celsius":12}'

    mock_model.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
    exec(code, {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("failed upstream_error") and "this key may not use that model" in printed[0]
    assert printed[-1].endswith(" turn.failed")
    assert [line.split()[1] for line in printed[1:]][:2] == ["session.created", "turn.started"]

    # Following a background turn live, as the README says: ``ends_turn`` stops at the failure too.
    mock_model.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
    with Client(gw.base_url) as cc:
        session = cc.create_session()
        accepted = gw.client.post(f"/api/sessions/{session.id}/turns", json={"input": "go", "background": True})
        after = accepted.json()["first_event_seq"] - 1
        followed = list(cc.stream_events(session.id, after=after, until=lambda e: e.ends_turn))
    assert followed[-1].type == "turn.failed" and "this key may not use" in followed[-1].data["error"]["message"]


def test_errors_are_typed(gateway: Gateway) -> None:
    with Client(gateway.base_url) as cc, pytest.raises(CCAPIError) as missing:
        cc.get_session("sess_missing")
    assert missing.value.status == 404 and missing.value.type == "not_found"


def test_send_with_queue_waits_behind_a_running_turn_and_interrupt_withdraws_by_id(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """``send(queue=True)`` waits behind a turn paused on a tool call; ``interrupt(turn_id=…)``
    withdraws a queued turn, whose waiting ``send`` then returns it interrupted."""
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Cold."))

    async def main() -> tuple[Turn, Turn, Turn]:
        async with AsyncClient(gateway.base_url) as cc:
            session = await cc.create_session(tools=[WEATHER])
            paused = await cc.send(session.id, "Oslo?")
            waiting = asyncio.create_task(cc.send(session.id, "then this", queue=True))
            doomed = asyncio.create_task(cc.send(session.id, "qz-never-run", queue=True))
            for _ in range(600):  # until both wait
                queued = [e for e in await cc.events(session.id) if e.type == "turn.queued"]
                if len(queued) == 2:
                    break
                await asyncio.sleep(0.05)
            never = next(e.turn_id for e in queued if "qz-never-run" in str(e.data["input"]))
            assert never is not None
            withdrawn = await cc.interrupt(session.id, turn_id=never)
            await cc.submit_tool_results(session.id, [ToolResult(paused.tool_calls[0].tool_call_id, "-3C")])
            return await waiting, await doomed, withdrawn

    then, doomed, withdrawn = asyncio.run(main())
    assert then.status == "completed" and then.text == "mock reply: then this"
    assert withdrawn.status == doomed.status == "interrupted" and withdrawn.turn_id == doomed.turn_id
    assert not any("qz-never-run" in str(r.body["messages"]) for r in mock_model.message_requests())
