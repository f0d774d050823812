"""What the OS says about a pid: is it alive, what is its command line, when did it start.

A pid file alone cannot tell our gateway from an unrelated process that got the same pid
after a crash; the start time can, and the command line is a second check.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    argv: tuple[str, ...]
    started: str
    """Opaque start-time token: equal for the same process, different once the pid is reused."""


def inspect_process(pid: int) -> ProcessInfo | None:
    """The live (non-zombie) process ``pid``, or ``None``."""
    if pid <= 0:
        return None
    _reap(pid)
    return _from_proc(pid) if (_PROC / "self" / "stat").exists() else _from_ps(pid)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is our own exited child (the menu app starts the gateway itself),
    so it does not linger as a zombie that looks alive."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _from_proc(pid: int) -> ProcessInfo | None:
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
        cmdline = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the command name may contain spaces and parentheses
    if fields[0] in ("Z", "X"):
        return None
    argv = tuple(part.decode(errors="replace") for part in cmdline.split(b"\0") if part)
    return ProcessInfo(pid, argv, started=fields[19])


def _from_ps(pid: int) -> ProcessInfo | None:
    try:
        result = subprocess.run(
            ["ps", "-o", "stat=", "-o", "lstart=", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = result.stdout.split(None, 6)
    if result.returncode != 0 or len(parts) < 7 or parts[0].startswith("Z"):
        return None
    return ProcessInfo(pid, tuple(parts[6].split()), started=" ".join(parts[1:6]))


def current_process() -> ProcessInfo:
    info = inspect_process(os.getpid())
    if info is None:  # only without both /proc and ps; the pid check then stands alone
        return ProcessInfo(os.getpid(), (), started="")
    return info
