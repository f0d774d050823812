"""One session's built-in tools find nothing of another session's in Claude Code's config directory: a Glob of a
folder that holds the transcript store lists no other session's saved tool output, and what Claude Code keeps of
every running session beside it (``sessions``: its id, working directory and the token that lets a peer message
it; ``session-env``; task lists) is out of the file tools' and sandboxed Bash's reach."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from ccapi.testing import MockModel, Reply, ToolUse
from tests.compat_support import tool_results_by_id
from tests.gateway import Gateway

pytestmark = pytest.mark.slow  # a gateway with its sandbox, two sessions, Bash turns

SAVED = "saved-output-4417"
TASK = "task-subject-9021"
TYPED = "typed-by-the-user-5150"
#: What Claude Code keeps of its sessions in its config directory beside the transcripts: prompts typed, files before
#: an edit, task lists, running sessions, hook scripts, debug logs and prompt dumps, pastes, background sessions and
#: teams, reports.
RECORDS = (
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


def _approved_turn(gw: Gateway, mock: MockModel, session_id: str, *tools: ToolUse) -> None:
    """A turn in which Claude calls ``tools`` (every call approved) and then answers."""
    mock.script(Reply(tool_uses=tools), Reply(text="ok"))
    reply = gw.turn(session_id, "go on")
    while reply["status"] == "requires_approval":
        reply = gw.allow(session_id, reply)
    assert reply["status"] == "completed", reply


def _printing(marker: str) -> ToolUse:
    """A Bash call whose output is too large to show: Claude Code saves it in the session's folder beside its
    transcript (``tool-results``)."""
    return ToolUse("Bash", {"command": f"python3 -c 'print(\"{marker}\\n\" * 9000)'", "description": "print a lot"})


def _reading(paths: list[Path]) -> str:
    """A Bash command that prints the files at ``paths`` (or why not), the paths built at run time, so only the
    sandbox, not Claude Code's reading of the command, can stop it."""
    script = (
        "import sys\n"
        "for p in sys.argv[1:]:\n"
        "    try: print(open(p.replace('@', '/')).read()[:4000])\n"
        "    except OSError as e: print(type(e).__name__)"
    )
    return f"python3 -c {shlex.quote(script)} {' '.join(str(p).replace('/', '@') for p in paths)}"


def test_a_session_in_the_home_directory_finds_nothing_of_another_running_session(
    make_gateway, mock_model: MockModel, tmp_path: Path
) -> None:
    """The installed service's sessions work in the home directory, which holds Claude Code's config directory: a
    Glob there lists neither another session's saved tool output nor what Claude Code keeps of that session while
    it runs (``sessions/<pid>.json`` with its id and working directory, ``sessions/<pid>.<hash>.key`` with the
    token another Claude Code messages it with); Read refuses those, and sandboxed Bash does not see them. The
    session's own files are listed and its own saved output is still read."""
    gw = make_gateway(CC_API_SANDBOX=None)
    (tmp_path / "victim").mkdir()
    victim = gw.create_session(cwd=str(tmp_path / "victim"))
    _approved_turn(gw, mock_model, victim["id"], _printing(SAVED), ToolUse("TaskCreate", {"subject": TASK}))
    config = Path(gw.env["CLAUDE_CONFIG_DIR"])
    [transcript] = config.glob("projects/*/*.jsonl")
    [saved] = config.glob("projects/*/*/tool-results/*")
    [running] = (path for path in config.glob("sessions/*.json") if transcript.stem in path.read_text())
    [task] = config.glob("tasks/*/*.json")
    assert TASK in task.read_text() and not list(config.glob("sessions/*.key"))  # the gateway's publish no key
    token = config / "sessions" / "4242.0f1e2d3c.key"  # what the user's own interactive Claude Code publishes
    token.write_text('{"peerToken":"8b358d1fef4bb12217c807ee376fe926"}')

    left = [config / name if "." in name else config / name / "1a2b" / "record.txt" for name in RECORDS]
    for record in left:  # what the user's own interactive Claude Code keeps of its sessions
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(f"{TYPED}\n")
    home = config.parent
    (home / "notes.txt").write_text("own notes\n")
    prober = gw.create_session(cwd=str(home), builtin_tools=["Read", "Grep", "Glob", "Bash"])
    _approved_turn(gw, mock_model, prober["id"], _printing("own-output"))
    [own_saved] = (path for path in config.glob("projects/*/*/tool-results/*") if path != saved)
    mock_model.clear()
    listings = (
        ToolUse("Glob", {"pattern": "**/*"}),
        ToolUse("Glob", {"pattern": "**/*.txt", "path": str(config)}),
        ToolUse("Glob", {"pattern": f"{config}/**/*"}),
        ToolUse("Glob", {"pattern": ".claude/**/*.txt"}),
    )
    reads = (
        ToolUse("Read", {"file_path": str(running)}),
        ToolUse("Read", {"file_path": str(token)}),
        ToolUse("Grep", {"pattern": "peerToken", "path": str(config / "sessions"), "output_mode": "content"}),
        ToolUse("Grep", {"pattern": TASK, "path": str(config), "output_mode": "content"}),
        ToolUse("Read", {"file_path": str(task)}),
        ToolUse("Grep", {"pattern": TYPED, "output_mode": "content"}),
        *(ToolUse("Read", {"file_path": str(record)}) for record in left),
        ToolUse("Read", {"file_path": str(own_saved), "limit": 3}),
    )
    bash = ToolUse(
        "Bash", {"command": _reading([running, token, task, *left]) + "; echo bash-ran", "description": "look"}
    )
    _approved_turn(gw, mock_model, prober["id"], *listings, *reads, bash)
    results = tool_results_by_id(mock_model)
    for listing in (results[call.id] for call in listings):
        assert saved.name not in listing and transcript.stem not in listing, listing
        assert running.name not in listing and token.name not in listing and task.parent.name not in listing
        assert "record.txt" not in listing and "history.jsonl" not in listing, listing
    assert "notes.txt" in results[listings[0].id] and own_saved.name in results[listings[1].id]
    for call in reads[:-1]:
        shown = results[call.id]
        assert "peerToken" not in shown and transcript.stem not in shown and TASK not in shown, shown
        assert TYPED not in shown, shown
    assert "own-output" in results[reads[-1].id], results[reads[-1].id]
    if not gw.client.get("/healthz").json()["sandbox"]["enabled"]:
        pytest.skip("no sandbox on this machine: Bash can read the other session's files")
    shown = results[bash.id]
    assert "bash-ran" in shown and "peerToken" not in shown and transcript.stem not in shown and TASK not in shown
    assert TYPED not in shown, shown
