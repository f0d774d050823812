"""A tiny stdio MCP server for tests, in plain JSON-RPC (no MCP library, whose API changes between major
versions): one tool, ``note``, that appends its text to the file named by ``NOTE_FILE`` (so a test sees
that it really ran) and answers ``noted: <text>``."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

NOTE_TOOL = {
    "name": "note",
    "description": "Write a note down.",
    "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}


def answer(method: str, params: dict[str, Any]) -> dict[str, Any]:
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "notes", "version": "1"},
        }
    if method == "tools/list":
        return {"tools": [NOTE_TOOL]}
    if method == "tools/call":
        text = params["arguments"]["text"]
        with open(os.environ["NOTE_FILE"], "a") as notes:
            notes.write(text + "\n")
        return {"content": [{"type": "text", "text": f"noted: {text}"}]}
    return {}


def main() -> None:
    for line in sys.stdin:
        message = json.loads(line)
        if "id" not in message:
            continue  # a notification (initialized, cancelled)
        result = answer(message.get("method", ""), message.get("params") or {})
        sys.stdout.write(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
