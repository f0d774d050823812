"""Engine failures, already phrased for the user who has to fix them."""

from __future__ import annotations

ROOT_BYPASS_MARKER = "cannot be used with root/sudo privileges"


class EngineError(Exception):
    """A Claude Code process could not run a turn. ``kind`` becomes the event's error type."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def explain_process_failure(stderr_tail: str, fallback: str) -> EngineError:
    """Turn a dead CLI process into an actionable error instead of an exit code."""
    lines = [line.strip() for line in stderr_tail.splitlines() if line.strip()]
    if ROOT_BYPASS_MARKER in stderr_tail:
        own = next(line for line in lines if ROOT_BYPASS_MARKER in line)
        return EngineError(
            "engine_error",
            f"Claude Code said: {own!r}. It refuses permission mode 'bypassPermissions' when the gateway runs as root. "
            "Run CC API as a normal user, or set CC_API_PERMISSION_MODE / CC_API_TOOL_PERMISSION_MODE to "
            "'acceptEdits' or 'default', or (only inside a sandbox or container) set IS_SANDBOX=1 in the "
            "gateway's environment.",
        )
    detail = lines[-1] if lines else fallback
    return EngineError("engine_error", f"Claude Code process failed: {detail}")
