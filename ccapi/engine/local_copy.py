"""Claude Code's own copy of a conversation on this host.

Claude Code writes every conversation it runs to a JSONL file in its config directory
(``projects/<cwd key>/<sdk session id>.jsonl``, subagents' beside it), whether or not the SDK mirrors it
to a ``SessionStore``. The gateway's store is the record; this copy only outlives it, so a deleted
session's words would stay on disk unless it goes too.
"""

from __future__ import annotations

import asyncio

import structlog
from claude_agent_sdk import delete_session

log = structlog.get_logger("ccapi.engine")


async def forget_local_copy(sdk_session_id: str) -> None:
    """Remove Claude Code's files of ``sdk_session_id`` in every project folder (a session that changed its
    working directory left one in each); nothing found is fine, as for a conversation only ever resumed
    (the SDK resumes from a temp copy it removes itself)."""
    await asyncio.to_thread(_forget, sdk_session_id)


def _forget(sdk_session_id: str) -> None:
    while True:
        try:
            delete_session(sdk_session_id)  # the first match only: its folder is the key's, not ours to know
        except (FileNotFoundError, ValueError):
            return
        except OSError as exc:
            log.warning("local_copy_kept", sdk_session_id=sdk_session_id, error=str(exc))
            return
