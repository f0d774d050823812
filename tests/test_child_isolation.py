"""Claude Code children hold nothing of the gateway's: no secret in their environment (the model
can run ``printenv``), no listening socket (a gateway killed alone restarts on its port at once),
and they do not outlive a dead gateway for long."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from ccapi.engine.sandbox import PRIVATE_FILE_PREFIX
from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import tool_results_by_id
from tests.gateway import CHILD_MARK, Gateway, pids_with_env

pytestmark = pytest.mark.slow  # a gateway per test, Bash turns, a kill and a restart

API_KEY = "gateway-key-0f3b9c2e"
DB_PASSWORD = "pg-password-77d1a4"
PASSED = "project-token-5e21"
CLOUD_TOKEN = "cloud-token-a9c4e1"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"webhook-secret-bytes-0123456789ab").decode()


def _bash_outputs(mock: MockModel) -> list[str]:
    """What Claude Code's Bash tool returned to the model, in the order it was sent."""
    return list(tool_results_by_id(mock).values())


def test_printenv_by_the_model_shows_no_gateway_secret(make_gateway, mock_model: MockModel, tmp_path: Path) -> None:
    env_file = tmp_path / "gw0" / "cc-api" / "cc-api.env"
    env_file.parent.mkdir(parents=True)
    env_file.write_text(f"PGPASSWORD={DB_PASSWORD}\n")
    gw = make_gateway(CC_API_KEY=API_KEY, PROJECT_TOKEN=PASSED, CC_API_PASS_ENV="PROJECT_TOKEN")
    gw.client.headers["Authorization"] = f"Bearer {API_KEY}"
    mock_model.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": "printenv", "description": "env"}),)), Reply(text="seen")
    )
    session = gw.create_session()
    reply = gw.allow(session["id"], gw.turn(session["id"], "print your environment"))
    assert reply["status"] == "completed", reply

    [printed] = _bash_outputs(mock_model)
    names = {line.partition("=")[0]: line.partition("=")[2] for line in printed.splitlines() if "=" in line}
    assert "PATH" in names and names["HOME"] == gw.env["HOME"], printed  # Bash really ran and printed
    assert names["PROJECT_TOKEN"] == PASSED, "a variable named in CC_API_PASS_ENV reaches Claude Code"
    for secret in (API_KEY, DB_PASSWORD):
        assert secret not in printed
    assert [name for name in names if name.startswith("CC_API_")] == [], "not even the gateway's pid"
    for request in mock_model.requests:
        assert API_KEY not in str(request.body) and DB_PASSWORD not in str(request.body)


def _run_bash(gw: Gateway, mock: MockModel, command: str, *more: ToolUse) -> list[str]:
    """Claude calls Bash with ``command`` (and the ``more`` tools); every call it asks for is
    approved; what the tools returned to the model comes back."""
    mock.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": command, "description": "look"}), *more)), Reply(text="ok")
    )
    session = gw.create_session()
    reply = gw.turn(session["id"], "look around")
    while reply["status"] == "requires_approval":
        reply = gw.allow(session["id"], reply)
    assert reply["status"] == "completed", reply
    return _bash_outputs(mock)


def _reading(paths: list[str]) -> str:
    """A Bash command that prints the files at ``paths`` (or why not), with the paths built at run
    time, so only the sandbox, not Claude Code's reading of the command, can stop it."""
    script = (
        "import sys\n"
        "for p in sys.argv[1:]:\n"
        "    try: print(open(p.replace('@', '/'), 'rb').read()[:4000].decode(errors='replace'))\n"
        "    except OSError as e: print(e)"
    )
    return f"python3 -c {shlex.quote(script)} {' '.join(p.replace('/', '@') for p in paths)}"


def _secret_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "gw0" / "cc-api"
    home.mkdir(parents=True)
    (home / "cc-api.env").write_text(f"PGPASSWORD={DB_PASSWORD}\n")
    return home, {"CC_API_KEY": API_KEY, "CC_API_WEBHOOK_SECRET": WEBHOOK_SECRET, "GITHUB_TOKEN": CLOUD_TOKEN}


