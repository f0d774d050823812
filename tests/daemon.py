"""Run the real ``cc-api`` command (not ``run``: ``start``, ``status``, ...) in one test's offline
environment, as a user would from a shell."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from ccapi.paths import StatePaths
from tests.gateway import free_port, gateway_processes
from tests.gateway import test_environment as offline_environment  # aliased: pytest would collect test_*

_SCRIPT = Path(sys.executable).parent / "cc-api"
CC_API = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ccapi"]


class Cli:
    """``cc-api`` with one test's offline environment and ``CC_API_HOME``."""

    def __init__(self, tmp_path: Path, mock_url: str, **env: str) -> None:
        (tmp_path / "user").mkdir(parents=True, exist_ok=True)
        self.cwd = tmp_path
        self.env = {**offline_environment(tmp_path, mock_url), "CC_API_PORT": str(free_port()), **env}
        self.paths = StatePaths(Path(self.env["CC_API_HOME"]))
        self.url = f"http://127.0.0.1:{self.env['CC_API_PORT']}"
        self.gateway_pids: set[int] = set()

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*CC_API, *args], env=self.env, cwd=self.cwd, capture_output=True, text=True, timeout=60
        )
        self.leftovers()  # notes the gateway's pid while it runs, to find its children once it is gone
        return result

    def popen(self, *args: str, stderr: int | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen([*CC_API, *args], env=self.env, cwd=self.cwd, stdout=subprocess.PIPE, stderr=stderr)

    def leftovers(self) -> list[int]:
        return gateway_processes(self.env["CC_API_HOME"], self.gateway_pids)

    def cleanup(self) -> None:
        """Finalizer: whatever a failed test left running is stopped, then killed."""
        self("stop")
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
