"""``ccapi.client``'s tool loop when the turn moves on without it (an interrupt, a call that timed out), and
``AsyncClient`` running parallel tool calls concurrently."""

from __future__ import annotations

import asyncio
import math
import pickle
import socket
import time

import httpx
import pytest

from ccapi.client import AsyncClient, CCAPIConnectionError, CCAPIError, Client, Turn
from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import WEATHER_SCHEMA, result_text, tool_results_sent
from tests.gateway import Gateway

WEATHER = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA}


def test_run_tools_returns_the_turn_interrupted_while_its_tool_ran(gateway: Gateway, mock_model: MockModel) -> None:
    """Someone stops the turn (a UI's stop button, another client) while ``run_tools`` runs a tool: the loop returns
    the interrupted turn, as it returns any interrupted turn, instead of raising the gateway's 409 to its late
    answer ("this session is not waiting for tool results"). Sync and async alike."""
    with Client(gateway.base_url) as cc, Client(gateway.base_url) as other:
        session = cc.create_session(tools=[WEATHER])

        def get_weather(city: str) -> str:
            other.interrupt(session.id)
            return "cold"

        mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="never"))
        turn = cc.run_tools(session.id, "Oslo?", {"get_weather": get_weather})
        assert turn.status == "interrupted" and turn.error is not None
        assert cc.get_session(session.id).status == "idle"

    async def main() -> Turn:
        async with AsyncClient(gateway.base_url) as ac:

            async def get_weather(city: str) -> str:
                await ac.interrupt(session.id)
                return "cold"

            return await ac.run_tools(session.id, "Rome?", {"get_weather": get_weather})

    mock_model.clear_script()  # the first turn's "never", which no model call took
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),)), Reply(text="never"))
    turn = asyncio.run(main())
    assert turn.status == "interrupted" and turn.turn_id != ""
    assert all(result_text(r) != "cold" for r in tool_results_sent(mock_model)), "a late result reached Claude"


@pytest.mark.slow
def test_run_tools_goes_on_after_a_call_timed_out_while_its_tool_ran(make_gateway, mock_model: MockModel) -> None:
    """A tool slower than ``CC_API_TOOL_TIMEOUT``: the gateway gives Claude an error result and the turn goes on
    (here, to another call). ``run_tools`` follows it there and answers that call, up to the turn's end, instead of
    raising a 409 to its late answer."""
    gw = make_gateway(CC_API_TOOL_TIMEOUT="1")
    asked: list[str] = []

    def get_weather(city: str) -> str:
        asked.append(city)
        if city == "Oslo":
            time.sleep(2)
        return f"{city}: mild"

    def script() -> None:
        mock_model.script(
            Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)),
            Reply(tool_uses=(ToolUse("get_weather", {"city": "Rome"}),), first_byte_delay=0.5),
            Reply(text="Rome is mild."),
        )

    script()
    with Client(gw.base_url) as cc:
        session = cc.create_session(tools=[WEATHER])
        turn = cc.run_tools(session.id, "Oslo, else Rome?", {"get_weather": get_weather})
    assert turn.status == "completed" and turn.text.endswith("Rome is mild."), turn
    assert asked == ["Oslo", "Rome"]
    timed_out, rome = tool_results_sent(mock_model)
    assert timed_out["is_error"] is True and result_text(rome) == "Rome: mild"

    async def get_weather_async(city: str) -> str:
        await asyncio.sleep(2 if city == "Oslo" else 0)
        return f"{city}: mild"

    async def main() -> Turn:
        async with AsyncClient(gw.base_url) as ac:
            return await ac.run_tools(session.id, "again", {"get_weather": get_weather_async})

    mock_model.clear()
    mock_model.clear_script()
    script()
    turn = asyncio.run(main())
    assert turn.status == "completed" and turn.text.endswith("Rome is mild."), turn


