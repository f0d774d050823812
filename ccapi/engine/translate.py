"""SDK messages → the SPEC's event vocabulary, plus the turn's outcome.

One ``TurnTranslator`` per turn: it remembers which tool uses belong to Claude Code's
own tools (so their results become ``agent_tool.completed``) and what the result said.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from claude_agent_sdk.types import (
    AssistantMessage,
    Message,
    RateLimitEvent,
    RateLimitInfo,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from ccapi.engine.bridge import STRUCTURED_OUTPUT_TOOL, plain_tool_name
from ccapi.events import EventType
from ccapi.limits import iso

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")

_AUTH_HINT = (
    "Claude rejected the credentials (or found none). Set ANTHROPIC_API_KEY in the gateway's "
    "environment, log in once with `claude login`, or point CC_API_UPSTREAM_URL at a compatible API; "
    "`cc-api run --mock-model` tries the API without an account."
)


@dataclass(frozen=True)
class EngineEvent:
    type: EventType
    data: dict[str, Any]


@dataclass(frozen=True)
class TurnOutcome:
    status: str
    output: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None
    duration_ms: int | None = None
    """The turn's time as the gateway ran it (``TurnRun``), Claude Code's start included."""
    stop_reason: str | None = None
    error: dict[str, Any] | None = None  # type, message, and at times reason and the upstream status
    round_usage: dict[str, int] = field(default_factory=dict)
    structured_output: Any = None
    """The answer checked against the session's output schema (``EngineSpec.output_schema``), if it has one."""


def content_block(block: Any) -> dict[str, Any] | None:
    """An SDK content block as the Anthropic-shaped dict clients already know."""
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ThinkingBlock):
        return {"type": "thinking", "thinking": block.thinking}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    if isinstance(block, ToolResultBlock):
        return {
            "type": "tool_result",
            "tool_use_id": block.tool_use_id,
            "content": block.content,
            "is_error": bool(block.is_error),
        }
    return None


def budget_exceeded(cap: float | None = None) -> dict[str, str]:
    """The error of a turn stopped by the session's spending cap, saying how to go on."""
    reached = f" (${cap:g})" if cap is not None else ""
    return {
        "type": "budget_exceeded",
        "message": f"the session reached its spending cap max_budget_usd{reached}; raise it with "
        'PATCH /api/sessions/{id} {"max_budget_usd": ...} to continue',
    }


def rate_limit_data(info: RateLimitInfo) -> dict[str, Any]:
    """A ``rate_limit`` event's data from the SDK's ``RateLimitInfo``: the window it is about,
    plus what Claude Code said about every other window in the same response."""
    raw = info.raw or {}
    windows = {
        name: {
            "utilization": w.get("utilization"),
            "resets_at": iso(w.get("resetsAt")),
            **({"status": w["status"]} if w.get("status") else {}),
        }
        for name, w in (raw.get("unifiedWindows") or {}).items()
        if isinstance(w, dict)
    }
    window = info.rate_limit_type or "unknown"
    utilization = info.utilization
    if utilization is None:
        utilization = (windows.get(window) or {}).get("utilization")
    data: dict[str, Any] = {
        "window": window,
        "status": info.status,
        "utilization": utilization,
        "resets_at": iso(info.resets_at),
    }
    if info.overage_status is not None:
        data["overage_status"] = info.overage_status
        data["overage_resets_at"] = iso(info.overage_resets_at)
    if info.overage_disabled_reason:
        data["overage_disabled_reason"] = info.overage_disabled_reason
    if windows:
        data["windows"] = windows
    return data


def normalise_usage(usage: dict[str, Any] | None) -> dict[str, int]:
    usage = usage or {}
    return {key: int(usage.get(key) or 0) for key in USAGE_KEYS}


