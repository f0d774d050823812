"""Which of Claude Code's built-in tools a session may use, and how its permission mode is chosen.

Kept free of SDK imports so settings, request parsing and the engine share one definition.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: The built-in tools the bundled Claude Code (2.1.332) declares when asked for them by name
#: (``ClaudeAgentOptions.tools``) in the gateway's environment: its default set plus Glob and Grep,
#: less those whose work reports between turns (the Cron tools, Monitor, ScheduleWakeup: see
#: ``engine.spec.UNATTENDED_TOOLS``) and those that reach other Claude Code sessions on this host
#: (ListAgents, SendMessage: see ``engine.spec.PEER_TOOLS``). Other names are dropped silently by
#: the CLI, so the gateway refuses them instead.
BUILTIN_TOOL_NAMES = (
    "Agent",
    "Bash",
    "Edit",
    "EnterWorktree",
    "ExitWorktree",
    "Glob",
    "Grep",
    "NotebookEdit",
    "Read",
    "ReportFindings",
    "Skill",
    "TaskCreate",
    "TaskGet",
    "TaskList",
    "TaskStop",
    "TaskUpdate",
    "WebFetch",
    "WebSearch",
    "Workflow",
    "Write",
)

BuiltinTools = str | tuple[str, ...]
"""``"all"`` (Claude Code's whole agent), ``"none"`` (the model with the client's tools only), or names."""

BYPASS = "bypassPermissions"


def parse_builtin_tools(value: Any) -> BuiltinTools:
    """``"all"``, ``"none"`` or a list of known names; raises ``ValueError`` naming the known
    tools otherwise."""
    if value in ("all", "none"):
        return str(value)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError('builtin_tools must be "all", "none" or a list of Claude Code tool names')
    unknown = sorted({name for name in value if name not in BUILTIN_TOOL_NAMES})
    if unknown:
        raise ValueError(f"unknown built-in tool(s): {', '.join(unknown)}; known: {', '.join(BUILTIN_TOOL_NAMES)}")
    if not value:
        return "none"
    return tuple(dict.fromkeys(value))


#: Names a session could be given once (its record may hold them) that are refused now: the peer messaging tools
#: (``engine.spec.PEER_TOOLS``), never declared any more whatever a session's record says.
WITHDRAWN_TOOL_NAMES = ("ListAgents", "SendMessage")


def recorded_builtin_tools(value: Any) -> BuiltinTools:
    """A session's recorded policy (``parse_builtin_tools``), less the names withdrawn since it was recorded
    (``WITHDRAWN_TOOL_NAMES``): a session made with one goes on without it, instead of failing every turn."""
    if isinstance(value, list | tuple):
        value = [name for name in value if name not in WITHDRAWN_TOOL_NAMES]
    return parse_builtin_tools(value)


def parse_builtin_tools_text(raw: str) -> BuiltinTools:
    """The same from text (an environment variable, a header): ``all``, ``none`` or ``Read,Grep``."""
    raw = raw.strip()
    return parse_builtin_tools(raw if raw in ("all", "none") else [n.strip() for n in raw.split(",") if n.strip()])


def sdk_tools(policy: BuiltinTools) -> list[str] | None:
    """``ClaudeAgentOptions.tools``: None keeps Claude Code's default set."""
    if policy == "all":
        return None
    if policy == "none":
        return []
    return list(policy)


def as_json(policy: BuiltinTools) -> str | list[str]:
    return policy if isinstance(policy, str) else list(policy)


@dataclass(frozen=True)
class PermissionPolicy:
    """Whether Claude Code may skip its permission checks on this host, and why not.

    Claude Code refuses ``bypassPermissions`` as root unless ``IS_SANDBOX`` is exactly ``1`` (its own
    test, ``process.env.IS_SANDBOX === "1"``: ``yes`` or ``true`` do not count); the gateway then asks
    instead (``default`` mode, each call an approval over HTTP) rather than fail every turn."""

    bypass_allowed: bool
    reason: str

    @classmethod
    def detect(cls, env: Mapping[str, str] | None = None, euid: int | None = None) -> PermissionPolicy:
        env = os.environ if env is None else env
        euid = os.geteuid() if euid is None else euid
        if euid != 0:
            return cls(True, "running as a normal user")
        sandbox = env.get("IS_SANDBOX")
        if sandbox == "1":
            return cls(True, "running as root with IS_SANDBOX=1")
        told = "without IS_SANDBOX" if sandbox is None else f"with IS_SANDBOX={sandbox!r} (Claude Code takes only '1')"
        return cls(
            False,
            f"running as root {told}: Claude Code refuses bypassPermissions, "
            "so built-in tool calls wait for approval (POST /api/sessions/{id}/permissions)",
        )

    def mode_for(self, requested: str, policy: BuiltinTools) -> str:
        """The permission mode a session runs under. Without built-in tools nothing needs a
        bypass (client tools are always allowed); where the bypass is refused, approvals."""
        if requested != BYPASS:
            return requested
        if policy == "none" or not self.bypass_allowed:
            return "default"
        return requested

    def describe(self, default_mode: str) -> dict[str, str]:
        effective = default_mode if self.bypass_allowed or default_mode != BYPASS else "default"
        return {"default_mode": effective, "approvals": "on" if effective != BYPASS else "off", "reason": self.reason}
