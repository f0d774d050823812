"""The console at ``GET /``: a browser gets the page, JSON clients keep the service info, and
in a real headless Chromium the page asks for the key (and shows nothing else until it has it),
lists sessions made through the API, streams a turn's text as it arrives, resumes its event log
after the gateway restarts, and is a place to work: approve a waiting Bash call, interrupt a
turn, fork and delete a session, with replies rendered as Markdown that never runs markup.

The module's gateway runs as the tests do, as root with no IS_SANDBOX: default permissions, so
built-in tools ask for approval."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from ccapi.testing import MockError, MockModel, ToolUse
from ccapi.testing.mock_model import Reply
from tests import browser
from tests.console_page import DISPLAYED, KEY, following, open_console, text_of
from tests.gateway import Gateway
from tests.webhook_receiver import Receiver

BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
STREAMED = " ".join(f"word{n}" for n in range(1, 25))
MOCK_INFO = """(async () => {
    const real = window.fetch;
    window.fetch = async (url, init) => {
        const response = await real(url, init);
        if (url !== '/') return response;
        return new Response(JSON.stringify({...await response.json(), mock_model: true}));
    };
    try { await showVersions(); } finally { window.fetch = real; }
})()"""


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html;q=0.5"])
def test_json_clients_keep_the_service_info(console_gateway: Gateway, accept: str | None) -> None:
    headers = {"accept": accept} if accept else {}
    response = httpx.get(f"{console_gateway.base_url}/", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["name"] == "cc-api"
    assert response.headers["vary"] == "Accept"


def test_a_browser_gets_the_console_without_the_key(console_gateway: Gateway) -> None:
    response = httpx.get(f"{console_gateway.base_url}/", headers={"accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<title>CC API</title>" in response.text
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy and "http" not in policy  # only its own hashed code, no CDN
    assert "require-trusted-types-for 'script'" in policy and "trusted-types 'none'" in policy  # no HTML sink
    assert response.headers["cross-origin-opener-policy"] == "same-origin"  # an opener keeps no handle on it
    assert "frame-ancestors 'none'" in policy and response.headers["x-frame-options"] == "DENY"
    assert not re.search(r"<(script|link)[^>]+(src|href)=\"(?!data:)", response.text)  # nothing loaded from elsewhere
    assert KEY not in response.text


def test_the_api_reference_is_served_whole_from_the_gateway(console_gateway: Gateway) -> None:
    """``/docs`` lists every operation of the written OpenAPI document and runs no script: sanic-ext's
    Redoc page loaded its script from a CDN, blank offline and a third-party fetch online."""
    document = console_gateway.client.get("/docs/openapi.json").json()
    response = console_gateway.client.get("/docs", headers={"accept": BROWSER_ACCEPT})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "script-src 'none'" in policy and "connect-src 'none'" in policy and "unsafe-inline" not in policy
    assert "<script" not in response.text and not re.search(r"(src|href)=\"(https?:)?//", response.text)
    for path, item in document["paths"].items():
        for method in item:
            assert f"{method}</span> <code>{path}</code>" in response.text, (method, path)
    for schema in document["components"]["schemas"]:
        assert f'id="schema-{schema}"' in response.text
    assert console_gateway.client.get("/docs/redoc").status_code == 404
    assert httpx.get(f"{console_gateway.base_url}/docs").status_code == 401  # like every route but / and /healthz


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_console_in_a_real_browser(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel, tmp_path: Path
) -> None:
    gw, page = console_gateway, chromium
    made = gw.create_session(metadata={"from": "api"})["id"]
    page.call("Network.enable")
    page.goto(f"{gw.base_url}/")

    # The key: asked for, kept in this tab's sessionStorage, sent as a header, never in a URL. Until then the
    # app is not displayed at all (a CSS display rule once overrode its hidden attribute).
    page.wait_for("!document.querySelector('#key-panel').hidden")
    assert page.evaluate(f"{DISPLAYED}('#key-panel')") and not page.evaluate(f"{DISPLAYED}('#app')")
    page.evaluate(
        f"document.querySelector('#key-input').value = '{KEY}';document.querySelector('#key-form').requestSubmit()"
    )
    page.wait_for(f"!!document.querySelector('#sessions li[data-id=\"{made}\"]')")
    assert page.evaluate(f"{DISPLAYED}('#app')") and not page.evaluate(f"{DISPLAYED}('#key-panel')")
    assert page.evaluate("sessionStorage.getItem('cc-api-key')") == KEY
    assert page.evaluate("document.querySelector('#health').textContent").startswith("ok")
    assert not page.evaluate(f"{DISPLAYED}('#mock-banner')")  # a real upstream here, not --mock-model
    page.evaluate(MOCK_INFO)  # what `/` says on --mock-model (cc-api status, tested in test_cli, reads the same flag)
    assert page.evaluate(f"{DISPLAYED}('#mock-banner')") and "mock" in page.evaluate("document.title")
    assert "cc-api" in page.evaluate("document.querySelector('#versions').textContent")

    # Open the session and send a turn from the box; the reply streams in before the turn ends.
    page.evaluate(f"document.querySelector('#sessions li[data-id=\"{made}\"]').click()")
    page.wait_for("document.querySelector('#link').textContent === 'live'")
    mock_model.script(Reply(text=STREAMED, chunk_delay=0.15))
    page.evaluate(
        "document.querySelector('#turn-input').value = 'typed in the console';"
        "document.querySelector('#send').requestSubmit()"
    )
    reply, status = "#turns .turn:last-child .reply", "#turns .turn:last-child .head .status"
    partial = page.wait_for(f"""(() => {{
        const text = document.querySelector('{reply}')?.textContent || '';
        return text && document.querySelector('{status}').textContent === 'running' ? text : '';
    }})()""")
    assert STREAMED.startswith(partial) and partial != STREAMED
    page.wait_for(f"document.querySelector('{status}').textContent === 'completed'")
    assert page.evaluate(f"document.querySelector('{reply}').textContent") == STREAMED
    assert (
        page.evaluate("document.querySelector('#turns .turn:last-child .input').textContent") == "typed in the console"
    )
    assert any("typed in the console" in str(r.body) for r in mock_model.message_requests(include_side=False))
    page.wait_for("document.querySelector('#session-meta').textContent.includes('1 turn ')")  # read again
    assert page.evaluate("document.querySelector('#session-status').textContent") == "idle"
    page.screenshot(tmp_path / "console.png")

    # A dropped stream (the gateway restarts) resumes with Last-Event-ID: every event once, in order.
    seen = gw.events(made)[-1]["seq"]
    gw.restart()
    gw.turn(made, "after the restart")
    page.wait_for(
        # ``?.``: the replayed turn may be drawn a moment before its reply is
        "document.querySelector('#turns .turn:last-child .reply')?.textContent === 'mock reply: after the restart'",
        timeout=40,
    )
    page.wait_for(f"document.querySelector('{status}')?.textContent === 'completed'")
    page.wait_for("document.querySelector('#link').textContent === 'live'")
    shown = page.evaluate(
        "[...document.querySelectorAll('#events tbody tr td:first-child')].map(td => Number(td.textContent))"
    )
    assert shown == [event["seq"] for event in gw.events(made)]
    streams = [r for r in page.requests() if r["url"].endswith(f"/api/sessions/{made}/events/stream")]
    assert "last-event-id" not in streams[0]["headers"] and streams[-1]["headers"]["last-event-id"] == str(seen)

    # Sessions page newest first, twenty at a time, with "More" for the rest.
    newer = [gw.create_session()["id"] for _ in range(20)]
    listed = "[...document.querySelectorAll('#sessions li')].map(li => li.dataset.id)"
    page.evaluate("document.querySelector('#refresh-sessions').click()")
    page.wait_for(f"{listed}[0] === '{newer[-1]}'")
    assert page.evaluate(listed) == newer[::-1] and not page.evaluate("document.querySelector('#more-sessions').hidden")
    page.evaluate("document.querySelector('#more-sessions').click()")
    page.wait_for(f"{listed}.length === 21")
    assert page.evaluate(listed) == [*newer[::-1], made]
    assert page.evaluate("document.querySelector('#more-sessions').hidden")

    # What the gateway's guards expect of a browser: the key only ever as a header, JSON on every write.
    sent = page.requests()
    assert all(KEY not in r["url"] for r in sent) and any(r["headers"].get("authorization") for r in sent)
    writes = [r for r in sent if r["method"] not in ("GET", "HEAD")]
    assert writes and all(r["headers"].get("content-type") == "application/json" for r in writes)


def _click(page: browser.Browser, selector: str) -> None:
    page.wait_for(f"(b => b && !b.disabled && b.offsetParent !== null)(document.querySelector({selector!r}))")
    page.evaluate(f"document.querySelector({selector!r}).click()")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_console_is_a_place_to_work(
    console_gateway: Gateway,
    chromium: browser.Browser,
    mock_model: MockModel,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """Approve a waiting Bash call from the page and the turn completes; interrupt a streaming turn; fork from a
    turn; delete the session. Sessions are named and badged in the list; replies render as Markdown, and markup
    in a reply stays text."""
    gw, page = console_gateway, chromium
    mock_model.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
    failed = gw.create_session()["id"]
    assert gw.turn(failed, "Draft the quarterly report")["status"] == "failed"
    receiver = Receiver().start()
    request.addfinalizer(receiver.stop)
    hook = {"url": receiver.url, "events": ["turn.requires_approval", "turn.completed"]}
    work = gw.create_session(
        builtin_tools=["Bash"], cwd=str(tmp_path), metadata={"title": "Tidy the folder"}, webhook=hook
    )["id"]
    page.goto(f"{gw.base_url}/#/sessions/{work}")
    asked = page.wait_for(f"{DISPLAYED}('#key-panel') ? 'key' : {DISPLAYED}('#app') ? 'app' : ''")
    if asked == "key":  # this test alone: the key not yet given in this tab
        page.evaluate(f"document.querySelector('#key-input').value = '{KEY}';")
        page.evaluate("document.querySelector('#key-form').requestSubmit()")
    item = f"#sessions li[data-id='{work}']"
    page.wait_for(f"document.querySelector(\"{item} .title\")?.textContent === 'Tidy the folder'")
    page.wait_for(f"document.querySelector(\"#sessions li[data-id='{failed}'] .badge\")?.textContent === 'failed'")
    # the title comes from the first message, which the list may fill in after the badge
    title = f"#sessions li[data-id='{failed}'] .title"
    try:
        page.wait_for(f"document.querySelector(\"{title}\")?.textContent === 'Draft the quarterly report'")
    except AssertionError as exc:  # say what the list showed instead
        raise AssertionError(f"{exc}; the title read {text_of(page, title)!r}") from None

    # A Bash call waits for approval: the page shows the command with Allow / Deny; Allow runs it.
    target = tmp_path / "out.txt"
    mock_model.script(
        Reply(
            text="**Sure.** <img src=x onerror=alert(1)> [docs](javascript:alert(2))",
            tool_uses=(ToolUse("Bash", {"command": f"echo approved > {target}", "description": "write the file"}),),
        ),
        Reply(text="# Done\n\n- wrote `out.txt`\n- nothing else"),
    )
    page.wait_for("document.querySelector('#link').textContent === 'live'")
    page.evaluate("document.querySelector('#turn-input').value = 'write the file'")
    page.evaluate("document.querySelector('#send').requestSubmit()")
    allow = ".tool .approval button.allow"
    page.wait_for(f"!!document.querySelector('{allow}')", timeout=40)
    assert (
        text_of(page, ".tool .tool-name") == "Bash"
        and text_of(page, ".tool pre.command") == f"echo approved > {target}"
    )
    assert text_of(page, "#session-status") == "waiting for approval" and text_of(page, f"{item} .badge") == (
        "waiting for approval"
    )
    assert text_of(page, ".tool .approval button.allow-session") == "Allow Bash for this session"
    assert not target.exists()
    _click(page, allow)
    last = "#turns .turn:last-child"
    page.wait_for(f"document.querySelector('{last} .head .status').textContent === 'completed'", timeout=40)
    assert target.read_text() == "approved\n"
    assert text_of(page, ".tool .badge") == "done" and text_of(page, ".tool .approval") == "allowed"
    assert page.evaluate(f"document.querySelector('{last} .reply strong').textContent") == "Sure."
    assert page.evaluate(f"document.querySelector('{last} .reply:last-child h1').textContent") == "Done"
    assert page.evaluate(f"[...document.querySelectorAll('{last} .reply:last-child li')].length") == 2
    assert "<img src=x onerror=alert(1)>" in text_of(page, f"{last} .reply")  # shown as text...
    assert page.evaluate("document.querySelectorAll('#turns img, #turns a[href^=\"javascript\"]').length") == 0
    page.wait_for(f"document.querySelector(\"{item} .badge\").textContent === 'idle'")

    # The gateway's health and limits, and this session's webhook deliveries, newest first (the latest hundred).
    assert "approvals on" in text_of(page, "#health-facts") and text_of(page, "#limits")
    hooks = "[...document.querySelectorAll('#webhooks tbody tr td:nth-child(2)')].map(td => td.textContent)"
    page.wait_for(f"{hooks}.join() === 'turn.completed,turn.requires_approval'")
    assert not page.evaluate("document.querySelector('#webhooks').hidden")
    assert text_of(page, "#webhooks summary") == f"Webhook deliveries (2) → {receiver.url}"

    # Interrupt a turn while it streams; a turn queued behind it shows as queued, then runs.
    mock_model.script(Reply(text=" ".join(f"slow{n}" for n in range(200)), chunk_delay=0.2))
    page.evaluate("document.querySelector('#turn-input').value = 'talk for a while'")
    page.evaluate("document.querySelector('#send').requestSubmit()")
    page.wait_for(f"(document.querySelector('{last} .reply')?.textContent || '').includes('slow')", timeout=40)
    mock_model.clear_script()
    body = {"input": "after that", "queue": True, "background": True}
    queued = gw.client.post(f"/api/sessions/{work}/turns", json=body).json()["turn_id"]
    card = f"#turns .turn[data-turn='{queued}']"
    page.wait_for(f'document.querySelector("{card} .head .status")?.textContent === "queued"')
    _click(page, "#interrupt")
    interrupted = "#turns .turn:nth-last-child(2) .head .status"
    page.wait_for(f"document.querySelector('{interrupted}').textContent === 'interrupted'", timeout=40)
    page.wait_for(f'document.querySelector("{card} .head .status").textContent === "completed"', timeout=40)
    assert text_of(page, f"{card} .reply") == "mock reply: after that"
    page.wait_for("document.querySelector('#session-status').textContent === 'idle'")

    # Fork from the first turn: a new session, opened, holding that turn's conversation.
    _click(page, "#turns .turn:first-child .fork")
    page.wait_for(f"location.hash.startsWith('#/sessions/') && !location.hash.endsWith('{work}')")
    fork = page.evaluate("decodeURIComponent(location.hash.slice('#/sessions/'.length))")
    assert gw.client.get(f"/api/sessions/{fork}").status_code == 200
    assert gw.events(fork)[0]["data"]["forked_from"]["session_id"] == work

    # Delete: two clicks, then it is gone from the list and from the gateway.
    page.evaluate(f"location.hash = '#/sessions/{work}'")
    page.wait_for("document.querySelector('#link').textContent === 'live'")
    _click(page, "#delete-session")
    assert (
        text_of(page, "#delete-session") == "Confirm delete"
        and gw.client.get(f"/api/sessions/{work}").status_code == 200
    )
    _click(page, "#delete-session")
    page.wait_for(f"!document.querySelector(\"{item}\") && !document.querySelector('#no-session').hidden")
    assert gw.client.get(f"/api/sessions/{work}").status_code == 404


# -- a retried stream, a busy session, slow answers, parallel approvals, the docs link, long replies ---------------
HOLD_WRITES = """(() => {
    // Holds the page's writes (every API call but a GET) until release(): what the page does when a slow answer
    // comes back after the user has moved on. released counts the answers handed back to the page.
    if (window.realApi) return;
    window.realApi = api;
    Object.assign(window, { held: 0, released: 0, gate: null });
    window.hold = () => {
        window.gate = new Promise((resolve) => { window.release = () => { window.gate = null; resolve(); }; });
    };
    window.api = async (path, method = 'GET', body = undefined) => {
        const gate = window.gate;
        if (!gate || method === 'GET') return window.realApi(path, method, body);
        window.held++;
        await gate;
        try { return await window.realApi(path, method, body); } finally { window.released++; }
    };
})()"""


def _send(page: browser.Browser, text: str) -> None:
    page.evaluate(
        f"document.querySelector('#turn-input').value = {text!r}; document.querySelector('#send').requestSubmit()"
    )


LAST = "#turns .turn:last-child"


@pytest.mark.slow
def test_a_retried_reply_is_shown_once(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """Claude Code retries a stream cut short (``turn.retrying``) and streams the message again from its start: what
    the first try streamed, text or thinking, is dropped, so the reply shows once."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    text = "Alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma"
    mock_model.script(Reply(text=text, drop_after_chunks=5, chunk_delay=0.15), Reply(text=text))
    _send(page, "say it")
    page.wait_for(f"document.querySelector('{LAST} .head .status')?.textContent === 'completed'", timeout=40)
    assert page.evaluate(f"[...document.querySelectorAll('{LAST} .reply')].map(r => r.textContent)") == [text]

    thinking = "Weighing the matter up very carefully first, then the other side of it, then deciding"
    mock_model.script(
        Reply(thinking=thinking, text="Done.", drop_after_chunks=5, chunk_delay=0.15),
        Reply(thinking=thinking, text="Done."),
    )
    _send(page, "think first")
    page.wait_for("document.querySelectorAll('#turns .turn').length === 2")
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'completed'", timeout=40)
    assert page.evaluate(f"[...document.querySelectorAll('{LAST} .thinking .text')].map(t => t.textContent)") == [
        thinking
    ]
    assert page.evaluate(f"[...document.querySelectorAll('{LAST} .reply')].map(r => r.textContent)") == ["Done."]

    # each retry came after part of the message had streamed: the case this is about
    events = gw.events(session)
    types = [e["type"] for e in events]
    retried = [types[n - 1] for n, kind in enumerate(types) if kind == "turn.retrying"]
    assert retried == ["message.delta", "thinking.delta"], " ".join(types)
    assert all(e["data"]["discarded_message_id"] for e in events if e["type"] == "turn.retrying")