def test_async_run_tools_runs_parallel_calls_concurrently(gateway: Gateway, mock_model: MockModel) -> None:
    """Claude calls two tools at once; ``AsyncClient.run_tools`` runs their coroutines together (two slow lookups take
    the time of one), and sends both results in one post, in the calls' order."""
    mock_model.script(
        Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}), ToolUse("get_weather", {"city": "Rome"}))),
        Reply(text="Both known."),
    )
    running: set[str] = set()
    overlapped: list[bool] = []

    async def get_weather(city: str) -> str:
        running.add(city)
        await asyncio.sleep(0.5)
        overlapped.append(running == {"Oslo", "Rome"})
        return f"{city}: mild"

    async def main() -> Turn:
        async with AsyncClient(gateway.base_url) as ac:
            session = await ac.create_session(tools=[WEATHER])
            return await ac.run_tools(session.id, "Oslo and Rome?", {"get_weather": get_weather})

    turn = asyncio.run(main())
    assert turn.status == "completed" and turn.text == "Both known."
    assert overlapped == [True, True], "the second call started only once the first had finished"
    assert [result_text(r) for r in tool_results_sent(mock_model)] == ["Oslo: mild", "Rome: mild"]


def test_a_connection_error_names_its_request_as_httpx_errors_do() -> None:
    """``CCAPIConnectionError`` is also httpx's own class so that httpx handlers still catch it; those read
    ``exc.request`` (httpx's docs: ``exc.request.url``), which raised ``RuntimeError`` ("has not been set")."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as cc, pytest.raises(httpx.RequestError) as refused:
        cc.get_session("sess_x")
    assert isinstance(refused.value, CCAPIConnectionError)
    assert str(refused.value.request.url) == f"http://127.0.0.1:{port}/api/sessions/sess_x"

    async def main() -> None:
        async with AsyncClient(f"http://127.0.0.1:{port}") as ac:
            await ac.send("sess_x", "hello")

    with pytest.raises(httpx.RequestError) as refused:
        asyncio.run(main())
    assert refused.value.request.method == "POST"


def test_list_sessions_takes_one_status_as_a_string(gateway: Gateway) -> None:
    """``status="idle"`` is that status, as ``events(types="turn.completed")`` is that type: it was sent as its
    letters (``status=i,d,l,e``), a 400 naming them."""
    with Client(gateway.base_url) as cc:
        session = cc.create_session()
        idle, _ = cc.list_sessions(status="idle")
        waiting, _ = cc.list_sessions(status="requires_action")
        both, _ = cc.list_sessions(status=["requires_action", "idle"])
    assert session.id in [s.id for s in idle] and waiting == [] and [s.id for s in both] == [s.id for s in idle]

    async def main() -> list[str]:
        async with AsyncClient(gateway.base_url) as ac:
            return [s.id for s in (await ac.list_sessions(status="idle"))[0]]

    assert session.id in asyncio.run(main())


@pytest.mark.slow
def test_the_api_key_goes_with_every_request_streams_included(make_gateway) -> None:
    """With ``CC_API_KEY`` set, ``api_key=`` is sent as ``Authorization: Bearer`` on every call, the event streams
    and their reconnections included; without it every ``/api`` call is a ``401`` ``CCAPIError``."""
    gw = make_gateway(CC_API_KEY="client-key-123")
    with Client(gw.base_url) as anonymous, pytest.raises(CCAPIError) as refused:
        anonymous.create_session()
    assert (refused.value.status, refused.value.type) == (401, "unauthorized")
    assert "client-key-123" not in str(refused.value)
    with Client(gw.base_url, api_key="client-key-123") as cc:
        session = cc.create_session()
        assert [e.type for e in cc.stream_turn(session.id, "hi")][-1] == "turn.completed"
        assert cc.stream_events(session.id, until=lambda e: e.ends_turn).__next__().type == "session.created"
        assert cc.health()["status"] == "ok"

    async def main() -> list[str]:
        async with AsyncClient(gw.base_url, "client-key-123") as ac:
            await ac.send(session.id, "again")
            return [e.type async for e in ac.stream_events(session.id, types=["turn.completed"], until=lambda e: True)]

    assert asyncio.run(main()) == ["turn.completed"]


def test_a_turn_longer_than_the_read_timeout_is_met_again_by_its_idempotency_key(
    gateway: Gateway, mock_model: MockModel
) -> None:
    """As docs/client.md says: a reply that waits longer than the read timeout is a ``timeout``
    ``CCAPIConnectionError`` while the turn goes on; the same ``send`` with its ``idempotency_key`` waits for that
    turn and returns it, and the input ran once."""
    mock_model.script(Reply(text="worth the wait", first_byte_delay=1.5))
    with Client(gateway.base_url, timeout=httpx.Timeout(0.5, connect=5)) as hasty, Client(gateway.base_url) as cc:
        session = cc.create_session()
        with pytest.raises(CCAPIConnectionError) as late:
            hasty.send(session.id, "slow one", idempotency_key="slow-1")
        assert late.value.type == "timeout" and isinstance(late.value, httpx.ReadTimeout)
        turn = cc.send(session.id, "slow one", idempotency_key="slow-1")
    assert turn.status == "completed" and turn.text == "worth the wait"
    assert len([r for r in mock_model.message_requests(include_side=False) if "slow one" in str(r.body)]) == 1


def test_errors_survive_pickling_as_a_process_pool_sends_them_back(gateway: Gateway) -> None:
    """A ``CCAPIError`` raised in a worker process (``concurrent.futures``, multiprocessing, a task queue) is pickled
    back to the caller: it came back as ``TypeError: __init__() missing 2 required positional arguments``, and a
    connection error, whose class is made at run time, could not be pickled at all."""
    with Client(gateway.base_url) as cc, pytest.raises(CCAPIError) as missing:
        cc.get_session("sess_missing")
    again = pickle.loads(pickle.dumps(missing.value))
    assert type(again) is CCAPIError and str(again) == str(missing.value)
    assert (again.status, again.type, again.message, again.details) == (404, "not_found", missing.value.message, {})

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as cc, pytest.raises(CCAPIConnectionError) as refused:
        cc.health()
    back = pickle.loads(pickle.dumps(refused.value))
    assert isinstance(back, CCAPIConnectionError) and isinstance(back, httpx.ConnectError)
    assert (back.status, back.type, str(back)) == (0, "connection_error", str(refused.value))


def test_an_empty_turn_id_is_a_value_error_as_an_empty_session_id_is() -> None:
    """``get_turn(session_id, "")`` asked for ``/turns/`` and raised the gateway's ``405`` "Method GET not allowed"."""
    sent: list[httpx.Request] = []
    http = httpx.Client(
        base_url="http://gw", transport=httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(500))
    )
    with Client(http=http) as cc, pytest.raises(ValueError, match="turn_id must not be empty"):
        cc.get_turn("sess_x", "")

    async def main() -> None:
        transport = httpx.MockTransport(lambda r: sent.append(r) or httpx.Response(500))
        async with AsyncClient(http=httpx.AsyncClient(base_url="http://gw", transport=transport)) as ac:
            await ac.get_turn("sess_x", "")

    with pytest.raises(ValueError, match="turn_id must not be empty"):
        asyncio.run(main())
    assert sent == [], "nothing was sent"


