"""Token burn with the real clients' habits: 30 compat requests as OpenClaw and Hermes send them, before and after.

One client loop replays its conversation on every request the way the real clients do (issue 17): each request ends
with an OpenClaw internal-context message the client never keeps (inside a tool loop it comes after the tool
results); tool-call ids come back rewritten (non-alphanumerics stripped on Chat Completions, ``call_<id>_fc_<n>`` on
Responses, where a reply's text and each function call are separate items); tool results older than the last two
tool turns are replaced by ``[Old tool result content cleared]``; the system prompt's date line changes at request
15; a side request ("Review the conversation above …") is sent once and never kept; and heartbeat polls answered
``HEARTBEAT_OK`` are pruned from the history afterwards.

The same 30 requests go, side by side in one run, to this tree's gateway and to the gateway as it was before the
compat-affinity work (``BEFORE``, the parent of commit 64b7024), exported with ``git archive`` into a scratch
directory (or ``--before-src PATH``) and run as ``python -m ccapi run`` from the same venv with ``PYTHONPATH`` set to
it. Per arm it reports, from the gateway's API and log and the mock's request log: CC API sessions created, model
requests that re-seeded a flattened ``<conversation_history>``, sessions forked, paused sessions left waiting on tool
calls nobody will answer, and the bytes the client sent and the model received.

    python -m bench.token_burn --habits [--before-src PATH]
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import MODEL, REPO, Progress, Table, ratio, report, running_gateway, say
from bench.token_burn import cache_blocks, reused_blocks
from ccapi.testing import MockModel, Reply, ToolUse

#: The last commit before the compat-affinity work (``git rev-parse 64b7024^``).
BEFORE = "d7c3b5270959eacc961bd8517de7c4585a226d1e"
REQUESTS = 30
STABLE_PROMPT = "\n".join(
    f"Rule {n}: you are the user's personal assistant; follow house style number {n} and keep replies short."
    for n in range(40)
)
DATE_CHANGES_AT = 15
HEARTBEAT = "Read HEARTBEAT.md if it exists. If nothing needs attention, reply HEARTBEAT_OK."
SIDE = "Review the conversation above and save anything worth remembering to memory."
CLEARED = "[Old tool result content cleared]"
KEEP_RESULTS = 2  # tool turns whose results the client still sends in full
TOOLS = [
    {
        "name": "read",
        "description": "Read a file from the workspace and return its text.",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    },
    {
        "name": "web_search",
        "description": "Search the web and return the top results with snippets.",
        "input_schema": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
]
#: One user turn per letter: p plain (1 request), t tool call (2), h heartbeat poll (1, pruned afterwards),
#: s side request (1, never kept). 30 requests in all.
SCRIPT = "ptptphptptthpsptpthptp"
ENV = {"CC_API_MAX_LIVE": "16", "CC_API_PERMISSION_MODE": "default", "CC_API_TOOL_PERMISSION_MODE": "default"}
"""The same for every arm: room for the before tree's orphaned paused sessions (one per tool turn), and the
permission mode Claude Code accepts as root (the mock never calls a built-in tool)."""


# -- what the client keeps ------------------------------------------------------------------------
@dataclass
class Call:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class Entry:
    role: str  # user | assistant | tool
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    call_id: str = ""
    turn: int = 0  # the user turn a tool result belongs to, for clearing old ones
    blocks: tuple[str, ...] = ()
    """A user message the client sends as several text blocks instead of ``text``."""


def _context(n: int) -> str:
    return (
        f"<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>\nrequest {n}; local time 10:{n:02d}; channel: cli; "
        "sender: owner\n<<<END_OPENCLAW_INTERNAL_CONTEXT>>>"
    )


def _system(n: int) -> str:
    day = "Sunday, 29 November 2026" if n < DATE_CHANGES_AT else "Monday, 30 November 2026"
    return f"{STABLE_PROMPT}\nCurrent date: {day}\nRuntime: host=bench model={MODEL}"


def _result(call: Call) -> str:
    return f"{call.name} {orjson.dumps(call.arguments).decode()}: " + "line of output, kept by the tool. " * 40


# -- wire formats -------------------------------------------------------------------------------
def _user_content(e: Entry, block_type: str) -> str | list[dict[str, str]]:
    return [{"type": block_type, "text": text} for text in e.blocks] if e.blocks else e.text


@dataclass(frozen=True)
class Format:
    name: str
    path: str
    encode: Callable[..., dict[str, Any]]
    """``(entries, system, context message or None, tools=TOOLS)``: the request body."""
    decode: Callable[[dict[str, Any]], tuple[str, list[Call]]]
    rewrite: Callable[[str, int], str]
    """How the client keeps an id the gateway issued (the call's index in its reply)."""


def _chat_body(
    entries: list[Entry], system: str, context: str | None, tools: Sequence[dict[str, Any]] = TOOLS
) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    for e in entries:
        if e.role == "assistant":
            calls = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
                }
                for c in e.calls
            ]
            messages.append(
                {"role": "assistant", "content": e.text or None, **({"tool_calls": calls} if calls else {})}
            )
        elif e.role == "tool":
            messages.append({"role": "tool", "tool_call_id": e.call_id, "content": e.text})
        else:
            messages.append({"role": "user", "content": _user_content(e, "text")})
    if context is not None:
        messages.append({"role": "user", "content": context})
    functions = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]},
        }
        for t in tools
    ]
    return {"model": MODEL, "messages": messages, **({"tools": functions} if functions else {})}