@pytest.mark.slow
def test_a_turn_sent_while_one_runs_queues_behind_it(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """Send while a turn runs: the new turn queues (its card says so) and runs once the first has ended, instead of a
    409 "a turn is already running"."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    mock_model.script(Reply(text=" ".join(f"long{n}" for n in range(80)), chunk_delay=0.1))
    _send(page, "take your time")
    page.wait_for(f"(document.querySelector('{LAST} .reply')?.textContent || '').includes('long')", timeout=40)
    _send(page, "and then this")
    page.wait_for(f"document.querySelector('{LAST} .number').textContent === 'Queued (#1)'")
    assert text_of(page, f"{LAST} .head .status") == "queued" and text_of(page, f"{LAST} .input") == "and then this"
    page.wait_for("document.querySelector('#turn-input').value === ''")  # sent: the 202 came
    assert text_of(page, "#send-error") == ""
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'completed'", timeout=40)
    assert (
        text_of(page, f"{LAST} .number") == "Turn 2" and text_of(page, f"{LAST} .reply") == "mock reply: and then this"
    )
    assert text_of(page, "#turns .turn:first-child .head .status") == "completed"


@pytest.mark.slow
def test_a_slow_answer_lands_on_the_session_it_was_for(console_gateway: Gateway, chromium: browser.Browser) -> None:
    """Send, or confirm Delete, then open another session before the answer comes: the session now open keeps its
    draft, its stream and its place; an error is not shown under it; the deleted session leaves the list."""
    gw, page = console_gateway, chromium
    first, other, doomed = (gw.create_session()["id"] for _ in range(3))
    open_console(page, gw, f"#/sessions/{first}")
    following(page, first)
    page.evaluate(HOLD_WRITES)

    # a turn sent to the first session is answered (202) while another is open, with a draft in the box
    page.evaluate("hold()")
    _send(page, "for the first session")
    page.wait_for("held === 1")
    following(page, other)
    page.evaluate("document.querySelector('#turn-input').value = 'a draft for the other one'")
    page.evaluate("release()")
    page.wait_for("released === 1")
    assert page.evaluate("document.querySelector('#turn-input').value") == "a draft for the other one"
    assert [e["type"] for e in gw.events(first)][1] in ("turn.started", "turn.queued")

    # one that fails (its session was deleted meanwhile): the error is not the open session's
    page.evaluate("hold()")
    following(page, first)
    _send(page, "too late")
    page.wait_for("held === 2")
    following(page, other)
    assert gw.client.delete(f"/api/sessions/{first}").status_code == 200
    page.evaluate("release()")
    page.wait_for("released === 2")
    assert text_of(page, "#send-error") == ""

    # Delete confirmed on one session, another opened before the DELETE returns: that one stays open and live
    following(page, doomed)
    _click(page, "#delete-session")
    page.evaluate("hold()")
    _click(page, "#delete-session")
    page.wait_for("held === 3")
    following(page, other)
    page.evaluate("release()")
    page.wait_for(f"released === 3 && !document.querySelector(\"#sessions li[data-id='{doomed}']\")")
    assert gw.client.get(f"/api/sessions/{doomed}").status_code == 404
    assert page.evaluate("location.hash") == f"#/sessions/{other}"
    assert text_of(page, "#session-id") == other and text_of(page, "#link") == "live"
    assert page.evaluate(f"{DISPLAYED}('#session-view')")


@pytest.mark.slow
def test_approvals_answer_at_once_and_the_badge_waits_for_the_last(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel, tmp_path: Path
) -> None:
    """Two Read calls outside the working directory wait for approval at once. Allowing one leaves the session
    waiting for the other; each answer is a ``background`` POST /permissions, answered at once without holding one
    of the browser's few connections until the turn ends: the first with the turn as it stands (``200``, still
    waiting for the other), the last with ``202`` (the turn runs on)."""
    gw, page = console_gateway, chromium
    work, outside = tmp_path / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    for name in ("one.txt", "two.txt"):
        (outside / name).write_text(f"{name}\n")
    session = gw.create_session(builtin_tools=["Read"], cwd=str(work))["id"]
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    page.call("Network.enable")
    reads = tuple(ToolUse("Read", {"file_path": str(outside / name)}) for name in ("one.txt", "two.txt"))
    mock_model.script(Reply(text="Reading both.", tool_uses=reads), Reply(text="Both read.", chunk_delay=0.2))
    _send(page, "read both files")
    allow = ".tool .approval button.allow"
    page.wait_for(f"document.querySelectorAll('{allow}').length === 2", timeout=40)
    assert text_of(page, "#session-status") == "waiting for approval"

    _click(page, allow)  # the first call's
    page.wait_for("document.querySelectorAll('.tool .approval .resolved').length === 1")
    assert text_of(page, "#session-status") == "waiting for approval"
    assert text_of(page, f"{LAST} .head .status") == "waiting for approval"
    _click(page, allow)  # the other's
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'completed'", timeout=40)
    assert page.evaluate("[...document.querySelectorAll('.tool .approval')].map(a => a.textContent)") == [
        "allowed",
        "allowed",
    ]
    assert text_of(page, f"{LAST} .reply:last-child") == "Both read."
    answers = [r["status"] for r in page.responses() if r["url"].endswith(f"/api/sessions/{session}/permissions")]
    assert answers == [200, 202]


@pytest.mark.slow
def test_interrupt_is_off_once_the_turn_has_stopped(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """The moment a turn shows as interrupted, Interrupt is disabled: there is nothing left to stop (a click would be
    a 409), not a quarter of a second later when the session is read again."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    page.evaluate("""(() => {
        window.interruptOff = null;  // Interrupt's state as the card first shows "interrupted"
        new MutationObserver(() => {
            const status = document.querySelector('#turns .turn:last-child .head .status');
            if (status?.textContent === 'interrupted' && window.interruptOff === null)
                window.interruptOff = document.querySelector('#interrupt').disabled;
        }).observe(document.querySelector('#turns'), { subtree: true, childList: true, characterData: true });
    })()""")
    mock_model.script(Reply(text=" ".join(f"slow{n}" for n in range(100)), chunk_delay=0.2))
    _send(page, "talk for a while")
    page.wait_for(f"(document.querySelector('{LAST} .reply')?.textContent || '').includes('slow')", timeout=40)
    _click(page, "#interrupt")
    page.wait_for("window.interruptOff !== null", timeout=40)
    assert page.evaluate("window.interruptOff") is True


@pytest.mark.slow
def test_the_api_reference_link_shows_only_where_it_opens(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel, tmp_path: Path
) -> None:
    """``/docs`` needs the key like every route but ``/`` and ``/healthz``, and a link cannot send it: with
    ``CC_API_KEY`` the header has no "API reference" link (it led to a 401 page); without one it has, and it opens."""
    gw, page = console_gateway, chromium
    page.goto(f"{gw.base_url}/")
    page.evaluate("sessionStorage.clear()")  # the key, from an earlier test
    page.goto("about:blank")
    page.goto(f"{gw.base_url}/")
    page.wait_for(f"{DISPLAYED}('#key-panel')")
    assert not page.evaluate(f"{DISPLAYED}('#docs-link')")
    open_console(page, gw)
    assert not page.evaluate(f"{DISPLAYED}('#docs-link')")
    keyless = Gateway(tmp_path / "keyless", mock_model.url).start()
    try:
        page.goto(keyless.base_url + "/")
        page.wait_for(f"{DISPLAYED}('#app')")
        assert page.evaluate(f"{DISPLAYED}('#docs-link')")
        opened = "fetch(document.querySelector('#docs-link').href, {headers: {Accept: 'text/html'}})"
        assert page.evaluate(f"{opened}.then(r => r.status)") == 200
    finally:
        keyless.stop()
    assert keyless.lingering_processes() == []


@pytest.mark.slow
def test_replies_render_in_time_linear_in_their_length(console_gateway: Gateway, chromium: browser.Browser) -> None:
    """A long paragraph of unmatched ``*``, ``_``, ``**``, ``~~`` or backticks, or a heading with a long run of
    spaces, renders at once (they took seconds: the renderer is run every 60 ms while a reply streams); ordinary
    Markdown renders as it did, and a bare URL (which recursed without end) becomes a link."""
    gw, page = console_gateway, chromium
    open_console(page, gw)
    took = page.evaluate("""(() => {
        const cases = { stars: '*a ', underscores: '_a ', doubled: '**a ', struck: '~~a ', ticks: '`a ' };
        const texts = Object.fromEntries(Object.entries(cases).map(([name, unit]) => [name, unit.repeat(20000)]));
        texts.heading = '# a' + ' '.repeat(3000) + 'x';
        // an unclosed link target scanned to the end of the text from every "[": seconds, quadratic
        texts.links = '[a]('.repeat(25000);
        texts.images = '![a]('.repeat(25000);
        texts.angled = '[a](<'.repeat(25000);
        // quotes or lists nested without end: each level re-read the lines below it, or the stack overflowed
        texts.quotes = '>'.repeat(20000) + ' deep';
        texts.items = Array.from({ length: 2000 }, (_, n) => ' '.repeat(n) + '- item').join('\\n');
        const took = {};
        for (const [name, text] of Object.entries(texts)) {
            const start = performance.now();
            Markdown.render(text);
            took[name] = Math.round(performance.now() - start);
        }
        return took;
    })()""")
    # the slow forms took seconds (or never ended); a linear render of the largest (~2 MB of list indentation) takes
    # ~0.1 s here, up to ~0.35 s while a CI run loads both cores
    assert max(took.values()) < 1500, took
    html = "(text => { const box = document.createElement('div'); box.append(Markdown.render(text)); "
    html += "return box.innerHTML; })"
    link = 'rel="noopener noreferrer" target="_blank"'
    cases = {
        "**bold**, *em*, _em_, `code`, ~~gone~~ and snake_case_name, 2*3*4": (
            "<p><strong>bold</strong>, <em>em</em>, <em>em</em>, <code>code</code>, <del>gone</del> and "
            "snake_case_name, 2*3*4</p>"
        ),
        "**strong *and em* inside**\nnext line": "<p><strong>strong <em>and em</em> inside</strong><br>next line</p>",
        "## A title ##": "<h2>A title</h2>",
        "see [the docs](https://example.com/docs) or https://example.com/x.": (
            f'<p>see <a href="https://example.com/docs" {link}>the docs</a> or '
            f'<a href="https://example.com/x" {link}>https://example.com/x</a>.</p>'
        ),
        "[https://example.com](https://example.com)": (
            f'<p><a href="https://example.com" {link}>https://example.com</a></p>'
        ),
        "unmatched *star and `tick": "<p>unmatched *star and `tick</p>",
        "[a [b] c](https://en.wikipedia.org/wiki/Foo_(bar)) or https://en.wikipedia.org/wiki/Foo_(bar).": (
            f'<p><a href="https://en.wikipedia.org/wiki/Foo_(bar)" {link}>a [b] c</a> or '
            f'<a href="https://en.wikipedia.org/wiki/Foo_(bar)" {link}>https://en.wikipedia.org/wiki/Foo_(bar)</a>.</p>'
        ),
        "[t](https://example.com 'a \"title\"') [x](javascript:alert(1)) [y](&#x6a;avascript:alert(1))": (
            f'<p><a href="https://example.com" {link}>t</a> x y</p>'
        ),
        "[d](data:text/html,hi) [v](vbscript:x) ![i](javascript:x) <javascript:x> `<b>` [r](/api/sessions)": (
            "<p>d v [image: i] &lt;javascript:x&gt; <code>&lt;b&gt;</code> r</p>"
        ),
        ">" * 40 + " deep": "<blockquote>" * 16 + "<p>" + "&gt;" * 24 + " deep</p>" + "</blockquote>" * 16,
    }
    for text, expected in cases.items():
        assert page.evaluate(f"{html}({text!r})") == expected, text


# -- hostile content: what a prompt-injected model or another client of the API controls ----------------------------
PWN = "window.pwned = (window.pwned || 0) + 1"
HOSTILE = [
    f'<img src=x onerror="{PWN}">',
    f'<svg onload="{PWN}"><script>{PWN}</script>',
    f'<a href="javascript:{PWN}">html link</a>',
    f"[md link](javascript:{PWN}) [entity](&#x6a;avascript:{PWN}) [data](data:text/html,<script>{PWN}</script>)",
    f'![image](javascript:{PWN}) <javascript:{PWN}> [titled](https://example.com "x\\" onmouseover=\\"{PWN}")',
    f'`<img src=x onerror="{PWN}">`\n\n```html\n<iframe srcdoc="<script>{PWN}</script>"></iframe>\n```',
    ">" * 5000 + " a quote nested without end",
    "[a](" * 5000,
]
SAFE_DOM = """(() => {
    const made = document.querySelectorAll('img, svg, script:not(head script, body > script), iframe, object, embed');
    const links = [...document.querySelectorAll('a[href]')].map((a) => a.getAttribute('href'));
    return { pwned: window.pwned ?? 0, made: made.length, links };
})()"""


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_hostile_content_shows_as_text_and_never_runs(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """Markup, script URLs and pathological Markdown in a session's title, a turn's input, the reply, its thinking, a
    tool call's command and a failed turn's error, all through the real gateway: each shows as the text it is, no
    script runs (no ``window.pwned``, no dialog), nothing is loaded, and the page keeps rendering."""
    gw, page = console_gateway, chromium
    hostile = "\n\n".join(HOSTILE)
    session = gw.create_session(metadata={"title": HOSTILE[0]})["id"]
    page.call("Page.enable")
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    mock_model.script(
        Reply(
            thinking=HOSTILE[1],
            text=hostile,
            tool_uses=(ToolUse("Bash", {"command": HOSTILE[0], "description": HOSTILE[2]}),),
        ),
        Reply(text="denied, as asked"),
        Reply(error=MockError(403, "permission_error", HOSTILE[1])),
    )
    _send(page, HOSTILE[2])
    page.wait_for("!!document.querySelector('.tool .approval button.deny')", timeout=40)
    assert text_of(page, ".tool pre.command") == HOSTILE[0] and text_of(page, ".tool-input .muted") == HOSTILE[2]
    page.evaluate(f"document.querySelector('.tool .approval .reason').value = {HOSTILE[1]!r}")
    _click(page, ".tool .approval button.deny")
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'completed'", timeout=40)
    _send(page, "fail now")
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'failed'", timeout=40)

    reply = page.evaluate("document.querySelector('#turns .turn:first-child .reply').textContent")
    for text in (HOSTILE[0], HOSTILE[1].split("<script>")[0], "<a href=", "a quote nested without end", "[a]([a]("):
        assert text in reply, text
    assert text_of(page, "#turns .turn:first-child .input") == HOSTILE[2]
    assert text_of(page, "#turns .turn:first-child .thinking .text") == HOSTILE[1]
    assert HOSTILE[1] in text_of(page, ".tool .approval .resolved")
    assert text_of(page, "#session-title") == HOSTILE[0]
    page.wait_for(
        f"document.querySelector(\"#sessions li[data-id='{session}'] .title\").textContent === {HOSTILE[0]!r}"
    )
    page.evaluate("document.querySelector('#events').closest('details').open = true")
    assert "<img src=x onerror=" in text_of(page, "#events")
    assert HOSTILE[1] in text_of(page, f"{LAST} .note")  # the failed turn's error
    shown = page.evaluate(SAFE_DOM)
    assert shown["pwned"] == 0 and shown["made"] == 0, shown
    assert all(href.startswith(("https://", "/", "data:")) for href in shown["links"]), shown  # docs link, favicon
    assert not [e for e in page.events if e["method"] == "Page.javascriptDialogOpening"]
    # and were a string ever to reach an HTML sink, Trusted Types refuse it
    sink = "document.body.insertAdjacentHTML('beforeend', '<b>')"
    assert page.evaluate(f"(() => {{ try {{ {sink}; return false; }} catch {{ return true; }} }})()")


@pytest.mark.slow
def test_a_deleted_session_says_so(console_gateway: Gateway, chromium: browser.Browser) -> None:
    """A session deleted elsewhere while it is open, or opened by a link after it was deleted, shows as deleted, with
    nothing left to send or delete, instead of an idle session whose every action fails."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    assert gw.client.delete(f"/api/sessions/{session}").status_code == 200
    page.wait_for("document.querySelector('#session-status').textContent === 'deleted'", timeout=30)
    assert text_of(page, "#link") == "deleted" and text_of(page, "#send-error") == "This session has been deleted."
    assert page.evaluate(
        "['#send button', '#turn-input', '#delete-session'].every(s => document.querySelector(s).disabled)"
    )

    other = gw.create_session()["id"]
    following(page, other)  # another session: its controls work again
    assert not page.evaluate("document.querySelector('#turn-input').disabled") and text_of(page, "#send-error") == ""
    page.evaluate(f"location.hash = '#/sessions/{session}'")
    page.wait_for("document.querySelector('#session-status').textContent === 'deleted'")
    page.evaluate("location.hash = '#/sessions/%E0%A4%A'")  # a malformed link: said plainly, not an exception
    page.wait_for("document.querySelector('#session-status').textContent === 'deleted'")
    page.wait_for("document.querySelector('#session-id').textContent === '%E0%A4%A'")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_long_session_opens_at_once(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """A long day's session, thousands of events (a reply streams a ``message.delta`` a word), opens in a moment: the
    page replays its whole log without freezing (each event's row in the event log laid the page out again, ~2.5 ms an
    event), shows every turn once, and the log keeps its newest row in sight, unless it was scrolled up to read."""
    gw, page = console_gateway, chromium
    session, turns = gw.create_session()["id"], 40
    reply = " ".join(f"word{n}" for n in range(300))
    mock_model.script(*[Reply(text=reply)] * turns)
    for n in range(turns):
        assert gw.turn(session, f"question {n}")["status"] == "completed"
    events = gw.events(session)
    while len(events) % 1000 == 0:  # a full page: there may be more
        events += gw.events(session, events[-1]["seq"])
    assert len(events) > 3000, len(events)
    open_console(page, gw)
    page.evaluate("document.querySelector('#events').closest('details').open = true")
    began = time.monotonic()
    page.evaluate(f"location.hash = '#/sessions/{session}'")
    page.wait_for(
        f"document.querySelectorAll('#turns .turn').length === {turns} && "
        f"document.querySelector('{LAST} .head .status').textContent === 'completed' && "
        f"document.querySelector('#events tbody tr:last-child td')?.textContent === '{events[-1]['seq']}'",
        timeout=60,
    )
    took = time.monotonic() - began
    assert took < 3, f"{len(events)} events took {took:.1f} s to show"
    assert page.evaluate(f"[...document.querySelectorAll('#turns .reply')].every(r => r.textContent === {reply!r})")
    log = "document.querySelector('#events').closest('.log')"
    page.wait_for(f"(l => l.scrollTop + l.clientHeight >= l.scrollHeight - 4)({log})")  # the newest row in sight
    page.evaluate(f"{log}.scrollTop = 0")  # scrolled up to read: new rows leave it there
    gw.turn(session, "one more")
    page.wait_for(f"document.querySelector('{LAST} .reply')?.textContent === 'mock reply: one more'")
    page.wait_for("new Promise(requestAnimationFrame).then(() => true)")
    assert page.evaluate(f"{log}.scrollTop") == 0


@pytest.mark.slow
def test_errors_are_said_plainly(console_gateway: Gateway, chromium: browser.Browser) -> None:
    """A gateway that does not answer (stopped, restarting) is said to be so, not "Failed to fetch"; a pasted key
    that no header can carry is refused at once, not taken for a gateway that is down; a wrong key is asked again."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw, f"#/sessions/{session}")
    following(page, session)
    page.evaluate("window.realFetch = fetch; window.fetch = () => Promise.reject(new TypeError('Failed to fetch'))")
    try:
        _send(page, "while the gateway is down")
        page.wait_for("document.querySelector('#send-error').textContent !== ''")
    finally:
        page.evaluate("window.fetch = window.realFetch")
    assert text_of(page, "#send-error") == "The gateway did not answer: is it running? (it may be restarting)"

    page.evaluate("document.querySelector('#forget-key').click()")
    page.wait_for(f"{DISPLAYED}('#key-panel')")
    for pasted in (
        f"{KEY[:4]}\\u2028{KEY[4:]}",
        f"{KEY}\\u{{1F511}}",
    ):  # a line separator, an emoji: no header has them
        page.evaluate(f"document.querySelector('#key-input').value = '{pasted}'")
        page.evaluate("document.querySelector('#key-form').requestSubmit()")
        assert text_of(page, "#key-error").startswith("That is not a key this page can send")
        assert page.evaluate(f"{DISPLAYED}('#key-panel')") and not page.evaluate("sessionStorage.getItem('cc-api-key')")
    page.evaluate("document.querySelector('#key-input').value = 'not-the-key'")
    page.evaluate("document.querySelector('#key-form').requestSubmit()")
    page.wait_for("document.querySelector('#key-error').textContent === 'That key was refused.'")
    assert page.evaluate(f"{DISPLAYED}('#key-panel')") and not page.evaluate(f"{DISPLAYED}('#app')")
