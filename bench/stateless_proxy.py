"""The stateless baseline: an OpenAI-chat-style endpoint over the same Claude Agent SDK.

This is what a stateless OpenAI-compatible proxy over the SDK has to do, kept honest on purpose:

* the client sends the whole transcript and every tool definition on every call (``POST /v1/chat/completions``,
  OpenAI ``messages`` and ``tools``);
* the proxy keeps nothing between calls, so each call starts a fresh Claude Code process (``ClaudeSDKClient``)
  with the gateway's own option builder, declares the call's tools through an SDK MCP server exactly as CC API does
  (the model sees identical tool definitions), and flattens the transcript into one prompt — the SDK takes no
  message history except through its own resume, which needs server-side state;
* one model round per call: a reply with tool calls ends the call and is returned as OpenAI ``tool_calls``; the
  client runs the tools and sends their results in the next call's transcript.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
from claude_agent_sdk import AssistantMessage, ClaudeSDKClient, TextBlock, ToolUseBlock

from bench.common import sdk_options
from ccapi.engine.bridge import ToolOutcome, plain_tool_name

PATH = "/v1/chat/completions"


def flatten(messages: Sequence[Mapping[str, Any]]) -> str:
    """The non-system transcript as one prompt, one labelled paragraph per message."""
    parts: list[str] = []
    for message in messages:
        role = message["role"]
        if role == "user":
            parts.append(f"User: {message['content']}")
        elif role == "assistant":
            if message.get("content"):
                parts.append(f"Assistant: {message['content']}")
            parts.extend(
                f"Assistant called tool {call['function']['name']} with {call['function']['arguments']} "
                f"(call id {call['id']})"
                for call in message.get("tool_calls") or ()
            )
        elif role == "tool":
            parts.append(f"Tool result for call {message['tool_call_id']}: {message['content']}")
    return "\n\n".join(parts)


def anthropic_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool in the shape the gateway's MCP bridge takes."""
    function = tool["function"]
    return {
        "name": function["name"],
        "description": function.get("description", ""),
        "input_schema": function["parameters"],
    }


async def _deferred(name: str, arguments: dict[str, Any]) -> ToolOutcome:
    """Claude Code starts the MCP call as soon as the model asks for it; the proxy has already handed the call
    to its client, so whatever this returns is never seen by the model (the process is stopped first)."""
    return ToolOutcome("deferred to the client")


async def complete(body: Mapping[str, Any], mock_url: str, cwd: Path) -> dict[str, Any]:
    """One stateless chat completion: fresh process, flattened transcript, one model round."""
    messages = body["messages"]
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    options = sdk_options(
        mock_url,
        cwd,
        system_prompt=system,
        tools=[anthropic_tool(t) for t in body.get("tools", ())],
        resolve_tool=_deferred,
        max_turns=1,
    )
    texts: list[str] = []
    calls: list[ToolUseBlock] = []
    async with ClaudeSDKClient(options) as client:
        await client.query(flatten(messages))
        async for message in client.receive_response():
            if isinstance(message, AssistantMessage):
                texts += [block.text for block in message.content if isinstance(block, TextBlock)]
                calls += [block for block in message.content if isinstance(block, ToolUseBlock)]
                if calls:
                    break
    return _completion(body.get("model", ""), "".join(texts), calls)


def _completion(model: str, text: str, calls: list[ToolUseBlock]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {
                    "name": plain_tool_name(call.name) or call.name,
                    "arguments": orjson.dumps(call.input).decode(),
                },
            }
            for call in calls
        ]
    return {
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
    }


class StatelessProxy:
    """The baseline endpoint on a loopback port, served from a background thread."""

    def __init__(self, mock_url: str, cwd: Path) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != PATH:
                    self.send_error(404)
                    return
                body = orjson.loads(self.rfile.read(int(self.headers["content-length"])))
                payload = orjson.dumps(asyncio.run(complete(body, proxy.mock_url, proxy.cwd)))
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the bench prints tables, not access logs."""

        self.mock_url = mock_url
        self.cwd = cwd
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="stateless-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{PATH}"

    def __enter__(self) -> StatelessProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
