"""Spending cap: a session's max_budget_usd is enforced by Claude Code on what the session has
cost; a turn that reaches it fails with budget_exceeded, and a raised cap lets the session go on."""

from __future__ import annotations

import pytest

from ccapi.testing import MockModel
from tests.gateway import Gateway
from tests.metrics_support import scrape, value


@pytest.mark.slow
def test_a_turn_that_reaches_the_cap_fails_and_a_raised_cap_continues(make_gateway, mock_model: MockModel) -> None:
    gw: Gateway = make_gateway(CC_API_MAX_BUDGET_USD="0.0001")
    session = gw.create_session(builtin_tools="none")
    assert session["max_budget_usd"] == 0.0001  # the gateway default
    first = gw.turn(session["id"], "hello")
    assert first["status"] == "failed" and first["error"]["type"] == "budget_exceeded", first
    assert "PATCH" in first["error"]["message"]
    assert gw.events(session["id"])[-1]["data"]["error"]["type"] == "budget_exceeded"

    # spent beyond the cap: the next turn fails at once, without asking the model
    requests = len(mock_model.message_requests())
    again = gw.turn(session["id"], "hello?")
    assert again["error"]["type"] == "budget_exceeded" and len(mock_model.message_requests()) == requests

    for bad in ({"max_budget_usd": -1}, {"max_budget_usd": "lots"}, {}, {"model": "x"}):
        response = gw.client.patch(f"/api/sessions/{session['id']}", json=bad)
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request"
    raised = gw.client.patch(f"/api/sessions/{session['id']}", json={"max_budget_usd": 5})
    assert raised.status_code == 200 and raised.json()["max_budget_usd"] == 5
    after = gw.turn(session["id"], "now?")
    assert after["status"] == "completed" and after["output"][-1]["text"] == "mock reply: now?"
    assert [r.body["messages"][-1]["content"][-1]["text"] for r in mock_model.message_requests()][-1] == "now?"
    samples = scrape(gw)  # the live process was started under the old cap: replaced by one under the new
    assert value(samples, "cc_api_engine_starts_total", reason="restart") == 1
    assert value(samples, "cc_api_engine_starts_total", reason="new") == 1

    uncapped = gw.create_session(builtin_tools="none", max_budget_usd=None)
    assert uncapped["max_budget_usd"] is None and gw.turn(uncapped["id"], "free")["status"] == "completed"
    assert gw.client.post("/api/sessions", json={"max_budget_usd": 0}).status_code == 400
