"""The browser console driven in headless Chromium (``tests.browser``): its key, and the steps every console test
takes (open the page and give the key, follow a session's live log, read an element's text)."""

from __future__ import annotations

from tests import browser
from tests.gateway import Gateway

#: The key of the console tests' gateways (``console_gateway`` in conftest).
KEY = "console-key-5d20b7"
DISPLAYED = "(s => getComputedStyle(document.querySelector(s)).display !== 'none')"


def open_console(page: browser.Browser, gw: Gateway, where: str = "") -> None:
    """The console freshly loaded (nothing left from an earlier test), the key given."""
    page.goto("about:blank")
    page.goto(f"{gw.base_url}/{where}")
    asked = page.wait_for(f"{DISPLAYED}('#key-panel') ? 'key' : {DISPLAYED}('#app') ? 'app' : ''")
    if asked == "key":
        page.evaluate(f"document.querySelector('#key-input').value = '{KEY}';")
        page.evaluate("document.querySelector('#key-form').requestSubmit()")
        page.wait_for(f"{DISPLAYED}('#app')")


def following(page: browser.Browser, session_id: str) -> None:
    """Open a session (unless it is open) and wait until its event stream is live and replayed."""
    page.evaluate(f"location.hash = '#/sessions/{session_id}'")
    page.wait_for(
        f"document.querySelector('#session-id').textContent === '{session_id}' && "
        "document.querySelector('#link').textContent === 'live' && "
        "document.querySelectorAll('#events tbody tr').length > 0"
    )


def text_of(page: browser.Browser, selector: str) -> str:
    return page.evaluate(f"document.querySelector({selector!r})?.textContent ?? ''")
