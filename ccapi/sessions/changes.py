"""What a change of a session's options records: the ``session.updated`` event.

Options change between turns (``PATCH``), and one changes inside a turn: Claude Code leaves plan
mode when its plan is approved. A client watching the log (a console, an ACP editor's mode picker)
learns either way, and the session keeps the change, so a Claude Code started for it again (after
idle eviction or a restart) starts as the last one ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccapi.store import SessionRecord

#: The options whose values the event carries (the system prompt and output schema only as changed: they can be
#: long). The webhook as ``webhook_ended`` shows it, so a reader handles a PATCH's and a 410's change alike; it
#: holds no secret (``url`` and ``events`` only; a URL with credentials is refused).
SHOWN = ("model", "permission_mode", "max_budget_usd", "webhook")
PLAN_APPROVED = "plan_approved"
"""``by``: Claude Code left plan mode, its plan (``ExitPlanMode``) approved, for the ``default`` mode."""
WEBHOOK_GONE = "webhook_gone"
"""``by``: the session's webhook receiver answered ``410 Gone``, which ended the subscription."""


def session_updated(before: SessionRecord, fields: Mapping[str, Any], by: str) -> dict[str, Any]:
    """``changed`` (names), the new values of the ``SHOWN`` ones, their ``previous`` values (a webhook:
    ``null`` for none), and ``by`` (``request``: a ``PATCH``; ``plan_approved``)."""
    changed = sorted(name for name in fields if name != "updated_at")
    shown = [name for name in changed if name in SHOWN]
    return {
        "changed": changed,
        **{name: fields[name] for name in shown},
        "previous": {name: getattr(before, name) for name in shown},
        "by": by,
    }


def webhook_ended(previous: dict[str, Any]) -> dict[str, Any]:
    """``session.updated`` for a subscription its receiver ended (``WEBHOOK_GONE``): the webhook now and before."""
    return {"changed": ["webhook"], "webhook": None, "previous": {"webhook": previous}, "by": WEBHOOK_GONE}
