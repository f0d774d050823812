"""The client's lines, checked before the ACP library reads them.

The library takes any JSON value for a message: a line that is valid JSON but not an object (``5``, ``[]``) stopped
the agent with a traceback, and ``null`` read as the end of input. A line that is not JSON at all it only logs, so
the request that line was meant to be waits for ever. Here each gets its JSON-RPC error (``-32700`` parse error,
``-32600`` invalid request, ``id`` null as the spec has it) and the agent reads on.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

PARSE_ERROR: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32700, "message": "Parse error: not JSON"},
}
INVALID_REQUEST: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": None,
    "error": {"code": -32600, "message": "Invalid Request: a message must be a JSON object"},
}


def checked_lines(
    source: asyncio.StreamReader, replies: asyncio.StreamWriter, limit: int
) -> tuple[asyncio.StreamReader, asyncio.Task[None]]:
    """A reader of ``source``'s lines that are JSON objects (or blank), and the task that feeds it; the other
    lines are answered on ``replies``."""
    checked = asyncio.StreamReader(limit=limit)

    async def pump() -> None:
        try:
            while line := await _line(source):
                refusal = _refusal(line)
                if refusal is None:
                    checked.feed_data(line)
                else:
                    replies.write(json.dumps(refusal).encode() + b"\n")
        finally:
            checked.feed_eof()

    return checked, asyncio.get_running_loop().create_task(pump(), name="acp-checked-lines")


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


def _refusal(line: bytes) -> dict[str, Any] | None:
    if not line.strip():
        return None
    try:
        message = json.loads(line)
    except ValueError:
        return PARSE_ERROR
    return None if isinstance(message, dict) else INVALID_REQUEST
