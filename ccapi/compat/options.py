"""What a compat request asks its session to run with, and what that makes of the request.

The history is the conversation; the system prompt, the client tools, the model and the
output schema (structured output) are options of each request (see ``router``). A session runs
with the options of the request that fed it last (its ``Basis``); a request with other options
restarts it under them — unless it is a *side request* (``affinity.side``), which a branch
answers instead. Some requests are *one-offs* (``is_one_off``) whose Claude Code need not outlive their answer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ccapi.catalog import ModelCatalog
from ccapi.compat.affinity import Fork, Head, side
from ccapi.compat.conversation import Conversation, Message
from ccapi.config import Settings
from ccapi.errors import InvalidRequest
from ccapi.sessions import ForkPoint, NewSession
from ccapi.sessions.retention import COMPAT_MARK
from ccapi.toolpolicy import BuiltinTools


@dataclass(frozen=True)
class Basis:
    """What the fed session runs with for a request — the system prompt, model, tools
    (``Conversation.tools_key``) and output schema (``Conversation.output_key``) — and the marks
    of the request's leading messages (see ``affinity``)."""

    system: str | None
    model: str
    tools: str
    output: str = ""
    marks: tuple[ForkPoint | None, ...] = ()
    queued: tuple[Message, ...] | None = None
    """The new messages, when their turn queued behind another: the session's history is then
    its head when the turn ran, not the request's."""

    @classmethod
    def of(
        cls,
        conversation: Conversation,
        marks: tuple[ForkPoint | None, ...] = (),
        queued: tuple[Message, ...] | None = None,
    ) -> Basis:
        return cls(
            conversation.system, conversation.model, conversation.tools_key, conversation.output_key, marks, queued
        )

    @classmethod
    def kept(cls, head: Head, marks: tuple[ForkPoint | None, ...]) -> Basis:
        """A paused turn goes on as it began, under the options of the head it left."""
        return cls(head.system, head.model, head.tools, head.output, marks)


def session_params(
    conversation: Conversation,
    format_: str,
    catalog: ModelCatalog,
    settings: Settings,
    builtin_tools: BuiltinTools | None = None,
) -> NewSession:
    """The session options a request asks for: its model, system prompt, tools and output schema. Checked as a
    native session's: a refusal names the native field (``tools[0].name``), not the request's, so no ``param``."""
    try:
        params = NewSession.from_json(
            {
                "model": conversation.model,
                "system_prompt": conversation.system,
                "tools": list(conversation.tools),
                "metadata": {COMPAT_MARK: format_},
            },
            catalog,
            conversation.model,
            builtin_tools or settings.compat_builtin_tools,
            settings.max_budget_usd,
        )
    except InvalidRequest as exc:
        raise InvalidRequest(exc.message, exc.details) from None
    return replace(params, output_schema=conversation.output_schema)


def is_one_off(conversation: Conversation, fresh: bool, fork: Fork | None) -> bool:
    """A request whose session will most likely not be asked again: a side request's branch
    (``affinity.side``: a memory flush, a heartbeat poll), or a fresh single message without tools
    (a summary, a title). Its Claude Code process stops once it has answered; if the client
    does go on with it, it resumes."""
    if fork is not None:
        return side(fork.source, conversation)
    return fresh and len(conversation.messages) == 1 and not conversation.tools
