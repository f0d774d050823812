"""``ccapi.client``: the typed native client, its tool loop and its resuming event stream."""

from __future__ import annotations

import asyncio
import inspect
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from ccapi.client import (
    AsyncClient,
    CCAPIConnectionError,
    CCAPIError,
    Client,
    Compaction,
    Event,
    PermissionRequest,
    Session,
    ToolResult,
    Turn,
    wire,
)
from ccapi.testing import MockError, MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA, result_text, tool_results_sent
from tests.gateway import Gateway

WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}


class DroppingStream(httpx.SyncByteStream):
    """Passes ``keep`` chunks of an event stream through, then fails like a dropped connection (or, ``clean``, ends
    like a stream the gateway ended: a reader cut off, a gateway stopping)."""

    def __init__(self, inner: httpx.SyncByteStream, keep: int, transport: DroppingTransport) -> None:
        self.inner, self.keep, self.transport = inner, keep, transport

    def __iter__(self) -> Iterator[bytes]:
        for n, chunk in enumerate(self.inner):
            if n == self.keep:
                self.transport.cuts += 1
                if self.transport.clean:
                    return
                raise httpx.ReadError("connection dropped by the test")
            yield chunk

    def close(self) -> None:
        self.inner.close()


class DroppingTransport(httpx.HTTPTransport):
    """Drops (or, ``clean``, ends) the first ``drops`` event-stream connections (``path``: those whose path ends so)
    after a few chunks each. ``cuts`` counts the connections really cut: on a busy machine a batch may carry the
    turn's end before the cut."""

    def __init__(self, drops: int, keep: int, clean: bool = False, path: str = "/events/stream") -> None:
        super().__init__()
        self.drops, self.keep, self.clean, self.path, self.streams, self.cuts = drops, keep, clean, path, 0, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith(self.path):
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


@pytest.mark.parametrize("clean", [False, True], ids=["dropped", "ended-by-the-gateway"])
def test_dropped_event_stream_resumes_without_gaps(gateway: Gateway, mock_model: MockModel, clean: bool) -> None:
    """A stream cut short, dropped or ended cleanly before ``until`` matched, resumes from its last event."""
    mock_model.script(Reply(text=" ".join(f"word{n}" for n in range(60)), chunk_delay=0.02))
    transport = DroppingTransport(drops=3, keep=2, clean=clean)
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


@pytest.mark.parametrize("body", [{"error": "Not Found"}, {"error": None}, {"error": ["no"]}, ["no"], "no"])
def test_an_error_answer_not_in_the_gateways_envelope_is_still_a_ccapi_error(body: object) -> None:
    """Another server at the URL (a proxy, another app on the port) answers errors its own way, often
    ``{"error": "Not Found"}``: still a ``CCAPIError`` with its status and text, never an ``AttributeError``."""
    answer = httpx.Response(404, json=body)
    transport = httpx.MockTransport(lambda _: answer)
    http = httpx.Client(base_url="http://elsewhere", transport=transport)
    with Client(http=http) as cc, pytest.raises(CCAPIError) as failed:
        cc.get_session("sess_x")
    assert (failed.value.status, failed.value.type, failed.value.message) == (404, "http_error", answer.text)


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


# -- approvals and tools: what each client can await ------------------------------------


def _write_with_bash(mock: MockModel, target: Path) -> None:
    mock.script(
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)),
        Reply(tool_uses=(ToolUse("Bash", {"command": f"echo approved > {target}"}),)),
        Reply(text="done"),
    )


def _bash_session_body(cwd: Path) -> dict:
    return {"tools": [WEATHER], "builtin_tools": ["Bash"], "permission_mode": "default", "cwd": str(cwd)}


