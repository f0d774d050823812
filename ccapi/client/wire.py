"""What goes on the wire, the same for ``Client`` and ``AsyncClient``: request bodies and headers, error answers,
the SSE parser and tool results; the two clients differ only in their I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import httpx
import orjson

from ccapi.client.shapes import Approver, CCAPIError, Decision, PermissionRequest, Session, ToolCall, ToolResult
from ccapi.events import Event


def headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def session_body(
    model: str | None,
    system_prompt: str | None,
    tools: Iterable[Mapping[str, Any]] | None,
    metadata: Mapping[str, Any] | None,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    body = {
        "model": model,
        "system_prompt": system_prompt,
        "tools": list(tools) if tools is not None else None,
        "metadata": dict(metadata) if metadata is not None else None,
        **extra,
    }
    return {key: value for key, value in body.items() if value is not None}


def interrupt_body(turn_id: str | None) -> dict[str, Any] | None:
    return {"turn_id": turn_id} if turn_id else None


def session_page(body: dict[str, Any]) -> tuple[list[Session], str | None]:
    return [Session.from_json(item) for item in body["data"]], body.get("next_after")


def page_params(limit: int, after: str | None) -> dict[str, str | int]:
    return {"limit": limit, "after": after} if after else {"limit": limit}


def results_body(results: Iterable[ToolResult]) -> dict[str, Any]:
    return {"results": [result.to_json() for result in results]}


def decisions_body(decisions: Iterable[Decision], background: bool = False) -> dict[str, Any]:
    return {"decisions": [decision.to_json() for decision in decisions], **background_flag(background)}


def turn_body(input: str | list[dict[str, Any]], background: bool, queue: bool) -> dict[str, Any]:
    return {"input": input, **background_flag(background), **({"queue": True} if queue else {})}


def background_flag(background: bool) -> dict[str, Any]:
    """``background``: the gateway answers at once (status ``running``); the events tell the rest."""
    return {"background": True} if background else {}


def decide(approve: Approver, request: PermissionRequest) -> Decision:
    answer = approve(request)
    if isinstance(answer, Decision):
        return answer
    return Decision(request.request_id, bool(answer))


WAITING = ("requires_action", "requires_approval")


def idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}


def checked(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            raise CCAPIError(response.status_code, "http_error", response.text[:500]) from None
        raise CCAPIError(
            response.status_code, error.get("type", "error"), error.get("message", ""), error.get("details")
        )
    return response.json()


class SSEParser:
    """Server-Sent Events lines → native events (comments and keep-alives skipped)."""

    def __init__(self) -> None:
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if line == "":
            data, self._data = self._data, []
            return Event.from_dict(orjson.loads("\n".join(data))) if data else None
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
        return None


def stream_headers(last_seq: int) -> dict[str, str]:
    return {"Accept": "text/event-stream", "Last-Event-ID": str(last_seq)}


def tool_result(call: ToolCall, outcome: Any, error: BaseException | None) -> ToolResult:
    """A callable's return value as a tool result: strings as they are, anything else as
    JSON; an exception becomes an error result Claude can read."""
    if error is not None:
        return ToolResult(call.tool_call_id, f"{type(error).__name__}: {error}", is_error=True)
    content = outcome if isinstance(outcome, str) else orjson.dumps(outcome, default=str).decode()
    return ToolResult(call.tool_call_id, content)


def unknown_tool(call: ToolCall) -> ToolResult:
    return ToolResult(call.tool_call_id, f"no tool named {call.name!r} is available", is_error=True)


RESUMABLE = (httpx.TransportError,)
