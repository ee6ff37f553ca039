"""A technician's next channel: when a notice fails for good or dies, the same notice is
queued on the next channel of their ordered list (push, then Telegram, then email …).

Templates are named ``<what>_<channel>`` (``assigned_push``, ``assigned_email``), so the
notice is rendered again for the channel it now goes by, from the context it was first
rendered from.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from notifiers.outbox import OutboundRequest, Outbox
from storage.models import Notification


class NextChannel:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def enqueue_next(self, conn: Connection, notification_id: int, now: datetime) -> int | None:
        """Queue the notice on the next channel; its row id, or None when none is left."""
        row = conn.execute(
            select(Notification.__table__).where(Notification.id == notification_id)
        ).first()
        if row is None or not row.fallback:
            return None
        nxt, *rest = row.fallback
        base = row.template.rsplit("_", 1)[0]
        request = OutboundRequest(
            channel=nxt["channel"],
            template=f"{base}_{nxt['channel']}",
            language=row.language,
            recipient=nxt["address"],
            context=dict(row.context),
            case_id=row.case_id,
            customer_id=row.customer_id,
            trigger=row.trigger,
            provider=nxt.get("provider", ""),
            audience=row.audience,
            technician_id=row.technician_id,
            fallback=tuple(rest),
            reason=f"after notification {row.id} ({row.channel}) failed",
        )
        return self.outbox.enqueue_one(conn, request, now)
