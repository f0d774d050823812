"""The slash commands ``cc-api acp`` advertises (``available_commands_update``).

``/compact [instructions]`` runs as the gateway's own call: the session's compaction (``POST /compact``), which the
gateway checks (nothing to compact yet, turns queued) and reports (tokens before and after; one that did not compact
as failed). Sent as a plain turn, Claude Code compacts too, but a compaction that failed would pass for done.
``/context`` and ``/cost`` are plain turns: Claude Code answers them with a message it makes up, which the update
mapping passes on. Claude Code's other commands are not advertised: many are not a session's to run over a gateway
(login, config), and one sent anyway is a turn like any other.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from acp.schema import (
    AvailableCommand,
    AvailableCommandInput,
    AvailableCommandsUpdate,
    TextContentBlock,
    UnstructuredCommandInput,
)

ADVERTISED = AvailableCommandsUpdate(
    session_update="available_commands_update",
    available_commands=[
        AvailableCommand(
            name="compact",
            description="Compact the conversation now: Claude Code summarizes it to free the context window",
            input=AvailableCommandInput(UnstructuredCommandInput(hint="what the summary should keep (optional)")),
        ),
        AvailableCommand(name="context", description="Show what fills the context window, by category"),
        AvailableCommand(name="cost", description="Show the tokens and cost of this session's Claude Code"),
    ],
)
_COMPACT = re.compile(r"/compact(?:\s+(.*))?", re.DOTALL)


def compact_instructions(prompt: Sequence[Any]) -> str | None:
    """The instructions of a ``/compact`` prompt (``""`` for none); ``None`` for any other prompt. The command is the
    whole prompt and text only: an attached file or image makes it a message to Claude."""
    if not prompt or not all(isinstance(block, TextContentBlock) for block in prompt):
        return None
    command = _COMPACT.fullmatch("\n".join(block.text for block in prompt).strip())
    return None if command is None else (command.group(1) or "").strip()


def compacted(trigger: str | None, pre_tokens: int | None, post_tokens: int | None) -> str:
    """What the user reads of a compaction, a ``/compact`` prompt's or Claude Code's own (``auto``): the tokens
    before and after, as ``POST /compact`` and ``session.compacted`` report them. Live and replayed alike."""
    how = " automatically, as the context window filled up" if trigger == "auto" else ""
    return f"Compacted the conversation{how}: {_tokens(pre_tokens)} tokens before, {_tokens(post_tokens)} after."


def _tokens(count: int | None) -> str:
    return "?" if count is None else f"{count:,}"