def test_async_client_awaits_an_async_approve_and_its_deny_keeps_the_call_from_running(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """An ``async def`` approve answering False denies the call: the coroutine is awaited, not taken for "allow"."""
    target = tmp_path / "out.txt"
    _write_with_bash(mock_model, target)
    asked: list[PermissionRequest] = []

    async def approve(request: PermissionRequest) -> bool:
        await asyncio.sleep(0)
        asked.append(request)
        return False

    async def get_weather(city: str) -> str:
        await asyncio.sleep(0)
        return f"{city}: 3C"

    async def main() -> Turn:
        async with AsyncClient(gateway.base_url) as cc:
            session = await cc.create_session(**_bash_session_body(tmp_path))
            return await cc.run_tools(
                session.id, "weather, then write it", {"get_weather": get_weather}, approve=approve
            )

    turn = asyncio.run(main())
    assert turn.status == "completed" and turn.text == "done"
    assert [r.tool_name for r in asked] == ["Bash"]
    assert not target.exists(), "the denied Bash call ran"
    weather, denied = tool_results_sent(mock_model)
    assert result_text(weather) == "Oslo: 3C" and denied["is_error"] is True


def test_client_refuses_what_it_cannot_await_with_a_type_error(
    gateway: Gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """``Client`` cannot await: an ``async def`` approve or tool is refused before the input is sent, and an awaitable
    a plain callable answers is refused, not read as "allow" nor sent to Claude as ``<coroutine object …>``."""
    target = tmp_path / "out.txt"

    async def deny(request: PermissionRequest) -> bool:
        return False

    async def get_weather(city: str) -> str:
        return f"{city}: 3C"

    with Client(gateway.base_url) as cc:
        session = cc.create_session(**_bash_session_body(tmp_path))
        with pytest.raises(TypeError, match=r"approve is a coroutine function.*AsyncClient"):
            cc.run_tools(session.id, "go", {}, approve=deny)
        with pytest.raises(TypeError, match="tool 'get_weather' is a coroutine function"):
            cc.run_tools(session.id, "go", {"get_weather": get_weather})
        assert cc.get_session(session.id).turn_count == 0, "nothing was sent"

        # plain callables that answer an awaitable, which no up-front check can see
        mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)))
        with pytest.raises(TypeError, match="tool 'get_weather' returned an awaitable"):
            cc.run_tools(session.id, "weather?", {"get_weather": lambda city: get_weather(city)})  # noqa: PLW0108
        assert cc.get_session(session.id).status == "requires_action", "no result was sent"
        cc.interrupt(session.id)

        mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": f"echo approved > {target}"}),)))
        session = cc.create_session(**_bash_session_body(tmp_path))
        with pytest.raises(TypeError, match="approve returned an awaitable"):
            cc.run_tools(session.id, "write it", {}, approve=lambda request: deny(request))  # noqa: PLW0108
        assert cc.get_session(session.id).status == "requires_approval", "no decision was sent"
        cc.interrupt(session.id)
    assert not target.exists()
    assert tool_results_sent(mock_model) == [], "nothing went to Claude as a result"


# -- requests: path parameters, idempotency keys, the event log's filter, health ----------


def test_session_ids_are_quoted_into_one_path_segment(gateway: Gateway) -> None:
    """An id with ``/``, ``?``, ``#`` or dots is one path segment: a 404 ``CCAPIError`` like any unknown id, never
    another route or another session's query."""

    async def get_async(session_id: str) -> None:
        async with AsyncClient(gateway.base_url) as ac:
            await ac.get_session(session_id)

    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        hostile = [
            "../../healthz",
            "..",
            ".",
            f"{session.id}?limit=1",
            f"{session.id}/events",
            f"{session.id}#x",
            "a b",
        ]
        for session_id in hostile:
            with pytest.raises(CCAPIError) as missing:
                cc.get_session(session_id)
            assert missing.value.status == 404, session_id
            with pytest.raises(CCAPIError) as missing:
                cc.events(session_id)
            assert missing.value.status == 404, session_id
        with pytest.raises(CCAPIError) as missing:
            asyncio.run(get_async("../../healthz"))
        assert missing.value.status == 404
        with pytest.raises(CCAPIError) as missing:
            cc.delete_session(f"{session.id}?x=1")
        assert missing.value.status == 404 and cc.get_session(session.id).status == "idle"
        with pytest.raises(ValueError, match="session_id must not be empty"):
            cc.get_session("")