def test_the_models_bash_finds_no_secret_in_the_gateways_process_or_state(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Issue 23: Bash reads the gateway's /proc environ, cc-api.env and the database, Read the env
    file: the sandbox hides them (or /healthz says there is none), and no secret reaches the model."""
    home, secrets = _secret_env(tmp_path)
    gw = make_gateway(CC_API_SANDBOX=None, **secrets)  # the default: the sandbox wherever there is one
    gw.client.headers["Authorization"] = f"Bearer {API_KEY}"
    sandbox = gw.client.get("/healthz").json()["sandbox"]
    paths = [f"/proc/{gw.process.pid}/environ", str(home / "cc-api.env"), str(home / "sessions.db")]
    command = _reading(paths) + "; echo bash-ran"
    plain = f"tr '\\0' '\\n' < /proc/{gw.process.pid}/environ; cat {home}/cc-api.env"  # as the probe ran it
    outputs = _run_bash(
        gw,
        mock_model,
        command,
        ToolUse("Read", {"file_path": str(home / "cc-api.env")}),
        ToolUse("Bash", {"command": plain, "description": "look"}),
    )
    printed = "\n".join(outputs)
    assert "bash-ran" in printed and len(outputs) == 3, outputs
    assert "denied by your permission settings" in outputs[1], "Read is kept off the gateway's state"
    assert "has been denied" in outputs[2], "Claude Code refuses a command that names the state or /proc"
    for secret in (API_KEY, DB_PASSWORD, CLOUD_TOKEN, WEBHOOK_SECRET):
        assert secret not in printed, secret
    if not sandbox["enabled"]:  # the boundary is stated, not hidden
        assert sandbox["reason"].startswith("no sandbox"), sandbox
        pytest.skip(f"no sandbox on this machine: {sandbox['reason']}")
    assert sandbox["mechanism"] in ("bubblewrap", "seatbelt")
    for secret in (API_KEY, DB_PASSWORD, CLOUD_TOKEN, WEBHOOK_SECRET, "SQLite format"):
        assert secret not in printed, secret
    assert "No such file" in outputs[0], "other processes' /proc and the state directory are out of reach"


def test_the_gateways_own_environment_holds_no_secret(make_gateway, mock_model: MockModel, tmp_path: Path) -> None:
    """Issue 23, without a sandbox: /proc/<gateway>/environ is readable by the same user, and holds no secret."""
    _, secrets = _secret_env(tmp_path)
    gw = make_gateway(CC_API_SANDBOX="off", **secrets)
    gw.client.headers["Authorization"] = f"Bearer {API_KEY}"
    assert gw.client.get("/healthz").json()["sandbox"]["enabled"] is False
    [printed] = _run_bash(gw, mock_model, _reading([f"/proc/{gw.process.pid}/environ"]))
    names = dict(line.partition("=")[::2] for line in printed.split("\0") if "=" in line)
    assert names["PATH"] and names["CC_API_HOME"] == gw.env["CC_API_HOME"], printed  # Bash read it
    for secret in (API_KEY, CLOUD_TOKEN, WEBHOOK_SECRET, "test-dummy-key"):
        assert secret not in printed, secret
    assert gw.client.get("/api/sessions").status_code == 200, "the gateway still has its key, in memory"


def _listening_inode(port: int) -> str:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                return fields[9]
    raise AssertionError(f"nothing listens on port {port}")


def _open_sockets(pid: int) -> set[str]:
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(target[len("socket:[") : -1])
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:  # gone meanwhile
        return ""


def _wait_until(condition, deadline: float) -> bool:
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_a_gateway_killed_alone_restarts_on_its_port_at_once(make_gateway, mock_model: MockModel) -> None:
    gw: Gateway = make_gateway()
    session = gw.create_session()
    marker = f"cc-api-crash-probe-{gw.port}"
    # a process that outlives the test unless something stops it (Claude Code refuses a plain long `sleep`)
    command = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(120)' {marker}"
    mock_model.script(
        Reply(tool_uses=(ToolUse("Bash", {"command": command, "description": "wait", "timeout": 600000}),)),
        Reply(text="slept"),
    )
    listener = _listening_inode(gw.port)
    killed = gw.process

    def children() -> list[int]:
        return [pid for pid in pids_with_env(CHILD_MARK, gw.env["CC_API_HOME"]) if pid != killed.pid]

    try:
        started = gw.client.post(
            f"/api/sessions/{session['id']}/turns", json={"input": "sleep a while", "background": True}
        ).json()
        turn_url = f"/api/sessions/{session['id']}/turns/{started['turn_id']}"

        def tool_running() -> bool:
            turn = gw.client.get(turn_url).json()
            if turn["status"] == "requires_approval":  # as root Bash asks first
                gw.allow(session["id"], turn, background=True)
            return any(marker in _cmdline(p) for p in children())

        assert _wait_until(tool_running, time.monotonic() + 20)
        assert len(children()) >= 2, "Claude Code and the process running its tool are live"
        for child in children():
            assert listener not in _open_sockets(child), "a child holds the gateway's listening socket"
        killed.send_signal(signal.SIGKILL)  # the gateway only, as the OOM killer would
        killed.wait(10)
        killed_at = time.monotonic()

        gw.start()  # at once, on the same port; raises if it cannot bind
        assert httpx.get(f"{gw.base_url}/healthz", timeout=5).status_code == 200
        assert _wait_until(lambda: not children(), killed_at + 10), "Claude Code or its tool outlived the gateway"
        assert gw.client.get(f"/api/sessions/{session['id']}").json()["status"] == "idle"
    finally:
        for pid in children():  # the tool runs in a session of its own, out of the gateway's group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_a_session_may_not_work_in_the_gateways_state_or_at_the_root(make_gateway, tmp_path: Path) -> None:
    """The sandbox lets Bash write a session's working directory: one in ``CC_API_HOME`` would have the state
    neither hidden nor safe (the launcher in ``run/`` rewritten), and ``/`` all of the file system."""
    gw = make_gateway()
    home = Path(gw.env["CC_API_HOME"])
    (home / "run").mkdir(parents=True, exist_ok=True)
    for cwd in (str(home), str(home / "run"), "/"):
        refused = gw.client.post("/api/sessions", json={"cwd": cwd})
        assert refused.status_code == 400 and "cwd must not" in refused.json()["error"]["message"], refused.text
    assert gw.client.get("/api/sessions").json()["data"] == []
    assert gw.client.post("/api/sessions", json={"cwd": str(tmp_path)}).status_code == 201


def test_the_files_that_start_claude_code_are_out_of_the_tools_reach(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The launcher's code runs unsandboxed at every Claude Code start: a session working in a folder that holds
    it (a checkout, a home with a user install) may not have Bash or Edit change it."""
    from ccapi import childproc

    launcher = Path(childproc.__file__).resolve()
    gw = make_gateway(CC_API_SANDBOX=None)
    if not gw.client.get("/healthz").json()["sandbox"]["enabled"]:
        pytest.skip("no sandbox on this machine")
    probe = f"test -w {shlex.quote(launcher.name)} && echo writable || echo protected; test -w . && echo cwd-writable"
    mock_model.script(Reply(tool_uses=(ToolUse("Bash", {"command": probe, "description": "look"}),)), Reply(text="ok"))
    session = gw.create_session(cwd=str(launcher.parent))
    reply = gw.turn(session["id"], "look")
    while reply["status"] == "requires_approval":
        reply = gw.allow(session["id"], reply)
    [printed] = _bash_outputs(mock_model)
    assert "protected" in printed and "cwd-writable" in printed, printed


def test_with_bash_sandboxed_files_are_written_only_where_bash_may_write(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Write and Edit run outside the sandbox: where Bash is sandboxed they keep to its places (the working
    directory, the temp directory). A shell start-up file written elsewhere ran, unsandboxed, at Claude Code's
    next Bash call."""
    gw = make_gateway(CC_API_SANDBOX=None)
    if not gw.client.get("/healthz").json()["sandbox"]["enabled"]:
        pytest.skip("no sandbox on this machine")
    work, outside = tmp_path / "work", tmp_path / "home" / ".bashrc"
    work.mkdir()
    outside.parent.mkdir()
    mock_model.script(
        Reply(
            tool_uses=(
                ToolUse("Write", {"file_path": str(outside), "content": "echo escaped\n"}),
                ToolUse("Write", {"file_path": "notes.txt", "content": "kept\n"}),
            )
        ),
        Reply(text="ok"),
    )
    session = gw.create_session(cwd=str(work))
    reply = gw.turn(session["id"], "write")
    while reply["status"] == "requires_approval":
        reply = gw.allow(session["id"], reply)
    assert reply["status"] == "completed", reply
    assert not outside.exists() and (work / "notes.txt").read_text() == "kept\n"
    assert "outside the working directory" in _bash_outputs(mock_model)[0]


OAUTH_TOKEN = "sk-ant-oat01-login-token-3c7e"


def test_claude_codes_login_is_out_of_the_tools_reach(make_gateway, mock_model: MockModel) -> None:
    """A subscription login is a file (``.credentials.json`` in Claude Code's config directory, and the copy the
    SDK puts in a resumed session's temp config directory): a tool that printed it would hand the model a token it
    could send anywhere (WebFetch runs outside any sandbox). Read refuses it everywhere; where Bash is sandboxed,
    Bash does not see it either, a copy made after this session's Claude Code started included."""
    gw = make_gateway(CC_API_SANDBOX=None)
    config = Path(gw.env["CLAUDE_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    login = json.dumps({"claudeAiOauth": {"accessToken": OAUTH_TOKEN}})
    (config / ".credentials.json").write_text(login)
    session = gw.create_session()
    mock_model.script(Reply(text="warm"))
    assert gw.turn(session["id"], "hello")["status"] == "completed"
    resumed = Path(gw.env["TMPDIR"]) / "claude-resume-k2j4h1"  # another session resumed since, as the SDK names it
    resumed.mkdir()
    (resumed / ".credentials.json").write_text(login)
    paths = [str(config / ".credentials.json"), str(resumed / ".credentials.json")]
    reads = (ToolUse("Read", {"file_path": path}) for path in paths)
    bash = ToolUse("Bash", {"command": _reading(paths) + "; echo bash-ran", "description": "look"})
    mock_model.script(Reply(tool_uses=(bash, *reads)), Reply(text="ok"))
    reply = gw.turn(session["id"], "look around")
    while reply["status"] == "requires_approval":
        reply = gw.allow(session["id"], reply)
    assert reply["status"] == "completed", reply
    outputs = _bash_outputs(mock_model)
    assert len(outputs) == 3 and "bash-ran" in outputs[0], outputs
    for refused in outputs[1:]:
        assert "denied by your permission settings" in refused, outputs
    if not gw.client.get("/healthz").json()["sandbox"]["enabled"]:
        pytest.skip("no sandbox on this machine: Bash can read the login")
    assert OAUTH_TOKEN not in "\n".join(outputs), outputs


VAULT = "vault-code-5512"
SAVED = "saved-output-8830"


def _approved_turn(gw: Gateway, mock: MockModel, session_id: str, *tools: ToolUse) -> None:
    """A turn in which Claude calls ``tools`` (every call approved) and then answers."""
    mock.script(Reply(tool_uses=tools), Reply(text="ok"))
    reply = gw.turn(session_id, "go on")
    while reply["status"] == "requires_approval":
        reply = gw.allow(session_id, reply)
    assert reply["status"] == "completed", reply


def _printing(marker: str) -> ToolUse:
    """A Bash call whose output is too large to show: Claude Code saves it in the session's folder beside its
    transcript (``tool-results``) and tells the model to Read it there."""
    command = f"python3 -c 'print(\"{marker}\\n\" * 9000)'"
    return ToolUse("Bash", {"command": command, "description": "print a lot"})


def test_a_sessions_tools_cannot_reach_another_sessions_conversation(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """Claude Code keeps every session's transcript in its config directory (``projects``), and the SDK writes a
    resumed one into a temp config directory (``claude-resume-*``): one session's Read, Grep, Glob, Write and Bash
    find neither another session's words there nor its saved tool output, while its own files, its own saved
    output included, stay in reach, and the other session still resumes."""
    gw = make_gateway(CC_API_SANDBOX=None)
    (tmp_path / "victim").mkdir()
    victim = gw.create_session(cwd=str(tmp_path / "victim"))
    assert gw.turn(victim["id"], f"the vault code is {VAULT}")["status"] == "completed"
    _approved_turn(gw, mock_model, victim["id"], _printing(SAVED))
    gw.restart()  # the victim's next turn resumes from the store, through a claude-resume-* directory
    mock_model.clear()
    assert gw.turn(victim["id"], "what is the vault code?")["status"] == "completed"
    assert VAULT in str(mock_model.message_requests(include_side=False)[-1].body["messages"]), "it resumed"
    config = Path(gw.env["CLAUDE_CONFIG_DIR"])
    [transcript] = config.glob("projects/*/*.jsonl")
    [resumed] = Path(gw.env["TMPDIR"]).glob("claude-resume-*/projects/*/*.jsonl")
    [saved] = config.glob("projects/*/*/tool-results/*")
    assert VAULT in transcript.read_text() and VAULT in resumed.read_text() and SAVED in saved.read_text()

    work = tmp_path / "prober"
    work.mkdir()
    (work / "notes.txt").write_text("own notes\n")
    prober = gw.create_session(cwd=str(work), builtin_tools=["Read", "Grep", "Glob", "Write", "Bash"])
    _approved_turn(gw, mock_model, prober["id"], _printing("own-output"))
    [own_saved] = (path for path in config.glob("projects/*/*/tool-results/*") if path != saved)
    mock_model.clear()
    others = [str(transcript), str(resumed), str(saved)]
    denied = (
        *(ToolUse("Read", {"file_path": path, "limit": 5}) for path in others),
        ToolUse("Grep", {"pattern": VAULT, "path": str(config / "projects"), "output_mode": "content"}),
        ToolUse("Glob", {"pattern": "**/*", "path": str(resumed.parent)}),
        ToolUse("Write", {"file_path": str(transcript), "content": "rewritten"}),
        ToolUse("Bash", {"command": f"cat {transcript}", "description": "look"}),
    )
    allowed = (
        ToolUse("Read", {"file_path": "notes.txt"}),
        ToolUse("Read", {"file_path": str(own_saved), "limit": 1}),
        ToolUse("Grep", {"pattern": VAULT, "path": str(config), "output_mode": "content"}),  # transcripts left out
        ToolUse("Bash", {"command": _reading(others) + "; echo bash-ran", "description": "look"}),
    )
    _approved_turn(gw, mock_model, prober["id"], *denied, *allowed)
    results = tool_results_by_id(mock_model)
    refusals = ("denied by your permission settings", "has been denied", "other sessions' conversations")
    for call in denied:
        assert any(refusal in results[call.id] for refusal in refusals), results[call.id]
    notes, own, _, bash = (results[call.id] for call in allowed)
    assert "own notes" in notes and "own-output" in own and "bash-ran" in bash, (notes, own, bash)
    assert VAULT in transcript.read_text(), "not rewritten"
    for shown in (results[call.id] for call in (*denied, *allowed[:3])):
        assert VAULT not in shown and SAVED not in shown, shown
    if not gw.client.get("/healthz").json()["sandbox"]["enabled"]:
        pytest.skip("no sandbox on this machine: Bash can read the other session's files")
    assert VAULT not in bash and SAVED not in bash and bash.count("No such file") == 3, bash


def test_a_search_of_the_home_directory_leaves_other_sessions_saved_output_out(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """A session working in the home directory (the installed service's default) that Greps it, or Globs into the
    store by an absolute pattern, finds nothing of another session's saved tool output; its own files are found."""
    gw = make_gateway(CC_API_SANDBOX=None)
    (tmp_path / "victim").mkdir()
    victim = gw.create_session(cwd=str(tmp_path / "victim"))
    _approved_turn(gw, mock_model, victim["id"], _printing(SAVED))
    config = Path(gw.env["CLAUDE_CONFIG_DIR"])
    [saved] = config.glob("projects/*/*/tool-results/*")
    home = config.parent
    (home / "notes, draft.txt").write_text(f"own {SAVED} notes\n")
    prober = gw.create_session(cwd=str(home), builtin_tools=["Read", "Grep", "Glob"])
    mock_model.clear()
    searches = (
        ToolUse("Grep", {"pattern": SAVED, "output_mode": "content"}),
        ToolUse("Grep", {"pattern": SAVED, "path": "/", "glob": "*.txt", "output_mode": "files_with_matches"}),
        ToolUse("Grep", {"pattern": SAVED, "path": str(config), "output_mode": "count"}),
    )
    into_store = ToolUse("Glob", {"pattern": f"{saved.parent.parent}/**/*"})
    _approved_turn(gw, mock_model, prober["id"], *searches, into_store)
    results = tool_results_by_id(mock_model)
    content, anywhere, count = (results[call.id] for call in searches)
    assert f"own {SAVED} notes" in content and "notes, draft.txt" in anywhere, (content, anywhere)
    for shown in (content, anywhere, count):
        assert saved.name not in shown and shown.count(SAVED) <= 1, shown
    assert "other sessions' conversations" in results[into_store.id], results[into_store.id]


def test_a_sessions_tools_cannot_read_the_files_that_start_another_claude_code(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The gateway hands a starting Claude Code its session's system prompt and MCP servers (their headers: tokens)
    in files only its user may read, removed once read: while they exist, another session's tools, which run as
    that user, could read them."""
    gw = make_gateway(CC_API_SANDBOX=None)
    held = Path(gw.env["TMPDIR"]) / f"{PRIVATE_FILE_PREFIX}mcp-config-k2x9.txt"
    held.write_text(f'{{"mcpServers": {{"notes": {{"headers": {{"Authorization": "Bearer {CLOUD_TOKEN}"}}}}}}}}')
    prober = gw.create_session(cwd=str(tmp_path), builtin_tools=["Read", "Bash"])
    read = ToolUse("Read", {"file_path": str(held)})
    bash = ToolUse("Bash", {"command": _reading([str(held)]) + "; echo bash-ran", "description": "look"})
    _approved_turn(gw, mock_model, prober["id"], read, bash)
    results = tool_results_by_id(mock_model)
    assert CLOUD_TOKEN not in results[read.id] and "denied" in results[read.id], results[read.id]
    if not gw.client.get("/healthz").json()["sandbox"]["enabled"]:
        pytest.skip("no sandbox on this machine: Bash can read the file")
    assert "bash-ran" in results[bash.id] and CLOUD_TOKEN not in results[bash.id], results[bash.id]
