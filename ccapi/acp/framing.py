"""The client's lines, checked before the ACP library reads them.

The library takes any JSON value for a message: a line that is valid JSON but not an object (``5``, ``[]``) stopped
the agent with a traceback, and ``null`` read as the end of input. A line that is not JSON at all it only logs, so
the request that line was meant to be waits for ever. Here each gets its JSON-RPC error (``-32700`` parse error,
``-32600`` invalid request, ``id`` null as the spec has it) and the agent reads on; so does an object that is
neither a request, a notification nor a response (no ``method``, or not a string, and no ``result`` or ``error``),
which the library dropped unanswered or called an unknown method.

Notifications: ``$/cancel_request`` of a running ``session/prompt`` (ACP's per-request cancellation) is that
prompt's ``session/cancel``, so the prompt answers ``cancelled``; one of any other request (a prompt already
answered among them: its session may run a newer prompt, which it must not stop), and any notification the agent
has no handler for, is ignored, as JSON-RPC has it (the library logged a traceback for each). A prompt counts as
answered once the library has written its response (it tells its observers).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from acp.connection import StreamDirection, StreamEvent, StreamObserver

PARSE_ERROR: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32700, "message": "Parse error: not JSON"},
}
NOT_AN_OBJECT = "Invalid Request: a message must be a JSON object"
NO_METHOD = "Invalid Request: a message needs a method (a string), or a result or error"

PROMPT, CANCEL, CANCEL_REQUEST = "session/prompt", "session/cancel", "$/cancel_request"
RECENT_PROMPTS = 64
"""How many prompt request ids a ``$/cancel_request`` may name: the running ones are the last few."""


def checked_lines(
    source: asyncio.StreamReader, replies: asyncio.StreamWriter, limit: int
) -> tuple[asyncio.StreamReader, asyncio.Task[None], StreamObserver]:
    """A reader of ``source``'s messages for the library, the task that feeds it, and the observer of the library's
    connection that tells it which prompts are answered; the lines that are no message are answered on
    ``replies``."""
    checked = asyncio.StreamReader(limit=limit)
    prompts: dict[str | int, str] = {}

    def answered(event: StreamEvent) -> None:
        """A response the library wrote (no ``method``) ends its prompt: a ``$/cancel_request`` naming it from then
        on is ignored."""
        request_id = event.message.get("id")
        answer = event.direction == StreamDirection.OUTGOING and "method" not in event.message
        if answer and isinstance(request_id, str | int):
            prompts.pop(request_id, None)

    async def pump() -> None:
        try:
            while line := await _line(source):
                message = _message(line)
                if isinstance(message, Refusal):
                    replies.write(json.dumps(message.reply).encode() + b"\n")
                elif message is not None and (passed := _passed(message, line, prompts)) is not None:
                    checked.feed_data(passed)
        finally:
            checked.feed_eof()

    return checked, asyncio.get_running_loop().create_task(pump(), name="acp-checked-lines"), answered


async def _line(source: asyncio.StreamReader) -> bytes:
    """One whole line, however long (past the reader's limit in pieces), or what is left at the end."""
    pieces: list[bytes] = []
    try:
        while True:
            try:
                pieces.append(await source.readuntil(b"\n"))
                return b"".join(pieces)
            except asyncio.LimitOverrunError as exc:
                pieces.append(await source.readexactly(exc.consumed))
    except asyncio.IncompleteReadError as exc:
        return b"".join(pieces) + exc.partial


@dataclass(frozen=True)
class Refusal:
    """The error answer of a line that is no JSON-RPC message."""

    reply: dict[str, Any]


def _invalid(request_id: Any, message: str) -> Refusal:
    known = request_id if isinstance(request_id, str | int) else None
    return Refusal({"jsonrpc": "2.0", "id": known, "error": {"code": -32600, "message": message}})


def _message(line: bytes) -> dict[str, Any] | Refusal | None:
    """The line's message, its refusal, or ``None`` for a blank line."""
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return Refusal(PARSE_ERROR)
    if not isinstance(message, dict):
        return _invalid(None, NOT_AN_OBJECT)
    if not isinstance(message.get("method"), str) and "result" not in message and "error" not in message:
        return _invalid(message.get("id"), NO_METHOD)
    return message


def _passed(message: dict[str, Any], line: bytes, prompts: dict[str | int, str]) -> bytes | None:
    """What the library reads of the message (``None``: nothing, it is ignored); ``prompts`` maps the recent
    prompts' request ids to their sessions."""
    method, params = message.get("method"), message.get("params")
    if "id" in message or not isinstance(method, str):  # a request or a response: the library answers or takes it
        if method == PROMPT and isinstance(params, dict):
            _remember(prompts, message["id"], params.get("sessionId"))
        return line
    if method == CANCEL_REQUEST:
        cancelled = params.get("requestId") if isinstance(params, dict) else None
        if not isinstance(cancelled, str | int) or cancelled not in prompts:
            return None
        cancel = {"jsonrpc": "2.0", "method": CANCEL, "params": {"sessionId": prompts.pop(cancelled)}}
        return json.dumps(cancel).encode() + b"\n"
    return line if method == CANCEL or method.startswith("_") else None


def _remember(prompts: dict[str | int, str], request_id: Any, session_id: Any) -> None:
    if isinstance(request_id, str | int) and isinstance(session_id, str):
        prompts[request_id] = session_id
        while len(prompts) > RECENT_PROMPTS:
            del prompts[next(iter(prompts))]
