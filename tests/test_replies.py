"""Every native reply is what its declared shape (``ccapi/api/replies.py``) says, key for key: the
real replies of one gateway are validated against the document's schemas made strict (a key the
declaration lacks fails, which the schema fuzz test lets through), so a client generated from the
document reads every field the server sends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest

from ccapi.api.openapi import DOCUMENT
from ccapi.testing import MockModel, Reply, ToolUse
from ccapi.webhook_rules import new_secret
from tests.gateway import Gateway
from tests.webhook_receiver import Receiver

WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def _strict(node: Any) -> Any:
    """An OpenAPI 3.0 schema as JSON Schema 2020-12, with no undeclared keys allowed."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _strict(v) if k != "properties" else {n: _strict(s) for n, s in v.items()} for k, v in node.items()}
    if "properties" in out:
        out.setdefault("additionalProperties", False)
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(limit)
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


STRICT = {"components": {"schemas": _strict(DOCUMENT["components"]["schemas"])}}


def check(name: str, body: Any) -> None:
    """``body`` is a ``name`` to the letter, or the test fails naming the key that is not."""
    validator = jsonschema.Draft202012Validator({**STRICT, "$ref": f"#/components/schemas/{name}"})
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
    assert not errors, f"{name}: {errors}"


@pytest.fixture(scope="module")
def gateway(mock_model: MockModel, backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The module's one gateway, able to sign webhooks (so a delivery has a reply to check)."""
    gw = Gateway(tmp_path_factory.mktemp("replies"), mock_model.url, backend, CC_API_WEBHOOK_SECRET=new_secret())
    yield gw.start()
    gw.stop()
    assert gw.lingering_processes() == []


def test_a_reply_with_an_undeclared_key_fails_the_check() -> None:
    """The check has teeth: an extra key, a wrong enum or a missing required key is named."""
    session_list = {"object": "list", "data": [], "has_more": False, "next_after": None}
    check("SessionList", session_list)
    for wrong in ({**session_list, "total": 0}, {**session_list, "object": "sessions"}, {"object": "list"}):
        with pytest.raises(AssertionError, match="SessionList"):
            check("SessionList", wrong)


def test_every_native_reply_matches_its_declared_shape(gateway: Gateway, mock_model: MockModel) -> None:
    """One pass over the native routes: info, health, limits, models, a session's life (a background
    turn paused on a client tool, its results, a compaction, a fork, a change, the lists, the
    webhook deliveries, a delete) and the error envelope."""
    receiver = Receiver().start()
    try:
        _walk_the_routes(gateway, mock_model, receiver)
    finally:
        receiver.stop()


def _walk_the_routes(gateway: Gateway, mock_model: MockModel, receiver: Receiver) -> None:
    client = gateway.client
    check("Info", client.get("/", headers={"accept": "application/json"}).json())
    check("Health", client.get("/healthz").json())
    check("Limits", client.get("/api/limits").json())
    check("ModelList", client.get("/api/models").json())

    session = gateway.create_session(tools=[WEATHER], webhook={"url": receiver.url}, max_budget_usd=5)
    check("Session", session)
    sid = session["id"]
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)), Reply(text="Oslo is cold."))
    started = client.post(f"/api/sessions/{sid}/turns", json={"input": "weather in Oslo?", "background": True})
    assert started.status_code == 202, started.text
    check("TurnAccepted", started.json())
    paused = _settled(gateway, sid, started.json()["turn_id"])
    assert paused["status"] == "requires_action" and paused["tool_calls"], paused
    check("Turn", paused)
    results = [{"tool_call_id": paused["tool_calls"][0]["tool_call_id"], "content": "-3C"}]
    done = client.post(f"/api/sessions/{sid}/tool-results", json={"results": results})
    assert done.status_code == 200 and done.json()["status"] == "completed", done.text
    check("Turn", done.json())

    summary = "<analysis>short</analysis>\n<summary>Summary: Oslo is cold.</summary>"
    mock_model.script(Reply(text=summary))
    compacted = client.post(f"/api/sessions/{sid}/compact", json={})
    assert compacted.status_code == 200, compacted.text
    check("Compaction", compacted.json())

    changed = client.patch(f"/api/sessions/{sid}", json={"max_budget_usd": None})
    assert changed.status_code == 200, changed.text
    check("Session", changed.json())
    check("Session", client.get(f"/api/sessions/{sid}").json())  # with its context usage
    forked = client.post(f"/api/sessions/{sid}/fork", json={"turn_id": paused["turn_id"]})
    assert forked.status_code == 201, forked.text
    check("Session", forked.json())
    check("SessionList", client.get("/api/sessions").json())
    events = client.get(f"/api/sessions/{sid}/events").json()
    assert any("turn_id" in e for e in events["data"]), events
    check("EventList", events)
    receiver.wait_for(lambda seen: len(seen) >= 2)
    deliveries = client.get(f"/api/sessions/{sid}/webhooks").json()
    assert deliveries["data"], deliveries
    check("WebhookDeliveryList", deliveries)

    deleted = client.delete(f"/api/sessions/{forked.json()['id']}")
    check("Deleted", deleted.json())
    missing = client.get(f"/api/sessions/{forked.json()['id']}")
    assert missing.status_code == 404
    check("Error", missing.json())
    invalid = client.post("/api/sessions", json={"colour": "blue"})
    assert invalid.status_code == 400 and "details" in invalid.json()["error"], invalid.text
    check("Error", invalid.json())


