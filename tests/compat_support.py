"""What tests read from the mock model's recorded requests (the compat tests most)."""

from __future__ import annotations

from typing import Any

from ccapi.testing import MockModel

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def main_requests(mock: MockModel) -> list[dict[str, Any]]:
    """The conversation requests Claude Code sent (helper requests left out)."""
    return [request.body for request in mock.message_requests(include_side=False)]


def user_texts(message: dict[str, Any]) -> list[str]:
    """A user message's own text blocks, without Claude Code's <system-reminder> blocks."""
    content = message["content"]
    if isinstance(content, str):
        return [content]
    return [b["text"] for b in content if b.get("type") == "text" and not b["text"].lstrip().startswith("<system-")]


def tool_results_sent(mock: MockModel) -> list[dict[str, Any]]:
    """Every ``tool_result`` block the model received, in order, without duplicates."""
    seen: dict[str, dict[str, Any]] = {}
    for body in main_requests(mock):
        for message in body["messages"]:
            if message["role"] == "user" and isinstance(message["content"], list):
                for block in message["content"]:
                    if block.get("type") == "tool_result":
                        seen.setdefault(block["tool_use_id"], block)
    return list(seen.values())


def tool_results_by_id(mock: MockModel) -> dict[str, str]:
    """What Claude Code's tools returned to the model, by tool_use id, in the order it was sent (a result sent
    again, as each later request repeats the conversation, is its last sending)."""
    results = {}
    for body in main_requests(mock):
        for message in body["messages"]:
            if message["role"] == "user" and isinstance(message["content"], list):
                for block in message["content"]:
                    if block.get("type") == "tool_result":
                        content = block["content"]
                        results[block["tool_use_id"]] = content if isinstance(content, str) else content[0]["text"]
    return results


def result_text(block: dict[str, Any]) -> str:
    """A tool_result's own text: Claude Code may append a <system-reminder> after it."""
    content = block["content"]
    text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
    return text.split("<system-reminder>")[0].strip()


def assert_one_warm_session(mock: MockModel, turns: int) -> None:
    """``turns`` model requests from one Claude session: each grows by exactly one exchange
    (user + assistant), always begins with the same first user message, and none carries a
    seeded transcript."""
    bodies = main_requests(mock)
    assert len(bodies) == turns
    assert [len(b["messages"]) for b in bodies] == [2 * n + 1 for n in range(turns)]
    first = user_texts(bodies[0]["messages"][0])
    assert all(user_texts(b["messages"][0]) == first for b in bodies)
    assert all("<conversation_history>" not in str(b["messages"]) for b in bodies)
