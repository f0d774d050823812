"""The slash commands ``cc-api acp`` advertises (``available_commands_update``) and runs as the gateway's own calls.

Only ``/compact [instructions]``: the session's compaction (``POST /compact``), which the gateway checks (nothing to
compact yet, turns queued) and reports (tokens before and after; one that did not compact as failed). Sent as a plain
turn, Claude Code compacts too, but the client is told nothing and a compaction that failed passes for done. Claude
Code's other commands are not advertised: over the gateway they answer nothing a client sees, or are not a session's
to run (login, config).
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

from ccapi.client import Compaction

ADVERTISED = AvailableCommandsUpdate(
    session_update="available_commands_update",
    available_commands=[
        AvailableCommand(
            name="compact",
            description="Compact the conversation now: Claude Code summarizes it to free the context window",
            input=AvailableCommandInput(UnstructuredCommandInput(hint="what the summary should keep (optional)")),
        )
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


def compacted(done: Compaction) -> str:
    """What the user reads of a compaction: the tokens before and after, as ``POST /compact`` reports them."""
    return f"Compacted the conversation: {_tokens(done.pre_tokens)} tokens before, {_tokens(done.post_tokens)} after."


def _tokens(count: int | None) -> str:
    return "?" if count is None else f"{count:,}"
