"""Several gateway hosts on one PostgreSQL: sessions move between them with their
context, live events cross hosts, and a dead host's turn is closed after its lease expires."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from ccapi.client import verify_webhook
from ccapi.testing import MockModel, Reply
from ccapi.webhook_rules import new_secret
from tests.gateway import Gateway, sse_events
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.slow  # several gateways on one PostgreSQL database

LEASE_TTL = "3"
WEBHOOK_SECRET = new_secret()


def _host_pair(start: Callable[..., Gateway], url: str, workdir: Path) -> tuple[Gateway, Gateway]:
    """Two gateways on one database; like real hosts they share CC_API_CWD, the working
    directory that Claude Code files a conversation's transcript under."""
    workdir.mkdir()
    a, b = (
        start(
            CC_API_DATABASE_URL=url,
            CC_API_HOST_ID=name,
            CC_API_LEASE_TTL=LEASE_TTL,
            CC_API_CWD=str(workdir),
            CC_API_WEBHOOK_SECRET=WEBHOOK_SECRET,
        )
        for name in ("host-a", "host-b")
    )
    return a, b


@pytest.fixture(scope="module")
def hosts(mock_model: MockModel, postgres_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """A pair of hosts shared by the module's tests that leave both running (each works on its own sessions)."""
    home = tmp_path_factory.mktemp("hosts")
    started: list[Gateway] = []

    def start(**env: str) -> Gateway:
        started.append(Gateway(home / f"gw{len(started)}", mock_model.url, **env).start())
        return started[-1]

    try:
        yield _host_pair(start, postgres_server.create_database(), home / "agent-workdir")
    finally:
        for gw in started:
            gw.stop()
        for gw in started:
            assert gw.lingering_processes() == [], "a Claude CLI process outlived the gateway"


@pytest.fixture
def own_hosts(make_gateway, postgres_server, tmp_path) -> tuple[Gateway, Gateway]:
    """A pair of hosts for one test, which kills one of them."""
    return _host_pair(make_gateway, postgres_server.create_database(), tmp_path / "agent-workdir")


@pytest.fixture
def hosts_apart(make_gateway, postgres_server, tmp_path) -> tuple[Gateway, Gateway]:
    """Two gateways on one database, each with its own ``CC_API_CWD``."""
    url = postgres_server.create_database()
    gateways = []
    for name in ("host-a", "host-b"):
        workdir = tmp_path / f"workdir-{name}"
        workdir.mkdir()
        gateways.append(make_gateway(CC_API_DATABASE_URL=url, CC_API_HOST_ID=name, CC_API_CWD=str(workdir)))
    return gateways[0], gateways[1]


def _last_request(mock: MockModel) -> str:
    return orjson.dumps(mock.message_requests(include_side=False)[-1].body["messages"]).decode()


def test_a_session_moves_between_hosts_with_its_context(hosts, mock_model: MockModel) -> None:
    a, b = hosts
    receiver = Receiver().start()
    session = a.create_session(
        system_prompt="You guard passwords.",
        webhook={"url": receiver.url, "events": ["turn.started", "message.completed", "turn.completed"]},
    )
    a.turn(session["id"], "the password is swordfish")

    on_b = b.turn(session["id"], "what is the password?")
    assert on_b["status"] == "completed"
    assert "the password is swordfish" in _last_request(mock_model)  # B resumed A's conversation

    back_on_a = a.turn(session["id"], "say it once more")
    assert back_on_a["status"] == "completed"
    sent = _last_request(mock_model)
    assert "what is the password?" in sent, "A's warm engine must not miss the turn B ran"
    events = b.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert a.events(session["id"]) == events
    assert b.client.get(f"/api/sessions/{session['id']}").json()["turn_count"] == 3

    # both hosts' webhook workers watch one outbox: every subscribed event is sent once, by one of them
    subscribed = [e for e in events if e["type"] in ("turn.started", "message.completed", "turn.completed")]
    try:
        seen = receiver.wait_for(lambda seen: len(seen) >= len(subscribed))
        time.sleep(1.5)  # a second sender would have polled by now
    finally:
        receiver.stop()
    assert sorted(d.headers["webhook-id"] for d in receiver.deliveries) == sorted(
        f"{session['id']}_{e['seq']}" for e in subscribed
    )
    assert verify_webhook(WEBHOOK_SECRET, seen[0].headers, seen[0].body) == seen[0].event


def test_a_subscriber_on_one_host_follows_a_turn_on_the_other(hosts, mock_model: MockModel) -> None:
    a, b = hosts
    session = a.create_session()
    received: list[dict] = []

    def follow_on_a() -> None:
        with a.client.stream(
            "GET", f"/api/sessions/{session['id']}/events/stream", headers={"Last-Event-ID": "1"}
        ) as response:
            for frame in sse_events(response.iter_lines()):
                if "event" in frame:
                    received.append(frame["data"])
                    if frame["event"] == "turn.completed":
                        return

    follower = threading.Thread(target=follow_on_a, daemon=True)
    follower.start()
    time.sleep(0.5)
    mock_model.script(Reply(text=" ".join(f"part{n}" for n in range(40)), chunk_delay=0.02))
    assert b.turn(session["id"], "stream on b")["status"] == "completed"
    follower.join(15)
    assert not follower.is_alive(), "host A never saw host B's turn end"
    assert received == b.events(session["id"], after=1)  # every event, in order, once


def test_the_owner_dies_mid_turn_and_the_other_host_takes_over(own_hosts, mock_model: MockModel) -> None:
    a, b = own_hosts
    session = a.create_session()
    a.turn(session["id"], "the vault code is 0451")
    mock_model.script(Reply(text=" ".join(f"slow{n}" for n in range(200)), chunk_delay=0.05))
    with a.client.stream(
        "POST", f"/api/sessions/{session['id']}/turns", json={"input": "recite", "stream": True}
    ) as response:
        frames = []
        for frame in sse_events(response.iter_lines()):
            if "event" in frame:
                frames.append(frame["data"])
            if len(frames) == 4:
                a.process.send_signal(signal.SIGKILL)
                break
    dead_turn = frames[0]["turn_id"]

    busy = b.client.post(f"/api/sessions/{session['id']}/turns", json={"input": "too early"})
    assert busy.status_code == 409 and busy.json()["error"]["details"]["owner"] == "host-a"

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        turn = b.client.get(f"/api/sessions/{session['id']}/turns/{dead_turn}").json()
        if turn["status"] != "running":
            break
        time.sleep(0.3)
    assert turn["status"] == "failed" and turn["error"]["type"] == "gateway_restarted"

    mock_model.clear()
    after = b.turn(session["id"], "what is the vault code?")
    assert after["status"] == "completed"
    assert "the vault code is 0451" in _last_request(mock_model)
    events = b.events(session["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert any(e["type"] == "turn.failed" and e["turn_id"] == dead_turn for e in events)


def test_a_compat_conversation_continues_warm_on_another_host(hosts, mock_model: MockModel) -> None:
    """The affinity index is in the database: host B finds the session host A served, and
    after B has moved it on, A follows (its own index was stale)."""
    a, b = hosts
    for gw in (a, b):  # both have read the (empty) index before the conversation starts
        assert (
            gw.client.post(
                "/v1/chat/completions",
                json={"model": "sonnet", "messages": [{"role": "user", "content": f"warm-up on {gw.base_url}"}]},
            ).status_code
            == 200
        )
    messages = [{"role": "user", "content": "the code word is heron"}]
    sessions = []
    for gw in (a, b, a):
        response = gw.client.post("/v1/chat/completions", json={"model": "sonnet", "messages": messages})
        assert response.status_code == 200, response.text
        sessions.append(response.headers["x-cc-session-id"])
        messages += [
            {"role": "assistant", "content": response.json()["choices"][0]["message"]["content"]},
            {"role": "user", "content": f"and now, turn {len(messages) // 2 + 1}?"},
        ]
    assert len(set(sessions)) == 1
    bodies = mock_model.message_requests(include_side=False)[-3:]
    assert [len(r.body["messages"]) for r in bodies] == [1, 3, 5]  # each host sent only the new message
    assert "<conversation_history>" not in orjson.dumps([r.body for r in bodies]).decode()


def test_hosts_with_different_working_directories_continue_each_others_sessions(
    hosts_apart, mock_model: MockModel
) -> None:
    """Claude Code files a transcript under its working directory; the store finds it by
    session, so a host that runs Claude Code elsewhere continues the conversation warm."""
    a, b = hosts_apart
    session = a.create_session()
    a.turn(session["id"], "the ferry leaves at dawn")

    on_b = b.turn(session["id"], "when does the ferry leave?")
    assert on_b["status"] == "completed", on_b
    sent = _last_request(mock_model)
    assert "the ferry leaves at dawn" in sent and "when does the ferry leave?" in sent

    back_on_a = a.turn(session["id"], "and from which pier?")
    assert back_on_a["status"] == "completed", back_on_a
    assert "when does the ferry leave?" in _last_request(mock_model), "A must resume with the turn B ran"

    messages = [{"role": "user", "content": "the gate code is 8812"}]
    served = []
    for gw in (a, b):
        response = gw.client.post("/v1/chat/completions", json={"model": "sonnet", "messages": messages})
        assert response.status_code == 200, response.text
        served.append(response.headers["x-cc-session-id"])
        messages += [
            {"role": "assistant", "content": response.json()["choices"][0]["message"]["content"]},
            {"role": "user", "content": "what is the gate code?"},
        ]
    assert served[0] == served[1]
    last = mock_model.message_requests(include_side=False)[-1].body
    assert len(last["messages"]) == 3 and "the gate code is 8812" in orjson.dumps(last).decode()
