"""The long day with the real clients: Hermes compresses, OpenClaw compacts, flushes memory and polls heartbeats.

``make clients-longday`` runs, one client at a time, a working day as its users have it against a fresh gateway on
the mock model (issue 28; SPEC "Real clients on long days"):

- **Hermes Agent**: 20 turns of ~2 KB (every third one makes Hermes run its own ``read_file``), one conversation
  (``hermes chat -Q -q … --resume ID``), with ``model.context_length: 64000`` and ``model.max_tokens: 36000`` so it
  compresses its own history every few turns through its summariser (a side request of its own).
- **OpenClaw**: 26 turns of ~2 KB under its own gateway (``openclaw gateway run``, then ``openclaw agent`` without
  ``--local``), a model ``contextWindow`` of 28000 with ``compaction.mode: "default"`` (it flushes memory before it
  compacts), three heartbeats (``openclaw system event --mode now``) and a date change: its gateway runs under
  ``libfaketime`` (Debian ``faketime``, installed when missing), whose clock moves from 23:40 to past midnight
  before turn 14.

The mock model answers by what each request is (see :class:`DayModel`): a turn's prompt (a tool call on tool turns,
then the answer), a summariser or compaction prompt (a summary), a memory flush (a ``write`` of the memory file,
then ``NO_REPLY``), a heartbeat (``HEARTBEAT_OK``). Everything reported is computed from the gateway's log and API
and the mock's request log (:func:`measure`): turns ok, CC API sessions, flattened re-seeds (model requests carrying
``<conversation_history>``, plus any ``flatten`` log lines), forks, live Claude Code processes at the end and at
peak, sessions left waiting (``requires_action``), client bytes sent and model bytes received, and the
compressions / compactions, memory flushes and heartbeats the model was asked for.

Results go to ``bench/results/clients_longday.{json,md}`` under a label (``--label before|after``; the other labels
already in the file are kept), and ``--docs`` rewrites the before/after table in docs/compat.md from
``clients_longday.json`` and ``token_burn_longday.json``. Not part of ``make test``: it takes many minutes.

    python -m bench.longday [--only hermes|openclaw] [--label NAME] [--docs]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.clients import (
    _client,
    _client_env,
    hermes_binary,
    hermes_conversation,
    hermes_env,
    node_path,
    openclaw_binary,
)
from bench.common import MODEL, REPO, RESULTS, Table, machine_info, machine_line, ratio, running_gateway, say
from ccapi.testing import MockModel, Reply, ToolUse
from tests.gateway import free_port

HERMES_TURNS = 20
OPENCLAW_TURNS = 26
TOOL_EVERY = 3  # every third turn makes the client run its own file-reading tool
HEARTBEATS_AFTER = (7, 15, 22)  # OpenClaw turns after which a heartbeat is triggered
MIDNIGHT_BEFORE = 14  # OpenClaw's clock crosses midnight before this turn
DAY = datetime(2026, 11, 29, 23, 40, tzinfo=UTC)
NEXT_DAY = datetime(2026, 11, 30, 0, 5, tzinfo=UTC)
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
CLIENT_TIMEOUT = 600
FILLER = (
    "Context for this step: the quarterly report draft lives in the shared drive, the figures come from the "
    "finance export of last Friday, and the review meeting moved to Thursday at ten. Keep the tone plain, "
    "cite which file each number came from, and list open questions at the end. "
)

# -- what a request is --------------------------------------------------------------------------------------
SUMMARY = re.compile(
    r"TURNS TO SUMMARIZE|TURNS TO INCORPORATE|conversation to summarize|checkpoint summary|messages to incorporate",
    re.IGNORECASE,
)
SUMMARY_PART = "This is the PREFIX of a turn"  # OpenClaw's second compaction request, when a turn is split
FLUSH = "Pre-compaction memory flush"
HEARTBEAT = re.compile(r"HEARTBEAT|heartbeat poll|System event|system event", re.IGNORECASE)
MARK = re.compile(r"\[day-turn (\d+)\]")
SEED_RESULTS = "Continue from the tool results"


def prompt(turn: int) -> str:
    """A ~2 KB user turn, its marker first (the mock tells turns apart by it)."""
    ask = f"[day-turn {turn}] Step {turn} of today's work: " + (
        f"read notes/day{turn}.md and tell me what it says. " if turn % TOOL_EVERY == 0 else "what comes next? "
    )
    return ask + FILLER * 7


def note(turn: int) -> str:
    return f"Notes for step {turn}.\n" + f"Line {turn}: the supplier confirmed delivery for Thursday. " * 30


def answer(turn: int) -> str:
    return f"Turn {turn} done: the draft is updated, figures cited from the finance export, two open questions listed."


def current_input(body: Mapping[str, Any]) -> str:
    """The text the client added since the model's last message: user text blocks after the last assistant
    message, Claude Code's reminders left out and a re-seed's transcript cut off (what comes after it is new)."""
    messages = list(body.get("messages") or ())
    tail: list[Mapping[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") == "assistant":
            break
        tail.insert(0, message)
    texts = []
    for message in tail:
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or ()
        for block in blocks:
            text = block.get("text", "") if block.get("type") == "text" else ""
            if text.lstrip().startswith("<system-reminder>"):
                continue
            texts.append(text.rpartition("</conversation_history>")[2])
    return "\n".join(texts)


def _new_text(body: Mapping[str, Any]) -> str:
    """The raw text blocks after the model's last message (a re-seed's transcript included)."""
    tail = []
    for message in reversed(list(body.get("messages") or ())):
        if message.get("role") == "assistant":
            break
        tail.append(orjson.dumps(message.get("content")).decode())
    return "".join(tail)


def continues_tool_call(body: Mapping[str, Any]) -> str | None:
    """The name of the tool whose result this request carries (``None`` when it carries none)."""
    messages = list(body.get("messages") or ())
    last = messages[-1] if messages else {}
    content = last.get("content")
    if isinstance(content, list) and any(b.get("type") == "tool_result" for b in content):
        for message in reversed(messages[:-1]):
            uses = [b for b in message.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_use"]
            if uses:
                return str(uses[-1].get("name", ""))
        return ""
    text = current_input(body)
    if SEED_RESULTS in text:  # a re-seed that ends in tool results: the transcript names the call
        called = re.findall(r"\[called tool (\S+)", orjson.dumps(body.get("messages")).decode())
        return called[-1] if called else ""
    return None


def kind_of(body: Mapping[str, Any]) -> str:
    """What a main model request is: ``turn``, ``tool_result``, ``summary`` (``summary_part``: the second request
    of a compaction that splits a turn), ``flush``, ``flush_result``, ``heartbeat`` or ``other``."""
    tool = continues_tool_call(body)
    if tool is not None:
        return "flush_result" if tool.endswith("write") else "tool_result"
    text = current_input(body)
    if SUMMARY_PART in text:
        return "summary_part"
    if SUMMARY.search(text):
        return "summary"
    if FLUSH in text:
        return "flush"
    if MARK.search(text):
        return "turn"
    if HEARTBEAT.search(text):
        return "heartbeat"
    return "other"


class DayModel(MockModel):
    """The mock, answering each main request by what it is rather than from a queue: the clients send side
    requests (summaries, memory flushes, heartbeats) whose order the bench does not control."""

    def __init__(self) -> None:
        super().__init__()
        self.tool_calls_made: set[int] = set()
        self._turn_lock = threading.Lock()

    def _next_reply(self, body: Mapping[str, Any], side: bool) -> Reply:
        return super()._next_reply(body, side) if side else self.answer(body)

    def answer(self, body: Mapping[str, Any]) -> Reply:
        """The reply to a main request, by what it is (see :func:`kind_of`)."""
        kind = kind_of(body)
        text = current_input(body)
        if kind in ("summary", "summary_part"):
            return Reply(text="## Goal\nToday's report.\n## Completed Actions\n1. Drafted and cited figures.\n")
        if kind == "flush":
            day = re.search(r"memory/(\d{4}-\d\d-\d\d)\.md", text)
            path = f"memory/{day.group(1) if day else 'today'}.md"
            return Reply(
                text="Saving notes.", tool_uses=(ToolUse("write", {"path": path, "content": "- report due Thu\n"}),)
            )
        if kind == "flush_result":
            return Reply(text="NO_REPLY")
        if kind == "heartbeat":
            return Reply(text="HEARTBEAT_OK")
        if kind == "tool_result":
            marks = MARK.findall(orjson.dumps(body.get("messages")).decode())
            return Reply(text=answer(int(marks[-1]) if marks else 0))
        if kind == "turn":
            turn = int(MARK.findall(text)[-1])
            with self._turn_lock:
                first = turn not in self.tool_calls_made
                self.tool_calls_made.add(turn)
            if turn % TOOL_EVERY == 0 and first:
                tool = "read" if any(t.get("name", "").endswith("__read") for t in body.get("tools") or ()) else ""
                return Reply(
                    text="Let me read it.",
                    tool_uses=(ToolUse(tool or "read_file", {"path": f"notes/day{turn}.md"}),),
                )
            return Reply(text=answer(turn))
        return Reply(text="Noted.")

    def settle(self, quiet: float = 4.0, limit: float = 180.0) -> None:
        """Wait until the model has had no request for ``quiet`` seconds (a heartbeat runs on its own)."""
        deadline = time.monotonic() + limit
        seen, since = len(self.requests), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = len(self.requests)
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return


# -- the clients ---------------------------------------------------------------------------------------------
def workspace(root: Path, turns: int) -> Path:
    work = root / "work"
    (work / "notes").mkdir(parents=True)
    for turn in range(TOOL_EVERY, turns + 1, TOOL_EVERY):
        (work / "notes" / f"day{turn}.md").write_text(note(turn))
    return work


def hermes_day(binary: Path, home: Path, base_url: str, transport: str, turns: int) -> list[str]:
    """One Hermes conversation of ``turns`` turns, configured to compress its history every few turns."""
    work = workspace(home, turns)
    env = hermes_env(home, base_url, transport, "  context_length: 64000\n  max_tokens: 36000\n")
    return hermes_conversation(binary, env, work, [prompt(turn) for turn in range(1, turns + 1)])


def ensure_faketime() -> Path:
    """libfaketime, from Debian's ``faketime`` package when it is not installed yet."""
    if not LIBFAKETIME.exists():
        say("longday: installing Debian's faketime (apt-get)")
        subprocess.run(["apt-get", "update", "-qq"], check=True, stdin=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "faketime"], check=True, stdin=subprocess.DEVNULL)
    return LIBFAKETIME


