"""Where Claude Code's built-in tools may reach: its own sandbox for Bash, deny rules for the rest.

Claude Code runs as the gateway's user, so without more its Bash tool could read the gateway's
state (``cc-api.env``, the database) and, through ``/proc``, other processes of that user. Where
the platform has one, Claude Code's sandbox (bubblewrap on Linux, Seatbelt on macOS) runs each
Bash command in its own pid namespace (other processes' ``/proc`` out of sight), without network,
with the state paths hidden and writes kept to the working directory. Read and Edit run in Claude
Code itself, outside that sandbox, so permission deny rules keep them off the same paths and
``/proc``; those apply with or without a sandbox, in every permission mode. Both also keep every
session's tools off the transcripts Claude Code keeps of all sessions on this host.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from claude_agent_sdk import HookMatcher
from claude_agent_sdk.types import HookContext, HookInput, HookJSONOutput

from ccapi import childproc
from ccapi.config import ConfigError

_PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class SandboxPolicy:
    """What this gateway gives Claude Code's built-in tools: the SDK's ``sandbox`` settings (``None``
    without a sandbox) and the permission rules that keep file tools off the gateway's state."""

    mode: str
    mechanism: str | None
    """``bubblewrap`` or ``seatbelt`` when Bash runs sandboxed, else ``None``."""
    reason: str
    settings: Mapping[str, Any] | None = None
    denied_tools: tuple[str, ...] = field(default=())

    @classmethod
    def detect(
        cls,
        mode: str,
        protected: Sequence[Path],
        allowed_domains: Sequence[str] = (),
        launch: Sequence[Path] = (),
        logins: Sequence[str] = (),
    ) -> SandboxPolicy:
        """Probe the platform's sandbox (unless ``mode`` is ``off``); ``require`` without one raises
        ``ConfigError`` so the gateway refuses to start rather than run tools unconfined. ``launch``: the files
        the gateway runs, unsandboxed, each time it starts Claude Code (``launch_files``): no tool may write them,
        even where they lie under a session's working directory (a checkout, a home with a user install).
        ``logins``: Claude Code's login files (``login_files``), which no tool may read. The transcript stores
        (``transcript_stores``) are this host's, found here: sandboxed Bash does not see them, and the file tools
        are kept off the conversations in them (``conversation_rules``, ``private_transcripts``); nor may a tool
        read the files that hand a starting Claude Code its session's prompt and MCP servers (``private_files``)."""
        protected = outermost(protected)
        stores, records = transcript_stores(), conversation_records()
        secrets = [*logins, private_files()]
        denied = (
            *deny_rules(protected),
            *conversation_rules(stores, records),
            *_read_and_edit(f"/{secret}" for secret in secrets),
            *(f"Edit(/{path})" for path in launch),
        )
        if mode == "off":
            return cls(mode, None, "turned off by CC_API_SANDBOX=off", None, denied)
        mechanism, problem = probe()
        if mechanism is None:
            if mode == "require":
                raise ConfigError(f"CC_API_SANDBOX=require, but {problem}")
            return cls(mode, None, problem, None, denied)
        sandbox: dict[str, Any] = {
            "enabled": True,
            "failIfUnavailable": True,  # fail the command rather than run it unconfined
            "allowUnsandboxedCommands": False,  # the model cannot ask its way out
            "autoAllowBashIfSandboxed": False,  # approvals stay as the permission mode says
            "filesystem": {
                "denyRead": [*(str(path) for path in protected), *secrets, *stores, *records],
                "denyWrite": [str(path) for path in launch],
            },
        }
        if allowed_domains:
            sandbox["network"] = {"allowedDomains": list(allowed_domains)}
        return cls(mode, mechanism, f"Bash runs in Claude Code's sandbox ({mechanism})", sandbox, denied)

    def describe(self) -> dict[str, Any]:
        return {
            "enabled": self.settings is not None,
            "mode": self.mode,
            "mechanism": self.mechanism,
            "reason": self.reason,
        }


def deny_rules(protected: Sequence[Path]) -> tuple[str, ...]:
    """``Read``/``Edit`` deny rules for ``protected`` folders and ``/proc``."""
    return (*_read_and_edit(_wholly(protected)), "Read(//proc/**)")


def _read_and_edit(patterns: Iterable[str]) -> tuple[str, ...]:
    """A ``Read`` and an ``Edit`` deny rule for each of ``patterns`` (``//`` marks an absolute path)."""
    patterns = list(patterns)
    return tuple(f"{tool}({pattern})" for tool in ("Read", "Edit") for pattern in patterns)


def _wholly(paths: Iterable[str | Path]) -> list[str]:
    """Rule patterns for each of ``paths`` and, a folder, everything in it."""
    return [pattern for path in paths for pattern in (f"/{path}", f"/{path}/**")]


