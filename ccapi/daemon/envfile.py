"""``$CC_API_HOME/cc-api.env``: settings shared by ``cc-api run``/``start``/``status`` and the service units.

systemd reads it through ``EnvironmentFile=``; launchd has no such thing, so ``cc-api run`` reads it
itself. Values already in the process environment win, as they would over a default. The syntax is
the common subset of systemd's ``EnvironmentFile`` and shell: ``KEY=VALUE``, optional quotes,
whole-line ``#`` comments; a backslash only inside single quotes (elsewhere systemd reads it as an escape).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from ccapi.config import VARIABLE_NAME, ConfigError
from ccapi.paths import HOME_VARIABLE, StatePaths

EXAMPLE_ENV_FILE = """\
# CC API settings: read by `cc-api run`, `cc-api start`, `cc-api status` and the installed service.
# One KEY=VALUE per line; whole-line comments only. The process environment wins over this file.
# Keep it private (mode 0600): it may hold keys. CC_API_HOME cannot be set here.
#
# A key clients must send (Authorization: Bearer ...); required for a non-loopback CC_API_HOST:
# CC_API_KEY=
# CC_API_HOST=127.0.0.1
# CC_API_PORT=8000
#
# Where Claude Code's built-in tools (Read, Edit, Bash) act; the service default is your home directory:
# CC_API_CWD=
# CC_API_MODEL=claude-sonnet-4-5
#
# Signs webhook deliveries (whsec_ + base64); `cc-api install-service` adds one when missing:
# CC_API_WEBHOOK_SECRET=
#
# Claude credentials, unless this user has run `claude login`:
# ANTHROPIC_API_KEY=
#
# Claude Code sees only its own variables, never CC_API_* ones; more names it may see (e.g. GH_TOKEN,JAVA_HOME):
# CC_API_PASS_ENV=
"""


def parse_env_file(text: str, source: str = "env file") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not VARIABLE_NAME.fullmatch(name):
            hint = " (no `export`: systemd ignores such a line)" if name.startswith("export ") else ""
            raise ConfigError(f"{source}, line {number}: expected KEY=VALUE{hint}, got {raw!r}")
        value = value.strip()
        quote = value[0] if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" else ""
        if quote:
            value = value[1:-1]
        if "\\" in value and quote != "'":
            raise ConfigError(
                f"{source}, line {number}: {name}'s value holds a backslash, which systemd's EnvironmentFile= reads as "
                "an escape (outside single quotes) and cc-api as written: the service and the cc-api command would "
                "disagree on it. Put the value in single quotes, where both take it as written"
            )
        values[name] = value
    values.pop(HOME_VARIABLE, None)
    return values


def read_env_file(path: Path) -> dict[str, str]:
    """The file's settings (none if it is missing); ``ConfigError`` when it cannot be read, which ``run`` and
    ``start`` refuse like a bad setting and ``stop`` and ``status`` warn of. A byte-order mark is skipped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start})"
        ) from exc
    return parse_env_file(text, source=str(path))


def home_setting_line(path: Path) -> int | None:
    """The number of a line of the env file that sets ``CC_API_HOME``, which ``parse_env_file`` leaves out (the file
    lives in that home) but systemd's ``EnvironmentFile=`` would apply to the service, over the unit's own
    ``Environment=``: its gateway would keep its state elsewhere, where no ``cc-api`` command looks."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    for number, raw in enumerate(text.splitlines(), start=1):
        name, sep, _ = raw.strip().partition("=")
        if sep and name.strip() == HOME_VARIABLE:
            return number
    return None


def with_env_file(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) on top of the values from its home's env file."""
    env = os.environ if env is None else env
    return {**read_env_file(StatePaths.from_env(env).env_file), **env}


def write_example_env_file(path: Path) -> bool:
    """Create the commented example with mode 0600; an existing file is never touched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(EXAMPLE_ENV_FILE)
    return True


def ensure_env_value(path: Path, name: str, make_value: Callable[[], str]) -> bool:
    """Append ``name=<make_value()>`` to the env file unless it already sets ``name``; ``True``
    if it did. Used for generated secrets, so a reinstall keeps the one receivers hold."""
    if name in read_env_file(path):
        return False
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as file:
        file.write(("" if not existing or existing.endswith("\n") else "\n") + f"{name}={make_value()}\n")
    return True