def _settled(gateway: Gateway, session_id: str, turn_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = gateway.client.get(f"/api/sessions/{session_id}/turns/{turn_id}").json()
        if turn["status"] not in ("queued", "running"):
            return turn
        time.sleep(0.05)
    raise AssertionError(f"turn {turn_id} still {turn['status']}")


def test_every_compat_reply_matches_its_declared_shape(gateway: Gateway, mock_model: MockModel) -> None:
    """The compat routes (``ccapi/compat/replies.py``): both model routes, one reply per format with text
    and a client tool call (so tool calls, output items and content blocks are checked too), and each
    format's error envelope, OpenAI's with and without ``param``."""
    client = gateway.client
    models = client.get("/v1/models")
    assert models.status_code == 200 and models.json()["data"], models.text
    check("CompatModelList", models.json())
    check("CompatModel", client.get("/v1/models/sonnet").json())

    def paused_on_a_call(path: str, body: dict[str, Any]) -> dict[str, Any]:
        mock_model.script(Reply(text="Checking.", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)))
        reply = client.post(path, json={"model": "sonnet", **body})
        assert reply.status_code == 200, reply.text
        return reply.json()

    function = {"name": "get_weather", "parameters": WEATHER["input_schema"]}
    ask = [{"role": "user", "content": "weather in Oslo?"}]
    chat = paused_on_a_call(
        "/v1/chat/completions", {"messages": ask, "tools": [{"type": "function", "function": function}]}
    )
    assert chat["choices"][0]["finish_reason"] == "tool_calls" and chat["choices"][0]["message"]["content"], chat
    check("ChatCompletion", chat)
    response = paused_on_a_call(
        "/v1/responses", {"input": ask[0]["content"], "tools": [{"type": "function", **function}]}
    )
    assert [item["type"] for item in response["output"]] == ["message", "function_call"], response
    check("Response", response)
    message = paused_on_a_call("/v1/messages", {"max_tokens": 100, "messages": ask, "tools": [WEATHER]})
    assert [block["type"] for block in message["content"]] == ["text", "tool_use"], message
    check("Message", message)

    for path, body, status, param in (
        ("/v1/chat/completions", {"messages": "hello"}, 400, "messages"),
        ("/v1/responses", {"input": "hi", "previous_response_id": "resp_nope"}, 400, "previous_response_id"),
        ("/v1/models/no-such-model", None, 404, None),
    ):
        error = client.get(path) if body is None else client.post(path, json=body)
        assert error.status_code == status and error.json()["error"]["param"] == param, error.text
        check("OpenAIError", error.json())
    anthropic = client.post("/v1/messages", json={"model": "sonnet", "max_tokens": 100})
    assert anthropic.status_code == 400, anthropic.text
    check("AnthropicError", anthropic.json())
