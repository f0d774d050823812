"""A session's context-window usage as its live Claude Code counts it, kept with the session."""

from __future__ import annotations

from typing import Any

from ccapi.engine import EnginePool
from ccapi.store import SessionRecord, Store


async def context_usage(store: Store, pool: EnginePool, session: SessionRecord, running: bool) -> dict[str, Any] | None:
    """Context-window usage as of turn ``as_of_turn``. Measured by the live engine at most once
    per turn (it costs Claude Code a round of token counting), never while a turn ``running``
    uses it, and stored, so an evicted or restarted session still reports its last measurement."""
    stored = session.context
    if stored and stored.get("as_of_turn") == session.turn_count:
        return stored
    engine = pool.get(session.id)
    if engine is None or engine.busy or running:
        return stored
    usage = await engine.context_usage()
    if usage is None:
        return stored
    usage["as_of_turn"] = session.turn_count
    await store.update_session(session.id, context=usage)
    return usage
