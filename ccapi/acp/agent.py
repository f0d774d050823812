"""The ACP agent: each ACP method is a call to a running gateway's native API (``ccapi.client.AsyncClient``).

The ACP session id *is* the CC API session id, and the agent keeps nothing that matters: a prompt is a background
turn whose events it follows on the session's event stream, so the conversation outlives this process, the editor
and a gateway restart, and ``session/load`` is a replay of the durable log. Approvals go both ways through
``session/request_permission`` and ``POST /permissions``; ``session/cancel`` is ``POST /interrupt`` of the
prompt's own turn. A ``/compact`` prompt is ``POST /compact``; the other slash commands advertised are turns.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import httpx
from acp import PROTOCOL_VERSION, RequestError, text_block, update_agent_message
from acp.connection import StreamDirection, StreamEvent
from acp.interfaces import Client
from acp.schema import (
    AgentCapabilities,
    AllowedOutcome,
    Implementation,
    InitializeResponse,
    ListSessionsResponse,
    LoadSessionResponse,
    McpCapabilities,
    NewSessionResponse,
    PermissionOption,
    PromptCapabilities,
    PromptResponse,
    SessionCapabilities,
    SessionInfo,
    SessionListCapabilities,
    SetSessionConfigOptionResponse,
    SetSessionModeResponse,
    ToolCallUpdate,
    Usage,
)

from ccapi import __version__
from ccapi.acp.commands import ADVERTISED, compact_instructions, compacted
from ccapi.acp.options import MODEL_OPTION, MODES, mode_state, model_option, native_mcp_servers
from ccapi.acp.prompt import native_input
from ccapi.acp.updates import UpdateMapper, merged, tool_kind, tool_title
from ccapi.client import AsyncClient, CCAPIError, Decision, Session, ToolResult
from ccapi.events import TERMINAL_TURN_EVENTS, Event, EventType

ALLOW, REJECT = "allow", "reject"
PERMISSION_OPTIONS = [
    PermissionOption(option_id=ALLOW, name="Allow", kind="allow_once"),
    PermissionOption(option_id=REJECT, name="Reject", kind="reject_once"),
]
_STOP_REASONS = {"max_tokens": "max_tokens", "refusal": "refusal"}
CLIENT_TOOL_REFUSED = (
    "{name} is a client tool of this session, and its client is not here: the session is used over ACP "
    "(cc-api acp), which cannot run it"
)
GATEWAY_GONE = "no CC API gateway answers ({0!r}): start it again (`cc-api start`), then retry"
_UNANSWERED = (CCAPIError, httpx.TransportError)
"""What a call made beside a prompt (its interrupt, an approval, a refusal) may meet and let go: the turn moved on,
or the gateway is gone, which the prompt's own event stream then reports (``_call``)."""
REPLAY_PAGE = 1000
LIST_PAGE = 100
LIST_SCAN = 20
"""The gateway pages (of ``LIST_PAGE``) one ``session/list`` of a ``cwd`` reads at most to fill its page."""
COMPACTING = "/compact"
"""What ``_turns`` holds for a ``/compact`` prompt: ``POST /compact`` names its turn only once it has ended."""
ASK, WITHDRAW = "session/request_permission", "$/cancel_request"
_DIALOG: ContextVar[int | str | None] = ContextVar("acp_permission_dialog", default=None)
"""The JSON-RPC id of the permission request the current ``_approve`` task put to the client (``_sent``)."""