def test_idempotency_keys_are_checked_before_anything_is_sent(gateway: Gateway) -> None:
    """A key the header cannot carry (not ASCII, a control character, empty, over 255) is a ``ValueError`` saying so,
    not httpx's ``UnicodeEncodeError`` nor a key silently dropped; a good one still works."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        for key in ("clé-1", "a\nb", "", "k" * 256):
            with pytest.raises(ValueError, match="idempotency_key must be 1 to 255 printable ASCII") as bad:
                cc.send(session.id, "hello", idempotency_key=key)
            assert type(bad.value) is ValueError
            with pytest.raises(ValueError, match="idempotency_key"):
                cc.submit_tool_results(session.id, [], idempotency_key=key)
        assert cc.get_session(session.id).turn_count == 0
        first = cc.send(session.id, "hello", idempotency_key="k" * 255)
        assert cc.send(session.id, "hello", idempotency_key="k" * 255).turn_id == first.turn_id


def test_both_clients_answer_health(gateway: Gateway) -> None:
    async def main() -> dict:
        async with AsyncClient(gateway.base_url) as ac:
            return await ac.health()

    with Client(gateway.base_url) as cc:
        health, async_health = cc.health(), asyncio.run(main())
    assert health["status"] == async_health["status"] == "ok" and health.keys() == async_health.keys()
    assert health["database"] == "ok" and "live_engines" in health


def test_events_filters_by_type(gateway: Gateway) -> None:
    """``events(types=…)``: only those events, under their own seqs; a name no event has is a 400."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        cc.send(session.id, "one")
        cc.send(session.id, "two")
        ends = cc.events(session.id, types=["turn.started", "turn.completed"])
        assert [e.type for e in ends] == ["turn.started", "turn.completed"] * 2
        assert [e.seq for e in ends] == [e.seq for e in cc.events(session.id, limit=1000) if e in ends]
        assert cc.events(session.id, after=ends[1].seq, types="turn.completed") == [ends[3]]
        with pytest.raises(CCAPIError) as bad:
            cc.events(session.id, types=["turn.done"])
        assert bad.value.status == 400 and "turn.done" in bad.value.message

    async def main() -> list[Event]:
        async with AsyncClient(gateway.base_url) as ac:
            return await ac.events(session.id, types=["turn.completed"])

    assert asyncio.run(main()) == [ends[1], ends[3]]


# -- the event stream when the gateway ends it ------------------------------------------


class CountingTransport(httpx.HTTPTransport):
    """Counts the event-stream connections opened, with a receive buffer small enough that a reader who pauses
    holds the gateway's writes up (``socket_options``)."""

    def __init__(self, **options: object) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.streams = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.streams += request.url.path.endswith("/events/stream")
        return super().handle_request(request)


def _logged(cc: Client, session_id: str) -> list[Event]:
    events = cc.events(session_id, limit=1000)
    while len(page := cc.events(session_id, after=events[-1].seq, limit=1000)):
        events += page
    return events


@pytest.mark.slow
def test_a_reader_cut_off_for_falling_behind_still_gets_every_event_once(make_gateway, mock_model: MockModel) -> None:
    """A reader that stops reading while turns run is cut off (``CC_API_SSE_BUFFER_EVENTS=2``): ``stream_events``
    reconnects from its last event, ``until`` not having matched, and yields every event up to the last turn's end
    exactly once, in order."""
    gw = make_gateway(CC_API_SSE_BUFFER_EVENTS="2")
    transport = CountingTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])
    with (
        Client(gw.base_url) as cc,
        Client(http=httpx.Client(base_url=gw.base_url, transport=transport, timeout=60)) as reader,
    ):
        session = cc.create_session()
        last_turn = ""
        stream = reader.stream_events(session.id, until=lambda e: e.turn_id == last_turn and e.ends_turn)
        seen = [next(stream)]  # following now; then it reads nothing while the turns run
        for n in range(3):
            mock_model.script(Reply(text=BULKY, chunk_delay=0.01))
            last_turn = cc.send(session.id, f"turn {n}").turn_id
        seen += list(stream)
        logged = _logged(cc, session.id)
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))  # no gap, no repeat
    assert seen == logged and seen[-1].type == "turn.completed"
    assert transport.streams >= 2, "the reader was never cut off: nothing was tested"


