"""A scriptable mock of the Anthropic Messages API, served on loopback.

The real Claude Code CLI (and therefore the Claude Agent SDK and the whole gateway) can run against it offline:
point ``ANTHROPIC_BASE_URL`` at :attr:`MockModel.url` and give a dummy ``ANTHROPIC_API_KEY``. Tests script the
model's replies (text, thinking, tool calls, errors, slow or broken streams) and assert on the recorded requests.

It is built on the standard library's threading HTTP server rather than Sanic on purpose: tests run the gateway's
Sanic app in the same process, and two Sanic apps would fight over the event loop and signal handlers.

Two rules worth knowing:

* **Side requests.** Besides the conversation itself, Claude Code sends helper requests to the model (for example
  a session title when non-essential traffic is allowed). They must not eat the replies a test scripted for the
  conversation. A ``POST /v1/messages`` request is a *main* request exactly when its ``tools`` list is non-empty:
  Claude Code sends its tool definitions with every conversation request (compaction included) and none with a
  helper request; a model-only session's conversation requests, without tools, still ask for thinking. Side
  requests get a default answer and never touch the script queue. See
  :func:`is_side_request` and :func:`side_reply`.
* **Tool names.** The CLI exposes SDK MCP tools to the model as ``mcp__<server>__<name>``. A test may script a
  :class:`ToolUse` with the plain ``<name>``: when exactly one tool the request offers ends with ``__<name>``, the
  reply uses that full name. See :func:`resolve_tool_name`.

Run it as a process for client integration tests: ``python -m ccapi.testing.mock_model --port 8765``. Then script
replies with ``POST /_mock/script`` (a JSON list of reply objects with :class:`Reply`'s field names, nested
``tool_uses`` and ``error`` objects included), drop unused ones with ``DELETE /_mock/script``, read requests with
``GET /_mock/requests`` and forget them with ``DELETE /_mock/requests``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import signal
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import orjson

from ccapi.hosts import is_ip_address

__all__ = [
    "SIDE_REPLY_TEXT",
    "STRUCTURED_OUTPUT_TOOL",
    "MockError",
    "MockModel",
    "RecordedRequest",
    "Reply",
    "ToolUse",
    "is_side_request",
    "last_user_text",
    "rate_limit_headers",
    "resolve_tool_name",
]

SIDE_REPLY_TEXT = "mock side reply"
"""What a side request (see :func:`is_side_request`) is answered with, unless it asks for JSON."""

WORDS_PER_DELTA = 3
"""Text is streamed a few words per delta so tests can observe streaming."""

JSON_CHARS_PER_DELTA = 16
"""Tool input JSON is streamed in slices of this many characters, like the real API's partial JSON."""

DEFAULT_MODEL = "claude-sonnet-4-5"

SHUTDOWN_POLL_INTERVAL = 0.02
"""How often the serving thread checks for :meth:`MockModel.stop`; the stdlib's 0.5 s would slow every test."""

MCP_TOOL_NAME = re.compile(r"\bmcp__[A-Za-z0-9_-]+")
"""An MCP tool name as Claude Code spells it: ``mcp__<server>__<tool>``."""

SYSTEM_REMINDER = "<system-reminder>"

STRUCTURED_OUTPUT_TOOL = "StructuredOutput"
"""The tool Claude Code offers the model when its session has an output schema (``--json-schema``, the SDK's
``output_format``): the schema is the tool's input, and calling it answers the turn (checked with Claude Code
2.1.332)."""

TEXT_ONLY = "CRITICAL: Respond with TEXT ONLY"
"""How Claude Code's compaction request begins its instructions (checked with Claude Code 2.1.332)."""

UNIFIED_WINDOWS = {"five_hour": "5h", "seven_day": "7d", "overage": "overage"}
"""The windows of Anthropic's unified rate-limit headers, and the abbreviation each header name uses."""


@dataclass(frozen=True)
class ToolUse:
    """One ``tool_use`` block the mock model emits.

    ``name`` may be the plain tool name; see :func:`resolve_tool_name`. ``id`` defaults to a fresh
    ``toolu_mock_...`` id so tests only set it when they need to refer to it.
    """

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: f"toolu_mock_{uuid.uuid4().hex[:20]}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToolUse:
        """Build from the JSON shape the control endpoint accepts (same field names)."""
        return cls(**data)