def set_clock(clock_file: Path, at: datetime) -> None:
    """Move libfaketime's clock: an offset from the real time, so the faked clock keeps running."""
    clock_file.write_text(f"{int(at.timestamp() - time.time()):+d}\n")


def openclaw_config(home: Path, base_url: str, transport: str, work: Path, port: int) -> Path:
    config = home / "user" / ".openclaw" / "openclaw.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    url = base_url if transport == "anthropic-messages" else f"{base_url}/v1"
    model = {"id": MODEL, "name": "Claude Sonnet 4.5 (CC API)", "contextWindow": 28000, "maxTokens": 4096}
    provider = {"baseUrl": url, "apiKey": "unused", "api": transport, "models": [model]}
    defaults = {
        "model": {"primary": f"cc-api/{MODEL}"},
        "workspace": str(work),
        "compaction": {"mode": "default"},
        "heartbeat": {"every": "0m", "target": "none"},
    }
    gateway = {"mode": "local", "port": port, "bind": "loopback", "auth": {"mode": "none"}}
    config.write_bytes(
        orjson.dumps(
            {"models": {"providers": {"cc-api": provider}}, "agents": {"defaults": defaults}, "gateway": gateway}
        )
    )
    return config


@contextlib.contextmanager
def openclaw_gateway(binary: Path, env: Mapping[str, str], work: Path, port: int, log: Path) -> Iterator[None]:
    """``openclaw gateway run`` in its own process group until the block ends; the whole group is killed then."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(binary), "gateway", "run"],
            env=dict(env),
            cwd=work,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"openclaw gateway exited early:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"openclaw gateway did not listen on {port}:\n{log.read_text()[-3000:]}")
        say(f"longday: openclaw gateway listening on {port}")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def openclaw_day(
    binary: Path, node_bin: Path, home: Path, base_url: str, transport: str, mock: DayModel, turns: int
) -> tuple[list[str], list[str]]:
    """One OpenClaw day of ``turns`` turns on its main session, heartbeats triggered in between and the clock
    moved across midnight; returns the turns' outputs and the heartbeat commands' outputs."""
    work = workspace(home, turns)
    port = free_port()
    openclaw_config(home, base_url, transport, work, port)
    clock = home / "faketime"
    set_clock(clock, DAY)
    env = {**_client_env(home), "PATH": f"{node_bin}:{os.environ['PATH']}"}
    faked = {
        **env,
        "LD_PRELOAD": str(ensure_faketime()),
        "FAKETIME_TIMESTAMP_FILE": str(clock),
        "FAKETIME_CACHE_DURATION": "1",
        "DONT_FAKE_MONOTONIC": "1",
    }
    outputs, beats = [], []
    with openclaw_gateway(binary, faked, work, port, home / "openclaw-gateway.log"):
        for turn in range(1, turns + 1):
            if turn == MIDNIGHT_BEFORE:
                set_clock(clock, NEXT_DAY)
                time.sleep(2)  # past libfaketime's cache
            outputs.append(_client(["agent", "--agent", "main", "--message", prompt(turn)], binary, env, work))
            if turn in HEARTBEATS_AFTER:
                text = f"Reminder {turn}: check whether anything needs attention."
                beats.append(
                    _client(
                        ["system", "event", "--text", text, "--mode", "now", "--port", str(port)], binary, env, work
                    )
                )
                mock.settle()
    return outputs, beats


# -- measuring -----------------------------------------------------------------------------------------------
def measure(gateway: Any, mock: MockModel, outputs: Sequence[str], turns: int) -> dict[str, Any]:
    """Everything reported, from the gateway's log and API and the mock's request log."""
    log = [orjson.loads(line) for line in gateway.log_path.read_bytes().splitlines() if line.startswith(b"{")]
    sessions = _all_sessions(gateway.client)
    health = gateway.client.get("/healthz").json()
    model = [r for r in mock.requests if r.method == "POST" and r.path == "/v1/messages"]
    main = [r for r in model if not r.side]
    kinds = [kind_of(r.body) for r in main]
    flat = [i for i, r in enumerate(main) if b"<conversation_history>" in orjson.dumps(r.body.get("messages"))]
    seeds = [i for i in flat if "</conversation_history>" in _new_text(main[i].body)]
    client_bytes = sum(
        int(e.get("body_bytes") or 0)
        for e in log
        if e.get("event") == "request" and e.get("method") == "POST" and str(e.get("path", "")).startswith("/v1/")
    )
    model_bytes = sum(len(orjson.dumps(r.body)) for r in model)
    return {
        "turns": turns,
        "turns_ok": sum(o.startswith("exit=0") and f"Turn {n} done" in o for n, o in enumerate(outputs, 1)),
        "sessions": len(sessions),
        "flattened_reseeds": len(flat),
        "flattened_seeds": len(seeds),
        "flattened_log_lines": sum("flatten" in str(e.get("event", "")) for e in log),
        "forks": sum(e.get("event") == "compat_forked" for e in log),
        "affinity_misses": [e.get("reason") for e in log if e.get("event") == "compat_affinity_miss"],
        "live_at_end": health.get("live_engines"),
        "live_peak": max((int(e.get("live") or 0) for e in log if e.get("event") == "engine_started"), default=0),
        "engines_started": sum(e.get("event") == "engine_started" for e in log),
        "waiting": sum(s.get("status") == "requires_action" for s in sessions),
        "compat_requests": sum(
            e.get("event") == "request" and e.get("method") == "POST" and str(e.get("path", "")).startswith("/v1/")
            for e in log
        ),
        "compat_errors": [
            {"path": e.get("path"), "status": e.get("status")}
            for e in log
            if e.get("event") == "request"
            and str(e.get("path", "")).startswith("/v1/")
            and int(e.get("status") or 0) >= 400
        ],
        "client_bytes": client_bytes,
        "model_requests": len(model),
        "model_bytes": model_bytes,
        "model_per_client": ratio(model_bytes, client_bytes),
        "compressions": kinds.count("summary"),
        "memory_flushes": kinds.count("flush"),
        "heartbeats": kinds.count("heartbeat"),
        "gateway_log": [
            {k: e.get(k) for k in ("event", "session_id", "source", "reason", "kept", "live", "path", "status")}
            for e in log
            if str(e.get("event", "")).startswith(("compat", "engine_"))
            or "flatten" in str(e.get("event", ""))
            or (e.get("event") == "request" and str(e.get("path", "")).startswith("/v1/"))
        ],
        "sessions_detail": per_session(gateway, log, main, kinds),
        "main_requests": [
            {
                "kind": k,
                "bytes": len(orjson.dumps(r.body)),
                "flattened": i in flat,
                "input": current_input(r.body)[:120],
            }
            for i, (k, r) in enumerate(zip(kinds, main, strict=True))
        ],
    }


def per_session(
    gateway: Any, log: Sequence[Mapping[str, Any]], main: Sequence[Any], kinds: Sequence[str]
) -> list[dict[str, Any]]:
    """Each CC API session: its status, whether its Claude Code is still live (the log's ``engine_started`` /
    ``engine_stopped``), and the kinds of model requests it sent (by Claude Code's session header, mapped through
    the store's SDK session ids): the evidence of which request left a session live or waiting."""
    live: dict[str, int] = {}
    for entry in log:
        if entry.get("event") in ("engine_started", "engine_stopped"):
            sid = str(entry.get("session_id"))
            live[sid] = live.get(sid, 0) + (1 if entry["event"] == "engine_started" else -1)
    with sqlite3.connect(gateway.home / "cc-api" / "sessions.db") as db:
        rows = db.execute("SELECT id, status, sdk_session_id, created_at FROM sessions ORDER BY created_at").fetchall()
    by_sdk: dict[str, list[str]] = {}
    for request, kind in zip(main, kinds, strict=True):
        by_sdk.setdefault(request.headers.get("x-claude-code-session-id", ""), []).append(kind)
    return [
        {"id": sid, "status": status, "live": live.get(sid, 0) > 0, "served": by_sdk.get(sdk or "", [])}
        for sid, status, sdk, _ in rows
    ]


#: The model requests of a one-off session: a summariser's (or a compaction's second part).
ONE_OFF_KINDS = frozenset({"summary", "summary_part"})


def session_origins(row: Mapping[str, Any]) -> str:
    """The row's session count and how they came about: *lines* (the first, and each the client's own rewrite of
    its history started), *branches* (forks of a line: memory flushes, heartbeat polls) and *one-offs* (a
    summariser's single message); just the count for rows recorded before ``sessions_detail``."""
    detail = row.get("sessions_detail")
    if not detail:
        return str(row["sessions"])
    forked = {e["session_id"] for e in row.get("gateway_log", ()) if e.get("event") == "compat_forked"}
    branches = sum(s["id"] in forked for s in detail)
    one_offs = sum(s["id"] not in forked and bool(s["served"]) and set(s["served"]) <= ONE_OFF_KINDS for s in detail)
    lines = len(detail) - branches - one_offs
    return f"{row['sessions']} ({lines} lines, {branches} branches, {one_offs} one-offs)"


def _all_sessions(client: httpx.Client) -> list[dict[str, Any]]:
    sessions: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100, **({"after": after} if after else {})}
        page = client.get("/api/sessions", params=params).json()
        sessions += page["data"]
        after = page.get("next_after")
        if not page.get("has_more") or not after:
            return sessions


