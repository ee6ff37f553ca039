"""Opening a case: a routing Decision applied to the message that opens it.

The routing engine decides (``routing.engine``: pure, with a reason for every field); this
module turns that decision and the message into the new case's column values and the
reasons recorded on it. A message whose routing raises is kept as a failed inbound row,
replayable after a fix, never lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cases.lookups import Work
from intake.message import InboundMessage
from routing.catalog import CatalogSnapshot
from routing.engine import Decision, RoutingInput, RuleEngine


def routing_input(msg: InboundMessage) -> RoutingInput:
    return RoutingInput(
        channel=msg.channel.value,
        category=msg.category,
        subreason=msg.subreason,
        area=msg.area,
        priority=msg.priority,
    )


def new_case_values(
    msg: InboundMessage, decision: Decision, now: datetime, parent_id: int | None
) -> dict[str, Any]:
    """The new case's columns (its number and customer are added when they are known)."""
    title = msg.subject.strip() or (msg.text.strip().splitlines() or [""])[0][:120]
    return {
        "title": (title or "(sin asunto)")[:500],
        "description": msg.text,
        "status_id": decision.status_id,
        "priority_id": decision.priority_id,
        "severity_id": decision.severity_id,
        "category_id": decision.category_id,
        "subreason": decision.subreason,
        "area_id": decision.area_id,
        "assignee_id": decision.assignee_id,
        "contact": msg.sender.email or msg.sender.phone or msg.sender.telegram_id or "",
        "origin_channel": msg.channel.value,
        "language": msg.language,
        "tags": [],
        "cc": [],
        "is_public": True,
        "solution": "",
        "escalation_level": 0,
        "version": 1,
        "created_at": now,
        "updated_at": now,
        "parent_id": parent_id,
    }


def open_case(w: Work, engine: RuleEngine, catalog: CatalogSnapshot, now: datetime) -> None:
    """Route ``w``'s message and set what its new case will be, or mark it failed."""
    msg = w.item.msg
    try:
        decision = engine.decide(routing_input(msg), catalog)
    except Exception as exc:  # recorded as a failed inbound row, replayable later
        w.outcome = "failed"
        w.error = f"routing: {type(exc).__name__}: {exc}"
        return
    w.new_case = new_case_values(msg, decision, now, w.parent_case_id)
    w.reasons = decision.reasons
    if w.parent_case_id is not None and msg.parent_case:
        w.reasons += (f"one case per area: linked to {msg.parent_case}",)
    elif w.parent_case_id is not None:
        w.reasons += ("reply to a closed case: a new case linked to it",)
    w.outcome = "created"