def _chat_reply(reply: dict[str, Any]) -> tuple[str, list[Call]]:
    message = reply["choices"][0]["message"]
    calls = [
        Call(c["id"], c["function"]["name"], orjson.loads(c["function"]["arguments"]))
        for c in message.get("tool_calls") or ()
    ]
    return message.get("content") or "", calls


def _responses_body(
    entries: list[Entry], system: str, context: str | None, tools: Sequence[dict[str, Any]] = TOOLS
) -> dict[str, Any]:
    items: list[dict[str, Any]] = []
    for e in entries:
        if e.role == "assistant":  # text and each call as separate items, the way both clients echo them
            if e.text:
                items.append(
                    {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": e.text}]}
                )
            items += [
                {
                    "type": "function_call",
                    "call_id": c.id,
                    "name": c.name,
                    "arguments": orjson.dumps(c.arguments).decode(),
                }
                for c in e.calls
            ]
        elif e.role == "tool":
            items.append({"type": "function_call_output", "call_id": e.call_id, "output": e.text})
        else:
            items.append({"role": "user", "content": _user_content(e, "input_text")})
    if context is not None:
        items.append({"role": "user", "content": context})
    functions = [
        {"type": "function", "name": t["name"], "description": t["description"], "parameters": t["input_schema"]}
        for t in tools
    ]
    return {"model": MODEL, "instructions": system, "input": items, **({"tools": functions} if functions else {})}


def _responses_reply(reply: dict[str, Any]) -> tuple[str, list[Call]]:
    text, calls = "", []
    for item in reply["output"]:
        if item["type"] == "message":
            text += "".join(part.get("text", "") for part in item["content"])
        elif item["type"] == "function_call":
            calls.append(Call(item["call_id"], item["name"], orjson.loads(item["arguments"])))
    return text, calls


FORMATS = {
    "chat": Format(
        "chat completions", "/v1/chat/completions", _chat_body, _chat_reply, lambda i, _n: re.sub("[^A-Za-z0-9]", "", i)
    ),
    "responses": Format(
        "responses", "/v1/responses", _responses_body, _responses_reply, lambda i, n: f"call_{i}_fc_{n}"
    ),
}


# -- the client loop ------------------------------------------------------------------------------
@dataclass
class RequestResult:
    n: int
    kind: str
    status: int
    session: str | None
    client_bytes: int
    model_requests: int = 0
    model_bytes: int = 0
    repeated_bytes: int = 0
    """Model-input bytes in leading blocks identical to the previous main model request's: what a prompt cache
    could serve."""
    reseeded: bool = False
    seconds: float = 0.0


def _turn_replies(kind: str, turn: int) -> list[Reply]:
    if kind == "h":
        return [Reply(text="HEARTBEAT_OK")]
    if kind == "s":
        return [Reply(text="Saved two notes to memory.")]
    answer = Reply(text=f"Turn {turn}: done. The appointment moves to Thursday; I told the clinic and noted it.")
    if kind == "t":
        tool = TOOLS[turn % len(TOOLS)]["name"]
        argument = {"path": f"notes/day{turn}.md"} if tool == "read" else {"query": f"clinic opening hours {turn}"}
        return [Reply(text="Let me look that up.", tool_uses=(ToolUse(tool, argument),)), answer]
    return [answer]


class Wire:
    """The client's side of the wire: posts a body, records what it cost and what reached the model."""

    def __init__(self, client: httpx.Client, mock: MockModel, fmt: Format, label: str, total: int) -> None:
        self.client, self.mock, self.fmt, self.label = client, mock, fmt, label
        self.results: list[RequestResult] = []
        self.progress = Progress(f"token_burn habits: {label}, requests", total)
        self.seen = len(mock.requests)
        self.previous: list[bytes] = []

    @property
    def next_n(self) -> int:
        return len(self.results) + 1

    def send(self, body: dict[str, Any], kind: str) -> tuple[str, list[Call]]:
        n = self.next_n
        data = orjson.dumps(body)
        began = time.perf_counter()
        response = self.client.post(self.fmt.path, content=data, headers={"content-type": "application/json"})
        seconds = time.perf_counter() - began
        fresh = [r for r in self.mock.requests[self.seen :] if r.method == "POST" and r.path == "/v1/messages"]
        self.seen = len(self.mock.requests)
        repeated = 0
        for request in (r for r in fresh if not r.side):
            blocks = cache_blocks(request.body)
            repeated += reused_blocks(self.previous, blocks)
            self.previous = blocks
        row = RequestResult(
            n,
            kind,
            response.status_code,
            response.headers.get("x-cc-session-id"),
            len(data),
            len(fresh),
            sum(len(orjson.dumps(r.body)) for r in fresh),
            repeated,
            any(b"<conversation_history>" in orjson.dumps(r.body.get("messages")) for r in fresh if not r.side),
            seconds,
        )
        self.results.append(row)
        self.progress.step()
        if response.status_code != 200:
            say(f"token_burn habits: {self.label}: request {n} got {response.status_code}: {response.text[:200]}")
            return "", []
        return self.fmt.decode(response.json())


def run_client(client: httpx.Client, mock: MockModel, fmt: Format, label: str) -> list[RequestResult]:
    """The 30 requests of ``SCRIPT`` in ``fmt``, with every habit; one row per request."""
    kept: list[Entry] = []
    wire = Wire(client, mock, fmt, label, REQUESTS)

    def send(pending: list[Entry], kind: str) -> tuple[str, list[Call]]:
        n = wire.next_n
        return wire.send(fmt.encode([*kept, *pending], _system(n), _context(n)), kind)

    for turn, kind in enumerate(SCRIPT, 1):
        mock.clear_script()
        mock.script(*_turn_replies(kind, turn))
        prompt = {"h": HEARTBEAT, "s": SIDE}.get(kind, f"Turn {turn}: what is next on my list? (item {100 + turn})")
        user = Entry("user", prompt)
        text, calls = send([user], kind)
        if kind == "s":
            continue  # a side request: never part of the main line
        kept_calls = [Call(fmt.rewrite(c.id, i), c.name, c.arguments) for i, c in enumerate(calls)]
        reply = Entry("assistant", text, kept_calls)
        if kind == "h":
            continue  # pruned from every later request: a poll answered HEARTBEAT_OK
        kept += [user, reply]
        if kept_calls:
            outputs = [Entry("tool", _result(c), call_id=c.id, turn=turn) for c in kept_calls]
            text, _ = send([*outputs], "t+")
            kept += [*outputs, Entry("assistant", text)]
        _clear_old_results(kept)
    return wire.results


def _clear_old_results(kept: list[Entry]) -> None:
    turns = sorted({e.turn for e in kept if e.role == "tool"})
    old = set(turns[:-KEEP_RESULTS])
    for e in kept:
        if e.role == "tool" and e.turn in old:
            e.text = CLEARED


# -- the arms -------------------------------------------------------------------------------------
@contextlib.contextmanager
def before_tree(path: str | None) -> Iterator[Path | None]:
    """The gateway's source before the compat-affinity work: ``path``, or ``BEFORE`` exported from git into a
    scratch directory (removed afterwards); ``None`` when neither is available."""
    if path:
        yield Path(path)
        return
    with tempfile.TemporaryDirectory(prefix="ccapi-before-") as tmp:
        try:
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", BEFORE, "ccapi"], capture_output=True, check=True, timeout=60
            ).stdout
        except (OSError, subprocess.SubprocessError) as exc:
            say(f"token_burn habits: no before arm ({BEFORE[:9]} is not in this checkout: {exc})")
            yield None
            return
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield Path(tmp)


