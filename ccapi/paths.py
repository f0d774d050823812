"""Where CC API keeps things: every path under ``$CC_API_HOME`` (default ``~/.cc-api``) and the
per-user service directories, resolved in one place so the gateway, the CLI, the service files
and the menu app always agree."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from platformdirs.unix import Unix as XdgDirs

HOME_VARIABLE = "CC_API_HOME"
LOG_FILE_NAME = "cc-api.log"


def default_home() -> Path:
    """``~/.cc-api``: process state, logs and the default database unless ``CC_API_HOME`` says otherwise."""
    return Path.home() / ".cc-api"


def home_from_env(env: Mapping[str, str] | None = None) -> Path:
    """``CC_API_HOME``, made absolute against the working directory: a service file (started elsewhere) and the
    Claude Code children (started in a session's folder) must name the same place."""
    value = (os.environ if env is None else env).get(HOME_VARIABLE, "").strip()
    return Path(value).expanduser().absolute() if value else default_home()


@dataclass(frozen=True)
class StatePaths:
    home: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StatePaths:
        return cls(home_from_env(env))

    @property
    def state_file(self) -> Path:
        """Written by the running gateway: pid, URL, start time (see ``ccapi.daemon.launcher``)."""
        return self.home / "cc-api.json"

    @property
    def env_file(self) -> Path:
        """``KEY=VALUE`` settings read by every ``cc-api`` command and by the service units."""
        return self.home / "cc-api.env"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def log_file(self) -> Path:
        return self.log_dir / LOG_FILE_NAME

    @property
    def run_dir(self) -> Path:
        """Files the running gateway needs, such as the launcher of its Claude Code children."""
        return self.home / "run"

    @property
    def database(self) -> Path:
        return self.home / "sessions.db"


def systemd_user_unit_dir() -> Path:
    """``$XDG_CONFIG_HOME/systemd/user`` (``~/.config/systemd/user``): where ``systemctl --user`` looks."""
    return XdgDirs().user_config_path / "systemd" / "user"


def launch_agents_dir() -> Path:
    return Path.home() / "Library" / "LaunchAgents"