class GatewayAgent:
    """One ACP connection's agent; ``default_mode`` is the gateway's permission mode in force (``/healthz``)."""

    def __init__(self, gateway: AsyncClient, default_mode: str) -> None:
        self.gateway = gateway
        self.default_mode = default_mode if default_mode in MODES else "default"
        self._client: Client | None = None
        self._turns: dict[str, str | None] = {}
        """The turn each session's prompt runs here (``None`` while it is being sent): what ``cancel`` stops."""
        self._cancelled: set[str] = set()
        """Sessions whose prompt the client cancelled (``session/cancel``): its turn is interrupted, at once or
        once its id is known, and the prompt answers ``cancelled``."""
        self._notices: set[asyncio.Task[None]] = set()
        """Notifications sent once the request that made them is answered (``_after_answer``)."""
        self._rpc: Any = None
        """The library's JSON-RPC connection (``on_connect``), for ``$/cancel_request`` (``_withdraw``)."""

    def on_connect(self, conn: Client) -> None:
        """The library does not say which id a request it sends gets; its connection tells its observers."""
        self._client = conn
        self._rpc = getattr(conn, "_conn", None)
        if self._rpc is not None and hasattr(self._rpc, "add_observer"):
            self._rpc.add_observer(self._sent)

    @staticmethod
    def _sent(event: StreamEvent) -> None:
        """Note the id of a permission request as it goes, in the task that sends it (the library tells its
        observers from within ``send_request``): the one ``_withdraw`` cancels."""
        message = event.message
        if event.direction == StreamDirection.OUTGOING and message.get("method") == ASK and "id" in message:
            _DIALOG.set(message["id"])

    @property
    def client(self) -> Client:
        assert self._client is not None, "on_connect comes first"
        return self._client

    # -- lifecycle -----------------------------------------------------------------------
    async def initialize(self, protocol_version: int, **_: Any) -> InitializeResponse:
        return InitializeResponse(
            protocol_version=PROTOCOL_VERSION,  # the one version there is: asked for another, the agent names its own
            agent_capabilities=AgentCapabilities(
                load_session=True,
                prompt_capabilities=PromptCapabilities(image=True, embedded_context=True, audio=False),
                mcp_capabilities=McpCapabilities(http=True, sse=False),
                session_capabilities=SessionCapabilities(list=SessionListCapabilities()),
            ),
            agent_info=Implementation(name="cc-api", title="CC API", version=__version__),
        )

    async def authenticate(self, method_id: str, **_: Any) -> None:
        return None  # the gateway holds Claude's credentials; CC_API_KEY is this process's

    async def new_session(self, cwd: str, mcp_servers: list[Any] | None = None, **_: Any) -> NewSessionResponse:
        fields: dict[str, Any] = {"cwd": cwd, "metadata": {"created_by": "acp"}}
        if servers := native_mcp_servers(mcp_servers):
            fields["mcp_servers"] = servers
        session = await _call(self.gateway.create_session(**fields))
        modes, options = await self._state(session)
        self._after_answer(session.id, [ADVERTISED])
        return NewSessionResponse(session_id=session.id, modes=modes, config_options=options)

    async def list_sessions(self, cwd: str | None = None, cursor: str | None = None, **_: Any) -> ListSessionsResponse:
        """The gateway's sessions, newest first (those of ``cwd`` when given), whatever client made them. A session
        made without a ``cwd`` runs where the gateway runs Claude Code (``/healthz`` ``cwd``), asked each time:
        a gateway restarted with another ``CC_API_CWD`` moves it. The gateway cannot filter by directory: for a
        ``cwd`` the agent reads on (up to ``LIST_SCAN`` of the gateway's pages) until it has a page's worth, so
        a directory's sessions are not behind empty pages when other clients made many since (compat ones)."""
        default_cwd = (await _call(self.gateway.health())).get("cwd") or ""  # an older gateway does not say
        infos: list[SessionInfo] = []
        for _page in range(LIST_SCAN if cwd is not None else 1):
            sessions, cursor = await _call(self.gateway.list_sessions(limit=LIST_PAGE, after=cursor))
            for s in sessions:
                info = SessionInfo(
                    session_id=s.id,
                    cwd=s.raw.get("cwd") or default_cwd,
                    title=_title(s.metadata),
                    updated_at=s.raw.get("updated_at"),
                )
                if cwd is None or info.cwd == cwd:
                    infos.append(info)
            if cursor is None or len(infos) >= LIST_PAGE:
                break
        return ListSessionsResponse(sessions=infos, next_cursor=cursor)

    async def load_session(self, cwd: str, session_id: str, **_: Any) -> LoadSessionResponse:
        """Replay the session's whole log as updates, then answer: the client then prompts on as before.
        The session keeps the working directory and MCP servers it was created with."""
        session = await _call(self.gateway.get_session(session_id))
        after, updates, mapper = 0, list[Any](), UpdateMapper(replay=True)
        while True:
            page = await _call(self.gateway.events(session_id, after=after, limit=REPLAY_PAGE))
            updates.extend(update for event in page for update in mapper(event))
            if len(page) < REPLAY_PAGE:
                break
            after = page[-1].seq
        await self._send(session_id, merged(updates))
        modes, options = await self._state(session)
        self._after_answer(session_id, [ADVERTISED])
        return LoadSessionResponse(modes=modes, config_options=options)

    async def set_session_mode(self, mode_id: str, session_id: str, **_: Any) -> SetSessionModeResponse:
        if mode_id not in MODES:
            raise RequestError.invalid_params({"modeId": mode_id, "known": list(MODES)})
        await _call(self.gateway.update_session(session_id, permission_mode=mode_id))
        return SetSessionModeResponse()

    async def set_config_option(
        self, config_id: str, session_id: str, value: str | bool, **_: Any
    ) -> SetSessionConfigOptionResponse:
        if config_id != MODEL_OPTION or not isinstance(value, str):
            raise RequestError.invalid_params({"configId": config_id, "known": [MODEL_OPTION]})
        session = await _call(self.gateway.update_session(session_id, model=value))
        _, options = await self._state(session)
        return SetSessionConfigOptionResponse(config_options=options)

    async def _state(self, session: Session) -> tuple[Any, list[Any]]:
        models = await _call(self.gateway.models())
        mode = session.raw.get("permission_mode") or self.default_mode
        return mode_state(mode), [model_option(session.model, models)]

    # -- turns -----------------------------------------------------------------------------
    async def prompt(self, prompt: list[Any], session_id: str, **_: Any) -> PromptResponse:
        content = native_input(prompt)
        if not content:
            raise RequestError.invalid_params({"prompt": "nothing to send: the prompt has no content"})
        if session_id in self._turns:  # refused before it touches the running prompt's state
            raise RequestError.invalid_params({"sessionId": session_id, "message": "a prompt of this session runs"})
        instructions = compact_instructions(prompt)
        self._turns[session_id] = None if instructions is None else COMPACTING
        try:
            if instructions is not None:
                return await self._compact(session_id, instructions)
            return await self._turn(session_id, content)
        finally:
            self._turns.pop(session_id, None)
            self._cancelled.discard(session_id)

    async def _turn(self, session_id: str, content: list[dict[str, Any]]) -> PromptResponse:
        turn = await _call(self.gateway.send(session_id, content, background=True))
        self._turns[session_id] = turn.turn_id
        if session_id in self._cancelled:
            await self._interrupt(session_id, turn.turn_id)
        after = int(turn.raw.get("first_event_seq", 1)) - 1
        ended = await _call(self._follow(session_id, turn.turn_id, after))  # a session deleted meanwhile: 404
        stop_reason = _stop_reason(ended, cancelled=session_id in self._cancelled)
        return PromptResponse(stop_reason=stop_reason, usage=_usage(ended.data.get("usage")))

    async def _compact(self, session_id: str, instructions: str) -> PromptResponse:
        """``/compact [instructions]``: the session's compaction, its tokens before and after told as the reply; one
        that did not compact is an error that says why, as a failed turn is. A cancel that came before the
        compaction had started does not stop it: it compacted, so the reply says so."""
        done = await _call(self.gateway.compact(session_id, instructions or None))  # nothing to compact yet: 409
        if session_id in self._cancelled and done.status != "completed":
            return PromptResponse(stop_reason="cancelled")
        if done.status != "completed":
            error = done.error or {}
            message = error.get("message") or f"the compaction ended {done.status}"
            raise RequestError.internal_error({"type": error.get("type") or done.status, "message": message})
        await self._send(
            session_id, [update_agent_message(text_block(compacted(done.trigger, done.pre_tokens, done.post_tokens)))]
        )
        return PromptResponse(stop_reason="end_turn")

    async def cancel(self, session_id: str, **_: Any) -> None:
        """Stop this client's own prompt only: another client's turn in the session (or a cancel that
        arrives after the prompt ended) is left alone."""
        if session_id not in self._turns:
            return
        self._cancelled.add(session_id)
        turn_id = self._turns[session_id]
        if turn_id == COMPACTING:
            await self._interrupt_compaction(session_id)
        elif turn_id is not None:
            await self._interrupt(session_id, turn_id)

    async def _interrupt(self, session_id: str, turn_id: str) -> None:
        with contextlib.suppress(*_UNANSWERED):  # the turn has already ended: what the client wants
            await self.gateway.interrupt(session_id, turn_id=turn_id)

    async def _interrupt_compaction(self, session_id: str) -> None:
        """Stop the prompt's compaction: the session's running turn when it is a compaction (one that has not
        started yet when the cancel comes runs on, and its prompt then answers as it would have)."""
        with contextlib.suppress(*_UNANSWERED):
            running = (await self.gateway.get_session(session_id)).running_turn_id
            if running and (await self.gateway.get_turn(session_id, running)).raw.get("kind") == "compact":
                await self.gateway.interrupt(session_id, turn_id=running)

    async def _follow(self, session_id: str, turn_id: str, after: int) -> Event:
        """Stream the turn's events to the client until the turn ends; its terminal event. Each permission
        request is put to the client meanwhile, not in the way: the turn may end, or another client (the
        console) or the gateway's approval timeout may decide it, while the user has not answered yet."""
        asking: dict[str, asyncio.Task[None]] = {}
        mapper = UpdateMapper(replay=False)
        stream = self.gateway.stream_events(session_id, after=after)  # reconnects across a gateway's restart
        try:
            async with contextlib.aclosing(stream):
                async for event in stream:
                    if event.turn_id != turn_id and not _told_meanwhile(event):
                        continue
                    await self._send(session_id, mapper(event))
                    if event.type == EventType.TURN_REQUIRES_APPROVAL:
                        for request in event.data.get("permission_requests") or []:
                            if request["request_id"] not in asking:
                                asking[request["request_id"]] = asyncio.create_task(self._approve(session_id, request))
                    elif event.type == EventType.PERMISSION_RESOLVED:
                        if (task := asking.get(event.data.get("request_id", ""))) is not None:
                            task.cancel()  # decided already: the client's dialog is withdrawn (``_approve``)
                    elif event.type == EventType.TURN_REQUIRES_ACTION:
                        await self._refuse_client_tools(session_id, event.data.get("tool_calls") or [])
                    elif event.type in TERMINAL_TURN_EVENTS:
                        return event
        finally:
            # The turn has ended (or its stream has): every dialog still open is withdrawn before the prompt answers.
            for task in asking.values():
                if not task.done() and not task.cancelling():
                    task.cancel()
            await asyncio.gather(*asking.values(), return_exceptions=True)
        raise RequestError.internal_error({"message": "the gateway closed the event stream before the turn ended"})

    async def _approve(self, session_id: str, request: dict[str, Any]) -> None:
        """Ask the client. A request it cancels with the prompt (``session/cancel``) is left to the interrupt; one it
        fails to ask, or cancels on its own (acpx does when no option fits its policy), refuses the call: the turn
        would otherwise wait for the approval timeout. A request decided elsewhere (the console, another client, the
        approval timeout) or whose turn ended while the client still asks is withdrawn (``_withdraw``): the task is
        cancelled, and the client's late answer, to a request no longer pending, is dropped by the library."""
        name, tool_input = request.get("tool_name", ""), request.get("input") or {}
        call = ToolCallUpdate(
            tool_call_id=request.get("tool_use_id") or request["request_id"],
            title=tool_title(name, tool_input),
            kind=tool_kind(name),
            status="pending",
            raw_input=tool_input,
        )
        try:
            answer = await self.client.request_permission(
                session_id=session_id, tool_call=call, options=PERMISSION_OPTIONS
            )
        except asyncio.CancelledError:
            await self._withdraw()
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the client answered, the call is not approved
            decision = Decision(request["request_id"], False, f"the editor could not ask the user: {exc}")
        else:
            if not isinstance(answer.outcome, AllowedOutcome):
                if session_id in self._cancelled:
                    return
                decision = Decision(request["request_id"], False, "the editor cancelled the permission request")
            else:
                allow = answer.outcome.option_id == ALLOW
                decision = Decision(request["request_id"], allow, None if allow else "the user rejected this tool call")
        with contextlib.suppress(*_UNANSWERED):  # 409: the turn was interrupted or timed out meanwhile
            await self.gateway.decide(session_id, [decision], background=True)

    async def _withdraw(self) -> None:
        """Close the client's dialog of this task's permission request: ACP's ``$/cancel_request`` of it (the
        client answers it cancelled, or not at all). Left open, it asked the user about a call already decided,
        or a turn already over, and the answer went nowhere."""
        dialog = _DIALOG.get()
        if dialog is None or self._rpc is None:
            return
        with contextlib.suppress(ConnectionError):  # the client has gone, and its dialog with it
            await self._rpc.send_notification(WITHDRAW, {"requestId": dialog})

    async def _refuse_client_tools(self, session_id: str, calls: list[dict[str, Any]]) -> None:
        """ACP has no client tools, but a session made over HTTP with ``tools`` still offers them to Claude: each
        call gets an error result at once, which Claude reads and goes on from, rather than the prompt waiting
        for ``CC_API_TOOL_TIMEOUT``."""
        results = [
            ToolResult(call["tool_call_id"], CLIENT_TOOL_REFUSED.format(name=call.get("name")), is_error=True)
            for call in calls
        ]
        with contextlib.suppress(*_UNANSWERED):  # 409: answered meanwhile (by the session's HTTP client), or timed out
            await self.gateway.submit_tool_results(session_id, results, background=True)

    async def _send(self, session_id: str, updates: list[Any]) -> None:
        for update in updates:
            await self.client.session_update(session_id=session_id, update=update)

    def _after_answer(self, session_id: str, updates: list[Any]) -> None:
        """Send ``updates`` once the running request is answered, as ACP has the commands follow ``session/new``
        (a client learns the session's id from that answer). The library queues a method's answer before it yields,
        so a task made in the method writes after it."""
        task = asyncio.create_task(self._notify(session_id, updates))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _notify(self, session_id: str, updates: list[Any]) -> None:
        with contextlib.suppress(ConnectionError):  # the client has gone: nobody to tell
            await self._send(session_id, updates)


