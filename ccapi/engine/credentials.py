"""Where Claude Code will find credentials, checked before the first turn needs them.

A newcomer without a login should read "no credentials" at start-up and in
``/healthz``, not discover it as a failed turn.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ccapi.config import Settings

_ENV_SOURCES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
_HOW_TO = (
    "set ANTHROPIC_API_KEY in the gateway's environment, or log in once with `claude login` "
    "as this user; `cc-api run --mock-model` tries the API without an account"
)


@dataclass(frozen=True)
class CredentialStatus:
    found: bool
    source: str | None
    message: str


def find_credentials(settings: Settings) -> CredentialStatus:
    if settings.mock_model:
        return CredentialStatus(True, "mock-model", "using the bundled mock model: replies are NOT from Claude")
    for name in _ENV_SOURCES:
        if os.environ.get(name):
            return CredentialStatus(True, name, f"using {name} from the environment")
    config_dir = Path(os.environ.get("CLAUDE_CONFIG_DIR") or Path.home() / ".claude")
    if (config_dir / ".credentials.json").is_file():
        return CredentialStatus(True, "claude-login", f"using the Claude Code login in {config_dir}")
    if sys.platform == "darwin":
        return CredentialStatus(
            False,
            None,
            "no credentials in the environment; a Claude Code login in the "
            "macOS keychain may still work — if turns fail, " + _HOW_TO,
        )
    return CredentialStatus(False, None, "Claude credentials were not found: " + _HOW_TO)