Drive = Callable[[httpx.Client, MockModel, Format, str], list[RequestResult]]


def measure(
    mock: MockModel,
    fmt: Format,
    label: str,
    env: Mapping[str, str],
    headers: Mapping[str, str] | None = None,
    drive: Drive = run_client,
) -> dict[str, Any]:
    """One arm: a fresh gateway, the client loop ``drive``, and what it cost (also the Claude Code processes
    still live when it ends, from ``GET /healthz``, and at peak, from the log's ``engine_started`` lines)."""
    with running_gateway(mock.url, **ENV, **env) as gateway:
        with httpx.Client(base_url=gateway.base_url, timeout=120, headers=dict(headers or {})) as client:
            rows = drive(client, mock, fmt, label)
        sessions = gateway.client.get("/api/sessions", params={"limit": 100}).json()["data"]
        live_at_end = gateway.client.get("/healthz").json().get("live_engines")
        log = [orjson.loads(line) for line in gateway.log_path.read_bytes().splitlines() if line.startswith(b"{")]
    waiting = sum(s.get("status") == "requires_action" for s in sessions)
    client_bytes = sum(r.client_bytes for r in rows)
    model_bytes = sum(r.model_bytes for r in rows)
    return {
        "arm": label,
        "format": fmt.name,
        "requests_ok": sum(r.status == 200 for r in rows),
        "requests": len(rows),
        "sessions": len(sessions),
        "reseeds": sum(r.reseeded for r in rows),
        "forks": sum(entry.get("event") == "compat_forked" for entry in log),
        "paused_left": waiting,
        "live_at_end": live_at_end,
        "live_peak": max((int(e.get("live") or 0) for e in log if e.get("event") == "engine_started"), default=0),
        "flattened_log_lines": sum("flatten" in str(e.get("event", "")) for e in log),
        "client_bytes": client_bytes,
        "model_requests": sum(r.model_requests for r in rows),
        "model_bytes": model_bytes,
        "model_bytes_per_request": ratio(model_bytes, len(rows)),
        "model_bytes_last": rows[-1].model_bytes,
        "model_bytes_new": model_bytes - sum(r.repeated_bytes for r in rows),
        "seconds": sum(r.seconds for r in rows),
        "rows": [asdict(r) for r in rows],
    }


