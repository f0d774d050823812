"""Run the real gateway (``python -m ccapi run``) as a subprocess for integration tests.

Each gateway gets its own ``CC_API_HOME`` and a private ``HOME``/``CLAUDE_CONFIG_DIR`` so
the Claude Code CLI never touches a real login, and runs in its own process group so a
test can prove that nothing (no Claude CLI child) outlives it.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

CHILD_MARK = "CCAPI_TEST_GATEWAY"
"""Set to the gateway's ``CC_API_HOME`` and passed to its Claude Code children (``CC_API_PASS_ENV``):
how a test finds the children of its gateways, even once the gateway is gone."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_TMPDIRS: dict[Path, Path] = {}


def _own_tmpdir(home: Path) -> Path:
    """The temp directory of the gateway at ``home``: short, under the system's, not in ``home``: Claude Code's Bash
    sandbox listens on Unix sockets there, whose paths may not pass 108 bytes, and a pytest ``tmp_path`` under an
    xdist worker made them longer (the sandbox then failed to start). Removed when the test process ends."""
    if home not in _TMPDIRS:
        _TMPDIRS[home] = Path(tempfile.mkdtemp(prefix="cct-"))
        atexit.register(shutil.rmtree, _TMPDIRS[home], True)
    return _TMPDIRS[home]


SANDBOX_OFF = {"CC_API_SANDBOX": "off"}
"""The test gateways' one departure from the defaults: Claude Code's Bash sandbox (``CC_API_SANDBOX=auto``, on
wherever bubblewrap and socat are installed, as in CI) doubles what a native session's Claude Code costs to start
(~0.65 to ~1.35 CPU-seconds, ~0.4 to ~0.95 s: it runs ``npm root -g`` looking for its seccomp helper, then its
proxies and bridges), and half of the suite's ~330 Claude Code starts were sandboxed. Tests of the sandbox, and those
that run the product exactly as shipped (the README example, a plain install, approvals as root, the default turn
under every ``IS_SANDBOX``), pass ``CC_API_SANDBOX=None`` to run it at its default."""

#: Claude Code's automatic compaction brought down to what the mock's turns reach (a 30,000-token window, compacted
#: past 10 %): after two turns of a few thousand words, the third turn begins with a compaction, a main request to
#: the mock (script its summary first).
AUTO_COMPACTING = {"CLAUDE_CODE_AUTO_COMPACT_WINDOW": "30000", "CLAUDE_AUTOCOMPACT_PCT_OVERRIDE": "10"}


