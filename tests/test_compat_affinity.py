"""Session affinity: an edited history starts a new session whose transcript is that history,
and leaves the old one intact; a pinned session takes only the new input."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from ccapi.testing import MockModel
from tests.compat_support import main_requests, user_texts
from tests.gateway import Gateway
from tests.metrics_support import moved, scrape

ROUTES = ("new", "warm", "fork", "seeded")


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="unused", max_retries=0) as client:
        yield client


def _ask(client: openai.OpenAI, messages: list[dict], **extra) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(model="sonnet", messages=messages, **extra)
    return raw.headers["x-cc-session-id"], raw.parse().choices[0].message.content


def _history(client: openai.OpenAI, questions: list[str]) -> tuple[str, list[dict]]:
    messages: list[dict] = [{"role": "system", "content": "Be brief."}]
    sessions = set()
    for question in questions:
        messages.append({"role": "user", "content": question})
        session, answer = _ask(client, messages)
        sessions.add(session)
        messages.append({"role": "assistant", "content": answer})
    assert len(sessions) == 1
    return sessions.pop(), messages


@pytest.mark.slow
def test_edited_history_starts_a_session_holding_it_and_leaves_the_old_one_intact(
    client: openai.OpenAI, gateway: Gateway, mock_model: MockModel
) -> None:
    before = scrape(gateway)
    original, messages = _history(client, ["alpha", "beta", "gamma"])

    edited = [dict(m) for m in messages] + [{"role": "user", "content": "delta"}]
    edited[1]["content"] = "ALPHA (edited)"
    mock_model.clear()
    forked, answer = _ask(client, edited)
    assert forked != original and answer == "mock reply: delta"
    seed = main_requests(mock_model)[-1]["messages"]
    assert len(seed) == 7  # a new Claude session whose transcript is the edited history, as messages
    assert user_texts(seed[0]) == ["ALPHA (edited)"] and seed[5]["content"][0]["text"] == "mock reply: gamma"
    assert user_texts(seed[-1]) == ["delta"] and "<conversation_history>" not in str(seed)

    # the original conversation goes on in its own session, untouched by the edit
    mock_model.clear()
    session, answer = _ask(client, [*messages, {"role": "user", "content": "epsilon"}])
    assert session == original and answer == "mock reply: epsilon"
    request = main_requests(mock_model)[-1]
    assert len(request["messages"]) == 7 and "ALPHA" not in str(request["messages"])

    # and the fork is warm too
    mock_model.clear()
    edited += [{"role": "assistant", "content": "mock reply: delta"}, {"role": "user", "content": "zeta"}]
    assert _ask(client, edited)[0] == forked
    assert len(main_requests(mock_model)[-1]["messages"]) == 9  # the seeded seven, delta's reply, zeta
    log = gateway.events(original)
    assert [e["data"]["input"][0]["text"] for e in log if e["type"] == "turn.started"] == [
        "alpha",
        "beta",
        "gamma",
        "epsilon",
    ]
    after = scrape(gateway)
    routes = {r: moved(before, after, "cc_api_compat_requests_total", format="openai.chat", route=r) for r in ROUTES}
    assert routes == {"new": 1, "warm": 4, "fork": 0, "seeded": 1}
    assert moved(before, after, "cc_api_compat_flattened_total", format="openai.chat") == 0  # seeded as messages


def test_a_regenerated_reply_does_not_reuse_the_session(client: openai.OpenAI) -> None:
    original, messages = _history(client, ["one"])
    again, _ = _ask(client, messages[:-1])  # the same request again: "regenerate"
    assert again != original


def test_a_changed_system_prompt_or_tool_set_is_the_same_conversation_under_the_new_options(
    client: openai.OpenAI, mock_model: MockModel
) -> None:
    original, messages = _history(client, ["one, with options"])
    verbose = [{"role": "system", "content": "Be verbose."}, *messages[1:], {"role": "user", "content": "two"}]
    session, answer = _ask(client, verbose)
    assert session == original
    tool = {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}}
    more = [*verbose, {"role": "assistant", "content": answer}, {"role": "user", "content": "three"}]
    assert _ask(client, more, tools=[tool])[0] == original
    sent = main_requests(mock_model)[-2:]  # Claude Code restarted on the same transcript each time
    assert [len(body["messages"]) for body in sent] == [3, 5]
    assert "Be verbose." in str(sent[0]["system"]) and [t["name"] for t in sent[1]["tools"]] == ["mcp__client__noop"]


def test_a_pinned_session_takes_only_the_new_input(client: openai.OpenAI, mock_model: MockModel) -> None:
    pinned, _ = _history(client, ["first"])
    mock_model.clear()
    session, answer = _ask(client, [{"role": "user", "content": "second"}], extra_headers={"x-cc-session-id": pinned})
    assert session == pinned and answer == "mock reply: second"
    assert len(main_requests(mock_model)[-1]["messages"]) == 3
    session, _ = _ask(client, [{"role": "user", "content": "third"}], metadata={"cc_session_id": pinned})
    assert session == pinned
    with pytest.raises(openai.NotFoundError):
        _ask(client, [{"role": "user", "content": "x"}], extra_headers={"x-cc-session-id": "sess_unknown"})
