"""Token burn: the same 30-turn agent conversation through CC API and through a stateless baseline.

Every arm drives one scripted conversation (5 client tools, tool calls every few turns) against one mock model:

* **native**: CC API sessions. Tools are declared once at session creation; each turn posts only its new input,
  and tool results go to ``POST /tool-results``.
* **stateless**: an OpenAI-chat-style client loop that re-sends the whole transcript and every tool definition on
  each call to ``bench.stateless_proxy``, a stateless wrapper around the same SDK (see its docstring).
* **compat**: the same client loop pointed at CC API's own ``/v1/chat/completions``, which maps the replayed
  conversation back onto a warm session: what an unmodified OpenAI-format client gets from CC API.

Per turn it reports the request-body bytes the client sent, the bytes (and ~tokens, bytes/4) of every
``POST /v1/messages`` that reached the model, the share of each model request that repeats the previous one
(see :class:`ModelSide`), and the client's wall time.

It then runs the compat scenario with the real clients' habits, before and after the compat-affinity work
(``bench.habits``, ``bench/results/token_burn_habits.*``), and the long day (compression, memory flush, heartbeats,
a split message, a date change: ``bench.habits_longday``, ``bench/results/token_burn_longday.*``) next to the
pre-affinity gateway, this tree's arm saved under ``--label`` (default: this tree and its commit).

    python -m bench.token_burn [--habits | --longday] [--before-src PATH] [--label NAME] | --model-only
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import orjson

from bench.common import (
    MODEL,
    Progress,
    Table,
    machine_info,
    offline_environ,
    ratio,
    report,
    running_gateway,
    say,
    scratch_home,
)
from bench.stateless_proxy import StatelessProxy
from ccapi.testing import MockModel, RecordedRequest, Reply, ToolUse

TURNS = 30
FLAT_LIMIT = 1.5
SYSTEM_PROMPT = (
    "You are the operations assistant of a small online shop. Use the tools when you need facts, "
    "keep answers short, and say which tool a fact came from."
)


def _tool(name: str, description: str, properties: dict[str, Any], required: Sequence[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "input_schema": {"type": "object", "properties": properties, "required": list(required)},
    }


TOOLS = [
    _tool(
        "get_weather",
        "Current weather and a three-day forecast for a city, used to plan deliveries.",
        {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        },
        ["city"],
    ),
    _tool(
        "search_docs",
        "Full-text search over the shop's policies, runbooks and product documentation.",
        {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": 20}},
        ["query"],
    ),
    _tool(
        "read_order",
        "Read one order: items, totals, payment state, shipping address and history.",
        {"order_id": {"type": "string", "pattern": "^ord_[0-9]+$"}},
        ["order_id"],
    ),
    _tool(
        "run_sql",
        "Run a read-only SQL query against the analytics replica and return up to 50 rows.",
        {"query": {"type": "string"}, "timeout_s": {"type": "number"}},
        ["query"],
    ),
    _tool(
        "send_email",
        "Send a plain-text email to a customer from the support address.",
        {"to": {"type": "string", "format": "email"}, "subject": {"type": "string"}, "body": {"type": "string"}},
        ["to", "subject", "body"],
    ),
]

#: Every third turn calls a tool, and so does the first, so turn 1 and turn 30 are the same kind of turn and the
#: flatness check compares like with like; turns 12 and 24 call two tools at once.
TOOL_TURNS = frozenset({1, *range(3, TURNS + 1, 3)})
PARALLEL_TURNS = frozenset({12, 24})


def tool_input(name: str, n: int) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {
        "get_weather": {"city": ("Oslo", "Lima", "Osaka", "Lagos", "Quebec")[n % 5], "unit": "celsius"},
        "search_docs": {"query": f"refund policy for damaged parcels, case {n}", "limit": 5},
        "read_order": {"order_id": f"ord_{4100 + n}"},
        "run_sql": {"query": f"SELECT sku, count(*) FROM returns WHERE week = {n} GROUP BY sku"},
        "send_email": {
            "to": f"customer{n}@example.com",
            "subject": f"Your order ord_{4100 + n}",
            "body": "Your replacement ships tomorrow. Sorry for the trouble.",
        },
    }
    return inputs[name]


def tool_output(name: str, arguments: Mapping[str, Any]) -> str:
    """A deterministic tool result of a realistic size (~300 bytes)."""
    return (
        f"{name} OK for {orjson.dumps(dict(arguments)).decode()}: 3 records matched. The newest entry was "
        "updated this morning; two older entries are archived. No errors, no warnings, and nothing else "
        "changed since the previous check."
    )


@dataclass(frozen=True)
class TurnPlan:
    number: int
    user: str
    calls: tuple[ToolUse, ...]
    answer: str

    def replies(self) -> list[Reply]:
        """What the mock answers during this turn, in order: the tool calls (if any), then the answer."""
        return ([Reply(tool_uses=self.calls)] if self.calls else []) + [Reply(text=self.answer)]


def plan(n: int) -> TurnPlan:
    names = [TOOLS[n % len(TOOLS)]["name"]]
    if n in PARALLEL_TURNS:
        names.append(TOOLS[(n + 1) % len(TOOLS)]["name"])
    calls = tuple(ToolUse(name, tool_input(name, n)) for name in names) if n in TOOL_TURNS else ()
    user = (
        f"Turn {n}: a customer wrote in again about a late or damaged parcel. Check what you need and tell me "
        f"in two sentences what we should do next (ticket {7000 + n})."
    )
    answer = (
        f"For ticket {7000 + n}: the parcel left the warehouse two days ago and the carrier marked it delayed "
        "by weather. I suggest we apologise, offer free express shipping on the replacement, and check again "
        "tomorrow morning; nothing in the policy blocks a refund if the customer prefers one. "
        "The tool results above are the source for these facts."
    )
    return TurnPlan(n, user, calls, answer)


# -- what reached the model -------------------------------------------------------
def serialized(body: Mapping[str, Any]) -> bytes:
    """A request in prompt-cache order: tools, then system, then messages."""
    return orjson.dumps([body.get("tools"), body.get("system"), body.get("messages")])


def cache_blocks(body: Mapping[str, Any]) -> list[bytes]:
    """The same request as the units a prompt cache matches: each tool, each system block, each message content
    block (with its role). ``cache_control`` markers are dropped: they mark where a prefix ends, not its content."""
    system = body.get("system") or []
    blocks = [*(body.get("tools") or ()), *([system] if isinstance(system, str) else system)]
    for message in body.get("messages") or ():
        content = message["content"]
        blocks += [{"role": message["role"], **_block(b)} for b in ([content] if isinstance(content, str) else content)]
    return [orjson.dumps(_block(b)) for b in blocks]


def _block(block: Any) -> dict[str, Any]:
    if isinstance(block, str):
        return {"type": "text", "text": block}
    return {k: v for k, v in block.items() if k != "cache_control"}


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix, by binary search over C-level slice comparisons."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        mid = (low + high + 1) // 2
        if a[:mid] == b[:mid]:
            low = mid
        else:
            high = mid - 1
    return low


def reused_blocks(previous: list[bytes], current: list[bytes]) -> int:
    """Bytes of the leading blocks of ``current`` identical to ``previous``'s, in order."""
    reused = 0
    for before, now in zip(previous, current, strict=False):
        if before != now:
            break
        reused += len(now)
    return reused