def test_environment(home: Path, mock_url: str | None) -> dict[str, str]:
    """The offline Claude environment every test gateway runs in (SPEC "Testing without Claude"), with a temp
    directory of its own: Claude Code keeps a directory per working directory under ``$TMPDIR/claude-<uid>``
    and, while idle, walks all of them every few seconds: in the machine's shared ``/tmp`` (thousands, from every
    earlier run) an idle Claude Code took ~0.05 CPU-seconds a second, in a directory of its own ~0.015."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CC_API_", "ANTHROPIC_", "CLAUDE")) and k != "IS_SANDBOX"
    }
    env.update(
        {
            "HOME": str(home / "user"),
            "TMPDIR": str(_own_tmpdir(home)),
            "CLAUDE_CONFIG_DIR": str(home / "user" / ".claude"),
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CC_API_HOME": str(home / "cc-api"),
            "ANTHROPIC_API_KEY": "test-dummy-key",
            CHILD_MARK: str(home / "cc-api"),
            "CC_API_PASS_ENV": CHILD_MARK,
            **SANDBOX_OFF,
        }
    )
    if mock_url:
        env["CC_API_UPSTREAM_URL"] = mock_url
    return env


def pids_with_env(name: str, *values: str) -> list[int]:
    """Live processes whose environment has ``name`` set to one of ``values``."""
    needles = {f"{name}={value}".encode() for value in values}
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z" and needles.intersection(environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def program_name(pid: int) -> str:
    """The file name of the program a process runs (``""`` once it is gone)."""
    try:
        return Path(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")).name
    except OSError:  # gone meanwhile
        return ""


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``check`` holds within ``timeout`` seconds (polled): for what the gateway does in its own time."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def child_pids(pid: int) -> list[int]:
    """The live children of a process, from ``/proc/PID/task/*/children`` (Linux)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(child) for child in task.read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return [child for child in found if _alive(child)]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def gateway_processes(home: str, seen: set[int]) -> list[int]:
    """The gateways running with this ``CC_API_HOME`` (added to ``seen``) and the Claude Code
    children of any gateway of that home, found by ``CHILD_MARK``: how a test finds leaked children."""
    gateways = pids_with_env("CC_API_HOME", home)
    seen.update(gateways)
    return sorted(set(gateways) | set(pids_with_env(CHILD_MARK, home)))


def readable_by_others(root: Path) -> dict[str, str]:
    """Everything under ``root`` (itself included) that group or other users may access, with its mode."""
    found = {}
    for path in (root, *root.rglob("*")):
        mode = path.lstat().st_mode & 0o777
        if mode & 0o077 and not path.is_symlink():
            found[str(path.relative_to(root))] = f"{mode:04o}"
    return found


class Gateway:
    def __init__(
        self,
        home: Path,
        mock_url: str | None,
        backend: str = "sqlite",
        *,
        command: Sequence[str] | None = None,
        **env: str | None,
    ) -> None:
        """``backend`` is ``sqlite`` or ``jsondir``; ``command`` replaces ``python -m ccapi run`` (an
        installed ``cc-api``, say); ``env`` overrides the test environment, and a ``None`` value
        removes the variable."""
        self.home = home
        self.command = list(command or [sys.executable, "-m", "ccapi", "run"])
        self.backend = backend
        self.port = free_port()
        self.env = test_environment(home, mock_url)
        self.env["CC_API_PORT"] = str(self.port)
        if backend == "jsondir":
            self.env["CC_API_SESSION_DIR"] = str(home / "cc-api" / "sessions-json")
        for name, value in env.items():
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        if CHILD_MARK not in self.env.get("CC_API_PASS_ENV", "").split(","):
            self.env["CC_API_PASS_ENV"] = ",".join(filter(None, [self.env.get("CC_API_PASS_ENV"), CHILD_MARK]))
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"gateway-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pids: set[int] = set()
        """Every gateway process this object started: their orphans carry one of these pids."""
        self.client = httpx.Client(base_url=self.base_url, timeout=60)
        self.log_offset = 0
        """Where ``log_text`` begins: the module's start on a shared gateway (``mark_log``)."""

    def start(self) -> Gateway:
        (self.home / "user").mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.home,
        )
        self.pids.add(self.process.pid)
        deadline = time.monotonic() + 60  # a start imports ~3 CPU-seconds: far more under a busy machine's load
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"gateway exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                # its own client: a bare httpx.get builds an SSL context each time, ~45 ms of CPU every 0.1 s
                if self.client.get("/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()  # never leave a half-started gateway behind
        raise RuntimeError(f"gateway did not become healthy:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        """Stop the gateway and everything it started; a kill of the group is the backstop."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(5)
        self.process = None

    def restart(self) -> Gateway:
        self.stop()
        return self.start()

    def transcript_entries(self, sdk_session_id: str) -> int:
        """How many lines of Claude Code's transcript the gateway's own store holds."""
        if self.backend == "jsondir":
            root = Path(self.env["CC_API_SESSION_DIR"]) / "transcripts"
            return sum(len(p.read_bytes().splitlines()) for p in root.glob(f"*/{sdk_session_id}/*/*.jsonl"))
        with sqlite3.connect(self.home / "cc-api" / "sessions.db") as db:
            return db.execute(
                "SELECT COUNT(*) FROM transcript_entries WHERE session_id = ?", (sdk_session_id,)
            ).fetchone()[0]

    def transcript(self, sdk_session_id: str) -> list[dict[str, Any]]:
        """The lines of Claude Code's main transcript the gateway's SQLite store holds, in order."""
        assert self.backend == "sqlite", "read from the SQLite store only"
        with sqlite3.connect(self.home / "cc-api" / "sessions.db") as db:
            rows = db.execute(
                "SELECT entry FROM transcript_entries WHERE session_id = ? AND subpath = '' ORDER BY id",
                (sdk_session_id,),
            ).fetchall()
        return [orjson.loads(entry) for (entry,) in rows]

    def lingering_processes(self, grace: float = 10) -> list[int]:
        """After ``stop``: processes of this gateway still alive once ``grace`` seconds have
        passed (a killed process can take a moment to go, more so on a loaded machine)."""
        deadline = time.monotonic() + grace
        while (left := self.leftover_processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def leftover_processes(self) -> list[int]:
        return gateway_processes(self.env["CC_API_HOME"], self.pids)

    def claude_processes(self) -> list[int]:
        """This gateway's live Claude Code children themselves: what the pool bounds. Only its direct
        children count: the helpers Claude Code starts (the Bash sandbox's socat bridges) carry the same
        marker, and between fork and exec such a helper still reads as ``claude`` (seen under CI load).
        Read from the kernel's list of the gateway's children: samplers call this every few milliseconds,
        and a walk over every process's environment took ~5 ms of CPU a time."""
        return [pid for pid in child_pids(self.process.pid) if program_name(pid) == "claude"]

    def mark_log(self) -> None:
        """From now on ``log_text`` holds only what the gateway writes after this call."""
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_text(self) -> str:
        """The gateway's output since ``mark_log`` (all of it if never called)."""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    # -- HTTP helpers ------------------------------------------------------------
    def session_ids(self) -> list[str]:
        """Every session the gateway holds, page by page."""
        ids: list[str] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
            page = self.client.get("/api/sessions", params=params).json()
            ids += [session["id"] for session in page["data"]]
            if not page["has_more"]:
                return ids
            after = page["next_after"]

    def create_session(self, **body: Any) -> dict[str, Any]:
        response = self.client.post("/api/sessions", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def turn(self, session_id: str, text: Any, **body: Any) -> dict[str, Any]:
        response = self.client.post(f"/api/sessions/{session_id}/turns", json={"input": text, **body})
        assert response.status_code == 200, response.text
        return response.json()

    def allow(self, session_id: str, reply: dict[str, Any], **body: Any) -> dict[str, Any]:
        """Approve every built-in call a paused turn waits for (as root, Claude Code's tools ask
        first: docs/api.md "Approvals"); a reply that waits for none is returned as it is."""
        if reply["status"] != "requires_approval":
            return reply
        decisions = [{"request_id": r["request_id"], "behavior": "allow"} for r in reply["permission_requests"]]
        response = self.client.post(f"/api/sessions/{session_id}/permissions", json={"decisions": decisions, **body})
        assert response.status_code in (200, 202), response.text
        return response.json()

    def events(self, session_id: str, after: int = 0) -> list[dict[str, Any]]:
        response = self.client.get(f"/api/sessions/{session_id}/events", params={"after": after, "limit": 1000})
        assert response.status_code == 200, response.text
        return response.json()["data"]


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parse an SSE line stream into ``{"id", "event", "data"}`` dicts; comments are yielded as
    ``{"comment": text}`` so tests can see keep-alives."""
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current:
                if "data" in current:
                    current["data"] = orjson.loads(current["data"])
                yield current
                current = {}
            continue
        if line.startswith(":"):
            yield {"comment": line[1:].strip()}
            continue
        field, _, value = line.partition(":")
        current[field] = value.removeprefix(" ")