@dataclass(frozen=True)
class MockError:
    """An HTTP error answer in the Messages API error envelope.

    ``type`` is an Anthropic error type (``api_error``, ``overloaded_error``, ``rate_limit_error``,
    ``invalid_request_error``, ...). ``retry_after`` (seconds) becomes the ``retry-after`` header; Claude Code
    waits at least that long before retrying, but never less than its own back-off (about 0.5 s, then doubling).
    """

    status: int = 500
    type: str = "api_error"
    message: str = "mock error"
    retry_after: float | None = None

    def envelope(self) -> dict[str, Any]:
        """The JSON body the real API sends with an error status."""
        return {"type": "error", "error": {"type": self.type, "message": self.message}}


@dataclass(frozen=True)
class Reply:
    """One scripted model answer.

    Content blocks are emitted in the order thinking, text, tool uses. ``stop_reason`` defaults to ``tool_use``
    when there are tool uses and to ``end_turn`` otherwise.

    Timing and faults: ``first_byte_delay`` sleeps before the response starts; ``chunk_delay`` sleeps between
    stream events; ``drop_after_chunks`` closes the connection after that many stream events (a dropped
    connection mid-stream; a non-streamed request is dropped unanswered); ``malformed`` answers 200 with an
    unparseable event stream (or JSON body).

    ``headers`` are extra response headers, sent with the answer or its error: for example Anthropic's unified
    rate-limit headers (see :func:`rate_limit_headers`), which Claude Code reads on subscription credentials.
    """

    text: str | None = None
    thinking: str | None = None
    tool_uses: tuple[ToolUse, ...] = ()
    error: MockError | None = None
    stop_reason: str | None = None
    first_byte_delay: float = 0
    chunk_delay: float = 0
    drop_after_chunks: int | None = None
    malformed: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reply:
        """Build from the JSON shape the control endpoint accepts (same field names, nested objects)."""
        fields = dict(data)
        fields["tool_uses"] = tuple(ToolUse.from_dict(t) for t in fields.get("tool_uses") or ())
        if fields.get("error") is not None:
            fields["error"] = MockError(**fields["error"])
        return cls(**fields)

    @property
    def effective_stop_reason(self) -> str:
        """The stop reason sent to the client."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if self.tool_uses else "end_turn"


@dataclass(frozen=True)
class RecordedRequest:
    """One request the mock received (control endpoints are not recorded).

    ``headers`` has lower-case names. ``body`` is the parsed JSON body, or ``None`` when there was none.
    ``side`` says whether a ``POST /v1/messages`` was classified as a side request (see :func:`is_side_request`).
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any
    side: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON shape served by ``GET /_mock/requests``."""
        return asdict(self)


def rate_limit_headers(
    status: str,
    resets_at: int,
    *,
    window: str = "five_hour",
    utilization: float | None = None,
    others: Mapping[str, tuple[float, int]] | None = None,
) -> dict[str, str]:
    """Anthropic's unified rate-limit headers for a subscription, as Claude Code reads them (checked with
    Claude Code 2.1.332, which reads them only on subscription credentials such as ``CLAUDE_CODE_OAUTH_TOKEN``).

    ``status`` is ``allowed``, ``allowed_warning`` or ``rejected`` (send ``rejected`` with a 429), ``window``
    the representative claim, ``resets_at`` Unix seconds. Claude Code reads a plain ``allowed_warning`` status as
    ``allowed``; it warns when the window's ``-surpassed-threshold`` header is set, which a warning here sends.
    ``others`` adds other windows' ``(utilization, resets_at)``, reported alongside.
    """
    headers = {
        "anthropic-ratelimit-unified-status": status,
        "anthropic-ratelimit-unified-reset": str(resets_at),
        "anthropic-ratelimit-unified-representative-claim": window,
    }
    windows = {window: (utilization, resets_at), **(others or {})}
    for name, (used, reset) in windows.items():
        prefix = f"anthropic-ratelimit-unified-{UNIFIED_WINDOWS[name]}"
        headers[f"{prefix}-reset"] = str(reset)
        if used is not None:
            headers[f"{prefix}-utilization"] = f"{used:g}"
    if status == "allowed_warning" and utilization is not None:
        headers[f"anthropic-ratelimit-unified-{UNIFIED_WINDOWS[window]}-surpassed-threshold"] = f"{utilization:g}"
    return headers


def is_side_request(body: Mapping[str, Any]) -> bool:
    """Whether a Messages request is a Claude Code helper request rather than a conversation request.

    Claude Code sends its tool definitions with every conversation request (about 58 KB with the system prompt),
    compaction included, while its helper requests carry ``"tools": []`` or none. A model-only session
    (``ClaudeAgentOptions(tools=[])`` and no client tools) sends ``"tools": []`` on its conversation requests
    too; those still ask for extended thinking, which helper requests (short, structured answers) do not.
    Checked with Claude Code 2.1.332: its session-title request uses the session's own model, ``max_tokens``
    and streaming, so model names and token limits cannot tell it apart; tools, thinking and the structured
    output format can.
    """
    if body.get("tools"):
        return False
    structured = bool((body.get("output_config") or {}).get("format"))
    return structured or not body.get("thinking")


def offered_tool_names(body: Mapping[str, Any]) -> set[str]:
    """Names of the tools a request lets the model call.

    Besides ``tools``, this includes MCP tool names mentioned in the conversation: with tool search on (Claude
    Code's default), MCP tools are deferred and only announced by name in a ``<system-reminder>``, yet the CLI
    still runs them when the model calls them by that name.
    """
    names = {str(tool.get("name", "")) for tool in body.get("tools") or ()}
    for text in message_texts(body):
        names.update(MCP_TOOL_NAME.findall(text))
    return names


def message_texts(body: Mapping[str, Any]) -> Iterator[str]:
    """Every top-level text of the request's messages: string contents and ``text`` blocks."""
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, str):
            yield content
        else:
            yield from (block.get("text", "") for block in content or () if block.get("type") == "text")


