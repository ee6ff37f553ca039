"""Delivery receipts: what an SMS provider reports after it took a message, as an
operation on the one write path.

A provider's 2xx only means "queued"; the receipt (Twilio's status callback, Vonage's
DLR) says whether the handset got it. Each final receipt is appended to the message's
history as a delivery attempt with outcome ``receipt``, the provider's status word as
its code and, for a failure, the provider's error. A failure ("undelivered", "failed",
"rejected", "expired") moves a ``sent`` row to ``failed`` with that reason, and a
technician's notice then goes on to their next channel, as after any permanent failure.
A "delivered" receipt leaves the row ``sent``. History is not rewritten: a receipt for
a row that is not ``sent`` (already failed, or waiting for a retry after a timeout the
provider did not see), or for an earlier send of it, is recorded and changes nothing; the
same receipt twice is recorded once.

A receipt may overtake the dispatcher's own record of the send (a fast carrier, a slow
commit). While the row is still ``sending`` the receipt is answered ``not_yet`` and not
applied, so the dispatcher's "sent" cannot overwrite a failure; the webhook answers 503
and a provider that retries (Vonage) brings it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from storage.models import DeliveryAttempt, Notification
from storage.operations import Executor, WriteContext

ReceiptResult = Literal["applied", "recorded", "duplicate", "unknown", "not_yet"]


@dataclass(frozen=True, slots=True)
class ApplyReceipt:
    provider: str  # the notifier name the row was sent through (twilio, vonage)
    provider_message_id: str  # the provider's id of the message (or of one of its parts)
    status: str  # the provider's final status word: delivered, undelivered, failed …
    failed: bool  # the provider says the message did not arrive
    error_code: str | None = None
    error_text: str | None = None
    # The notification the provider names back (our callback URL or client-ref); else the
    # row is found by the provider's id.
    notification_id: int | None = None
    # The provider has one id per message (Twilio's sid), so a receipt for another id is
    # about an earlier send of the row (one whose answer was lost to a timeout); Vonage
    # has one per part, and only the first is on the row.
    one_id_per_message: bool = True

    def reason(self) -> str:
        detail = " ".join(p for p in (self.error_code, self.error_text) if p)
        said = f"{self.provider} reports the message {self.status}"
        return f"{said}: {detail}" if detail else said


class ReceiptRecorder(Executor):
    """Executes ``ApplyReceipt``."""

    def __init__(self, fallback: Any = None) -> None:
        self.fallback = fallback  # notifiers.fallback.NextChannel, set by the wiring

    def run_one(self, conn: Connection, op: ApplyReceipt, ctx: WriteContext) -> ReceiptResult:
        row = self._find(conn, op)
        if row is None:
            return "unknown"
        if row.status == "sending":
            return "not_yet"
        if self._seen(conn, row.id, op):
            return "duplicate"
        reason = op.reason()
        conn.execute(
            insert(DeliveryAttempt).values(
                notification_id=row.id,
                started_at=ctx.now,
                duration_ms=0,
                outcome="receipt",
                provider=op.provider,
                provider_code=op.status[:40],
                provider_response=reason[:4000],
                provider_message_id=op.provider_message_id[:200],
                error=reason if op.failed else None,
            )
        )
        other_send = (
            op.one_id_per_message
            and row.provider_id is not None
            and row.provider_id != op.provider_message_id
        )
        if not op.failed or row.status != "sent" or other_send:
            return "recorded"
        conn.execute(
            update(Notification)
            .where(Notification.id == row.id, Notification.status == "sent")
            .values(status="failed", status_reason=reason, last_error=reason)
        )
        if self.fallback is not None:
            self.fallback.enqueue_next(conn, row.id, ctx.now)
        return "applied"

    @staticmethod
    def _find(conn: Connection, op: ApplyReceipt) -> Any:
        query = select(Notification.id, Notification.status, Notification.provider_id).where(
            Notification.channel == "sms", Notification.provider == op.provider
        )
        if op.notification_id is not None:
            query = query.where(Notification.id == op.notification_id)
        else:
            query = query.where(Notification.provider_id == op.provider_message_id)
        if conn.dialect.name == "postgresql":
            # Receipts for the parts of one message arrive together: one at a time.
            query = query.with_for_update()
        return conn.execute(query.limit(1)).first()

    @staticmethod
    def _seen(conn: Connection, notification_id: int, op: ApplyReceipt) -> bool:
        return (
            conn.scalar(
                select(DeliveryAttempt.id)
                .where(
                    DeliveryAttempt.notification_id == notification_id,
                    DeliveryAttempt.outcome == "receipt",
                    DeliveryAttempt.provider_message_id == op.provider_message_id[:200],
                    DeliveryAttempt.provider_code == op.status[:40],
                )
                .limit(1)
            )
            is not None
        )