def login_files() -> list[str]:
    """Claude Code's subscription login: ``.credentials.json`` in its config directory, and the copy the SDK
    writes into the temp config directory it resumes a session from (``claude-resume-*``). A tool that printed
    one would hand the model a token it could send anywhere (WebFetch runs outside any sandbox)."""
    return [os.path.join(config, ".credentials.json") for config in (claude_config_dir(), resumed_config_dirs())]


def transcript_stores() -> list[str]:
    """Where Claude Code keeps conversations, each as ``<cwd key>/<sdk session id>.jsonl`` (and the session's folder
    beside it): ``projects`` in its config directory (every session's of this gateway, and the user's own
    interactive ones) and in the temp config directories the SDK resumes sessions from. One session's tools could
    otherwise read (or rewrite) another's conversation. Claude Code reads and writes its own transcript itself,
    not through a tool, so resuming is unaffected. A ``projects`` that is a link (moved to a larger disk) is
    named as the link and as where it leads: a tool reaches it by either path."""
    projects = os.path.join(claude_config_dir(), "projects")
    named = [projects] if os.path.realpath(projects) == projects else [projects, os.path.realpath(projects)]
    return [*named, os.path.join(resumed_config_dirs(), "projects")]


#: What Claude Code keeps of each of its sessions in its config directory beside the transcripts, that no tool needs:
#: the prompts typed in interactive sessions (``history.jsonl``), files as they were before each edit
#: (``file-history``), todo and task lists (``todos``, ``tasks``), every running Claude Code's id, working directory
#: and messaging socket with the token that lets a peer send its conversation messages (``sessions``), the scripts a
#: session's hooks left for its Bash calls (``session-env``: often exported secrets), debug logs and prompt dumps
#: (``debug``, ``api-dumps``, ``dump-prompts``), what was pasted into interactive sessions (``paste-cache``,
#: ``image-cache``), background sessions and agent teams (``jobs``, ``teams``) and reports of past sessions
#: (``usage-data``, ``feedback-bundles``: transcripts).
CONVERSATION_RECORDS = (
    "history.jsonl",
    "file-history",
    "todos",
    "tasks",
    "sessions",
    "session-env",
    "debug",
    "api-dumps",
    "dump-prompts",
    "paste-cache",
    "image-cache",
    "jobs",
    "teams",
    "usage-data",
    "feedback-bundles",
)


def conversation_records() -> list[str]:
    """What else of its users' conversations Claude Code keeps in its config directories (``CONVERSATION_RECORDS``).
    Claude Code reads and writes them itself, not through a tool; no tool reaches them, nor does sandboxed Bash."""
    configs = (claude_config_dir(), resumed_config_dirs())
    return [os.path.join(config, name) for config in configs for name in CONVERSATION_RECORDS]


def conversation_rules(stores: Sequence[str], records: Sequence[str]) -> tuple[str, ...]:
    """``Read``/``Edit`` deny rules for the conversations in the transcript ``stores`` (every session's transcript
    and its subagents') and for the other ``records`` (``conversation_records``). Not the stores whole: a session's
    own folder there holds the tool results Claude Code saved for being too large to show, which it tells the model
    to Read (``private_transcripts`` guards the rest)."""
    patterns = [pattern for store in stores for pattern in (f"/{store}/*/*.jsonl", f"/{store}/*/*/subagents/**")]
    return _read_and_edit([*patterns, *_wholly(records)])


def private_files() -> str:
    """The files (a glob) the gateway writes, readable by its user only, to hand a starting Claude Code its
    session's system prompt and MCP servers (``PRIVATE_FILE_PREFIX``; removed once it has read them): another
    session's prompt, and the headers of its MCP servers (tokens, often)."""
    return os.path.join(os.path.realpath(tempfile.gettempdir()), f"{PRIVATE_FILE_PREFIX}*")


def resumed_config_dirs() -> str:
    """The temp config directories the SDK writes a stored session into to resume it (``claude-resume-*``, a glob:
    each resume makes its own, with a random name)."""
    return os.path.join(os.path.realpath(tempfile.gettempdir()), "claude-resume-*")