BULKY = " ".join(f"w{n:02d}" + "x" * 30_000 for n in range(60))
"""1.8 MB a turn, sent twice (deltas, then the whole message): 3 turns are more than the socket buffers of a reader
that stops reading hold (the gateway's alone grow to 4 MB), so its writer waits and the 2-event buffer overflows."""


def test_a_stream_the_gateway_keeps_ending_without_an_event_raises_after_the_retries(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconnecting is bounded: ``STREAM_RETRIES`` connections in a row that end before an event are followed by an
    error, not by a loop that never ends."""
    monkeypatch.setattr("ccapi.client.wire.RETRY_DELAY", 0.01)
    transport = DroppingTransport(drops=100, keep=0, clean=True)
    with (
        Client(gateway.base_url) as plain,
        Client(http=httpx.Client(base_url=gateway.base_url, transport=transport, timeout=60)) as ended,
    ):
        session = plain.create_session()
        with pytest.raises(CCAPIError) as gave_up:
            next(ended.stream_events(session.id))
    assert gave_up.value.type == "stream_ended" and transport.streams == wire.STREAM_RETRIES + 1


def test_a_deleted_session_ends_its_stream_with_a_404(gateway: Gateway) -> None:
    """The gateway ends a deleted session's streams: the reconnect's 404 is raised, not a quiet end of the loop."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        stream = cc.stream_events(session.id)
        assert next(stream).type == "session.created"
        cc.delete_session(session.id)
        with pytest.raises(CCAPIError) as gone:
            for _ in stream:
                pass
    assert gone.value.status == 404


@pytest.mark.slow
def test_an_async_reader_follows_across_a_gateway_restart(make_gateway, mock_model: MockModel) -> None:
    """A gateway that stops ends its streams; the reader, following, reconnects to the restarted gateway from its last
    event and gets the later turn's events, every event once and in order."""
    gw = make_gateway()

    async def main() -> tuple[list[Event], list[Event]]:
        async with AsyncClient(gw.base_url) as cc:
            session = await cc.create_session()
            await cc.send(session.id, "before")
            last_turn = ""
            stream = cc.stream_events(session.id, until=lambda e: e.turn_id == last_turn and e.ends_turn)
            seen = [await anext(stream)]
            await asyncio.to_thread(gw.restart)
            last_turn = (await cc.send(session.id, "after")).turn_id
            seen += [event async for event in stream]
            return seen, await cc.events(session.id, limit=1000)

    seen, logged = asyncio.run(main())
    assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
    assert seen == logged and [e.type for e in seen].count("turn.completed") == 2


# -- what a library user relies on: every route, typed answers, one exception family ------


def test_sync_and_async_clients_offer_the_same_methods_with_the_same_signatures() -> None:
    """Code moves between ``Client`` and ``AsyncClient`` by adding ``await``: same names, same parameters."""

    def public(cls: type) -> dict[str, list[tuple[str, Any, Any]]]:
        methods = {n: f for n, f in vars(cls).items() if callable(f) and not n.startswith("_")}
        return {
            n: [(p.name, p.kind, p.default) for p in inspect.signature(f).parameters.values()]
            for n, f in methods.items()
        }

    assert public(Client) == public(AsyncClient)


def test_every_native_route_a_client_needs_is_a_method(gateway: Gateway, mock_model: MockModel, tmp_path: Path) -> None:
    """Fork, compact, one turn, the limits and the webhook deliveries, through the library, sync and async."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        first = cc.send(session.id, "remember 42")
        cc.send(session.id, "and 43")
        assert cc.get_turn(session.id, first.turn_id).text == first.text == "mock reply: remember 42"
        fork = cc.fork_session(session.id, turn_id=first.turn_id)
        assert isinstance(fork, Session) and fork.id != session.id
        assert cc.send(fork.id, "what now").status == "completed"
        assert "and 43" not in str(mock_model.message_requests(include_side=False)[-1].body["messages"])
        mock_model.script(Reply(text="<analysis>a</analysis>\n<summary>Summary: 42.</summary>"))
        compacted = cc.compact(session.id, "keep numbers")
        assert isinstance(compacted, Compaction) and compacted.status == "completed"
        assert compacted.pre_tokens and compacted.post_tokens is not None and compacted.trigger == "manual"
        assert cc.limits()["auth"] in ("mock", "api_key")
        assert cc.webhook_deliveries(session.id, newest_first=True) == []
        with pytest.raises(CCAPIError) as missing:
            cc.get_turn(session.id, "turn_missing")
        assert missing.value.status == 404

    async def main() -> tuple[Session, Turn, list[Any]]:
        async with AsyncClient(gateway.base_url) as ac:
            forked = await ac.fork_session(session.id, after_seq=first.last_event_seq)
            return forked, await ac.get_turn(session.id, first.turn_id), await ac.webhook_deliveries(session.id)

    forked, turn, deliveries = asyncio.run(main())
    assert forked.id not in (session.id, fork.id) and turn.turn_id == first.turn_id and deliveries == []


def test_turns_and_sessions_carry_what_the_api_answers(gateway: Gateway) -> None:
    """``stop_reason``, ``cost_usd``, ``duration_ms``, a background turn's ``first_event_seq``, a session's usage,
    liveness and timestamps: typed attributes, not only ``raw``."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session(system_prompt="be brief")
        turn = cc.send(session.id, "hello")
        assert turn.stop_reason == "end_turn" and turn.duration_ms is not None and turn.cost_usd is not None
        assert turn.usage["output_tokens"] > 0 and turn.first_event_seq is None
        accepted = cc.send(session.id, "again", background=True)
        assert accepted.status == "running" and accepted.first_event_seq == turn.last_event_seq + 1
        followed = list(cc.stream_events(session.id, after=accepted.first_event_seq - 1, until=lambda e: e.ends_turn))
        assert followed[0].type == "turn.started" and followed[-1].turn_id == accepted.turn_id
        shown = cc.get_session(session.id)
    assert shown.system_prompt == "be brief" and shown.live and shown.running_turn_id is None
    assert shown.usage and shown.context is not None and shown.created_at and shown.updated_at


def test_create_session_sends_an_explicit_none_so_webhook_none_opts_out() -> None:
    """``"webhook": null`` opts out of the gateway's default webhook; the library dropped it, and the session got the
    default. Named fields left at ``None`` are still left out."""
    sent: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.content)
        return httpx.Response(201, json={"id": "sess_x", "status": "idle", "model": "m"})

    with Client(http=httpx.Client(base_url="http://gw", transport=httpx.MockTransport(answer))) as cc:
        cc.create_session(webhook=None, max_budget_usd=None, model=None)
    assert orjson.loads(sent[0]) == {"webhook": None, "max_budget_usd": None}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_no_answer_is_a_ccapi_connection_error_not_a_raw_httpx_one() -> None:
    """Nothing listening, or a timeout: a ``CCAPIError`` (status 0, type ``connection_error`` / ``timeout``, httpx's
    error as the cause) that ``except CCAPIError`` catches, and still of httpx's own class (``httpx.ConnectError``),
    as before."""
    url = f"http://127.0.0.1:{_closed_port()}"
    with Client(url) as cc, pytest.raises(CCAPIError) as refused:
        cc.get_session("sess_x")
    assert isinstance(refused.value, CCAPIConnectionError) and isinstance(refused.value, httpx.ConnectError)
    assert (refused.value.status, refused.value.type) == (0, "connection_error")
    assert isinstance(refused.value.__cause__, httpx.ConnectError)

    async def main() -> None:
        async with AsyncClient(url) as ac:
            await ac.health()

    with pytest.raises(CCAPIConnectionError):
        asyncio.run(main())

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    http = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(slow))
    with Client(http=http) as cc, pytest.raises(CCAPIError) as late:
        cc.send("sess_x", "hello")
    assert late.value.type == "timeout"


