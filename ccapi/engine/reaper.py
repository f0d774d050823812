"""No process a Claude Code started outlives it.

Claude Code runs each Bash command in a session of its own, so a command is no longer its child's child once
Claude Code is gone: killed (the OOM killer, a crash, ``kill -9``) or stopped with the gateway that died, it leaves
its commands running, unsupervised, holding ports and files (a ``sleep 30`` stays; a dev server stays for good).
So every Claude Code gets a tag in its environment, which its tools inherit: ``CCAPI_ENGINE=<home>/<engine>``.
When an engine is closed, whatever still carries its tag is killed; when a gateway starts, whatever carries its
home's tag was left by the one before it. Linux only (``/proc``); elsewhere nothing is reaped.

Nor does a Claude Code leave its start-up probe behind (``clear_stale_probes``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

from ccapi.childproc import ENGINE_TAG

_PROC = Path("/proc")


def home_tag(home: Path) -> str:
    """The tag prefix of one gateway home's engines: every gateway of that home, this run and earlier ones."""
    return hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:16]


def engine_tag(home: str) -> str:
    """One engine's tag, under its home's."""
    return f"{home}/{uuid.uuid4().hex}"


def reap(tag: str) -> list[int]:
    """Kill every process whose tag is ``tag`` or under it (``home/``); returns their pids."""
    killed = []
    for pid in _tagged(tag):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:  # gone meanwhile, or not ours to kill
            continue
        killed.append(pid)
    return killed


#: How old a Claude Code's start-up probe folder is when nothing will remove it any more (see ``clear_stale_probes``).
STALE_PROBE_SECONDS = 60.0


def clear_stale_probes(now: float | None = None) -> int:
    """Remove the ``fswatch-probe-*`` folders Claude Codes left in their temp folder (``$TMPDIR/claude-<uid>``):
    each makes one as it starts and removes it ~1.5 s later, so one stopped sooner (a compat one-off parked as soon
    as it answers, a session deleted right after its turn) leaves it there, and a long day's thousands slow every
    Claude Code that walks the folder. Only those a minute old go: a Claude Code starting now (the user's own too)
    still has its own. Returns how many were removed."""
    folder = Path(tempfile.gettempdir(), f"claude-{os.getuid()}")
    cutoff = (time.time() if now is None else now) - STALE_PROBE_SECONDS
    removed = 0
    try:
        probes = list(folder.glob("fswatch-probe-*"))
    except OSError:  # no such folder (no Claude Code ran here yet), or not ours
        return 0
    for probe in probes:
        try:
            if probe.is_dir() and not probe.is_symlink() and probe.stat().st_mtime < cutoff:
                shutil.rmtree(probe)
                removed += 1
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


def _tagged(tag: str) -> list[int]:
    wanted = f"{ENGINE_TAG}={tag}".encode()
    found = []
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or another user's
            continue
        for variable in environ.split(b"\0"):
            if variable == wanted or (variable.startswith(wanted) and tag.endswith("/")):
                found.append(int(entry.name))
                break
    return found
