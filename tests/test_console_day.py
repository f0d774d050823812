"""The console through a working day, in a real headless Chromium against a keyed gateway: a list paged with "More"
that stays current, a fork that says where it came from, a session changed by another client, a deleted session's
turns, a long thinking block, an Interrupt whose request failed, an approval of a whole call, and a tab out of sight
that leaves the browser's few connections to the tabs in use."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests import browser
from tests.console_page import DISPLAYED, following, open_console, text_of
from tests.gateway import Gateway

pytestmark = pytest.mark.slow  # the browser

LAST = "#turns .turn:last-child"
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def _listed(session_id: str) -> str:
    return f"document.querySelector('#sessions li[data-id=\"{session_id}\"]')"


def test_a_list_paged_with_more_stays_current(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """Past the first page ("More"), the list kept drawing what it first read: a session that began waiting for its
    client's tool result still said idle, and one deleted elsewhere stayed listed (opening it said "deleted")."""
    gw, page = console_gateway, chromium
    waiting = gw.create_session(tools=[WEATHER])["id"]  # the oldest: on the second page
    doomed = gw.create_session()["id"]
    newer = [gw.create_session()["id"] for _ in range(20)]
    open_console(page, gw)
    page.wait_for(f"!!{_listed(newer[-1])} && !document.querySelector('#more-sessions').hidden")
    page.evaluate("document.querySelector('#more-sessions').click()")
    page.wait_for(f"!!{_listed(waiting)} && !!{_listed(doomed)}")

    mock_model.script(Reply(text="Checking.", tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)))
    started = gw.client.post(f"/api/sessions/{waiting}/turns", json={"input": "weather?", "background": True})
    assert started.status_code == 202, started.text
    try:
        assert gw.client.delete(f"/api/sessions/{doomed}").status_code == 200
        assert gw.client.delete(f"/api/sessions/{newer[0]}").status_code == 200  # and one on the first page
        badge = f"{_listed(waiting)}?.querySelector('.badge').textContent"
        page.wait_for(
            f"{badge} === 'waiting for tool result' && !{_listed(doomed)} && !{_listed(newer[0])}", timeout=30
        )
        listed = page.evaluate("[...document.querySelectorAll('#sessions li')].map(li => li.dataset.id)")
        assert listed == [*newer[:0:-1], waiting]  # the rest, newest first, each once
    finally:
        gw.client.delete(f"/api/sessions/{waiting}")  # its call waits for a result no one sends


def test_a_list_read_again_while_more_loads_keeps_what_more_added(
    console_gateway: Gateway, chromium: browser.Browser
) -> None:
    """A reading of the list (its poll, a turn's end) begun while "More" was loading asked for as many sessions as
    the list held then, and drew them over what "More" had added: the second page vanished again (seen in CI,
    where a loaded machine opens the window). It now reads again as far as "More" took the list."""
    gw, page = console_gateway, chromium
    for _ in range(21):
        gw.create_session()
    every = min(40, len(gw.client.get("/api/sessions", params={"limit": 100}).json()["data"]))
    open_console(page, gw)
    page.wait_for("!document.querySelector('#more-sessions').hidden")
    # "More"'s page comes back first, the whole list's reading (begun after it) later
    page.evaluate("""(() => {
        const real = window.fetch;
        window.pendingLists = 0;
        window.fetch = (url, init) => {
            const path = String(url);
            const wait = !path.startsWith('/api/sessions?limit=') ? 0 : path.includes('&after=') ? 300 : 900;
            window.pendingLists += wait ? 1 : 0;
            return new Promise(done => setTimeout(done, wait))
                .then(() => real(url, init))
                .finally(() => { window.pendingLists -= wait ? 1 : 0; });
        };
    })()""")
    page.evaluate(
        "document.querySelector('#more-sessions').click(); document.querySelector('#refresh-sessions').click()"
    )
    listed = "document.querySelectorAll('#sessions li').length"
    page.wait_for(f"window.pendingLists === 0 && {listed} === {every}", timeout=30)
    time.sleep(1.2)  # past the last delayed reading: what it draws is what stays
    page.wait_for("window.pendingLists === 0")
    assert page.evaluate(listed) == every