@dataclass
class ModelSide:
    requests: int = 0
    body_bytes: int = 0
    compared_bytes: int = 0
    prefix_bytes: int = 0
    compared_block_bytes: int = 0
    reused_block_bytes: int = 0

    def prefix_share(self) -> float:
        """Byte prefix repeated from the previous model request, over the bytes compared."""
        return ratio(self.prefix_bytes, self.compared_bytes)

    def block_share(self) -> float:
        """Bytes in leading whole blocks repeated from the previous model request, over the bytes compared."""
        return ratio(self.reused_block_bytes, self.compared_block_bytes)


class ModelMeter:
    """Turns the mock's recorded requests into per-turn model-side numbers for one conversation."""

    def __init__(self, mock: MockModel) -> None:
        self._mock = mock
        self._seen = len(mock.requests)
        self._previous: tuple[bytes, list[bytes]] | None = None

    def take(self) -> ModelSide:
        """Numbers for the requests recorded since the last call."""
        requests = self._mock.requests
        fresh: list[RecordedRequest] = requests[self._seen :]
        self._seen = len(requests)
        side = ModelSide()
        for request in fresh:
            if request.method != "POST" or request.path != "/v1/messages":
                continue
            side.requests += 1
            side.body_bytes += len(orjson.dumps(request.body))
            if not request.side:
                self._compare(side, serialized(request.body), cache_blocks(request.body))
        return side

    def _compare(self, side: ModelSide, flat: bytes, blocks: list[bytes]) -> None:
        if self._previous is not None:
            flat_before, blocks_before = self._previous
            side.compared_bytes += len(flat)
            side.prefix_bytes += common_prefix(flat_before, flat)
            side.compared_block_bytes += sum(map(len, blocks))
            side.reused_block_bytes += reused_blocks(blocks_before, blocks)
        self._previous = flat, blocks