def run_hermes(binary: Path, transport: str, turns: int = HERMES_TURNS) -> dict[str, Any]:
    say(f"longday: hermes / {transport}, {turns} turns")
    with DayModel() as mock, running_gateway(mock.url) as gateway:
        outputs = hermes_day(binary, gateway.home, gateway.base_url, transport, turns)
        mock.settle(quiet=2, limit=30)
        row = measure(gateway, mock, outputs, turns)
    return {"client": "hermes", "transport": transport, **row}


def run_openclaw(binary: Path, node_bin: Path, transport: str, turns: int = OPENCLAW_TURNS) -> dict[str, Any]:
    say(f"longday: openclaw / {transport}, {turns} turns")
    with DayModel() as mock, running_gateway(mock.url) as gateway:
        outputs, beats = openclaw_day(binary, node_bin, gateway.home, gateway.base_url, transport, mock, turns)
        row = measure(gateway, mock, outputs, turns)
        row["heartbeat_commands_ok"] = sum(b.startswith("exit=0") for b in beats)
        row["date_change_before_turn"] = MIDNIGHT_BEFORE
    return {"client": "openclaw", "transport": transport, **row}


# -- reporting -----------------------------------------------------------------------------------------------
COLUMNS = (
    ("turns ok", lambda r: f"{r['turns_ok']}/{r['turns']}"),
    ("sessions", lambda r: r["sessions"]),
    (
        "flattened requests (seeds)",
        lambda r: f"{r['flattened_reseeds'] + r['flattened_log_lines']} ({r['flattened_seeds']})",
    ),
    ("forks", lambda r: r["forks"]),
    ("live at end (peak)", lambda r: f"{r['live_at_end']} ({r['live_peak']})"),
    ("left waiting", lambda r: r["waiting"]),
    ("client B", lambda r: r["client_bytes"]),
    ("model B", lambda r: r["model_bytes"]),
    ("model / client", lambda r: r["model_per_client"]),
    ("compressions", lambda r: r["compressions"]),
    ("memory flushes", lambda r: r["memory_flushes"]),
    ("heartbeats", lambda r: r["heartbeats"]),
)


