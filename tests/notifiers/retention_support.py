"""Rows for the retention tests: notifications of a given age and status, with attempts."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import insert

from config.app import Services
from storage.models import DeliveryAttempt, Notification, utcnow

OLD = utcnow() - timedelta(days=400)


async def add_row(
    services: Services,
    created: datetime,
    status: str = "sent",
    *,
    attempts: int = 0,
    resend_of: int | None = None,
) -> int:
    """One notification created at ``created``, with ``attempts`` delivery attempts."""
    async with services.db.session() as session, session.begin():
        row_id: int = await session.scalar(
            insert(Notification)
            .values(
                channel="email",
                trigger="manual" if resend_of else "auto",
                template="ack",
                recipient="ana@example.com",
                subject="Caso recibido",
                body="Hemos recibido su mensaje.",
                provider="email",
                status=status,
                created_at=created,
                next_attempt_at=created,
                resend_of=resend_of,
            )
            .returning(Notification.id)
        )
        for _ in range(attempts):
            await session.execute(
                insert(DeliveryAttempt).values(
                    notification_id=row_id, started_at=created, outcome="sent", provider="email"
                )
            )
    return row_id