def claude_config_dir() -> str:
    """Where Claude Code keeps its own state: ``CLAUDE_CONFIG_DIR``, else ``~/.claude`` (as Claude Code finds it)."""
    return os.path.realpath(os.environ.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~/.claude"))


def launch_files(cli: str | None) -> list[Path]:
    """What the gateway runs, outside any sandbox, to start Claude Code: the Python it runs the launcher with,
    the launcher's code (``ccapi.childproc``) and Claude Code itself."""
    found = [Path(sys.executable).resolve(), Path(childproc.__file__).resolve()]
    return found + ([Path(cli).resolve()] if cli else [])


#: How the files ``private_files`` names begin.
PRIVATE_FILE_PREFIX = "ccapi-private-"
FILE_WRITERS = ("Write", "Edit", "MultiEdit", "NotebookEdit")
FILE_TOOLS = ("Read", "Grep", "Glob", *FILE_WRITERS)


def confined_writes(cwd: str) -> HookMatcher:
    """Where Bash is sandboxed, Claude Code's file-writing tools keep to the same places: the working directory
    and the temp directory, and Claude Code's own plans folder (plan mode writes its plan there). They run in
    Claude Code itself, outside the sandbox, so one could otherwise write a shell's start-up file (``~/.bashrc``)
    that Claude Code's next Bash call sources outside the sandbox. A ``PreToolUse`` hook, not a deny rule: rules
    cannot say "only here", and hooks apply in every permission mode."""
    roots = confined_roots(cwd)

    async def pre_tool_use(input_: HookInput, _tool_use_id: str | None, _context: HookContext) -> HookJSONOutput:
        tool_input = input_.get("tool_input")
        fields = tool_input if isinstance(tool_input, dict) else {}
        target = fields.get("file_path") or fields.get("notebook_path")
        if not isinstance(target, str) or within(target, roots):
            return {}
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": f"{target} is outside the working directory ({cwd}): files are written "
                "only there (or in the temp directory), as the sandbox lets Bash write",
            }
        }

    return HookMatcher(matcher=f"^({'|'.join(FILE_WRITERS)})$", hooks=[pre_tool_use])


def confined_roots(cwd: str) -> list[str]:
    """Where ``confined_writes`` lets files be written: ``cwd`` first (relative paths are taken from it)."""
    plans = os.path.join(claude_config_dir(), "plans")
    return [os.path.realpath(cwd), os.path.realpath(tempfile.gettempdir()), os.path.realpath(plans)]


def within(target: str, roots: Sequence[str]) -> bool:
    """Whether ``target`` (relative to the first root, ``~`` expanded, links followed) lies under one of ``roots``."""
    path = _cased(resolved(target, roots[0]))
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in map(_cased, roots))


#: macOS's file systems ignore case by default (``/Users/u/.Claude`` is ``~/.claude``), and ``realpath`` keeps the
#: case it was given: there a path is compared case-folded, or a tool could name a walled-off file in other letters.
CASE_BLIND = sys.platform == "darwin"


def _cased(path: str) -> str:
    return path.casefold() if CASE_BLIND else path


def resolved(target: str, cwd: str) -> str:
    """``target`` as a tool takes it: relative to ``cwd``, ``~`` expanded, links followed."""
    return os.path.realpath(os.path.join(cwd, os.path.expanduser(target)))


def private_transcripts() -> HookMatcher:
    """Claude Code's file tools reach into a transcript store only within the session's own folder there (its
    transcript's path less ``.jsonl``), where Claude Code saves the session's tool results too large to show; other
    sessions' saved results are their conversations too. A Grep of a folder that holds a store (a session working in
    the home directory) searches around it. A ``PreToolUse`` hook, not a deny rule: rules cannot say "only the
    session's own" (nor is its id known before Claude Code starts), and hooks apply in every mode."""
    stores = transcript_stores()

    async def pre_tool_use(input_: HookInput, _tool_use_id: str | None, _context: HookContext) -> HookJSONOutput:
        tool_input = input_.get("tool_input")
        fields = tool_input if isinstance(tool_input, dict) else {}
        target = search_root(fields) if input_.get("tool_name") == "Glob" else _file_target(fields)
        if isinstance(target, str) and others_conversation(target, input_["cwd"], input_["transcript_path"], stores):
            return {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": f"{target} is in Claude Code's store of other sessions' "
                    "conversations: a session's tools reach only its own",
                }
            }
        if input_.get("tool_name") == "Grep":
            root = resolved(target if isinstance(target, str) else ".", input_["cwd"])
            if skipped := stores_within(root, stores):
                globs = [fields["glob"]] if isinstance(fields.get("glob"), str) else []
                exclusions = [f"!**/{_one_glob_word(store)}/**" for store in skipped]
                return {
                    "hookSpecificOutput": {
                        "hookEventName": "PreToolUse",
                        "updatedInput": {**fields, "glob": " ".join([*globs, *exclusions])},
                    }
                }
        return {}

    return HookMatcher(matcher=f"^({'|'.join(FILE_TOOLS)})$", hooks=[pre_tool_use])