@pytest.mark.parametrize(
    "answer",
    [httpx.Response(200, text="<html>hello</html>"), httpx.Response(200, json={"ok": True})],
    ids=["html", "other-json"],
)
def test_a_success_that_is_not_the_gateways_is_a_ccapi_error(answer: httpx.Response) -> None:
    """Another server on the port answers 200 its own way: ``invalid_response``, not ``JSONDecodeError`` or
    ``KeyError``."""
    http = httpx.Client(base_url="http://elsewhere", transport=httpx.MockTransport(lambda _: answer))
    with Client(http=http) as cc:
        for call in (lambda: cc.get_session("sess_x"), lambda: cc.send("sess_x", "hi"), lambda: cc.events("s")):
            with pytest.raises(CCAPIError) as odd:
                call()
            assert (odd.value.status, odd.value.type) == (200, "invalid_response")


def test_health_returns_the_unavailable_answer_a_probe_asks_for() -> None:
    """``/healthz`` answers 503 with its own body when the store is unreachable: that is the health, not an error."""
    body = {"status": "unavailable", "database": "unreachable", "live_engines": 0}
    http = httpx.Client(base_url="http://gw", transport=httpx.MockTransport(lambda _: httpx.Response(503, json=body)))
    with Client(http=http) as cc:
        assert cc.health() == body


