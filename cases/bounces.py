"""Delivery status notifications: mark the outbound notifications they report on as failed.

The bounce itself is stored and threaded like any message (it is automatic, so it gets no
acknowledgement); this module only updates the outbound log, so operations see which
notification failed and why, and can resend it (RFC 3464 reports, RFC 3834 loops).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from storage.models import Notification


def mark_bounced(conn: Connection, message_ids: Sequence[str], error: str | None) -> list[int]:
    """Set status ``failed`` with the reason on our notifications with these Message-IDs."""
    ids = list(
        conn.scalars(select(Notification.id).where(Notification.message_id.in_(set(message_ids))))
    )
    if ids:
        conn.execute(
            update(Notification)
            .where(Notification.id.in_(ids))
            .values(
                status="failed",
                last_error=f"bounced: {error or 'delivery failed'}",
                status_reason=f"bounced: {error or 'delivery failed'}",
            )
        )
    return ids
