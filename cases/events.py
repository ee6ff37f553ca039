"""Case events: the rows of a case's history (routing reasons, changes, notes, merges).

Every change to a case is recorded as an event with its actor (the user a token belongs
to, or ``system``) and, for field changes, the values before and after, so the timeline
answers who did what and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Connection

from storage.models import CaseEvent

INSERT_EVENT = insert(CaseEvent).returning(CaseEvent.id)


def event_row(
    case_id: int, kind: str, detail: dict[str, Any], actor: str, now: datetime
) -> dict[str, Any]:
    return {"case_id": case_id, "kind": kind, "detail": detail, "actor": actor, "created_at": now}


def record_event(
    conn: Connection, case_id: int, kind: str, detail: dict[str, Any], actor: str, now: datetime
) -> int:
    """Insert one event; its id."""
    event_id = conn.scalar(INSERT_EVENT, event_row(case_id, kind, detail, actor, now))
    assert event_id is not None
    return int(event_id)