def resolve_tool_name(name: str, body: Mapping[str, Any]) -> str:
    """Map a plain tool name to the full name the request offers.

    The CLI declares SDK MCP tools as ``mcp__<server>__<name>``; tests should not have to know the server name.
    An exact match wins; otherwise the one offered tool ending with ``__<name>``; otherwise ``name`` unchanged.
    """
    names = offered_tool_names(body)
    if name in names:
        return name
    suffixed = [n for n in names if n.endswith(f"__{name}")]
    return suffixed[0] if len(suffixed) == 1 else name


def last_user_text(body: Mapping[str, Any]) -> str:
    """Text of the last text block of the last user message (empty when there is none).

    The default reply echoes it so tests can tell which input a reply answered. Claude Code's own
    ``<system-reminder>`` blocks are skipped: they are not what the user typed.
    """
    users = [m for m in body.get("messages") or () if m.get("role") == "user"]
    if not users:
        return ""
    content = users[-1].get("content")
    if isinstance(content, str):
        return content
    texts = [b.get("text", "") for b in content or () if b.get("type") == "text"]
    typed = [t for t in texts if not t.lstrip().startswith(SYSTEM_REMINDER)]
    return typed[-1] if typed else ""


def estimate_tokens(size: int) -> int:
    """A rough token count for ``size`` bytes of text: about four bytes a token, at least one."""
    return max(1, size // 4)


def split_words(text: str, words: int = WORDS_PER_DELTA) -> list[str]:
    """Split text into pieces of a few words each, keeping all whitespace so the pieces join back exactly."""
    tokens = [t for t in re.split(r"(?<=\s)(?=\S)", text) if t]
    return ["".join(tokens[i : i + words]) for i in range(0, len(tokens), words)]


def split_chars(text: str, size: int = JSON_CHARS_PER_DELTA) -> list[str]:
    """Split text into fixed-size slices."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def schema_example(schema: Mapping[str, Any]) -> Any:
    """A minimal value matching a simple JSON schema: required properties only, placeholder leaves, a ``const`` or
    an enum's first value as it is (Claude Code refuses a placeholder there), the first of several types."""
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "")
    if isinstance(kind, list):
        kind = kind[0] if kind else ""
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: schema_example(properties.get(name) or {}) for name in schema.get("required") or ()}
    return {"string": "mock", "integer": 0, "number": 0, "boolean": False, "array": []}.get(kind)


