"""Writing a conversation Claude Code never had into its transcript, as messages.

A client that replays its own history (a first request, a history its own compaction
rewrote) gets a session whose Claude Code transcript *is* that history: one JSONL entry per
message — user turns, assistant turns with their ``tool_use`` blocks, ``tool_result``
blocks, images — chained by ``parentUuid`` the way Claude Code writes them, through the
same ``SessionStore`` that mirrors live sessions. Resuming it, Claude Code sends the model
the history as real messages, as a plain provider would show them. Client tool calls are
named as the model knows them (``mcp__client__<name>``).

The entries hold only what Claude Code reads back on resume (checked against the bundled
CLI): ``type``, ``uuid``, ``parentUuid``, ``sessionId``, ``timestamp``, ``cwd`` and the
``message``. Appended after a fork, the first entry's parent is the fork's last one.
"""

from __future__ import annotations

import re
import uuid as uuid_mod
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from claude_agent_sdk import project_key_for_directory

from ccapi.engine.bridge import CLIENT_TOOL_PREFIX
from ccapi.engine.errors import EngineError

#: Entry types that carry a message of the conversation chain.
_CHAIN = ("user", "assistant")
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]")


def transcript_entries(
    sdk_session_id: str,
    messages: Sequence[dict[str, Any]],
    uuids: Sequence[str],
    model: str,
    cwd: str | None,
    parent: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """One transcript entry per Anthropic-format message (``role``, ``content`` blocks),
    chained after the ``parent`` entry; ``uuids[i]`` is message ``i``'s entry uuid."""
    entries: list[dict[str, Any]] = []
    first = datetime.now(UTC) - timedelta(milliseconds=len(messages))
    if parent is not None:  # after it, or Claude Code would take the parent for the leaf
        first = max(first, _parse(parent["timestamp"]) + timedelta(milliseconds=1))
    parent_uuid = parent["uuid"] if parent is not None else None
    for index, (message, entry_uuid) in enumerate(zip(messages, uuids, strict=True)):
        content = [_as_model_sees(block) for block in message["content"]]
        if message["role"] == "assistant":
            body: dict[str, Any] = {
                "id": f"msg_{entry_uuid.replace('-', '')}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": "tool_use" if any(b["type"] == "tool_use" for b in content) else "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }
        else:
            body = {"role": "user", "content": content}
        entries.append(
            {
                "parentUuid": parent_uuid,
                "isSidechain": False,
                "type": message["role"],
                "message": body,
                "uuid": entry_uuid,
                "timestamp": _iso(first + timedelta(milliseconds=index)),
                "sessionId": sdk_session_id,
                "cwd": cwd or "",
                "userType": "external",
            }
        )
        parent_uuid = entry_uuid
    return entries


async def write_history(
    transcripts: Any,
    messages: Sequence[dict[str, Any]],
    uuids: Sequence[str],
    model: str,
    cwd: str | None,
    after: str | None = None,
) -> str:
    """Write ``messages`` as a transcript Claude Code can resume under ``cwd``: a new one,
    or appended to SDK session ``after`` (a fork just made). Returns its SDK session id."""
    key = {"project_key": project_key_for_directory(cwd), "session_id": after or str(uuid_mod.uuid4())}
    parent = None
    if after is not None:
        loaded = await transcripts.load(key) or []
        chain = [entry for entry in loaded if entry.get("type") in _CHAIN and isinstance(entry.get("uuid"), str)]
        if not chain:
            raise EngineError("fork_failed", f"the branch {after} has no messages to continue")
        parent = chain[-1]
    await transcripts.append(key, transcript_entries(key["session_id"], messages, uuids, model, cwd, parent))
    return key["session_id"]


def _as_model_sees(block: dict[str, Any]) -> dict[str, Any]:
    """A client tool call under the name the model knows (in the characters a name may have:
    a call in the history may name a tool the client no longer declares)."""
    if block.get("type") == "tool_use":
        return {**block, "name": CLIENT_TOOL_PREFIX + _NOT_NAME.sub("_", block["name"])}
    return block


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    """Claude Code's own form; distinct, increasing, and in the past for a new transcript:
    Claude Code takes the newest entry as the leaf, and the turn about to run writes newer ones."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
