"""How a Claude Code child starts: with only the environment Claude Code needs, none of the
gateway's file descriptors, the user's umask, and (on Linux) a signal when the gateway dies.

The SDK starts the CLI with the gateway's whole environment merged in (``CC_API_KEY``, a database
URL with its password, ...), and under uvloop it ignores ``close_fds``. It offers no option against
either, so the gateway points ``cli_path`` at a launcher script that runs this module, which cleans
up and then execs the real CLI in the same process. This runs in that short-lived process before
every Claude Code start: standard library only, quick to import.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import signal
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

GATEWAY_PID = "CC_API_GATEWAY_PID"
"""The pid of the gateway that starts a child, for this module only (see ``_die_with_parent``):
like every ``CC_API_*`` variable it is dropped before Claude Code starts, so neither it nor its
tools are pointed at the gateway's ``/proc`` entry."""

ENGINE_TAG = "CCAPI_ENGINE"
"""Which engine a process belongs to, inherited by everything Claude Code starts (see ``ccapi.engine.reaper``)."""

SESSION_BASICS = frozenset(
    {"HOME", "PATH", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "LANG", "LANGUAGE", "TMPDIR", "PWD", "IS_SANDBOX"}
)
"""The basics of a user session: no secret, and what any program expects to find."""

_KEEP_NAMES = SESSION_BASICS | frozenset(
    {
        ENGINE_TAG,
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "NODE_EXTRA_CA_CERTS",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "TRACEPARENT",
        "TRACESTATE",
        "API_TIMEOUT_MS",
        "MAX_THINKING_TOKENS",
        "MAX_MCP_OUTPUT_TOKENS",
        "ENABLE_TOOL_SEARCH",
        "USE_BUILTIN_RIPGREP",
        "BASH_DEFAULT_TIMEOUT_MS",
        "BASH_MAX_TIMEOUT_MS",
        "BASH_MAX_OUTPUT_LENGTH",
    }
)
_KEEP_PREFIXES = ("ANTHROPIC_", "CLAUDE_", "LC_", "XDG_", "DISABLE_", "MCP_", "OTEL_")
_CLOUD_PREFIXES = {
    # Bedrock's and Vertex's credentials are Claude Code's own only when it is told to use them.
    "CLAUDE_CODE_USE_BEDROCK": ("AWS_",),
    "CLAUDE_CODE_USE_VERTEX": ("GOOGLE_", "CLOUD_ML_REGION", "VERTEX_REGION_"),
}


def child_environment(env: Mapping[str, str], extra: Collection[str] = ()) -> dict[str, str]:
    """What of ``env`` a Claude Code child gets: its own credentials and settings, the basics of a
    user session (home, path, locale, temp dir, proxies, CA certificates) and the ``extra`` names
    (``CC_API_PASS_ENV``); never another ``CC_API_*`` variable or anything else of the gateway's.
    OTLP exporter headers (often a vendor's API key, and the gateway's own tracing setting) only reach
    a Claude Code that exports telemetry itself (``CLAUDE_CODE_ENABLE_TELEMETRY``): its tools could read them."""
    prefixes = _KEEP_PREFIXES + tuple(p for flag, cloud in _CLOUD_PREFIXES.items() if env.get(flag) for p in cloud)
    telemetry = bool(env.get("CLAUDE_CODE_ENABLE_TELEMETRY"))
    return {
        name: value
        for name, value in env.items()
        if not name.startswith("CC_API_")
        and (name in _KEEP_NAMES or name in extra or name.startswith(prefixes))
        and (telemetry or name in extra or not _otlp_headers(name))
    }


def withheld(env: Mapping[str, str], extra: Collection[str] = ()) -> dict[str, str]:
    """What of ``env`` no child gets (``child_environment``'s complement), each name set to ``""``. The SDK starts
    the launcher with the gateway's whole environment under the options' ``env``: with these in ``env``, the
    launcher (and whatever replaced it) never holds the gateway's key, its database password or its webhook
    secret, which ``/proc/<pid>/environ`` would show to any process of the user until it execs Claude Code."""
    kept = child_environment(env, extra)
    return {name: "" for name in env if name not in kept and not name.startswith(_LOADER_PREFIXES)}


_LOADER_PREFIXES = ("LD_", "DYLD_")
"""The dynamic loader's variables: the launcher's Python may need them to start (a ``libpython`` found through
``LD_LIBRARY_PATH``); they hold no secret, and the launcher drops them before it starts Claude Code."""


def _otlp_headers(name: str) -> bool:
    """``OTEL_EXPORTER_OTLP_HEADERS`` and its per-signal forms (``OTEL_EXPORTER_OTLP_TRACES_HEADERS``, ...)."""
    return name.startswith("OTEL_EXPORTER_OTLP") and name.endswith("_HEADERS")


def launcher_script(cli: str, umask: int, extra: Collection[str]) -> str:
    """A shell script that runs this file with the real CLI: by its path, in isolated mode and without
    site-packages (it needs none), so neither the session's working directory nor ``PYTHON*``
    variables can change what runs, and it starts in milliseconds."""
    command = [
        sys.executable,
        "-I",
        "-S",
        str(Path(__file__).resolve()),
        "--umask",
        f"{umask:04o}",
        "--keep",
        ",".join(sorted(extra)),
        "--",
        cli,
    ]
    return f'#!/bin/sh\nexec {shlex.join(command)} "$@"\n'


def install_launcher(directory: Path, cli: str, umask: int, extra: Collection[str] = ()) -> Path:
    """Write the launcher (mode 0700) into ``directory`` and return its path. Named by its content,
    so gateways sharing a home (or a network home across hosts) never overwrite each other's."""
    script = launcher_script(cli, umask, extra)
    path = directory / f"claude-{hashlib.sha256(script.encode()).hexdigest()[:12]}"
    if not path.is_file():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(script, encoding="utf-8")
        temporary.chmod(0o700)
        temporary.replace(path)
    return path


def _die_with_parent() -> None:
    """Linux: be sent SIGTERM when the gateway dies, so an orphan does not outlive it. If the
    gateway died before this point, its pid no longer is our parent: exit at once."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.environ.get(GATEWAY_PID) not in (None, str(os.getppid())):
        sys.exit("cc-api: the gateway that started this Claude Code process is gone")


def main(argv: Sequence[str] | None = None) -> None:
    """``--umask OCTAL --keep NAME,... -- CLI ARGS...``: exec the CLI in a clean process."""
    args = list(sys.argv[1:] if argv is None else argv)
    split = args.index("--")
    options = dict(zip(args[:split:2], args[1:split:2], strict=True))
    command = args[split + 1 :]
    env = child_environment(os.environ, [name for name in options["--keep"].split(",") if name])
    _die_with_parent()
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # uvloop passes every inheritable descriptor on
    os.umask(int(options["--umask"], 8))
    os.execve(command[0], command, env)


if __name__ == "__main__":
    main()