def side_reply(body: Mapping[str, Any]) -> Reply:
    """The answer to a side request: short text, or JSON matching the requested schema.

    Claude Code's title request asks for structured output (``output_config.format`` of type ``json_schema``)
    and would log a parse failure on plain text.
    """
    output_format = (body.get("output_config") or {}).get("format") or {}
    if output_format.get("type") == "json_schema":
        return Reply(text=orjson.dumps(schema_example(output_format.get("schema") or {})).decode())
    return Reply(text=SIDE_REPLY_TEXT)


def default_reply(body: Mapping[str, Any]) -> Reply:
    """The answer to a main request when nothing is scripted: echo the last user text, or, when the request offers
    Claude Code's :data:`STRUCTURED_OUTPUT_TOOL` (its session has an output schema), call it with a minimal value of
    that schema, as a model must to answer such a session; but not where Claude Code asks for text only (its
    compaction summary, which offers the session's tools all the same)."""
    text = last_user_text(body)
    for tool in () if text.startswith(TEXT_ONLY) else body.get("tools") or ():
        if tool.get("name") == STRUCTURED_OUTPUT_TOOL:
            return Reply(tool_uses=(ToolUse(STRUCTURED_OUTPUT_TOOL, schema_example(tool.get("input_schema") or {})),))
    return Reply(text=f"mock reply: {text}")


def build_message(reply: Reply, body: Mapping[str, Any], input_tokens: int) -> dict[str, Any]:
    """The complete Message object for ``reply``; streaming derives its events from it."""
    content: list[dict[str, Any]] = []
    if reply.thinking is not None:
        signature = hashlib.sha256(reply.thinking.encode()).hexdigest()
        content.append({"type": "thinking", "thinking": reply.thinking, "signature": f"mock-sig-{signature}"})
    if reply.text is not None:
        content.append({"type": "text", "text": reply.text})
    for tool_use in reply.tool_uses:
        name = resolve_tool_name(tool_use.name, body)
        content.append({"type": "tool_use", "id": tool_use.id, "name": name, "input": dict(tool_use.input)})
    return {
        "id": f"msg_mock_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or DEFAULT_MODEL,
        "content": content,
        "stop_reason": reply.effective_stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": estimate_tokens(len(orjson.dumps(content))),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    }


def block_events(index: int, block: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The ``content_block_start``/``_delta``/``_stop`` events that stream one content block."""
    kind = block["type"]
    if kind == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in split_words(block["text"])]
    elif kind == "thinking":
        start = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in split_words(block["thinking"])]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    else:
        start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        partial = orjson.dumps(block["input"]).decode()
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in split_chars(partial)]
    yield {"type": "content_block_start", "index": index, "content_block": start}
    for delta in deltas:
        yield {"type": "content_block_delta", "index": index, "delta": delta}
    yield {"type": "content_block_stop", "index": index}


def stream_events(message: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The full SSE event sequence of a streamed message, in the real API's order."""
    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    yield {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}}
    yield {"type": "ping"}
    for index, block in enumerate(message["content"]):
        yield from block_events(index, block)
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
        "usage": {"output_tokens": usage["output_tokens"]},
    }
    yield {"type": "message_stop"}


def sse_frame(event: Mapping[str, Any]) -> bytes:
    """One Server-Sent Events frame, named after the event type as the real API does."""
    return b"event: " + event["type"].encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