def test_a_tool_answer_orjson_refuses_but_json_can_say_goes_to_claude(gateway: Gateway, mock_model: MockModel) -> None:
    """A tool that answers an integer past 64 bits (``math.factorial(25)``) or a dict with integer keys: sent as the
    JSON ``json.dumps`` writes. ``Client.run_tools`` raised orjson's ``TypeError`` out of the loop (leaving the turn
    waiting) and ``AsyncClient`` sent Claude an error result instead of the answer."""
    answer = {"factorial": math.factorial(25), "by_key": {1: "one"}}
    expected = '{"factorial":15511210043330985984000000,"by_key":{"1":"one"}}'
    tool = {"name": "compute", "input_schema": {"type": "object"}}

    def compute() -> dict:
        return answer

    async def compute_async() -> dict:
        return answer

    with Client(gateway.base_url) as cc:
        session = cc.create_session(tools=[tool])
        mock_model.script(Reply(tool_uses=(ToolUse("compute", {}),)), Reply(text="big."))
        assert cc.run_tools(session.id, "25!", {"compute": compute}).status == "completed"

    async def main() -> Turn:
        async with AsyncClient(gateway.base_url) as ac:
            return await ac.run_tools(session.id, "again", {"compute": compute_async})

    mock_model.script(Reply(tool_uses=(ToolUse("compute", {}),)), Reply(text="big."))
    assert asyncio.run(main()).status == "completed"
    sent = tool_results_sent(mock_model)
    assert [result_text(r) for r in sent] == [expected, expected] and not any(r.get("is_error") for r in sent)
