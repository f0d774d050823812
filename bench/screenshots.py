"""Screenshots of the browser console for the docs: ``make screenshots`` (``python -m bench.screenshots``).

Starts the gateway as a newcomer would try it (``cc-api run --mock-model``, as root with default settings, so
built-in tools ask for approval), makes a few sessions through the API with the mock's replies scripted over its
control endpoint, and has headless Chromium (Debian's, installed with apt when missing, as the browser tests do)
render the console into ``docs/images/console*.png``. Everything stays on loopback.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from bench.common import REPO, say, scratch_home
from ccapi.testing import MockError, Reply, ToolUse
from tests import browser
from tests.gateway import Gateway

IMAGES = REPO / "docs" / "images"
WIDTH, HEIGHT = 1280, 1080

SUMMARY = """Here is what the folder holds:

| file | what it is |
|---|---|
| `README.md` | the project's front page |
| `build/` | compiled output, **safe to remove** |
| `notes.txt` | meeting notes from *Tuesday* |

The build folder is the only thing that can go; say the word and I'll delete it."""

RELEASE = """## v1.4 in three lines

1. The console approves tool calls, interrupts and forks.
2. Replies render as Markdown, safely: `<b>` stays text.
3. Limits and webhook deliveries are one click away.

> Tip: the event log below each session replays after a reconnect."""


class ScriptedMock:
    """The gateway's own ``--mock-model``, scripted through its control endpoint."""

    def __init__(self, gateway: Gateway) -> None:
        deadline = time.monotonic() + 10
        while not (found := re.search(r"MOCK MODEL at (\S+)", gateway.log_path.read_text(errors="replace"))):
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway did not say where its mock model is")
            time.sleep(0.1)
        self.url = found.group(1)

    def script(self, *replies: Reply) -> None:
        httpx.post(f"{self.url}/_mock/script", json=[asdict(r) for r in replies], timeout=10).raise_for_status()


def make_sessions(gw: Gateway, mock: ScriptedMock, workdir: Path) -> tuple[str, str]:
    """A failed session, a titled one, and the one to show: a Bash call approved and a second one waiting."""
    mock.script(Reply(error=MockError(403, "permission_error", "this key may not use that model")))
    failed = gw.create_session()["id"]
    gw.turn(failed, "Draft the quarterly report")

    mock.script(Reply(text=RELEASE))
    titled = gw.create_session(metadata={"title": "Release notes v1.4"})["id"]
    gw.turn(titled, "Write the release notes")

    (workdir / "build").mkdir(parents=True, exist_ok=True)
    for name, text in (("README.md", "# demo\n"), ("notes.txt", "Tuesday\n")):
        (workdir / name).write_text(text)
    # "default" asks for approvals whoever runs this (as root it is the default anyway)
    shown = gw.create_session(builtin_tools=["Bash"], cwd=str(workdir), permission_mode="default")["id"]
    mock.script(
        Reply(text="Let me look.", tool_uses=(ToolUse("Bash", {"command": "ls -la", "description": "List files"}),)),
        Reply(text=SUMMARY),
    )
    paused = gw.turn(shown, "What is in this folder? A table, please.")
    gw.allow(shown, paused)
    mock.script(
        Reply(
            text="Removing it.",
            tool_uses=(ToolUse("Bash", {"command": "rm -rf build", "description": "Remove the build folder"}),),
        )
    )
    waiting = gw.client.post(f"/api/sessions/{shown}/turns", json={"input": "Yes, delete build/", "background": True})
    waiting.raise_for_status()
    return shown, titled


def capture(page: browser.Browser, url: str, ready: str, path: Path) -> None:
    page.goto(url)
    page.wait_for(ready, timeout=30)
    time.sleep(0.3)  # the last Markdown render and the health badge
    page.screenshot(path)
    say(f"screenshots: wrote {path}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES)
    args = parser.parse_args(argv)
    binary, why_not = browser.find_or_install()
    if binary is None:
        sys.exit(f"screenshots: {why_not}")
    args.out.mkdir(parents=True, exist_ok=True)
    with scratch_home() as home:
        command = [sys.executable, "-m", "ccapi", "run", "--mock-model"]
        gw = Gateway(home, None, command=command, IS_SANDBOX=None, CC_API_SANDBOX=None).start()
        page: browser.Browser | None = None
        try:
            page = browser.Browser(binary)
            page.call(
                "Emulation.setDeviceMetricsOverride", width=WIDTH, height=HEIGHT, deviceScaleFactor=1, mobile=False
            )
            shown, titled = make_sessions(gw, ScriptedMock(gw), home / "project")
            approval = "!!document.querySelector('.approval button.allow:not(:disabled)')"
            capture(page, f"{gw.base_url}/#/sessions/{shown}", approval, args.out / "console.png")
            rendered = "!!document.querySelector('.turn .reply ol') && !!document.querySelector('#limits p')"
            capture(page, f"{gw.base_url}/#/sessions/{titled}", rendered, args.out / "console-markdown.png")
        finally:
            if page is not None:
                page.stop()
            gw.stop()
            gw.client.close()
            leftovers = gw.leftover_processes()
            if leftovers:
                raise RuntimeError(f"Claude CLI processes outlived the gateway: {leftovers}")


if __name__ == "__main__":
    main()
