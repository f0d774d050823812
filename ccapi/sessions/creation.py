"""What new sessions and turns start as: their records, what ``session.created`` says, and for a fork or a
seeded session where it branches and the Claude Code transcript it starts from.

Kept apart from ``SessionService``, which decides when they are written: none of this touches running turns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ccapi.engine.bridge import STRUCTURED_OUTPUT_TOOL
from ccapi.engine.errors import EngineError
from ccapi.engine.fork import fork_transcript
from ccapi.engine.history import write_history
from ccapi.errors import Conflict
from ccapi.events import TERMINAL_TURN_EVENTS, Event, EventType
from ccapi.ids import new_id, utcnow
from ccapi.sessions.params import ForkPoint, History, NewSession
from ccapi.sessions.recovery import RESTART_ERROR
from ccapi.store import SessionRecord, Store, TurnRecord
from ccapi.store.transcripts import TranscriptMirror
from ccapi.toolpolicy import as_json, recorded_builtin_tools

if TYPE_CHECKING:
    from ccapi.sessions.queue import QueuedTurn

_PAGE = 500
_TURN_ENDS = [event.value for event in TERMINAL_TURN_EVENTS]


def session_record(params: NewSession, session_id: str, sdk_session_id: str | None, now: str) -> SessionRecord:
    """An idle session with no turn yet, on the transcript ``sdk_session_id`` (a fork's or a seeded one) if any."""
    return SessionRecord(
        id=session_id,
        created_at=now,
        updated_at=now,
        model=params.model,
        system_prompt=params.system_prompt,
        tools=list(params.tools),
        metadata=params.metadata,
        max_turns=params.max_turns,
        cwd=params.cwd,
        permission_mode=params.permission_mode,
        status="idle",
        sdk_session_id=sdk_session_id,
        turn_count=0,
        last_seq=0,
        usage={},
        builtin_tools=as_json(params.builtin_tools),
        max_budget_usd=params.max_budget_usd,
        webhook=params.webhook,
        mcp_servers=params.mcp_servers,
        output_schema=params.output_schema,
    )


def created_event(
    record: SessionRecord, fork: ForkPoint | None, forked_from: dict[str, Any] | None, history: History | None
) -> dict[str, Any]:
    """The data of a session's ``session.created`` event."""
    created: dict[str, Any] = {
        "model": record.model,
        "tools": [tool["name"] for tool in record.tools],
        "metadata": record.metadata,
        "builtin_tools": record.builtin_tools,
    }
    if fork is not None:
        created["forked_from"] = forked_from or {"session_id": fork.session_id}
    if history is not None:
        created["history_messages"] = len(history.messages)
    return created


def turn_record(
    session: SessionRecord, content: list[dict[str, Any]], kind: str, queued: QueuedTurn | None = None
) -> TurnRecord:
    """The running record of the session's next turn; a ``queued`` one keeps the id and the ``created_at`` it
    was queued with (clients saw both while it waited)."""
    return TurnRecord(
        id=queued.turn_id if queued else new_id("turn"),
        session_id=session.id,
        number=session.turn_count + 1,
        status="running",
        input=content,
        created_at=queued.created_at if queued else utcnow(),
        kind=kind,
    )


async def fork_point(store: Store, source: SessionRecord, after_seq: int | None) -> tuple[ForkPoint, dict[str, Any]]:
    """The point to branch ``source`` at (the last assistant message at or before event ``after_seq``, by default
    its last, or the structured answer it gave) and the ``forked_from`` its ``session.created`` event records;
    ``Conflict`` when there is none."""
    bound = source.last_seq if after_seq is None else after_seq
    message = await _last_message(store, source.id, bound)
    if message is None and (inherited := await _inherited_point(store, source)) is not None:
        return inherited
    if message is None or not message.data.get("uuid"):
        raise Conflict(
            "there is no reply to fork at: the session has no assistant message at or before that point",
            {"after_seq": bound},
        )
    if any(block.get("type") == "tool_use" for block in message.data.get("content", [])):
        message = await _structured_answer(store, source.id, message, bound)
    if source.sdk_session_id is None:
        raise Conflict("the session's first turn has not ended yet; fork once it has")
    point = ForkPoint(source.id, source.sdk_session_id, message.data["uuid"])
    return point, {"session_id": source.id, "seq": message.seq}


async def _inherited_point(store: Store, source: SessionRecord) -> tuple[ForkPoint, dict[str, Any]] | None:
    """A fork with no reply of its own yet holds its source's conversation up to where it branched: a fork of
    it branches there too (while that source is kept). Not one that was given history besides: that is in its
    transcript only."""
    created = await store.list_events(source.id, after=0, limit=1, types=[EventType.SESSION_CREATED.value])
    origin = created[0].data.get("forked_from") if created else None
    if not origin or "seq" not in origin or "history_messages" in created[0].data:
        return None
    parent = await store.get_session(origin["session_id"])
    if parent is None:
        return None
    point, _ = await fork_point(store, parent, origin["seq"])
    return point, {"session_id": source.id, "seq": created[0].seq}


async def _structured_answer(store: Store, session_id: str, message: Event, bound: int) -> Event:
    """The result of the ``StructuredOutput`` call ``message`` made, which ended its turn (a session's output
    schema): the turn ends on it, not on an assistant message. ``message`` itself when its turn had ended by
    ``bound`` without its calls' results (interrupted while it waited for them, failed at a limit, closed after a
    crash): nothing waits there any more, and the branch goes on from it as the session itself does. ``Conflict``
    otherwise: the message still waits for its results at that point."""
    calls = [block for block in message.data.get("content", []) if block.get("type") == "tool_use"]
    if all(call["name"] == STRUCTURED_OUTPUT_TOOL for call in calls):
        ids = {call["id"] for call in calls}
        results = await store.list_events(
            session_id, after=message.seq, limit=_PAGE, types=[EventType.AGENT_TOOL_COMPLETED.value]
        )
        for result in results:
            data = result.data
            if result.seq <= bound and data["tool_use_id"] in ids and not data["is_error"] and data.get("uuid"):
                return result
    if await _turn_ended(store, session_id, message, bound):
        return message
    raise Conflict(
        "the assistant message at that point waits for tool results; fork at a turn that has ended",
        {"seq": message.seq},
    )


async def _turn_ended(store: Store, session_id: str, message: Event, bound: int) -> bool:
    """Whether the turn that sent ``message`` had ended at event ``bound``."""
    after = message.seq
    while after < bound:
        page = await store.list_events(session_id, after=after, limit=_PAGE, types=_TURN_ENDS)
        if any(event.seq <= bound and event.turn_id == message.turn_id for event in page):
            return True
        if len(page) < _PAGE:
            return False
        after = page[-1].seq
    return False


def same_settings(source: SessionRecord) -> NewSession:
    """A fork runs as its source does: model, prompt, tools, limits, webhook, output schema."""
    return NewSession(
        model=source.model,
        system_prompt=source.system_prompt,
        tools=tuple(source.tools),
        metadata=source.metadata,
        max_turns=source.max_turns,
        cwd=source.cwd,
        permission_mode=source.permission_mode,
        builtin_tools=recorded_builtin_tools(source.builtin_tools),
        max_budget_usd=source.max_budget_usd,
        webhook=source.webhook,
        mcp_servers=source.mcp_servers,
        output_schema=source.output_schema,
    )


async def _last_message(store: Store, session_id: str, bound: int) -> Event | None:
    """The last top-level ``message.completed`` event at or before seq ``bound``, of a turn a crash did not cut
    short: what such a turn said was lost with the gateway that ran it (its Claude Code transcript goes on from
    the turn before it, as the session does), so it is no point to branch at."""
    lost = await _lost_turns(store, session_id, bound)
    found, after = None, 0
    while after < bound:
        page = await store.list_events(session_id, after=after, limit=_PAGE, types=[EventType.MESSAGE_COMPLETED.value])
        for event in page:
            if event.seq <= bound and event.data.get("parent_tool_use_id") is None and event.turn_id not in lost:
                found = event
        if len(page) < _PAGE:
            break
        after = page[-1].seq
    return found


async def _lost_turns(store: Store, session_id: str, bound: int) -> set[str | None]:
    """The turns recovery closed (``gateway_restarted``) by seq ``bound``: the gateway running them stopped."""
    lost: set[str | None] = set()
    after = 0
    while after < bound:
        page = await store.list_events(session_id, after=after, limit=_PAGE, types=[EventType.TURN_FAILED.value])
        lost.update(
            event.turn_id
            for event in page
            if event.seq <= bound and event.data.get("error", {}).get("type") == RESTART_ERROR["type"]
        )
        if len(page) < _PAGE:
            break
        after = page[-1].seq
    return lost


async def branched_transcript(transcripts: TranscriptMirror, fork: ForkPoint, cwd: str | None) -> str:
    """The SDK session id of a copy of ``fork``'s conversation up to its message."""
    try:
        return await fork_transcript(transcripts, fork.sdk_session_id, fork.uuid, cwd)
    except EngineError as exc:
        raise Conflict(exc.message, {"sdk_session_id": fork.sdk_session_id}) from None


async def seeded_transcript(
    transcripts: TranscriptMirror, history: History, model: str, cwd: str | None, after: str | None
) -> str:
    """The SDK session id of a transcript holding ``history`` (after ``after``'s)."""
    try:
        return await write_history(transcripts, history.messages, history.uuids, model, cwd, after)
    except EngineError as exc:
        raise Conflict(exc.message, {"sdk_session_id": after}) from None