def render(runs: Mapping[str, Sequence[Mapping[str, Any]]]) -> Table:
    table = Table(
        "The long day with the real clients",
        ["client, transport, gateway", *(name for name, _ in COLUMNS)],
    )
    for label, rows in runs.items():
        for row in rows:
            table.rows.append([f"{row['client']}, {row['transport']}, {label}", *(cell(row) for _, cell in COLUMNS)])
    return table


NOTES = (
    "Hermes: `model.context_length: 64000`, `model.max_tokens: 36000`, ~2 KB turns, every third a `read_file` "
    "call, one conversation via `hermes chat -Q -q … --resume ID`. OpenClaw: model `contextWindow: 28000`, "
    '`compaction.mode: "default"`, under its own gateway (`openclaw agent --agent main`), heartbeats via '
    f"`openclaw system event --mode now` after turns {', '.join(map(str, HEARTBEATS_AFTER))}, its clock "
    f"(libfaketime) moved from 23:40 to 00:05 the next day before turn {MIDNIGHT_BEFORE}.",
    "*flattened requests (seeds)*: model requests carrying `<conversation_history>` plus gateway log lines about a "
    "flattened history (in brackets: the requests whose new input is the transcript, i.e. the re-seeds "
    "themselves); *forks*: `compat_forked` log lines; *live at end (peak)*: `GET /healthz` `live_engines` when "
    "the day ends (the most the log's `engine_started` reported); *left waiting*: sessions in `requires_action`; "
    "*client B*: compat request bodies; *model B*: every `POST /v1/messages` body the mock received; "
    "*compressions*, *memory flushes*, *heartbeats*: model requests carrying the client's summariser/compaction "
    "prompt, its pre-compaction flush prompt, or a heartbeat/system-event prompt.",
)