def _told_meanwhile(event: Event) -> bool:
    """An event of no turn the client hears of while its prompt runs: a change of the session's options
    (``session.updated``: another client, the console, switched its permission mode), which moves the mode picker
    as it would once the session is loaded again."""
    return event.turn_id is None and event.type == EventType.SESSION_UPDATED


def _stop_reason(event: Event, cancelled: bool) -> Any:
    """``cancelled`` for the client's own ``session/cancel``, however the turn then ended (ACP answers a prompt
    cancelled once a cancel came in: one that reached a turn just as it completed too); a turn interrupted otherwise
    (the console, a stopping gateway) is an error that says why, not a stop the user asked for."""
    if cancelled:
        return "cancelled"
    if event.type == EventType.TURN_INTERRUPTED:
        error = event.data.get("error") or {}
        raise RequestError.internal_error({"type": "interrupted", "message": error.get("message", "interrupted")})
    if event.type == EventType.TURN_FAILED:
        if (reason := _failed_stop_reason(event.data)) is not None:
            return reason
        error = event.data.get("error") or {}
        raise RequestError.internal_error({"type": error.get("type"), "message": error.get("message", "turn failed")})
    return _STOP_REASONS.get(event.data.get("stop_reason") or "", "end_turn")


def _usage(usage: Any) -> Usage | None:
    """The turn's tokens (the Messages API's ``usage``, summed over its model requests) as ACP's prompt ``usage``:
    input without the cache, as the API counts it, and the cache reads and writes beside it."""
    if not isinstance(usage, dict):
        return None
    fresh, output = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
    read, written = int(usage.get("cache_read_input_tokens") or 0), int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        total_tokens=fresh + output + read + written,
        input_tokens=fresh,
        output_tokens=output,
        cached_read_tokens=read,
        cached_write_tokens=written,
    )


