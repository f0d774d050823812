"""A real headless browser for tests: Debian's Chromium, driven over the Chrome DevTools Protocol.

Installed with apt when missing (CI runs as root); skipped with the reason only where it cannot
be installed. Each browser gets a fresh profile, resolves no host but loopback, and runs in its
own process group so ``stop`` leaves none of its helper processes behind.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # nothing but loopback, whatever a page asks
    "--window-size=1280,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def find_or_install() -> tuple[str | None, str]:
    """Chromium's path, or None and why not."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            return None, "Chromium is not installed and cannot be installed (needs root and apt-get)"
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", "chromium"]
        installed = subprocess.run(install, env=env, capture_output=True, text=True)
        if installed.returncode != 0:  # a fresh machine may have no package lists yet
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            installed = subprocess.run(install, env=env, capture_output=True, text=True)
        if installed.returncode != 0:
            return None, f"apt-get install chromium failed: {installed.stderr[-500:]}"
    return CHROMIUM, ""


class CdpError(AssertionError):
    pass


class Browser:
    """One Chromium with one page, and the few DevTools commands tests need."""

    def __init__(self, binary: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="ccapi-chromium-"))
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=(self.profile / "chromium.log").open("wb"),
            start_new_session=True,
        )
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []  # every DevTools event seen so far (``Network.*`` once enabled)
        self._closing = ExitStack()
        try:
            self.socket = self._connect_to_page()
        except BaseException:
            self.stop()
            raise

    def _connect_to_page(self) -> ClientConnection:
        active = self.profile / "DevToolsActivePort"  # Chromium writes its chosen port here
        deadline = time.monotonic() + 30
        while not (active.exists() and active.read_text().count("\n") >= 1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.profile / "chromium.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"Chromium did not start:\n{log}")
            time.sleep(0.1)
        port = int(active.read_text().split()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        (page,) = (t for t in targets if t["type"] == "page")
        return self._closing.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10))

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer, skipping the events in between."""
        ident = next(self._ids)
        self.socket.send(orjson.dumps({"id": ident, "method": method, "params": params}).decode())
        while True:
            message = orjson.loads(self.socket.recv(timeout=60))
            if "method" in message:
                self.events.append(message)
            elif message.get("id") == ident:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message["result"]

    def requests(self) -> list[dict[str, Any]]:
        """The requests the page has sent since ``Network.enable``: ``url``, ``method``, ``headers``
        (names in lower case)."""
        sent = [e["params"]["request"] for e in self.events if e["method"] == "Network.requestWillBeSent"]
        return [{**r, "headers": {k.lower(): v for k, v in r["headers"].items()}} for r in sent]

    def responses(self) -> list[dict[str, Any]]:
        """The responses the page has had since ``Network.enable``: ``url``, ``status``, ``headers``."""
        return [e["params"]["response"] for e in self.events if e["method"] == "Network.responseReceived"]

    def goto(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CdpError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Poll until the expression is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression!r} (last value {value!r})")
            time.sleep(0.05)

    def screenshot(self, path: Path) -> Path:
        path.write_bytes(base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"]))
        return path

    def stop(self) -> None:
        self._closing.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # renderers and helpers share the group
        except ProcessLookupError:
            pass
        self.process.wait(5)
        shutil.rmtree(self.profile, ignore_errors=True)
