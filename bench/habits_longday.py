"""Token burn over a long day: the clients' habits that go past the first dozen turns, scripted (issue 28).

One client loop (``run_day``) keeps one conversation the way OpenClaw and Hermes do over a working day, on the wire
formats of ``bench.habits``:

- a **short system prompt** (~200 characters) whose time line moves every request, across midnight (a date change);
- every user message is sent with its timestamp in front, as one text block;
- **heartbeat polls** with another system prompt and another tool set, answered ``HEARTBEAT_OK`` (or ``NO_REPLY``)
  and pruned from the history afterwards; after a ``NO_REPLY`` poll, the next user message is **re-sent as two
  blocks with its timestamp moved** behind the text in every later request (what OpenClaw does);
- a **memory flush** before each compression: a side request over the full history with another system prompt and
  only ``read``/``write`` tools, answered ``NO_REPLY`` and never kept;
- a **compression**: a summariser side request (one user message quoting the turns, no tools), after which the
  client **rewrites its history** as the summary plus its last exchanges, and goes on from there.

It runs, side by side, against this tree's gateway and the pre-affinity gateway of ``bench.habits`` (``BEFORE``),
with the habits scenario's metrics plus the Claude Code processes live at the end and at peak. Results:
``bench/results/token_burn_longday.{json,md}``; ``--label`` names this tree's arm and keeps other labels' arms
already in the file, so a run on a merged tree adds its row next to the one before.

    python -m bench.token_burn --longday [--label NAME] [--before-src PATH]
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import RESULTS, Table, machine_info, machine_line, ratio, say
from bench.habits import BEFORE, FORMATS, TOOLS, Call, Entry, Format, RequestResult, Wire, before_tree, measure
from ccapi.testing import MockModel, Reply, ToolUse

#: One step per letter: p plain turn (1 request), t tool turn (2), h heartbeat poll answered HEARTBEAT_OK (1),
#: n heartbeat poll answered NO_REPLY, after which the next user message is later re-sent split (1), f memory flush
#: (1), c compression: the summariser request (1), then the history rewritten.
DAY = "ptphtpfcptnptphtfcptpnp"
START = datetime(2026, 11, 29, 22, 55, tzinfo=UTC)
MINUTES_PER_REQUEST = 3
KEEP_TAIL = 2  # user turns the client keeps verbatim after a compression
HEARTBEAT_SYSTEM = "You are Ada's heartbeat. Check HEARTBEAT.md; if nothing needs attention reply HEARTBEAT_OK."
HEARTBEAT_PROMPT = (
    "[OpenClaw heartbeat poll] Read HEARTBEAT.md if it exists. If nothing needs attention, reply HEARTBEAT_OK."
)
HEARTBEAT_TOOLS = [
    {
        "name": "heartbeat_respond",
        "description": "Report the outcome of a heartbeat poll.",
        "input_schema": {"type": "object", "properties": {"notify": {"type": "boolean"}}, "required": ["notify"]},
    }
]
FLUSH_SYSTEM = "Pre-compaction memory flush turn. Store durable memories only in memory/2026-11-29.md."
FLUSH_PROMPT = "Pre-compaction memory flush. Store durable memories now. If nothing to store, reply with NO_REPLY."
FLUSH_TOOLS = [
    TOOLS[0],  # read
    {
        "name": "write",
        "description": "Write a file in the workspace.",
        "input_schema": {
            "type": "object",
            "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
            "required": ["path", "content"],
        },
    },
]
SUMMARISER_SYSTEM = "You write compact checkpoint summaries of conversations."
SUMMARY = "## Goal\nPlan the week.\n## Completed\n1. Moved the appointment to Thursday. 2. Read the day notes."


def requests_in(day: str) -> int:
    return sum(2 if step == "t" else 1 for step in day)


def clock(n: int) -> datetime:
    return START + timedelta(minutes=MINUTES_PER_REQUEST * (n - 1))


def system(n: int) -> str:
    """The ~200-character prompt of a simple agent that tells the model the time."""
    return (
        "You are Ada, the user's personal assistant. Be brief, concrete and kind; use tools for facts.\n"
        f"Current time: {clock(n):%A %Y-%m-%d %H:%M} UTC\nAnswer in the user's language."
    )


def stamp(n: int) -> str:
    return f"[{clock(n):%a %Y-%m-%d %H:%M} UTC]"


def _replies(step: str, turn: int) -> list[Reply]:
    if step == "h":
        return [Reply(text="HEARTBEAT_OK")]
    if step in "nf":
        return [Reply(text="NO_REPLY")]
    if step == "c":
        return [Reply(text=SUMMARY)]
    answer = Reply(text=f"Turn {turn}: done. The appointment moves to Thursday; I told the clinic and noted it.")
    if step == "t":
        return [
            Reply(text="Let me look that up.", tool_uses=(ToolUse("read", {"path": f"notes/day{turn}.md"}),)),
            answer,
        ]
    return [answer]


def _transcript(kept: list[Entry]) -> str:
    return "\n".join(f"{e.role}: {e.text or ' '.join(e.blocks)}" for e in kept)


def run_day(client: httpx.Client, mock: MockModel, fmt: Format, label: str) -> list[RequestResult]:
    """The requests of ``DAY`` in ``fmt``; one row per request."""
    kept: list[Entry] = []
    wire = Wire(client, mock, fmt, label, requests_in(DAY))
    split_next = False
    for turn, step in enumerate(DAY, 1):
        mock.clear_script()
        mock.script(*_replies(step, turn))
        n = wire.next_n
        if step in "hn":
            wire.send(
                fmt.encode([*kept, Entry("user", HEARTBEAT_PROMPT)], HEARTBEAT_SYSTEM, None, HEARTBEAT_TOOLS), step
            )
            split_next = split_next or step == "n"
            continue  # pruned from every later request: the poll was answered with a silent token
        if step == "f":
            wire.send(fmt.encode([*kept, Entry("user", FLUSH_PROMPT)], FLUSH_SYSTEM, None, FLUSH_TOOLS), step)
            continue  # a side request: never part of the main line
        if step == "c":
            quoted = Entry("user", "TURNS TO SUMMARIZE:\n" + _transcript(kept))
            summary, _ = wire.send(fmt.encode([quoted], SUMMARISER_SYSTEM, None, []), step)
            kept[:] = _compressed(kept, summary or SUMMARY)
            continue
        text = f"Turn {turn}: what is next on my list? (item {100 + turn})"
        user = Entry("user", f"{stamp(n)} {text}")
        reply_text, calls = wire.send(fmt.encode([*kept, user], system(n), None), step)
        if split_next:  # kept from now on as the text, then its timestamp, in two blocks
            user = Entry("user", blocks=(text, stamp(n)))
            split_next = False
        kept_calls = [Call(fmt.rewrite(c.id, i), c.name, c.arguments) for i, c in enumerate(calls)]
        kept += [user, Entry("assistant", reply_text, kept_calls)]
        if kept_calls:
            outputs = [
                Entry("tool", f"notes for day {turn}: " + "a line of notes. " * 60, call_id=c.id, turn=turn)
                for c in kept_calls
            ]
            reply_text, _ = wire.send(fmt.encode([*kept, *outputs], system(wire.next_n), None), "t+")
            kept += [*outputs, Entry("assistant", reply_text)]
    return wire.results


def _compressed(kept: list[Entry], summary: str) -> list[Entry]:
    """What the client keeps after compressing: the summary, then its last ``KEEP_TAIL`` user turns verbatim."""
    starts = [i for i, e in enumerate(kept) if e.role == "user"]
    tail = kept[starts[-KEEP_TAIL] :] if len(starts) >= KEEP_TAIL else kept
    return [
        Entry("user", f"[CONTEXT COMPACTION] Earlier turns were compacted into this summary:\n{summary}"),
        Entry("assistant", "Understood; continuing from the summary."),
        *tail,
    ]


# -- the run -----------------------------------------------------------------------------------------------
def longday(label: str, before_src: str | None = None, formats: tuple[str, ...] = ("chat", "responses")) -> None:
    """``python -m bench.token_burn --longday``: the long day, the pre-affinity gateway and this tree side by side."""
    say(f"token_burn long day: {requests_in(DAY)} requests per format: before, {label}")
    path = RESULTS / "token_burn_longday.json"
    old = orjson.loads(path.read_bytes()) if path.exists() else {"arms": [], "machines": {}}
    arms = [a for a in old["arms"] if a["arm"] != label]
    with MockModel() as mock, before_tree(before_src) as before:
        for name in formats:
            fmt = FORMATS[name]
            pre = f"pre-affinity ({BEFORE[:7]})"
            if before is not None and not any(a["arm"] == pre and a["format"] == fmt.name for a in arms):
                arms.append(measure(mock, fmt, pre, {"PYTHONPATH": str(before)}, drive=run_day))
            arms.append(measure(mock, fmt, label, {}, drive=run_day))
    machines = {**old.get("machines", {}), label: machine_info()}
    _write(path, arms, machines)


TITLE = "A long day of compat requests: compression, memory flush, heartbeats, a split message, a date change"
COLUMNS = [
    "format, gateway",
    "requests ok",
    "sessions",
    "re-seeds",
    "forks",
    "paused left",
    "live at end (peak)",
    "client B",
    "model requests",
    "model B",
    "model / client",
    "model B not a repeat",
]


def _write(path: Path, arms: list[dict[str, Any]], machines: dict[str, Any]) -> None:
    arms.sort(key=lambda a: (a["format"], not a["arm"].startswith("pre-affinity")))
    table = Table(TITLE, COLUMNS)
    for arm in arms:
        table.rows.append(
            [
                f"{arm['format']}, {arm['arm']}",
                f"{arm['requests_ok']}/{arm['requests']}",
                arm["sessions"],
                arm["reseeds"] + arm.get("flattened_log_lines", 0),
                arm["forks"],
                arm["paused_left"],
                f"{arm['live_at_end']} ({arm['live_peak']})",
                arm["client_bytes"],
                arm["model_requests"],
                arm["model_bytes"],
                ratio(arm["model_bytes"], arm["client_bytes"]),
                arm["model_bytes_new"],
            ]
        )
    notes = (
        f"Each arm is a fresh gateway on the same mock model, sent the same {requests_in(DAY)} requests (`{DAY}`): "
        f"{DAY.count('p')} plain turns, {DAY.count('t')} tool turns (2 requests each), {DAY.count('h')} heartbeat "
        f"polls answered `HEARTBEAT_OK` and {DAY.count('n')} answered `NO_REPLY` (another system prompt and tool "
        f"set; pruned afterwards; the user message after a `NO_REPLY` poll is re-sent as two blocks, its timestamp "
        f"moved behind the text), {DAY.count('f')} memory flushes (another system prompt, only `read`/`write`; "
        f"never kept), {DAY.count('c')} compressions (a summariser request, then the history rewritten as the "
        f"summary and the last {KEEP_TAIL} user turns). The ~200-character system prompt's time line moves "
        f"{MINUTES_PER_REQUEST} minutes a request from {START:%Y-%m-%d %H:%M}, across midnight. *pre-affinity*: "
        "the gateway before the compat-affinity work (see token_burn_habits); the other arms: the tree named.",
        "*re-seeds*: model requests carrying a flattened `<conversation_history>` (plus gateway log lines about a "
        "flattened history); *forks*: `compat_forked` log lines; *paused left*: sessions in `requires_action` at "
        "the end; *live at end (peak)*: `GET /healthz` `live_engines` at the end (the most `engine_started` "
        "logged); *client B*: request bodies sent; *model B*: every `POST /v1/messages` body the mock received; "
        "*not a repeat*: model bytes a prompt cache could not serve (see token_burn_habits).",
    )
    text = "\n\n".join(
        [
            "### token_burn_longday",
            "\n".join(f"- {name}: {machine_line(info)}" for name, info in machines.items()),
            table.render(),
            *notes,
        ]
    )
    print(text, flush=True)
    (RESULTS / "token_burn_longday.md").write_text(text + "\n")
    payload = {"benchmark": "token_burn_longday", "params": {"day": DAY, "requests": requests_in(DAY)}}
    path.write_bytes(orjson.dumps({**payload, "machines": machines, "arms": arms}, option=orjson.OPT_INDENT_2) + b"\n")