def _failed_stop_reason(data: dict[str, Any]) -> str | None:
    """The stop reason of a turn that ended short rather than broke: the turn limit, or a reply cut at its output
    limit or refused, which Claude Code reports as an API error (the gateway logs ``turn.failed`` with the model's
    stop reason); ACP has a stop reason for each."""
    if (data.get("error") or {}).get("type") == "max_turns":
        return "max_turn_requests"
    return _STOP_REASONS.get(data.get("stop_reason") or "")


async def _call(pending: Any) -> Any:
    """A gateway call, its error answers as ACP errors (the client shows the gateway's message). A gateway that
    stopped under the editor (or stayed away longer than the event stream's reconnects) is said plainly: the ACP
    library would answer "Internal error" with httpx's text, and log a traceback for each call."""
    try:
        return await pending
    except httpx.TransportError as exc:
        raise RequestError.internal_error(
            {"type": "gateway_unreachable", "message": GATEWAY_GONE.format(exc)}
        ) from None
    except CCAPIError as exc:
        data = {"status": exc.status, "type": exc.type, "message": exc.message}
        if exc.status == 404:
            raise RequestError(-32002, f"Resource not found: {exc.message}", data) from None
        if exc.status in (400, 409, 413, 422):
            raise RequestError(-32602, f"Invalid params: {exc.message}", data) from None
        raise RequestError.internal_error(data) from None


def _title(metadata: Mapping[str, Any]) -> str | None:
    """What the session's maker called it (``metadata.title``, else ``name``), as the console names it."""
    named = metadata.get("title") or metadata.get("name")
    return named.strip()[:200] or None if isinstance(named, str) else None
