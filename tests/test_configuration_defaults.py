"""The configuration page tells each setting's default as the gateway has it: a default in the table's second column
that is a literal (`8`, `127.0.0.1`, `2592000` (30 days)) is the one ``Settings`` uses when the variable is unset.
(tests/test_docs.py checks that the page and the code name the same variables.) Fast: no gateway."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from ccapi.config import Settings
from ccapi.events import DEFAULT_WEBHOOK_EVENTS

PAGE = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
_ROW = re.compile(r"^\| `(CC_API_[A-Z0-9_]+)` \| `([^`]+)`", flags=re.M)
_FIELD_NAMES = {"CC_API_KEY": "api_key"}
_NOT_LITERAL = ("CC_API_HOME", "CC_API_SESSION_DB", "CC_API_HOST_ID")  # a path or a name made of others


def documented_defaults() -> dict[str, str]:
    return {name: value for name, value in _ROW.findall(PAGE.read_text()) if name not in _NOT_LITERAL}


def field_name(name: str) -> str:
    return _FIELD_NAMES.get(name, name.removeprefix("CC_API_").lower())


def actual_default(name: str, settings: Settings) -> str:
    if name == "CC_API_WEBHOOK_EVENTS":  # unset: the events a session's webhook gets when it names none
        return ",".join(str(event) for event in DEFAULT_WEBHOOK_EVENTS)
    value = getattr(settings, field_name(name))
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        return f"{value:g}" if value < 1e6 else str(int(value))
    return str(value)


def test_each_documented_default_is_the_one_the_gateway_uses() -> None:
    defaults = documented_defaults()
    assert len(defaults) >= 30  # guards the table's parsing
    names = {field.name for field in fields(Settings)}
    settings = Settings.from_env({})
    wrong = {}
    for name, documented in defaults.items():
        assert field_name(name) in names, f"{name}: no Settings.{field_name(name)}"
        if (actual := actual_default(name, settings)) != documented:
            wrong[name] = f"documented {documented}, default {actual}"
    assert wrong == {}


def test_no_variable_outside_the_documented_ones_configures_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sanic read every ``CC_API_SANIC_*`` variable into its config (its timeouts, its request size, ...), none of
    them documented, some overriding what ``Settings`` had set."""
    from ccapi.app import create_app

    monkeypatch.setenv("CC_API_SANIC_KEEP_ALIVE", "false")
    monkeypatch.setenv("CC_API_SANIC_NOISE", "1")
    app = create_app(Settings(home=tmp_path), name="ccapi_environment_walk")
    assert app.config.KEEP_ALIVE is True and "NOISE" not in app.config
