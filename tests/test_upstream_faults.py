"""Upstream faults scripted in the mock: each ends as a completed turn (after Claude Code's
own retries) or a clear ``turn.failed`` within a bounded time, and the session goes on; a turn that fails upstream
reaches compat clients as an error in their own format, both as a JSON reply and mid-stream."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest

from ccapi.testing import MockError, MockModel, Reply
from tests.gateway import Gateway

SERVER_ERROR = Reply(error=MockError(500, "api_error", "internal server error"))
OVERLOADED = Reply(error=MockError(529, "overloaded_error", "Overloaded"))


@pytest.fixture(scope="module")
def gateway(mock_model: MockModel, tmp_path_factory: pytest.TempPathFactory):
    """One retry, and a 3 s request timeout, so every fault resolves in seconds."""
    gw = Gateway(
        tmp_path_factory.mktemp("faults"), mock_model.url, CC_API_UPSTREAM_RETRIES="1", CC_API_UPSTREAM_TIMEOUT="3"
    ).start()
    yield gw
    gw.stop()
    assert gw.lingering_processes() == []


@pytest.fixture(scope="module")
def session_id(gateway: Gateway) -> str:
    """One session that every fault below hits in turn, and that must go on after each (a Claude Code start per
    fault would be ~1 CPU-second each, and a session that outlives many faults shows more than one outliving one)."""
    return gateway.create_session()["id"]


def _turn(gw: Gateway, session_id: str, text: str) -> tuple[dict, float]:
    began = time.monotonic()
    reply = gw.turn(session_id, text)
    return reply | {"session_id": session_id}, time.monotonic() - began


def _turn_event_types(gw: Gateway, reply: dict) -> list[str]:
    """The types of the events the turn of ``reply`` logged, in order."""
    return [e["type"] for e in gw.events(reply["session_id"]) if e.get("turn_id") == reply["turn_id"]]


def _still_usable(gw: Gateway, session_id: str) -> None:
    after = gw.turn(session_id, "still there?")
    assert after["status"] == "completed" and after["output"][-1]["text"] == "mock reply: still there?"


@pytest.mark.parametrize(
    ("faults", "reason", "status"),
    [
        ((SERVER_ERROR, SERVER_ERROR), "server_error", 500),
        ((OVERLOADED, OVERLOADED), "server_error", 529),
        ((Reply(error=MockError(429, "rate_limit_error", "slow down", retry_after=1)),) * 2, "rate_limit", 429),
    ],
)
def test_persistent_upstream_errors_fail_the_turn_clearly(
    gateway: Gateway, session_id: str, mock_model: MockModel, faults: tuple[Reply, ...], reason: str, status: int
) -> None:
    mock_model.script(*faults)
    reply, took = _turn(gateway, session_id, "this will fail")
    assert reply["status"] == "failed", reply
    assert reply["error"]["type"] == "upstream_error"
    assert reply["error"]["reason"] == reason and reply["error"]["status"] == status
    assert reply["error"]["message"]
    assert took < 30
    types = _turn_event_types(gateway, reply)
    assert types[0] == "turn.started" and "turn.retrying" in types and types[-1] == "turn.failed"
    _still_usable(gateway, reply["session_id"])


@pytest.mark.parametrize(
    "fault",
    [
        SERVER_ERROR,
        OVERLOADED,
        Reply(error=MockError(429, "rate_limit_error", "slow down", retry_after=1)),
        Reply(text="this stream will be cut " * 20, drop_after_chunks=4),
        Reply(malformed=True),
    ],
    ids=["500", "529", "429", "dropped-stream", "malformed-sse"],
)
def test_a_transient_fault_is_retried_and_the_turn_completes(
    gateway: Gateway, session_id: str, mock_model: MockModel, fault: Reply
) -> None:
    mock_model.script(fault)  # the retry gets the mock's normal answer
    reply, took = _turn(gateway, session_id, "recover please")
    assert reply["status"] == "completed", reply
    assert reply["output"][-1]["text"] == "mock reply: recover please"
    assert took < 30
    _still_usable(gateway, reply["session_id"])


WORDS = " ".join(f"w{n}" for n in range(30))


def test_a_reply_cut_mid_stream_and_asked_again_counts_once(
    gateway: Gateway, session_id: str, mock_model: MockModel
) -> None:
    """Claude Code drops a model answer cut off mid-stream and sends the request again (``api_retry``): the turn's
    output and a compat reply hold the answer once, not the first try's text before it, and ``turn.retrying`` names
    the message to drop. (A cut after one of its blocks had finished is resumed instead: what survived is kept.)"""
    cut = Reply(text=WORDS, drop_after_chunks=6, chunk_delay=0.05)
    mock_model.script(cut, Reply(thinking="brief thought", text=WORDS))
    reply, _ = _turn(gateway, session_id, "say it once")
    assert [(b["type"], b.get("text") or b.get("thinking")) for b in reply["output"]] == [
        ("thinking", "brief thought"),
        ("text", WORDS),
    ]
    events = [e for e in gateway.events(session_id) if e.get("turn_id") == reply["turn_id"]]
    [retry] = [e for e in events if e["type"] == "turn.retrying"]
    first = next(e for e in events if e["type"] in ("message.completed", "message.delta", "thinking.delta"))
    assert retry["data"]["discarded_message_id"] and retry["seq"] > first["seq"]

    mock_model.script(cut, Reply(thinking="brief thought", text=WORDS))
    chat = gateway.client.post(
        "/v1/chat/completions",
        json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "say it once, compat"}]},
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["choices"][0]["message"]["content"] == WORDS


@pytest.mark.slow
def test_a_first_byte_that_never_comes_times_out(gateway: Gateway, session_id: str, mock_model: MockModel) -> None:
    never = Reply(text="too late", first_byte_delay=20)
    mock_model.script(never, never)
    reply, took = _turn(gateway, session_id, "hello?")
    assert reply["status"] == "failed", reply
    assert reply["error"]["type"] == "upstream_error"
    assert "timed out" in reply["error"]["message"].lower()
    assert took < 20
    _still_usable(gateway, reply["session_id"])


# -- compat clients: the failure in their own format (one retry: a scripted fault fails the turn quickly) ----------


def test_openai_clients_get_an_openai_error(gateway: Gateway, mock_model: MockModel) -> None:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        with pytest.raises(openai.APIStatusError) as failed:
            client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "fail"}])
        assert failed.value.status_code == 502 and failed.value.body["code"] == "upstream_error"
        assert failed.value.body["type"] == "server_error"

        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        stream = client.responses.create(model="sonnet", input="fail while streaming", stream=True)
        events = list(stream)
        assert events[0].type == "response.created" and events[-1].type == "error"
        assert events[-1].code == "upstream_error"

        # the failed exchange left no head: the retry is a fresh, working conversation
        retry = client.chat.completions.with_raw_response.create(
            model="sonnet", messages=[{"role": "user", "content": "fail"}]
        )
        assert retry.parse().choices[0].message.content == "mock reply: fail"


def test_anthropic_clients_get_an_anthropic_error(gateway: Gateway, mock_model: MockModel) -> None:
    with anthropic.Anthropic(base_url=gateway.base_url, api_key="unused", max_retries=0) as client:
        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        with pytest.raises(anthropic.APIStatusError) as failed:
            client.messages.create(model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "fail"}])
        assert failed.value.status_code == 502
        assert failed.value.body["type"] == "error" and failed.value.body["error"]["type"] == "api_error"

        mock_model.script(SERVER_ERROR, SERVER_ERROR)
        with (
            pytest.raises(anthropic.APIStatusError) as streamed,
            client.messages.stream(
                model="sonnet", max_tokens=10, messages=[{"role": "user", "content": "fail streaming"}]
            ) as stream,
        ):
            stream.get_final_message()
        assert streamed.value.body["error"]["type"] == "api_error"
