"""Pure units: settings, model names, input blocks."""

from __future__ import annotations

import base64
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from ccapi.catalog import ModelCatalog
from ccapi.childproc import child_environment
from ccapi.config import ConfigError, Settings
from ccapi.engine import sandbox
from ccapi.engine.sandbox import (
    SandboxPolicy,
    confined_roots,
    launch_files,
    others_conversation,
    search_root,
    stores_within,
    transcript_stores,
    within,
)
from ccapi.engine.spec import build_options
from ccapi.errors import InvalidRequest, PayloadTooLarge
from ccapi.sessions.inputs import parse_input, summarise
from ccapi.sessions.specs import EngineSpecs
from ccapi.store import SessionRecord


def test_settings_read_every_variable(tmp_path) -> None:
    settings = Settings.from_env(
        {
            "CC_API_HOST": "127.0.0.1",
            "CC_API_PORT": "9001",
            "CC_API_HOME": str(tmp_path),
            "CC_API_MAX_TURNS": "3",
            "CC_API_TOOL_MAX_TURNS": "2",
            "CC_API_MAX_LIVE": "4",
            "CC_API_IDLE_TIMEOUT": "30",
            "CC_API_PERMISSION_MODE": "acceptEdits",
            "CC_API_UPSTREAM_URL": "http://127.0.0.1:9/",
            "CC_API_SESSION_DB": str(tmp_path / "x.db"),
            "CC_API_UPSTREAM_RETRIES": "2",
            "CC_API_UPSTREAM_TIMEOUT": "45",
            "CC_API_PASS_ENV": "GH_TOKEN, JAVA_HOME",
        }
    )
    assert settings.pass_env == ("GH_TOKEN", "JAVA_HOME")
    assert (settings.upstream_retries, settings.upstream_timeout) == (2, 45.0)
    assert Settings.from_env({}).upstream_retries is None
    assert (settings.port, settings.max_turns, settings.tool_max_turns, settings.max_live) == (9001, 3, 2, 4)
    assert settings.idle_timeout == 30.0 and settings.permission_mode == "acceptEdits"
    assert settings.database_path == tmp_path / "x.db"
    assert Settings.from_env({"CC_API_HOME": str(tmp_path)}).database_path == tmp_path / "sessions.db"
    kept = Settings.from_env({"CC_API_COMPAT_RETENTION": "0", "CC_API_SESSION_RETENTION": "86400"})
    assert (kept.compat_retention, kept.session_retention) == (0.0, 86400.0)  # 0: compat sessions kept
    assert (Settings().compat_retention, Settings().session_retention) == (30 * 24 * 3600.0, 0.0)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CC_API_PORT": "eighty"}, "CC_API_PORT"),
        ({"CC_API_PERMISSION_MODE": "yolo"}, "CC_API_PERMISSION_MODE"),
        ({"CC_API_MAX_LIVE": "0"}, "CC_API_MAX_LIVE"),
        ({"CC_API_COMPAT_RETENTION": "-1"}, "CC_API_COMPAT_RETENTION"),
        ({"CC_API_IDLE_TIMEOUT": "0"}, "CC_API_IDLE_TIMEOUT"),
        ({"CC_API_HOST": "0.0.0.0"}, "CC_API_KEY"),
        ({"CC_API_UPSTREAM_RETRIES": "-1"}, "CC_API_UPSTREAM_RETRIES"),
        ({"CC_API_DATABASE_URL": "mysql://localhost/x"}, "CC_API_DATABASE_URL"),
        ({"CC_API_PASS_ENV": "CC_API_KEY"}, "CC_API_PASS_ENV"),
        ({"CC_API_PASS_ENV": "A=B"}, "CC_API_PASS_ENV"),
    ],
)
def test_bad_settings_name_the_variable(env: dict, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        Settings.from_env(env)


def test_claude_code_gets_its_own_variables_and_no_gateway_secret() -> None:
    env = {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "ANTHROPIC_API_KEY": "a",
        "CLAUDE_CONFIG_DIR": "/c",
        "CC_API_KEY": "k",
        "CC_API_DATABASE_URL": "postgresql://u:p@h/d",
        "CC_API_GATEWAY_PID": "7",
        "PGPASSWORD": "p",
        "AWS_SECRET_ACCESS_KEY": "s",
        "GH_TOKEN": "g",
        "CLAUDECODE": "1",
    }
    assert child_environment(env, ["GH_TOKEN"]) == {
        "PATH": "/bin",
        "HOME": "/h",
        "LC_ALL": "C",
        "ANTHROPIC_API_KEY": "a",
        "CLAUDE_CONFIG_DIR": "/c",
        "GH_TOKEN": "g",
    }
    bedrock = child_environment({**env, "CLAUDE_CODE_USE_BEDROCK": "1"})
    assert bedrock["AWS_SECRET_ACCESS_KEY"] == "s" and "CC_API_KEY" not in bedrock


def test_the_launcher_is_started_without_the_gateways_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK starts the launcher with ``{**os.environ, **options.env}`` (its subprocess transport), and the
    gateway keeps its key, database password and webhook secret in ``os.environ``: the options blank each of
    them, so the launcher (and whatever a tool put in its place) never holds one; what Claude Code needs stays."""
    secrets = {"CC_API_KEY": "k-1", "CC_API_WEBHOOK_SECRET": "w-2", "PGPASSWORD": "p-3", "GH_TOKEN": "g-4"}
    loader = {"LD_LIBRARY_PATH": "/opt/python/lib"}  # the launcher's Python may need it to start
    basics = {"PATH": "/bin", "HOME": str(tmp_path), "ANTHROPIC_API_KEY": "a"}
    monkeypatch.setattr(os, "environ", {**basics, **loader, **secrets})
    specs = EngineSpecs(
        Settings.from_env({"CC_API_HOME": str(tmp_path / "cc-api"), "CC_API_PASS_ENV": "GH_TOKEN"}), None, {}
    )
    session = SessionRecord(
        "sess_x", "t", "t", "claude-sonnet-4-5", None, [], {}, None, None, None, "idle", None, 0, 0, builtin_tools="all"
    )
    launcher_env = {**os.environ, **build_options(specs.spec(session), print).env}
    assert {name: launcher_env[name] for name in secrets} == {
        "CC_API_KEY": "",
        "CC_API_WEBHOOK_SECRET": "",
        "PGPASSWORD": "",
        "GH_TOKEN": "g-4",  # passed on by CC_API_PASS_ENV
    }
    assert launcher_env["ANTHROPIC_API_KEY"] == "a" and launcher_env["PATH"] == "/bin"
    assert launcher_env["LD_LIBRARY_PATH"] == "/opt/python/lib"


def test_the_files_that_start_claude_code_are_denied_to_the_edit_tools(tmp_path: Path) -> None:
    """Write and Edit run in Claude Code, outside the sandbox: a deny rule keeps them off the launcher's files,
    sandbox or not (the sandbox's ``denyWrite`` covers Bash: tests/test_child_isolation.py)."""
    launch = launch_files("/opt/claude/bin/claude")
    assert Path(sys.executable).resolve() in launch and launch[-1] == Path("/opt/claude/bin/claude")
    policy = SandboxPolicy.detect("off", [tmp_path / "state"], launch=launch)
    assert {f"Edit(/{path})" for path in launch} <= set(policy.denied_tools)


def test_file_writes_keep_to_the_working_and_temp_directories_and_claude_codes_plans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``confined_writes``' rule: the working directory (also ``/``, where Bash may write everywhere), the temp
    directory, and the plans folder plan mode writes its plan to; nothing else."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/srv/claude")
    roots = confined_roots("/srv/work")
    assert within("notes.txt", roots) and within("/srv/work/a/../b.txt", roots)
    assert within("/srv/claude/plans/happy-otter.md", roots)
    assert within(str(Path(tempfile.gettempdir()) / "scratch.txt"), roots)
    assert not within("/etc/profile.d/escape.sh", roots) and not within("../outside.txt", roots)
    assert not within("/srv/claude/settings.json", roots)
    assert within("/home/user/project/a.py", confined_roots("/"))


def test_a_sessions_file_tools_reach_only_its_own_folder_of_the_transcript_stores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stores (``projects`` in Claude Code's config directory and in every ``claude-resume-*`` one) are closed
    to every session but for its own folder, where Claude Code saves its too-large tool results; the transcripts
    themselves are denied to all (deny rules), and so is every store to sandboxed Bash."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/srv/claude")
    stores = transcript_stores()
    resumed = str(Path(os.path.realpath(tempfile.gettempdir())) / "claude-resume-a1b2")
    own = "/srv/claude/projects/-srv-work/1111.jsonl"

    def reaches(target: str) -> bool:
        return others_conversation(target, "/srv/work", own, stores)

    assert reaches("/srv/claude/projects/-srv-work/2222/tool-results/x.txt") and reaches("/srv/claude/projects")
    assert reaches("/srv/claude/projects/-home-user/3333.jsonl") and reaches("../claude/projects/-srv-work")
    assert reaches(f"{resumed}/projects/-srv-work/2222/subagents/agent-1.jsonl")
    assert not reaches("/srv/claude/projects/-srv-work/1111/tool-results/x.txt") and not reaches("notes.txt")
    assert not reaches("/srv/claude/plans/happy-otter.md") and not reaches(f"{resumed}/.claude.json")
    policy = SandboxPolicy.detect("off", [Path("/srv/state")])
    assert "Read(//srv/claude/projects/*/*.jsonl)" in policy.denied_tools
    assert f"Edit(/{stores[1]}/*/*/subagents/**)" in policy.denied_tools
    for record in ("history.jsonl", "file-history/**", "todos/**"):  # the user's own sessions' prompts and edits
        assert f"Read(//srv/claude/{record})" in policy.denied_tools

    resumed_own = f"{resumed}/projects/-srv-work/1111.jsonl"  # a session resumed from the store runs from there
    assert not others_conversation("/srv/claude/projects/-srv-work/1111/tool-results/x.txt", "/", resumed_own, stores)
    assert others_conversation("/srv/claude/projects/-srv-work/2222/tool-results/x.txt", "/", resumed_own, stores)


def test_a_search_of_a_folder_that_holds_a_store_is_told_to_go_around_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grep from the home directory (or ``/``, or the temp directory the resumed stores are in) skips the stores
    inside it, named relative to where it searches; a Glob's absolute pattern says where it searches."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/srv/home/.claude")
    stores = transcript_stores()
    temp = os.path.realpath(tempfile.gettempdir())
    assert stores_within("/srv/home", stores) == [".claude/projects"]
    assert stores_within("/", stores)[0] == "srv/home/.claude/projects"
    assert stores_within(temp, stores) == ["claude-resume-*/projects"]
    assert stores_within(f"{temp}/claude-resume-k2", stores) == ["projects"]
    assert stores_within("/srv/home/work", stores) == [] and stores_within("/srv/home/.claude/projects", stores) == []
    assert (
        search_root({"pattern": "/srv/home/.claude/projects/-w/2222/**/*.txt"}) == "/srv/home/.claude/projects/-w/2222"
    )
    assert search_root({"pattern": "/srv/home/.claude/projects/-w/2222/x.txt"}) == "/srv/home/.claude/projects/-w/2222"
    assert search_root({"pattern": "**/*.py", "path": "/srv"}) == "/srv" and search_root({"pattern": "*"}) is None


def test_on_a_case_blind_file_system_other_letters_name_the_same_walled_off_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """macOS: ``/Users/u/.Claude/Projects`` is ``~/.claude/projects``, and ``realpath`` keeps the letters given."""
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", "/srv/claude")
    stores = transcript_stores()
    other = "/srv/Claude/Projects/-srv-work/2222/tool-results/x.txt"
    assert not others_conversation(
        other, "/", "/srv/claude/projects/-srv-work/1111.jsonl", stores
    )  # Linux: another file
    monkeypatch.setattr(sandbox, "CASE_BLIND", True)
    assert others_conversation(other, "/", "/srv/claude/projects/-srv-work/1111.jsonl", stores)
    assert within("/SRV/Work/a.py", ["/srv/work"]) and not within("/srv/other/a.py", ["/srv/work"])


def test_a_linked_transcript_store_is_walled_off_where_it_leads(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A ``projects`` moved to a larger disk and linked back: a tool names the files by where they really are."""
    (tmp_path / "disk").mkdir()
    (tmp_path / "claude").mkdir()
    (tmp_path / "claude" / "projects").symlink_to(tmp_path / "disk")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude"))
    stores = transcript_stores()
    own = str(tmp_path / "claude" / "projects" / "-w" / "1111.jsonl")
    assert others_conversation(str(tmp_path / "disk" / "-w" / "2222" / "tool-results" / "x.txt"), "/", own, stores)
    assert not others_conversation(str(tmp_path / "disk" / "-w" / "1111" / "tool-results" / "x.txt"), "/", own, stores)
    policy = SandboxPolicy.detect("off", [])
    assert f"Read(/{tmp_path}/disk/*/*.jsonl)" in policy.denied_tools


def test_otlp_exporter_headers_reach_claude_code_only_when_it_exports_telemetry() -> None:
    """The gateway's own tracing key (``OTEL_EXPORTER_OTLP_HEADERS``) must not be readable by a session's Bash calls."""
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "api-key=secret",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "api-key=secret",
    }
    assert child_environment(env) == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert child_environment(env, ["OTEL_EXPORTER_OTLP_HEADERS"]) == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=secret",
    }
    telemetry = {**env, "CLAUDE_CODE_ENABLE_TELEMETRY": "1"}
    assert child_environment(telemetry) == telemetry


def test_public_host_is_allowed_with_a_key() -> None:
    assert Settings.from_env({"CC_API_HOST": "0.0.0.0", "CC_API_KEY": "k"}).host == "0.0.0.0"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("sonnet", "claude-sonnet-4-5"),
        ("opus", "claude-opus-4-6"),
        ("anthropic/claude-opus-4.6", "claude-opus-4-6"),
        ("Anthropic/Claude-Haiku-4.5", "claude-haiku-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),
        ("gpt-4o", None),
        ("claude-sonnet-9", None),
    ],
)
def test_model_names_normalise(name: str, expected: str | None) -> None:
    assert ModelCatalog.from_setting(None).resolve(name) == expected


def test_models_setting_adds_models() -> None:
    catalog = ModelCatalog.from_setting('[{"id": "claude-next", "context_window": 1000000, "aliases": ["next"]}]')
    assert catalog.resolve("next") == "claude-next"
    assert next(m for m in catalog.models if m.id == "claude-next").context_window == 1_000_000
    assert ModelCatalog.from_setting("claude-a, claude-b").resolve("claude-b") == "claude-b"
    with pytest.raises(ConfigError):
        ModelCatalog.from_setting("[{oops")


def test_an_unknown_model_is_a_400_natively_and_a_404_on_the_compat_routes() -> None:
    """One lookup serves both; each keeps the status and message its clients know."""
    from ccapi.compat.exchange import model_of
    from ccapi.errors import ApiError
    from ccapi.sessions.params import known_model

    catalog = ModelCatalog.from_setting(None)
    assert known_model(catalog, "sonnet") == model_of(catalog, None, "sonnet") == "claude-sonnet-4-5"
    errors: list[ApiError] = []
    for lookup in (lambda: known_model(catalog, "gpt-4o"), lambda: model_of(catalog, "gpt-4o", "sonnet")):
        with pytest.raises(ApiError) as caught:
            lookup()
        errors.append(caught.value)
    native, compat = errors
    assert (native.status, native.message) == (400, "unknown model 'gpt-4o'; GET /api/models lists the known ones")
    assert (compat.status, compat.message) == (404, "unknown model 'gpt-4o'; GET /v1/models lists the known ones")
    assert native.details == compat.details == {"model": "gpt-4o"}
    with pytest.raises(ApiError, match="model must be a non-empty string") as caught:
        model_of(catalog, 7, "sonnet")
    assert caught.value.status == 400


PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()


def test_input_blocks_validate_and_summarise() -> None:
    blocks = parse_input(
        [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            {"type": "document", "source": {"type": "url", "url": "https://example.invalid/a.pdf"}, "title": "A"},
        ]
    )
    assert [b["type"] for b in blocks] == ["text", "image", "document"]
    assert summarise(blocks)[1]["source"] == {"type": "base64", "media_type": "image/png", "bytes": 40}


@pytest.mark.parametrize(
    "value",
    [
        [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "!!notbase64!!"}}],
        [{"type": "image", "source": {"type": "base64", "media_type": "image/tiff", "data": PNG}}],
        [{"type": "document", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}],
        [{"type": "image", "source": {"type": "url", "url": "file:///etc/passwd"}}],
        [{"type": "image", "source": {"type": "url", "url": "http://"}}],  # no host: Claude Code's fetch fails late
        [{"type": "image", "source": {"type": "url", "url": "https://[::1/x.png"}}],
        [{"type": "text", "text": ""}],
        [42],
        "   ",
    ],
)
def test_bad_input_blocks_are_invalid(value) -> None:
    with pytest.raises(InvalidRequest):
        parse_input(value)


def test_oversized_image_is_too_large() -> None:
    big = base64.b64encode(b"\0" * (5 * 1024 * 1024 + 1)).decode()
    with pytest.raises(PayloadTooLarge):
        parse_input([{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": big}}])


def test_tool_policy_settings() -> None:
    settings = Settings.from_env(
        {
            "CC_API_BUILTIN_TOOLS": "Read, Grep",
            "CC_API_COMPAT_BUILTIN_TOOLS": "all",
            "CC_API_APPROVAL_TIMEOUT": "5",
            "CC_API_MAX_BUDGET_USD": "0.25",
        }
    )
    assert settings.builtin_tools == ("Read", "Grep") and settings.compat_builtin_tools == "all"
    assert (settings.approval_timeout, settings.max_budget_usd) == (5.0, 0.25)
    defaults = Settings.from_env({})
    assert (defaults.builtin_tools, defaults.compat_builtin_tools, defaults.max_budget_usd) == ("all", "none", None)
    with pytest.raises(ConfigError, match=r"CC_API_BUILTIN_TOOLS.*Telnet"):
        Settings.from_env({"CC_API_BUILTIN_TOOLS": "Read,Telnet"})


def test_permission_mode_falls_back_where_the_bypass_is_refused() -> None:
    from ccapi.toolpolicy import PermissionPolicy

    root = PermissionPolicy.detect({}, euid=0)
    assert not root.bypass_allowed and "IS_SANDBOX" in root.reason
    assert root.mode_for("bypassPermissions", "all") == "default"
    assert root.mode_for("acceptEdits", ("Edit",)) == "acceptEdits"
    sandbox = PermissionPolicy.detect({"IS_SANDBOX": "1"}, euid=0)
    assert sandbox.mode_for("bypassPermissions", "all") == "bypassPermissions"
    assert sandbox.mode_for("bypassPermissions", "none") == "default"  # nothing to bypass
    assert PermissionPolicy.detect({}, euid=1000).describe("bypassPermissions")["approvals"] == "off"
    assert root.describe("bypassPermissions") == {"default_mode": "default", "approvals": "on", "reason": root.reason}


def test_is_sandbox_counts_only_as_claude_code_counts_it() -> None:
    from ccapi.toolpolicy import PermissionPolicy

    for value in ("yes", "true", "TRUE", " 1", "on", ""):
        assert not PermissionPolicy.detect({"IS_SANDBOX": value}, euid=0).bypass_allowed, value
    assert PermissionPolicy.detect({"IS_SANDBOX": "1"}, euid=0).bypass_allowed


def test_a_refused_root_bypass_quotes_claude_codes_own_reason() -> None:
    from ccapi.engine.errors import explain_process_failure

    stderr = (
        "some noise\n--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons\n"
    )
    error = explain_process_failure(stderr, "Command failed with exit code 1")
    assert "cannot be used with root/sudo privileges for security reasons" in error.message
    assert "IS_SANDBOX=1" in error.message
    assert explain_process_failure("", "Command failed").message == "Claude Code process failed: Command failed"


def test_the_started_line_names_the_database_in_use_without_credentials(tmp_path: Path) -> None:
    """Issue 23: on PostgreSQL the ``started`` line named an unused SQLite file."""
    from ccapi.app import _database_label

    postgres = Settings(home=tmp_path, database_url="postgresql://u:pw-secret@db.local:5433/ccapi")
    assert _database_label(postgres) == "postgresql://db.local:5433/ccapi"
    assert _database_label(Settings(home=tmp_path, session_dir=tmp_path / "j")) == f"jsondir:{tmp_path / 'j'}"
    assert _database_label(Settings(home=tmp_path)) == str(tmp_path / "sessions.db")


@pytest.mark.parametrize(
    ("mode", "allowed", "warns"),
    [
        ("bypassPermissions", [], False),  # a callback it needs only once switched to a mode that asks
        ("default", ["mcp__client__get_weather", "mcp__client__add"], False),  # client tools skip it on purpose
        ("default", ["mcp__client"], False),  # as the gateway allows them: one rule for the client's server
        ("default", ["Read"], True),  # a built-in tool allowed outright still warns
    ],
)
def test_engine_start_warns_only_of_shadowing_an_operator_could_fix(mode: str, allowed: list, warns: bool) -> None:
    """Each engine start used to log a raw ``CanUseToolShadowedWarning``: in bypass mode, whose approvals
    ask only once the session is switched to another mode, and for client tools, which deliberately skip
    approvals."""
    import warnings

    from claude_agent_sdk import CanUseToolShadowedWarning
    from claude_agent_sdk.types import _warn_if_can_use_tool_shadowed

    from ccapi.engine.spec import EngineSpec, build_options, silence_client_tool_shadowing

    async def ask(name: str, input_: dict, tool_use_id: str | None) -> Any:
        raise AssertionError("not called")

    spec = EngineSpec("sess_x", "claude-sonnet-4-5", None, None, mode, None, ask_permission=ask)
    options = build_options(spec, stderr=print)
    assert options.can_use_tool is not None  # a bypass session switched live to `default` must have it to ask
    options.allowed_tools = allowed
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        silence_client_tool_shadowing()  # as installed when the engine module loads, over "always"
        _warn_if_can_use_tool_shadowed(options)
    assert [w.category for w in seen] == ([CanUseToolShadowedWarning] if warns else [])


@pytest.mark.parametrize(("exit_code", "level"), [(143, "INFO"), (-15, "INFO"), (1, "ERROR"), (137, "ERROR")])
def test_a_child_stopped_by_sigterm_is_not_logged_as_an_error(
    exit_code: int, level: str, caplog: pytest.LogCaptureFixture
) -> None:
    """At shutdown a service manager signals Claude Code with the gateway, and the SDK's reader logged
    the exit (143) as a fatal error; any other failure of the reader keeps its error level."""
    import logging

    from claude_agent_sdk import ProcessError

    import ccapi.engine.live  # noqa: F401 - installs the filter, as the gateway does
    from ccapi.engine.sdklog import SDK_READER_LOGGER

    error = ProcessError(f"Command failed with exit code {exit_code}", exit_code, "Check stderr output for details")
    with caplog.at_level(logging.INFO):
        logging.getLogger(SDK_READER_LOGGER).error(f"Fatal error in message reader: {error}")  # the SDK's own line
    assert [r.levelname for r in caplog.records] == [level]