def habits(before_src: str | None = None, formats: tuple[str, ...] = ("chat", "responses")) -> None:
    """``python -m bench.token_burn --habits``: the habits scenario, before and after, side by side."""
    say(f"token_burn habits: {REQUESTS} requests with the clients' habits, per format: before, after")
    arms: list[dict[str, Any]] = []
    with MockModel() as mock, before_tree(before_src) as before:
        for name in formats:
            fmt = FORMATS[name]
            if before is not None:
                arms.append(measure(mock, fmt, f"before ({BEFORE[:7]})", {"PYTHONPATH": str(before)}))
            arms.append(measure(mock, fmt, "after, built-in tools declared", {}, {"x-cc-builtin-tools": "all"}))
            arms.append(measure(mock, fmt, "after (model-only default)", {}))
    table = Table(
        f"{REQUESTS} compat requests with OpenClaw's and Hermes's habits",
        [
            "format, gateway",
            "requests ok",
            "sessions",
            "re-seeds",
            "forks",
            "paused left",
            "client B",
            "model requests",
            "model B",
            "model B / request",
            "model B, request 30",
            "model B not a repeat",
            "client wall time (s)",
        ],
    )
    for arm in arms:
        table.rows.append(
            [
                f"{arm['format']}, {arm['arm']}",
                f"{arm['requests_ok']}/{arm['requests']}",
                arm["sessions"],
                arm["reseeds"],
                arm["forks"],
                arm["paused_left"],
                arm["client_bytes"],
                arm["model_requests"],
                arm["model_bytes"],
                arm["model_bytes_per_request"],
                arm["model_bytes_last"],
                arm["model_bytes_new"],
                arm["seconds"],
            ]
        )
    report(
        "token_burn_habits",
        [table],
        {
            "params": {
                "requests": REQUESTS,
                "script": SCRIPT,
                "date_changes_at": DATE_CHANGES_AT,
                "kept_tool_results": KEEP_RESULTS,
                "before": BEFORE,
                "env": ENV,
            },
            "arms": arms,
        },
        NOTES,
    )


NOTES = (
    f"Each arm is a fresh gateway on the same mock model, sent the same {REQUESTS} requests: {SCRIPT.count('p')} "
    f"plain turns, {SCRIPT.count('t')} tool turns (a tool call, then its result: 2 requests), {SCRIPT.count('h')} "
    "heartbeat polls answered `HEARTBEAT_OK` and pruned afterwards, 1 side request never kept; every request ends "
    "with an OpenClaw internal-context message, tool-call ids come back rewritten, tool results older than the "
    f"last {KEEP_RESULTS} tool turns are cleared, the system prompt's date line changes at request "
    f"{DATE_CHANGES_AT}. *before*: the gateway at the parent of commit 64b7024 (affinity by exact bytes, built-in "
    "tools declared on compat sessions); *after, built-in tools declared*: this tree with `x-cc-builtin-tools: all`, "
    "the affinity change alone; *after*: this tree as configured by default.",
    "*sessions*: CC API sessions the 30 requests created; *re-seeds*: model requests carrying a flattened "
    "`<conversation_history>`; *forks*: sessions branched from another at a shared turn end (`compat_forked` in the "
    "gateway log); *paused left*: sessions still waiting for tool results at the end, each holding a live slot "
    "until `CC_API_TOOL_TIMEOUT`. *client B*: request bodies the client sent; *model B*: every `POST /v1/messages` "
    "body the mock received (Claude Code's own side requests included), compact JSON; ~tokens ≈ bytes / 4. *not a "
    "repeat*: model bytes left once the leading blocks (tools, system blocks, message blocks) identical to the "
    "previous main model request's are taken out, which a prompt cache could serve (see the token burn notes); "
    "a re-seeded transcript is one new block every time. *client wall time*: the 30 requests, end to end.",
)