class TurnTranslator:
    def __init__(self, prior_cost_usd: float = 0.0) -> None:
        self._prior_cost_usd = prior_cost_usd
        self._agent_tools: set[str] = set()
        self._answers: set[str] = set()  # the ``StructuredOutput`` calls among them
        self._client_calls: list[dict[str, Any]] = []
        self._output: list[tuple[str, dict[str, Any]]] = []  # (message id, text or thinking block)
        self._streaming: str | None = None  # the main thread's last message, until the conversation goes on from it
        self._finished = False  # it has its stop reason (``message_delta``): not cut off (Claude Code closes one too)
        self._assistant_error: tuple[str, str] | None = None
        self._round: list[dict[str, int]] = []
        self._calls: list[dict[str, int]] = []  # every model call of the turn (``_count``), the rounds' included
        self._rejection: dict[str, Any] | None = None
        self.sdk_session_id: str | None = None
        self.result: ResultMessage | None = None

    def feed(self, message: Message) -> list[EngineEvent]:
        if isinstance(message, StreamEvent):
            return self._stream_event(message)
        if isinstance(message, AssistantMessage):
            return self._assistant(message)
        if isinstance(message, UserMessage):
            return self._user(message)
        if isinstance(message, SystemMessage):
            return self._system(message)
        if isinstance(message, RateLimitEvent):
            data = rate_limit_data(message.rate_limit_info)
            if data["status"] == "rejected":
                self._rejection = data
            return [EngineEvent(EventType.RATE_LIMIT, data)]
        if isinstance(message, ResultMessage):
            self.result = message
            self.sdk_session_id = message.session_id or self.sdk_session_id
        return []

    def is_own_tool(self, tool_use_id: str) -> bool:
        """Whether a call seen so far is one of Claude Code's own tools (or a session MCP server's), not the
        client's: told by the name Claude Code gave it, since a client tool may be named ``Bash`` too. The answer
        to an output schema (``StructuredOutput``) is not: it does no work, as a text answer does none."""
        return tool_use_id in self._agent_tools and tool_use_id not in self._answers

    def _stream_event(self, message: StreamEvent) -> list[EngineEvent]:
        event = message.event
        if message.parent_tool_use_id:
            return []
        self._count(event)
        kind = event.get("type")
        if kind == "message_start":
            self._streaming, self._finished = (event.get("message") or {}).get("id"), False
        elif kind == "message_delta":
            self._finished = True
        if kind == "message_stop" and self._client_calls:
            # every tool_use block of the message has been seen: the client owes results
            calls, self._client_calls = self._client_calls, []
            return [
                EngineEvent(EventType.TURN_REQUIRES_ACTION, {"tool_calls": calls, "round_usage": self.round_usage()})
            ]
        if event.get("type") != "content_block_delta":
            return []
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta":
            return [EngineEvent(EventType.MESSAGE_DELTA, {"index": event.get("index", 0), "text": delta["text"]})]
        if delta.get("type") == "thinking_delta":
            return [
                EngineEvent(EventType.THINKING_DELTA, {"index": event.get("index", 0), "thinking": delta["thinking"]})
            ]
        return []

    def _count(self, event: dict[str, Any]) -> None:
        """Usage per model call, from the stream: ``message_start`` has the prompt's, ``message_delta`` the output's."""
        if event.get("type") == "message_start":
            call = normalise_usage((event.get("message") or {}).get("usage"))
            self._round.append(call)
            self._calls.append(call)
        elif event.get("type") == "message_delta" and self._round and event.get("usage"):
            self._round[-1]["output_tokens"] = int(event["usage"].get("output_tokens") or 0)

    def round_usage(self) -> dict[str, int]:
        """The model calls since the turn began or last paused: the prompt the last one read
        (its uncached, cache-read and cache-written parts), and all the output they wrote.
        What a compat client's request cost, reported the same whether the reply ends the
        turn or calls a tool."""
        calls, self._round = self._round, []
        if not calls:
            return {}
        return {**calls[-1], "output_tokens": sum(call["output_tokens"] for call in calls)}

    def _assistant(self, message: AssistantMessage) -> list[EngineEvent]:
        if message.error:
            text = " ".join(b.text for b in message.content if isinstance(b, TextBlock))
            self._assistant_error = (message.error, text)
            return []
        blocks = [b for b in (content_block(block) for block in message.content) if b is not None]
        for block in blocks:
            if block["type"] == "tool_use":
                block["name"] = plain_tool_name(block["name"]) or block["name"]
        if message.parent_tool_use_id is None:
            self._output.extend((message.message_id or "", b) for b in blocks if b["type"] in ("text", "thinking"))
        events = [
            EngineEvent(
                EventType.MESSAGE_COMPLETED,
                {
                    "message_id": message.message_id,
                    "model": message.model,
                    "content": blocks,
                    "parent_tool_use_id": message.parent_tool_use_id,
                    "uuid": message.uuid,
                },
            )
        ]
        for use in message.content:
            if not isinstance(use, ToolUseBlock):
                continue
            client_name = plain_tool_name(use.name)
            if client_name is not None and message.parent_tool_use_id is None:
                call = {"tool_call_id": use.id, "name": client_name, "input": use.input}
                self._client_calls.append(call)
                events.append(EngineEvent(EventType.TOOL_CALL, call))
            else:
                self._agent_tools.add(use.id)
                if use.name == STRUCTURED_OUTPUT_TOOL:
                    self._answers.add(use.id)
                events.append(
                    EngineEvent(
                        EventType.AGENT_TOOL_STARTED,
                        {
                            "tool_use_id": use.id,
                            "name": use.name,
                            "input": use.input,
                        },
                    )
                )
        return events

    def _user(self, message: UserMessage) -> list[EngineEvent]:
        """Results of Claude Code's own tools; on the main thread with the message's ``uuid``: a fork point where
        the result ends the turn (a ``StructuredOutput`` call's)."""
        main = message.parent_tool_use_id is None
        if main:
            self._streaming = None  # the conversation went on from that message: it is not the one an api_retry drops
        if isinstance(message.content, str):
            return []
        return [
            EngineEvent(
                EventType.AGENT_TOOL_COMPLETED,
                {
                    "tool_use_id": block.tool_use_id,
                    "content": block.content,
                    "is_error": bool(block.is_error),
                    **({"uuid": message.uuid} if main and message.uuid else {}),
                },
            )
            for block in message.content
            if isinstance(block, ToolResultBlock) and block.tool_use_id in self._agent_tools
        ]

    def _system(self, message: SystemMessage) -> list[EngineEvent]:
        if message.subtype == "init":
            self.sdk_session_id = message.data.get("session_id") or self.sdk_session_id
        elif message.subtype == "api_retry":
            # the request is sent again from scratch: a message it had begun to answer is dropped (when a cut comes
            # after a block had finished, Claude Code instead keeps what survived and asks the model to resume)
            data = message.data
            cut, self._streaming = (None if self._finished else self._streaming), None
            return [
                EngineEvent(
                    EventType.TURN_RETRYING,
                    {
                        "attempt": data.get("attempt"),
                        "max_retries": data.get("max_retries"),
                        "retry_delay_ms": data.get("retry_delay_ms"),
                        "error_status": data.get("error_status"),
                        "error": data.get("error"),
                        **(self._discard(cut) if cut is not None else {}),
                    },
                )
            ]
        elif message.subtype == "compact_boundary":
            meta = message.data.get("compact_metadata") or {}
            return [
                EngineEvent(
                    EventType.SESSION_COMPACTED,
                    {
                        "trigger": meta.get("trigger"),
                        "pre_tokens": meta.get("pre_tokens"),
                        "post_tokens": meta.get("post_tokens"),
                    },
                )
            ]
        return []

    def _discard(self, message_id: str) -> dict[str, str]:
        """A message cut off mid-stream, which Claude Code drops and asks for again: what it said leaves the turn's
        output, and clients are told which to drop."""
        self._output = [(owner, block) for owner, block in self._output if owner != message_id]
        return {"discarded_message_id": message_id}

    def outcome(self) -> TurnOutcome:
        result = self.result
        if result is None:
            return TurnOutcome(
                "failed",
                [block for _, block in self._output],
                error={"type": "engine_error", "message": "Claude Code ended the turn without a result"},
            )
        ended = functools.partial(
            TurnOutcome,
            output=[block for _, block in self._output],
            usage=self._usage(result),
            round_usage=self.round_usage(),
            cost_usd=self.turn_cost_usd,
            stop_reason=self._stop_reason(result),
            structured_output=result.structured_output,
        )
        if result.terminal_reason in ("aborted_streaming", "aborted_tools"):
            return ended("interrupted")
        if not result.is_error and self._assistant_error is None:
            return ended("completed")
        return ended("failed", error=self._error(result))

    @property
    def turn_cost_usd(self) -> float | None:
        """This turn's cost: the process-wide running total minus what earlier turns reported."""
        if self.result is None or self.result.total_cost_usd is None:
            return None
        return round(max(self.result.total_cost_usd - self._prior_cost_usd, 0.0), 8)

    def _usage(self, result: ResultMessage) -> dict[str, int]:
        """The turn's tokens, summed over its model calls as Claude Code sums them. An interrupted turn's result says
        none although its calls were made (and billed): then the calls counted from the stream are summed."""
        usage = normalise_usage(result.usage)
        if any(usage.values()) or not self._calls:
            return usage
        return {key: sum(call[key] for call in self._calls) for key in USAGE_KEYS}

    def _stop_reason(self, result: ResultMessage) -> str | None:
        """Why the model stopped. A reply cut at the output limit that Claude Code gave up resuming ends the turn
        with Claude Code's own error message, whose stop reason (``stop_sequence``) is not the model's."""
        if self._assistant_error is not None and self._assistant_error[0] == "max_output_tokens":
            return "max_tokens"
        return result.stop_reason

    def _rate_limited(self, text: str, rejection: dict[str, Any]) -> dict[str, Any]:
        """Claude refused the turn for a spent usage window: the window and its reset."""
        return {
            "type": "rate_limited",
            "message": text or "Claude's usage limit was reached",
            "window": rejection.get("window"),
            "resets_at": rejection.get("resets_at"),
        }

    def _error(self, result: ResultMessage) -> dict[str, Any]:
        # Only a subscription window reports a rejection; an API key's 429 stays an upstream error.
        if self._assistant_error is not None and self._assistant_error[0] == "rate_limit" and self._rejection:
            return self._rate_limited(self._assistant_error[1], self._rejection)
        if self._assistant_error is not None:
            kind, text = self._assistant_error
            message = _AUTH_HINT + f" (Claude Code said: {text})" if kind == "authentication_failed" else text
            error: dict[str, Any] = {"type": "upstream_error", "message": message or kind, "reason": kind}
            if result.api_error_status:
                error["status"] = result.api_error_status
            return error
        if result.subtype == "error_max_budget_usd":
            return budget_exceeded()
        if result.subtype == "error_max_turns":
            return {
                "type": "max_turns",
                "message": f"the turn stopped after {result.num_turns} model turns "
                "(max_turns); send another turn to continue",
            }
        if result.api_error_status:
            return {"type": "upstream_error", "message": result.result or f"upstream HTTP {result.api_error_status}"}
        detail = "; ".join(result.errors or []) or result.result or result.subtype
        return {"type": "engine_error", "message": detail}