@dataclass
class TurnResult:
    turn: int
    tool_calls: int
    client_requests: int
    client_bytes: int
    seconds: float
    model: ModelSide


# -- the clients --------------------------------------------------------------------
def post(
    client: httpx.Client, url: str, body: Any, headers: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], int]:
    """POST compact JSON; returns the reply and the request-body bytes sent."""
    data = orjson.dumps(body)
    response = client.post(url, content=data, headers={"content-type": "application/json", **(headers or {})})
    response.raise_for_status()
    return response.json(), len(data)


def run_native(
    client: httpx.Client, mock: MockModel, plans: list[TurnPlan], builtin_tools: str = "all"
) -> tuple[int, list[TurnResult]]:
    """Session created once with the tools; each turn sends only its input, then any tool results."""
    session, setup_bytes = post(
        client,
        "/api/sessions",
        {"model": MODEL, "system_prompt": SYSTEM_PROMPT, "tools": TOOLS, "builtin_tools": builtin_tools},
    )
    meter = ModelMeter(mock)
    results = []
    progress = Progress(f"token_burn: native (builtin_tools {builtin_tools}), turns", len(plans))
    for turn in plans:
        mock.script(*turn.replies())
        began = time.perf_counter()
        reply, sent = post(client, f"/api/sessions/{session['id']}/turns", {"input": turn.user})
        requests = 1
        while reply["status"] == "requires_action":
            answers = [
                {"tool_call_id": c["tool_call_id"], "content": tool_output(c["name"], c["input"])}
                for c in reply["tool_calls"]
            ]
            reply, size = post(client, f"/api/sessions/{session['id']}/tool-results", {"results": answers})
            sent += size
            requests += 1
        if reply["status"] != "completed":
            raise RuntimeError(f"CC API turn {turn.number} ended {reply['status']}: {reply.get('error')}")
        results.append(
            TurnResult(turn.number, len(turn.calls), requests, sent, time.perf_counter() - began, meter.take())
        )
        progress.step()
    return setup_bytes, results


def run_chat_loop(
    client: httpx.Client, url: str, mock: MockModel, plans: list[TurnPlan], headers: Mapping[str, str] | None = None
) -> list[TurnResult]:
    """OpenAI-chat loop: every call carries the whole transcript and every tool definition."""
    tools = [
        {
            "type": "function",
            "function": {"name": t["name"], "description": t["description"], "parameters": t["input_schema"]},
        }
        for t in TOOLS
    ]
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM_PROMPT}]
    meter = ModelMeter(mock)
    results = []
    progress = Progress(f"token_burn: chat loop against {url}, turns", len(plans))
    for turn in plans:
        mock.script(*turn.replies())
        messages.append({"role": "user", "content": turn.user})
        began = time.perf_counter()
        sent = requests = 0
        while True:
            reply, size = post(client, url, {"model": MODEL, "messages": messages, "tools": tools}, headers)
            sent += size
            requests += 1
            message = reply["choices"][0]["message"]
            messages.append({k: message[k] for k in ("role", "content", "tool_calls") if message.get(k)})
            if not message.get("tool_calls"):
                break
            for call in message["tool_calls"]:
                output = tool_output(call["function"]["name"], orjson.loads(call["function"]["arguments"]))
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": output})
        results.append(
            TurnResult(turn.number, len(turn.calls), requests, sent, time.perf_counter() - began, meter.take())
        )
        progress.step()
    return results