class _Server(ThreadingHTTPServer):
    """The HTTP server, carrying a reference to its :class:`MockModel` for the handlers."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], mock: MockModel) -> None:
        super().__init__(address, _Handler)
        self.mock = mock


class _Handler(BaseHTTPRequestHandler):
    """Routes one request. Every response closes its connection so that stopping the mock leaves no idle
    keep-alive threads behind; streamed bodies use chunked encoding so a dropped stream is detectably truncated."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default: test output should not be flooded with access logs."""
        if self.server.mock.log_requests:
            sys.stderr.write(f"mock model: {format % args}\n")

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        raw = self._read_body()
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            self._send_json(400, MockError(400, "invalid_request_error", "body is not valid JSON").envelope())
            return
        try:
            if url.path.startswith("/_mock/"):
                if (refusal := self._browser_refusal(raw)) is not None:
                    self._send_json(*refusal)
                    return
                self._control(url.path, body)
            else:
                self._api(url.path, url.query, body, estimate_tokens(len(raw)))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing left to answer

    def _browser_refusal(self, raw: bytes) -> tuple[int, dict[str, str]] | None:
        """The control routes answer scripts and tests, never a web page: a page the user visits could otherwise
        script a tool call that the gateway's Claude Code then runs (a ``text/plain`` POST needs no preflight), or,
        rebinding a name to loopback, read every prompt the mock recorded. A request a browser marks as a page's
        (``Origin``, a ``Sec-Fetch-Site`` other than ``none``), one whose ``Host`` is no loopback name or address,
        and a body that is not JSON are refused."""
        site = self.headers.get("sec-fetch-site")
        if self.headers.get("origin") is not None or site not in (None, "none", "same-origin"):
            return 403, {"error": "the mock's control routes answer scripts and tests, not web pages"}
        host = urlsplit(f"//{self.headers.get('host') or ''}").hostname or ""
        if host != "localhost" and not host.endswith(".localhost") and not is_ip_address(host):
            return 403, {"error": f"Host {host[:100]!r} does not name this loopback mock"}
        kind = (self.headers.get("content-type") or "").partition(";")[0].strip().lower()
        if raw and kind != "application/json":
            return 415, {"error": "send the body as application/json"}
        return None

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _api(self, path: str, query: str, body: Any, input_tokens: int) -> None:
        mock = self.server.mock
        is_messages = self.command == "POST" and path == "/v1/messages"
        side = is_messages and is_side_request(body or {})
        headers = {name.lower(): value for name, value in self.headers.items()}
        mock._record(RecordedRequest(self.command, path, query, headers, body, side))
        if is_messages:
            self._answer_messages(mock._next_reply(body or {}, side), body or {}, input_tokens)
        elif self.command == "POST" and path == "/v1/messages/count_tokens":
            self._send_json(200, {"input_tokens": input_tokens})
        else:
            self._send_json(404, MockError(404, "not_found_error", f"no route {self.command} {path}").envelope())

    def _control(self, path: str, body: Any) -> None:
        mock = self.server.mock
        route = (self.command, path)
        if route == ("POST", "/_mock/script"):
            try:
                replies = [Reply.from_dict(r) for r in body or ()]
            except (TypeError, ValueError, AttributeError) as exc:
                self._send_json(400, {"error": f"invalid reply: {exc}"})
                return
            mock.script(*replies)
            self._send_json(200, {"pending": mock.pending})
        elif route == ("DELETE", "/_mock/script"):
            mock.clear_script()
            self._send_json(200, {"pending": 0})
        elif route == ("GET", "/_mock/requests"):
            self._send_json(200, [r.to_dict() for r in mock.requests])
        elif route == ("DELETE", "/_mock/requests"):
            mock.clear()
            self._send_json(200, {"requests": 0})
        else:
            self._send_json(404, {"error": f"no control route {self.command} {path}"})

    def _answer_messages(self, reply: Reply, body: Mapping[str, Any], input_tokens: int) -> None:
        time.sleep(reply.first_byte_delay)
        streamed = bool(body.get("stream"))
        if reply.error is not None:
            self._send_error_reply(reply.error, reply.headers)
        elif reply.malformed:
            self._send_malformed(streamed)
        elif streamed:
            message = build_message(reply, body, input_tokens)
            self._stream([sse_frame(event) for event in stream_events(message)], reply)
        elif reply.drop_after_chunks is not None:
            self.close_connection = True  # a non-streamed answer can only be dropped before it starts
        else:
            self._send_json(200, build_message(reply, body, input_tokens), reply.headers)

    def _send_malformed(self, streamed: bool) -> None:
        """Answer 200 with a body no client can parse: broken SSE frames, or broken JSON."""
        if streamed:
            self._stream([b"event: message_start\ndata: {not json\n\n", b"data: \xff garbage\n\n"], Reply())
            return
        data = b"{not json"
        self._start_response(200, "application/json", {"content-length": str(len(data))})
        self.wfile.write(data)

    def _send_error_reply(self, error: MockError, headers: Mapping[str, str]) -> None:
        extra = {} if error.retry_after is None else {"retry-after": f"{error.retry_after:g}"}
        self._send_json(error.status, error.envelope(), {**extra, **headers})

    def _stream(self, frames: list[bytes], reply: Reply) -> None:
        """Send SSE frames as HTTP chunks, sleeping between them and dropping the connection when scripted."""
        self._start_response(200, "text/event-stream; charset=utf-8", {"transfer-encoding": "chunked", **reply.headers})
        for count, frame in enumerate(frames):
            if reply.drop_after_chunks is not None and count >= reply.drop_after_chunks:
                self.close_connection = True
                return  # no terminating chunk: the client sees a truncated body
            if count and reply.chunk_delay:
                time.sleep(reply.chunk_delay)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(frame), frame))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _send_json(self, status: int, payload: Any, extra_headers: Mapping[str, str] | None = None) -> None:
        data = orjson.dumps(payload)
        headers = {"content-length": str(len(data)), **(extra_headers or {})}
        self._start_response(status, "application/json", headers)
        self.wfile.write(data)

    def _start_response(self, status: int, content_type: str, headers: Mapping[str, str]) -> None:
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("request-id", f"req_mock_{uuid.uuid4().hex[:24]}")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("connection", "close")
        self.end_headers()