def test_a_fork_says_where_it_came_from(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """A fork ("Fork from here") opened as a session with no turns, no title and nothing saying it holds a
    conversation: as if the fork had lost it. It now says which session it was forked from, with a link back."""
    gw, page = console_gateway, chromium
    source = gw.create_session()["id"]
    mock_model.script(Reply(text="one"), Reply(text="two"))
    gw.turn(source, "first question")
    gw.turn(source, "second question")
    open_console(page, gw)
    following(page, source)
    page.wait_for("document.querySelectorAll('#turns .turn .fork:not([hidden])').length === 2")
    page.evaluate("document.querySelector('#turns .turn .fork').click()")
    page.wait_for(f"document.querySelector('#session-id').textContent !== '{source}'")
    fork = text_of(page, "#session-id")
    page.wait_for("!!document.querySelector('#turns .origin a')")
    note = text_of(page, "#turns .origin")
    assert note.startswith("Forked from ") and "first question" in note, note
    assert page.evaluate("document.querySelector('#turns .origin a').getAttribute('href')") == f"#/sessions/{source}"
    assert gw.events(fork)[0]["data"]["forked_from"]["session_id"] == source
    page.evaluate("document.querySelector('#turns .origin a').click()")
    page.wait_for(f"document.querySelector('#session-id').textContent === '{source}'")


def test_a_change_made_elsewhere_shows_and_a_deleted_session_offers_nothing(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """A session another client changes (``PATCH``: its model, its permission mode) showed its old settings until its
    next turn ended; once deleted, its turns still offered "Fork from here", which could only fail."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    mock_model.script(Reply(text="done"))
    gw.turn(session, "hello")
    open_console(page, gw)
    following(page, session)
    page.wait_for("document.querySelector('#session-meta').textContent.includes('1 turn')")
    time.sleep(1)  # the page has read the session after its replay; the change comes later
    changed = gw.client.patch(f"/api/sessions/{session}", json={"model": "claude-opus-4-5", "permission_mode": "plan"})
    assert changed.status_code == 200, changed.text
    page.wait_for(
        "(m => m.startsWith('claude-opus-4-5') && m.includes('permissions plan'))"
        "(document.querySelector('#session-meta').textContent)",
        timeout=10,
    )

    assert page.evaluate(f"!document.querySelector('{LAST} .fork').hidden")
    assert gw.client.delete(f"/api/sessions/{session}").status_code == 200
    page.wait_for("document.querySelector('#session-status').textContent === 'deleted'", timeout=30)
    assert page.evaluate("[...document.querySelectorAll('#turns .fork')].every(f => f.hidden)")


def test_a_long_thinking_block_opens_at_once(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """Thinking streams a delta every few words; the page set the block's whole text again for each (quadratic: a
    block of 20,000 deltas held the page ~2.3 s, and a day's session holds many). A real thinking turn shows its
    thinking whole; thirty thousand deltas replayed show in a moment."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    thought = " ".join(f"idea{n}" for n in range(60))
    mock_model.script(Reply(thinking=thought, text="answer"))
    gw.turn(session, "think first")
    open_console(page, gw)
    following(page, session)
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'completed'")
    assert text_of(page, f"{LAST} .thinking .text") == thought and text_of(page, f"{LAST} .reply") == "answer"

    took = page.evaluate("""(() => {
        const view = state.view, turn = 'turn_synthetic';
        let seq = view.lastSeq;
        const event = (type, data) => apply(view, { seq: ++seq, type, turn_id: turn, session_id: view.id,
                                                    created_at: new Date().toISOString(), data });
        const began = performance.now();
        event('turn.started', { number: 9, input: 'replayed' });
        for (let n = 0; n < 30000; n++) event('thinking.delta', { thinking: `thought ${n} ` });
        event('message.completed', { content: [{ type: 'text', text: 'done' }] });
        return performance.now() - began;
    })()""")
    shown = page.evaluate("document.querySelector('[data-turn=turn_synthetic] .thinking .text').textContent")
    assert shown == "".join(f"thought {n} " for n in range(30000))
    assert took < 2000, f"30000 thinking deltas took {took:.0f} ms"


def test_interrupt_can_be_tried_again(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """An Interrupt whose request never reached the gateway (it was restarting) said so, and left Interrupt disabled
    while the turn ran on: nothing could stop it from the page. It stays offered, and a second click stops it."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw)
    following(page, session)
    mock_model.script(Reply(text=" ".join(f"slow{n}" for n in range(200)), chunk_delay=0.1))
    page.evaluate(
        "document.querySelector('#turn-input').value = 'talk for a while';"
        "document.querySelector('#send').requestSubmit()"
    )
    page.wait_for(f"(document.querySelector('{LAST} .reply')?.textContent || '').includes('slow')", timeout=40)
    page.evaluate("""(() => {
        window.realFetch = fetch;
        window.fetch = (url, init) => String(url).endsWith('/interrupt')
            ? Promise.reject(new TypeError('Failed to fetch')) : window.realFetch(url, init);
    })()""")
    try:
        page.evaluate("document.querySelector('#interrupt').click()")
        page.wait_for("document.querySelector('#send-error').textContent !== ''")
    finally:
        page.evaluate("window.fetch = window.realFetch")
    assert text_of(page, "#send-error").startswith("The gateway did not answer")
    assert text_of(page, "#session-status") == "running"
    page.wait_for("!document.querySelector('#interrupt').disabled", timeout=2)
    page.evaluate("document.querySelector('#interrupt').click()")
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'interrupted'", timeout=40)


def test_an_approval_shows_the_whole_call(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel, tmp_path: Path
) -> None:
    """A Bash call waiting for approval showed its command and description only: what else it asked for (to run
    outside the sandbox, for ten minutes) was not on the page that approved it."""
    gw, page = console_gateway, chromium
    session = gw.create_session(builtin_tools=["Bash"], cwd=str(tmp_path), permission_mode="default")["id"]
    call = {
        "command": "rm -rf build",
        "description": "Remove build/",
        "timeout": 600000,
        "dangerouslyDisableSandbox": True,
    }
    mock_model.script(Reply(text="Running it.", tool_uses=(ToolUse("Bash", call),)), Reply(text="Not run."))
    open_console(page, gw)
    following(page, session)
    started = gw.client.post(f"/api/sessions/{session}/turns", json={"input": "clean up", "background": True})
    assert started.status_code == 202, started.text
    page.wait_for("!!document.querySelector('.tool .approval button.deny')", timeout=40)
    assert text_of(page, ".tool .tool-input pre.command") == "rm -rf build"
    shown = text_of(page, ".tool .tool-input")
    assert '"dangerouslyDisableSandbox": true' in shown and '"timeout": 600000' in shown, shown
    page.evaluate("document.querySelector('.tool .approval button.deny').click()")
    page.wait_for(f"document.querySelector('{LAST} .head .status').textContent === 'completed'", timeout=40)
    assert text_of(page, ".tool .approval").startswith("denied")


HIDE = """((hidden) => {
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event('visibilitychange'));
})"""


def test_a_tab_out_of_sight_lets_its_stream_go(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """A browser opens six connections to the gateway at most. Each console tab held one open for its session's
    stream, so with six tabs (five streams elsewhere, here) every request of the page waited: an approval, Send,
    Interrupt never went out. A tab out of sight lets its stream go, and once shown again picks it up where it
    stopped: what happened meanwhile is shown, each event once."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    others = [gw.create_session()["id"] for _ in range(5)]
    open_console(page, gw)
    following(page, session)
    page.evaluate(f"""window.others = {others!r}.map((id) => {{
        const stop = new AbortController();
        fetch('/api/sessions/' + id + '/events/stream',
              {{ headers: headers({{ Accept: 'text/event-stream' }}), signal: stop.signal }}).catch(() => {{}});
        return stop;
    }})""")
    try:
        page.evaluate(f"{HIDE}(true)")
        answered = """Promise.race([api('/api/sessions?limit=1').then(() => 'answered'),
                                    new Promise((done) => setTimeout(() => done('no answer'), 5000))])"""
        assert page.evaluate(answered) == "answered"
        assert text_of(page, "#link") == "paused"
        mock_model.script(Reply(text="while away"))
        gw.turn(session, "are you there?")
    finally:
        page.evaluate("window.others.forEach((stop) => stop.abort())")
    assert page.evaluate("document.querySelectorAll('#turns .turn').length") == 0  # nothing came while hidden
    page.evaluate(f"{HIDE}(false)")
    page.wait_for(f"document.querySelector('{LAST} .head .status')?.textContent === 'completed'", timeout=20)
    assert text_of(page, f"{LAST} .reply") == "while away" and text_of(page, "#link") == "live"
    shown = page.evaluate(
        "[...document.querySelectorAll('#events tbody tr td:first-child')].map(td => +td.textContent)"
    )
    assert shown == [event["seq"] for event in gw.events(session)]


def test_a_session_waiting_for_someone_shows_above_the_list_however_old(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """The list holds the newest sessions: one that began waiting for its client's tool result before twenty others
    were made was pages down, easy to miss. "Waiting for you" above the list names it, and leaves once it is
    answered."""
    gw = console_gateway
    waiting = gw.create_session(tools=[WEATHER])
    mock_model.script(Reply(tool_uses=(ToolUse("get_weather", {"city": "Oslo"}),)))
    paused = gw.turn(waiting["id"], "weather in Oslo?")
    assert paused["status"] == "requires_action"
    for _ in range(21):
        gw.create_session()
    open_console(chromium, gw)
    chromium.wait_for(f"document.querySelector('#waiting li[data-id=\"{waiting['id']}\"]') !== null")
    assert chromium.evaluate(f"{_listed(waiting['id'])} === null"), "off the list's first page"
    assert chromium.evaluate(f"{DISPLAYED}('#waiting-box')")
    call = paused["tool_calls"][0]["tool_call_id"]
    done = gw.client.post(
        f"/api/sessions/{waiting['id']}/tool-results", json={"results": [{"tool_call_id": call, "content": "-3C"}]}
    )
    assert done.json()["status"] == "completed"
    chromium.wait_for(f"!{DISPLAYED}('#waiting-box')", timeout=15)


def test_a_queued_turn_can_be_withdrawn_from_the_page(
    console_gateway: Gateway, chromium: browser.Browser, mock_model: MockModel
) -> None:
    """A turn queued behind a running one (another client's, a heartbeat) showed as "queued" with nothing to do
    about it: Withdraw takes it back before it reaches the model, and the running turn goes on."""
    gw, page = console_gateway, chromium
    session = gw.create_session()["id"]
    open_console(page, gw)
    following(page, session)
    mock_model.script(Reply(text=" ".join(f"slow{n}" for n in range(400)), chunk_delay=0.1))  # long past the test
    url = f"/api/sessions/{session}/turns"
    running = gw.client.post(url, json={"input": "talk for a while", "background": True}).json()
    queued = gw.client.post(url, json={"input": "then this", "background": True, "queue": True}).json()
    assert queued["status"] == "queued", queued
    card = f'#turns .turn[data-turn="{queued["turn_id"]}"]'
    page.wait_for(f"(b => b && !b.hidden)(document.querySelector('{card} .withdraw'))")
    page.evaluate(f"document.querySelector('{card} .withdraw').click()")
    page.wait_for(f"document.querySelector('{card} .head .status').textContent === 'interrupted'", timeout=20)
    assert page.evaluate(f"document.querySelector('{card} .withdraw').hidden")
    assert gw.client.get(f"{url}/{queued['turn_id']}").status_code == 404, "withdrawn: no turn record"
    assert gw.client.get(f"{url}/{running['turn_id']}").json()["status"] == "running", "the running turn goes on"
    assert all("then this" not in str(r.body["messages"]) for r in mock_model.message_requests()), "it never ran"
    gw.client.post(f"/api/sessions/{session}/interrupt", json={})