# -- report -------------------------------------------------------------------------
Arms = dict[str, list[TurnResult]]


def summarise(setup_bytes: int, arms: Arms) -> dict[str, Any]:
    native, stateless = arms["native"], arms["stateless"]
    client_totals = {
        arm: sum(r.client_bytes for r in rows) + (setup_bytes if arm == "native" else 0) for arm, rows in arms.items()
    }
    return {
        "client_bytes_ratio_at_turn_30": ratio(stateless[-1].client_bytes, native[-1].client_bytes),
        "model_input_ratio_at_turn_30": ratio(stateless[-1].model.body_bytes, native[-1].model.body_bytes),
        "client_bytes_ratio_total": ratio(client_totals["stateless"], client_totals["native"]),
        "model_input_ratio_total": ratio(_model_total(stateless), _model_total(native)),
        "wall_time_ratio_total": ratio(_seconds(stateless), _seconds(native)),
        "turn30_over_turn1_client_bytes": {
            arm: ratio(rows[-1].client_bytes, rows[0].client_bytes) for arm, rows in arms.items()
        },
        "native_client_bytes_flat": ratio(native[-1].client_bytes, native[0].client_bytes) <= FLAT_LIMIT,
        "block_prefix_reuse_at_turn_30": {arm: rows[-1].model.block_share() for arm, rows in arms.items()},
        "client_bytes_total": client_totals,
        "model_bytes_total": {arm: _model_total(rows) for arm, rows in arms.items()},
        "seconds_total": {arm: _seconds(rows) for arm, rows in arms.items()},
    }


def _model_total(rows: list[TurnResult]) -> int:
    return sum(r.model.body_bytes for r in rows)


def _seconds(rows: list[TurnResult]) -> float:
    return sum(r.seconds for r in rows)