class MockModel:
    """A mock Anthropic Messages API on a background thread.

    >>> with MockModel() as mock:
    ...     mock.script(Reply(text="hello"))
    ...     # point ANTHROPIC_BASE_URL at mock.url, run the client, then inspect mock.message_requests()

    Scripted replies are consumed first-in first-out by main ``POST /v1/messages`` requests only; when the queue is
    empty a main request gets ``mock reply: <last user text>``. Side requests never consume the queue. Every
    request the client retries consumes a reply of its own: Claude Code retries 5xx/429/529 answers (up to
    ``CLAUDE_CODE_MAX_RETRIES``, default 10) and a failed stream, and answers a 400 by retrying with fewer betas.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False) -> None:
        self.host = host
        self.port = port
        self.log_requests = log_requests
        self._lock = threading.Lock()
        self._queue: deque[Reply] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL to hand to clients as ``ANTHROPIC_BASE_URL``; available once started."""
        if self._server is None:
            raise RuntimeError("MockModel is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> MockModel:
        """Bind the port and serve on a daemon thread; returns self for chaining."""
        if self._server is not None:
            raise RuntimeError("MockModel is already started")
        self._server = _Server((self.host, self.port), self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": SHUTDOWN_POLL_INTERVAL},
            name="mock-model",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port. Responses still streaming finish on their daemon threads."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MockModel:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def script(self, *replies: Reply) -> None:
        """Queue replies for the next main Messages requests, in order."""
        with self._lock:
            self._queue.extend(replies)

    def clear_script(self) -> None:
        """Forget replies not consumed yet."""
        with self._lock:
            self._queue.clear()

    @property
    def pending(self) -> int:
        """How many scripted replies are still queued."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every recorded request, oldest first."""
        with self._lock:
            return list(self._requests)

    def message_requests(self, *, include_side: bool = True) -> list[RecordedRequest]:
        """Recorded ``POST /v1/messages`` requests, oldest first; ``include_side=False`` keeps main requests only."""
        messages = [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]
        return [r for r in messages if include_side or not r.side]

    def clear(self) -> None:
        """Forget recorded requests."""
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _next_reply(self, body: Mapping[str, Any], side: bool) -> Reply:
        if side:
            return side_reply(body)
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        return default_reply(body)


def main(argv: list[str] | None = None) -> None:
    """Serve the mock until SIGINT or SIGTERM, for client developers who test against it from another process."""
    parser = argparse.ArgumentParser(description="Mock Anthropic Messages API for offline tests of CC API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    args = parser.parse_args(argv)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    with MockModel(args.host, args.port, log_requests=not args.quiet) as mock:
        print(f"mock model listening on {mock.url}", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
