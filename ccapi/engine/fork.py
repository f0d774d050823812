"""Branching a Claude Code conversation at one of its messages, without running Claude.

The SDK copies the transcript up to and including the message into a new SDK session
(fresh message uuids, the same ``SessionStore``), so the branch resumes like any evicted
session — on any host that shares the store — and its first model request carries the
conversation up to that message and nothing after it. No live process is needed.
"""

from __future__ import annotations

from typing import Any

from claude_agent_sdk import fork_session_via_store

from ccapi.engine.errors import EngineError


async def fork_transcript(transcripts: Any, sdk_session_id: str, at_uuid: str, cwd: str | None) -> str:
    """The new SDK session id of the branch; ``EngineError`` when the source transcript
    (or the message in it) is not in the store. The source may have run in another
    working directory (another host's): the branch is made under this one's."""
    await transcripts.adopt(sdk_session_id, cwd)
    try:
        forked = await fork_session_via_store(transcripts, sdk_session_id, directory=cwd, up_to_message_id=at_uuid)
    except (ValueError, FileNotFoundError) as exc:
        raise EngineError("fork_failed", f"the conversation cannot be branched there: {exc}") from exc
    return forked.session_id