def headline(summary: dict[str, Any], arms: Arms) -> Table:
    table = Table("Headline at turn 30", ["measure", *arms, "stateless / native"])
    last = {arm: rows[-1] for arm, rows in arms.items()}
    growth = summary["turn30_over_turn1_client_bytes"]
    flat = "flat" if summary["native_client_bytes_flat"] else "NOT flat"
    table.rows += [
        [
            "client bytes sent, turn 30",
            *(r.client_bytes for r in last.values()),
            f"{summary['client_bytes_ratio_at_turn_30']:.1f}x",
        ],
        [
            "client bytes, turn 30 / turn 1",
            f"{growth['native']:.2f}x ({flat}: limit {FLAT_LIMIT}x)",
            f"{growth['compat']:.1f}x",
            f"{growth['stateless']:.1f}x",
            None,
        ],
        [
            "model input bytes, turn 30",
            *(r.model.body_bytes for r in last.values()),
            f"{summary['model_input_ratio_at_turn_30']:.2f}x",
        ],
        ["model input ~tokens, turn 30", *(r.model.body_bytes // 4 for r in last.values()), None],
        ["block prefix reuse, turn 30", *(_pct(r.model.block_share()) for r in last.values()), None],
        [
            "client bytes, whole conversation",
            *summary["client_bytes_total"].values(),
            f"{summary['client_bytes_ratio_total']:.1f}x",
        ],
        [
            "model input bytes, whole conversation",
            *summary["model_bytes_total"].values(),
            f"{summary['model_input_ratio_total']:.2f}x",
        ],
        [
            "client wall time, whole conversation (s)",
            *summary["seconds_total"].values(),
            f"{summary['wall_time_ratio_total']:.1f}x",
        ],
    ]
    return table


def client_table(setup_bytes: int, arms: Arms) -> Table:
    names = list(arms)
    table = Table(
        "Client side, per turn",
        [
            "turn",
            "tool calls",
            "requests",
            *(f"client B: {a}" for a in names),
            "stateless / native",
            *(f"ms: {a}" for a in names),
        ],
    )
    table.rows.append(["setup", None, "1 / 0 / 0", setup_bytes, 0, 0, None, None, None, None])
    for rows in zip(*arms.values(), strict=True):
        by_arm = dict(zip(names, rows, strict=True))
        table.rows.append(
            [
                rows[0].turn,
                rows[0].tool_calls,
                " / ".join(str(r.client_requests) for r in rows),
                *(r.client_bytes for r in rows),
                ratio(by_arm["stateless"].client_bytes, by_arm["native"].client_bytes),
                *(r.seconds * 1000 for r in rows),
            ]
        )
    totals = {
        arm: sum(r.client_bytes for r in rows) + (setup_bytes if arm == "native" else 0) for arm, rows in arms.items()
    }
    requests = [sum(r.client_requests for r in rows) + (arm == "native") for arm, rows in arms.items()]
    table.rows.append(
        [
            "total",
            sum(r.tool_calls for r in arms["native"]),
            " / ".join(map(str, requests)),
            *totals.values(),
            ratio(totals["stateless"], totals["native"]),
            *(_seconds(rows) * 1000 for rows in arms.values()),
        ]
    )
    return table


def model_table(arms: Arms) -> Table:
    names = list(arms)
    table = Table(
        "Model side, per turn",
        [
            "turn",
            "requests",
            *(f"model B (~tok): {a}" for a in names),
            *(f"byte prefix: {a}" for a in names),
            *(f"block prefix: {a}" for a in names),
        ],
    )
    for rows in zip(*arms.values(), strict=True):
        table.rows.append(
            [
                rows[0].turn,
                " / ".join(str(r.model.requests) for r in rows),
                *(_bytes_and_tokens(r.model.body_bytes) for r in rows),
                *(_pct(r.model.prefix_share()) for r in rows),
                *(_pct(r.model.block_share()) for r in rows),
            ]
        )
    table.rows.append(
        [
            "total",
            " / ".join(str(sum(r.model.requests for r in rows)) for rows in arms.values()),
            *(_bytes_and_tokens(_model_total(rows)) for rows in arms.values()),
            *([None] * (2 * len(names))),
        ]
    )
    return table


def model_only_table(arms: Arms) -> Table:
    """Model input per request with Claude Code's built-in tools (``all``) and without (``none``)."""
    table = Table(
        "Model-only sessions: model input per request",
        [
            "arm",
            "model B / request, turn 1",
            "model B / request, turn 30",
            "client B / request, turn 30",
            "model / client, turn 30",
        ],
    )
    for arm, rows in arms.items():
        first, last = rows[0], rows[-1]
        client = ratio(last.client_bytes, last.client_requests) if arm.startswith("compat") else None
        model = ratio(last.model.body_bytes, last.model.requests)
        table.rows.append(
            [
                arm,
                round(ratio(first.model.body_bytes, first.model.requests)),
                round(model),
                round(client) if client else None,
                f"{model / client:.2f}x" if client else None,
            ]
        )
    return table


def _bytes_and_tokens(size: int) -> str:
    return f"{size:,} (~{size // 4:,})"


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:.1f}%"


NOTES = (
    "*native*: CC API sessions (`/api/sessions`): tools declared once, each turn sends only its new input, tool "
    "results go to `/tool-results`. *compat*: the same stateless OpenAI-chat loop as *stateless*, pointed at CC "
    "API's own `/v1/chat/completions`, which maps a replayed conversation back onto its warm session. "
    "*stateless*: that loop against `bench/stateless_proxy.py`, a stateless OpenAI-style wrapper around the same "
    "SDK (a fresh Claude Code per call, the transcript flattened into the prompt, the tools declared per call).",
    "*client B*: request-body bytes the client sent during the turn (compact JSON, HTTP headers excluded); the "
    "*setup* row is native's one `POST /api/sessions` that declares the 5 tools. *requests*: HTTP requests the "
    "client made (native / compat / stateless). *ms*: the client's wall time for the turn, tool round trips "
    "included.",
    "*model B*: the bodies of every `POST /v1/messages` the mock recorded during the turn, re-serialised as compact "
    "JSON; *~tok* = bytes / 4, a rough estimate, not a tokenizer count.",
    "*Prefix reuse* compares each model request with the previous model request of the same conversation, both "
    "laid out in prompt-cache order (tools, system, messages), over the turn's requests that have a predecessor. "
    "*byte prefix*: longest common prefix of the two serialisations. *block prefix*: the leading whole blocks "
    "(each tool, system block, message content block; `cache_control` markers ignored) that are identical — what "
    "a prompt cache, which matches whole blocks, could reuse.",
)


def model_only() -> None:
    """``python -m bench.token_burn --model-only``: the same conversation, native and compat, with
    ``builtin_tools`` all and none (no stateless arm)."""
    plans = [plan(n) for n in range(1, TURNS + 1)]
    with MockModel() as mock, scratch_home() as home, offline_environ(home), running_gateway(mock.url) as gateway:
        arms: Arms = {
            "native, all": run_native(gateway.client, mock, plans, "all")[1],
            "native, none": run_native(gateway.client, mock, plans, "none")[1],
            "compat, all": run_chat_loop(
                gateway.client, "/v1/chat/completions", mock, plans, {"x-cc-builtin-tools": "all"}
            ),
            "compat, none": run_chat_loop(gateway.client, "/v1/chat/completions", mock, plans),
        }
    report(
        "token_burn_model_only",
        [model_only_table(arms)],
        {
            "params": {"turns": TURNS, "tools": len(TOOLS)},
            "turns": {arm: [asdict(r) for r in rows] for arm, rows in arms.items()},
        },
        NOTES[1:3],
    )


def main() -> None:
    from bench.habits import habits  # here: bench.habits reuses this module's prefix measures
    from bench.habits_longday import longday

    args = sys.argv[1:]
    before_src = args[args.index("--before-src") + 1] if "--before-src" in args else None
    label = args[args.index("--label") + 1] if "--label" in args else f"this tree ({_commit()})"
    if "--model-only" in args:
        model_only()
        return
    if "--longday" in args:
        longday(label, before_src)
        return
    if "--habits" in args:
        habits(before_src)
        longday(label, before_src)
        return
    plans = [plan(n) for n in range(1, TURNS + 1)]
    say(f"token_burn: one {TURNS}-turn conversation, three ways (native, compat, stateless); starting the gateway")
    with MockModel() as mock, scratch_home() as home, offline_environ(home):
        with running_gateway(mock.url) as gateway:
            setup_bytes, native = run_native(gateway.client, mock, plans)
            compat = run_chat_loop(
                gateway.client, "/v1/chat/completions", mock, plans, {"x-cc-builtin-tools": "all"}
            )  # as before model-only compat sessions
        say("token_burn: starting the stateless proxy (a fresh Claude Code per call: the slow arm)")
        with StatelessProxy(mock.url, home) as proxy, httpx.Client(timeout=120) as client:
            stateless = run_chat_loop(client, proxy.url, mock, plans)
    arms: Arms = {"native": native, "compat": compat, "stateless": stateless}
    summary = summarise(setup_bytes, arms)
    report(
        "token_burn",
        [headline(summary, arms), client_table(setup_bytes, arms), model_table(arms)],
        {
            "params": {
                "turns": TURNS,
                "tools": len(TOOLS),
                "tool_turns": sorted(TOOL_TURNS),
                "parallel_tool_turns": sorted(PARALLEL_TURNS),
            },
            "summary": summary,
            "setup_client_bytes": {"native": setup_bytes},
            "turns": {arm: [asdict(r) for r in rows] for arm, rows in arms.items()},
        },
        NOTES,
    )
    habits(before_src)
    longday(label, before_src)


def _commit() -> str:
    return str(machine_info()["git_commit"])


if __name__ == "__main__":
    main()