def save(label: str, rows: list[dict[str, Any]]) -> None:
    """Add this run's rows under ``label`` to ``clients_longday.json`` (other labels kept) and render the file."""
    path = RESULTS / "clients_longday.json"
    data = orjson.loads(path.read_bytes()) if path.exists() else {"benchmark": "clients_longday", "runs": {}}
    kept = [
        r
        for r in data["runs"].get(label, [])
        if (r["client"], r["transport"]) not in {(n["client"], n["transport"]) for n in rows}
    ]
    data["runs"][label] = kept + rows
    data.setdefault("machines", {})[label] = machine_info()
    data["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    machines = "\n".join(f"- {name}: {machine_line(info)}" for name, info in data["machines"].items())
    text = "\n\n".join(["### clients_longday", machines, render(data["runs"]).render(), *NOTES]) + "\n"
    (RESULTS / "clients_longday.md").write_text(text)
    print(text, flush=True)


# -- docs/compat.md ------------------------------------------------------------------------------------------
DOC = REPO / "docs" / "compat.md"
BEGIN, END = "<!-- longday:begin (python -m bench.longday --docs) -->", "<!-- longday:end -->"


DOC_COLUMNS = (
    "run",
    "gateway",
    "sessions",
    "model requests with a flattened transcript (re-seeds)",
    "live Claude Code at end (peak)",
    "left waiting",
    "model B",
)


def docs_table() -> str:
    """The before/after table of docs/compat.md, from the result files."""
    rows: list[tuple[Any, ...]] = []
    clients = RESULTS / "clients_longday.json"
    for label, runs in (orjson.loads(clients.read_bytes())["runs"] if clients.exists() else {}).items():
        rows += [
            (
                f"{r['client']} ({r['transport']}), {r['turns_ok']}/{r['turns']} turns",
                label,
                session_origins(r),
                f"{r['flattened_reseeds'] + r['flattened_log_lines']} ({r['flattened_seeds']})",
                f"{r['live_at_end']} ({r['live_peak']})",
                r["waiting"],
                f"{r['model_bytes']:,} ({r['model_per_client']:.2f}x client)",
            )
            for r in runs
        ]
    synthetic = RESULTS / "token_burn_longday.json"
    for arm in orjson.loads(synthetic.read_bytes())["arms"] if synthetic.exists() else ():
        rows.append(
            (
                f"synthetic long day ({arm['format']}), {arm['requests_ok']}/{arm['requests']} requests",
                arm["arm"],
                arm["sessions"],
                arm["reseeds"] + arm.get("flattened_log_lines", 0),
                f"{arm['live_at_end']} ({arm['live_peak']})",
                arm["paused_left"],
                f"{arm['model_bytes']:,} ({ratio(arm['model_bytes'], arm['client_bytes']):.2f}x client)",
            )
        )
    head = ["| " + " | ".join(DOC_COLUMNS) + " |", "|:--|:--|" + "--:|" * (len(DOC_COLUMNS) - 2)]
    return "\n".join(head + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def write_docs() -> None:
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        sys.exit(f"bench.longday --docs: {DOC} has no {BEGIN} marker")
    DOC.write_text(f"{head}{BEGIN}\n{docs_table()}\n{END}{tail}")
    say(f"longday: wrote the before/after table into {DOC.relative_to(REPO)}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("hermes", "openclaw"))
    parser.add_argument("--label", default="before", help="the name this tree's rows are saved under")
    parser.add_argument("--hermes-transport", default="chat_completions")
    parser.add_argument("--openclaw-transport", default="openai-completions")
    parser.add_argument("--turns", type=int, help="fewer turns, to check the plumbing (not a long day)")
    parser.add_argument("--docs", action="store_true", help="only rewrite docs/compat.md's table from the results")
    args = parser.parse_args(argv)
    if args.docs:
        write_docs()
        return
    if shutil.which("npm") is None and args.only != "hermes":
        sys.exit("bench.longday: OpenClaw needs npm (to install Node 24 and openclaw from the npm registry)")
    rows = []
    if args.only != "openclaw":
        rows.append(run_hermes(hermes_binary(), args.hermes_transport, args.turns or HERMES_TURNS))
        save(args.label, rows)
    if args.only != "hermes":
        node_bin = node_path()
        rows.append(
            run_openclaw(openclaw_binary(node_bin), node_bin, args.openclaw_transport, args.turns or OPENCLAW_TURNS)
        )
        save(args.label, rows)


if __name__ == "__main__":
    main()