def unlisted_conversations() -> HookMatcher:
    """A Glob of a folder that holds a transcript store (a session working in the home directory) lists no file
    of another session's folder there: the names of its saved tool results, its subagents' transcripts. Glob takes
    one pattern and no exclusion (as Grep's ``glob`` takes), so a ``PostToolUse`` hook takes them out of what it
    found before the model sees it. Claude Code leaves out by itself what the deny rules keep from Read (every
    transcript, ``CONVERSATION_RECORDS``)."""
    stores = transcript_stores()

    async def post_tool_use(input_: HookInput, _tool_use_id: str | None, _context: HookContext) -> HookJSONOutput:
        response = input_.get("tool_response")
        if not isinstance(response, dict) or not isinstance(found := response.get("filenames"), list):
            return {}
        tool_input = input_.get("tool_input")
        root = search_root(tool_input if isinstance(tool_input, dict) else {})
        bases = [input_["cwd"], *([resolved(root, input_["cwd"])] if isinstance(root, str) else [])]
        transcript = input_["transcript_path"]
        kept = [
            name
            for name in found
            if not isinstance(name, str)
            or not any(others_conversation(name, base, transcript, stores) for base in bases)
        ]
        if len(kept) == len(found):
            return {}
        left_out = len(found) - len(kept)
        updated = {**response, "filenames": kept, "numFiles": len(kept)}
        if isinstance(total := response.get("totalMatches"), int):
            updated["totalMatches"] = max(total - left_out, len(kept))
        return {"hookSpecificOutput": {"hookEventName": "PostToolUse", "updatedToolOutput": updated}}

    return HookMatcher(matcher="^Glob$", hooks=[post_tool_use])


def _file_target(fields: Mapping[str, Any]) -> Any:
    return fields.get("file_path") or fields.get("notebook_path") or fields.get("path")


def search_root(fields: Mapping[str, Any]) -> Any:
    """Where a Glob call searches: its ``path``, or the folder an absolute ``pattern`` begins with (Claude Code
    searches from there whatever ``path`` says)."""
    pattern = fields.get("pattern")
    if isinstance(pattern, str) and os.path.isabs(pattern):
        return os.path.dirname(re.split(r"[*?\[{]", pattern, maxsplit=1)[0])
    return fields.get("path")


def stores_within(root: str, stores: Sequence[str]) -> list[str]:
    """The ``stores`` that lie inside the folder ``root``, as paths relative to it (a store named by a glob keeps
    its wildcards)."""
    within_root = []
    for store in stores:
        parts = Path(store).parts
        for depth in range(1, len(parts)):
            if fnmatch.fnmatchcase(_cased(root), _cased(os.path.join(*parts[:depth]))):
                within_root.append(os.path.join(*parts[depth:]))
                break
    return within_root


def _one_glob_word(path: str) -> str:
    """``path`` as one word of Grep's ``glob`` field, which Claude Code splits at white space and commas (and
    reads braces and brackets in): each such character stands as ``?``."""
    return re.sub(r"[\s,{}\[\]]", "?", path)


def others_conversation(target: str, cwd: str, transcript: str, stores: Sequence[str]) -> bool:
    """Whether ``target`` lies in a transcript store, outside the folder of the session whose transcript is
    ``transcript`` (``<cwd key>/<session id>``, in whichever store: a resumed session's transcript is in a
    ``claude-resume-*`` one, the tool results it saved before in the config directory's)."""
    path = resolved(target, cwd)
    own = os.path.join(*Path(transcript.removesuffix(".jsonl")).parts[-2:])
    for store in stores:
        if _under(path, store):
            return not _under(path, os.path.join(store, own))
    return False


def _under(path: str, pattern: str) -> bool:
    """``path`` is what ``pattern`` (a glob) names, or lies inside it."""
    path, pattern = _cased(path), _cased(pattern)
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, f"{pattern}/*")


def outermost(paths: Sequence[Path]) -> list[Path]:
    """``paths`` without those inside another of them."""
    return [p for p in paths if not any(other != p and p.is_relative_to(other) for other in paths)]


def probe() -> tuple[str | None, str]:
    """``(mechanism, "")`` when Claude Code's sandbox can run here, else ``(None, why not)``."""
    if sys.platform == "darwin":
        if shutil.which("sandbox-exec") is None:
            return None, "no sandbox: sandbox-exec (Seatbelt) is missing"
        return "seatbelt", ""
    if not sys.platform.startswith("linux"):
        return None, f"no sandbox: Claude Code has none on {sys.platform}"
    bwrap = shutil.which("bwrap")
    missing = [name for name, found in (("bubblewrap", bwrap), ("socat", shutil.which("socat"))) if found is None]
    if missing or bwrap is None:
        return None, f"no sandbox: install {' and '.join(missing)} (e.g. apt-get install bubblewrap socat)"
    command = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--proc", "/proc", "--dev", "/dev", "true"]
    try:
        trial = subprocess.run(command, capture_output=True, timeout=_PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"no sandbox: bubblewrap did not run ({exc})"
    if trial.returncode != 0:
        detail = trial.stderr.decode(errors="replace").strip()[:200]
        return None, f"no sandbox: bubblewrap cannot create namespaces here ({detail or trial.returncode})"
    return "bubblewrap", ""