def test_stream_events_filters_by_type(gateway: Gateway) -> None:
    """``stream_events(types=…)`` sends ``types=``: only those events, replayed and live, under their own seqs."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        cc.send(session.id, "one")
        ends = list(cc.stream_events(session.id, types=["turn.completed"], until=lambda e: True))
        logged = cc.events(session.id, types="turn.completed")
    assert [e.type for e in ends] == ["turn.completed"] and ends == logged


@pytest.mark.parametrize("clean", [False, True], ids=["dropped", "ended-by-the-gateway"])
def test_stream_turn_yields_the_turns_events_and_resumes_a_dropped_reply(
    gateway: Gateway, mock_model: MockModel, clean: bool
) -> None:
    """``stream_turn`` streams a turn (``"stream": true``); a reply cut short is sent again with its
    ``Idempotency-Key`` and the gateway replays it: every event of the turn once, in order, and the input ran once."""
    words = " ".join(f"word{n}" for n in range(60))
    mock_model.script(Reply(text=words, chunk_delay=0.02))
    transport = DroppingTransport(drops=3, keep=2, clean=clean, path="/turns")
    with (
        Client(gateway.base_url) as plain,
        Client(http=httpx.Client(base_url=gateway.base_url, transport=transport, timeout=60)) as dropping,
    ):
        session = plain.create_session()
        seen = list(dropping.stream_turn(session.id, "talk"))
        logged = plain.events(session.id, limit=1000)
    assert transport.cuts >= 1 and transport.streams == transport.cuts + 1
    assert seen == logged[1:] and seen[0].type == "turn.started" and seen[-1].type == "turn.completed"
    assert "".join(e.data["text"] for e in seen if e.type == "message.delta") == words
    assert len([r for r in mock_model.message_requests(include_side=False) if "talk" in str(r.body)]) == 1

    async def main() -> list[str]:
        async with AsyncClient(gateway.base_url) as ac:
            return [e.type async for e in ac.stream_turn(session.id, "more", idempotency_key="k-more")]

    assert asyncio.run(main())[-1] == "turn.completed"


@pytest.mark.slow
def test_stream_turn_follows_its_turn_across_a_gateway_restart(make_gateway, mock_model: MockModel) -> None:
    """The gateway stops mid-turn (ending the turn and its reply); ``stream_turn`` sends its request again to the
    restarted gateway, which replays the turn from the log to its end: every event once, in order."""
    gw = make_gateway()
    mock_model.script(Reply(text=" ".join(f"word{n}" for n in range(200)), chunk_delay=0.02))
    with Client(gw.base_url) as cc:
        session = cc.create_session()
        seen: list[Event] = []
        for event in cc.stream_turn(session.id, "talk"):
            seen.append(event)
            if len(seen) == 5:
                gw.restart()
        logged = [e for e in cc.events(session.id, limit=1000) if e.turn_id == seen[0].turn_id]
    assert seen == logged and seen[-1].ends_turn and seen[-1].type != "turn.completed"
