"""The dispatcher's writes, as operations on the one write path: claim due rows, record an
attempt's outcome, release claims on a graceful stop.

A claim moves due rows (``pending`` and due, or ``sending`` whose lease ran out: a
dispatcher died holding them) to ``sending`` with a lease, in one statement per kind; on
PostgreSQL the rows are picked ``FOR UPDATE SKIP LOCKED``, so several daemons share one
outbox and never claim a row twice. A row whose previous claim ended without a recorded
outcome is handed out marked ``possible_duplicate``. Rows that must not leave (an opted-out
number, one of our own mailboxes, no provider) are suppressed here, with the reason.

Recording an outcome appends a delivery-attempt row and moves the notification to
``sent``, back to ``pending`` at its retry time, or to ``failed``/``dead``; a technician's
notice that fails for good is re-enqueued on their next channel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from notifiers.suppression import Suppression
from storage.bulk import core_insert
from storage.models import DeliveryAttempt, Notification, TechnicianChannel
from storage.operations import Executor, WriteContext

CLAIMED_FIELDS = (
    "id", "channel", "provider", "recipient", "subject", "body", "html", "headers",
    "message_id", "case_id", "attempts", "template", "language", "audience", "attachments",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    id: int
    channel: str
    provider: str
    recipient: str
    subject: str
    body: str
    html: str | None
    headers: dict[str, Any]
    message_id: str | None
    case_id: int | None
    attempts: int  # including this claim
    template: str
    language: str
    audience: str
    attachments: list[dict[str, Any]] = field(default_factory=list)
    possible_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Claimed:
    rows: list[ClaimedRow]
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (channel, provider)


@dataclass(frozen=True, slots=True)
class ClaimDue:
    owner: str
    limit: int
    lease_seconds: float
    providers: tuple[str, ...] = ()  # the providers this dispatcher can send through


@dataclass(frozen=True, slots=True)
class RecordAttempt:
    notification_id: int
    owner: str
    started_at: datetime
    duration_ms: int
    outcome: str  # sent | transient | permanent
    status: str  # sent | pending | failed | dead
    provider: str
    retry_at: datetime | None = None
    reason: str | None = None
    code: str | None = None
    response: str | None = None
    provider_message_id: str | None = None
    possible_duplicate: bool = False
    gone: bool = False  # the address no longer exists: forget it


@dataclass(frozen=True, slots=True)
class ReleaseClaims:
    """Give back claimed rows at a stop: ``ids`` were never handed to their provider (due
    again now, as if unclaimed); ``in_flight`` were, with no outcome, so they stay
    ``sending`` with a lapsed lease (due now, their next attempt a possible duplicate).
    Neither given: every row ``owner`` holds."""

    owner: str
    ids: tuple[int, ...] = field(default=())
    in_flight: tuple[int, ...] = field(default=())


def _due(now: datetime) -> Any:
    return or_(
        and_(Notification.status == "pending", Notification.next_attempt_at <= now),
        and_(Notification.status == "sending", Notification.lease_until < now),
    )


class Claimer(Executor):
    """Executes ``ClaimDue``."""

    def __init__(self, suppression: Suppression) -> None:
        self.suppression = suppression

    @staticmethod
    def _pick(conn: Connection, op: ClaimDue, due: Any, limit: int | None = None) -> list[Any]:
        limit = op.limit if limit is None else limit
        if limit <= 0:
            return []
        pick = (
            select(Notification.id, Notification.status)
            .where(due)
            .order_by(Notification.status, Notification.next_attempt_at, Notification.id)
            .limit(limit)
        )
        if op.providers:
            pick = pick.where(Notification.provider.in_(op.providers))
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        return list(conn.execute(pick).all())

    def run_one(self, conn: Connection, op: ClaimDue, ctx: WriteContext) -> Claimed:
        now = ctx.now
        # Two reads, each an ordered range of ix_notifications_due: lapsed claims first
        # (few, and the oldest work), then pending rows by due time. One query with OR
        # would have the database collect and sort every due row to return a handful.
        lapsed = self._pick(
            conn, op, and_(Notification.status == "sending", Notification.lease_until < now)
        )
        picked = lapsed + self._pick(
            conn,
            op,
            and_(Notification.status == "pending", Notification.next_attempt_at <= now),
            op.limit - len(lapsed),
        )
        if not picked:
            return Claimed([])
        lost = {r.id for r in picked if r.status == "sending"}  # a claim died mid-send
        ids = [r.id for r in picked]
        rows = conn.execute(
            update(Notification)
            .where(Notification.id.in_(ids))
            .values(
                status="sending",
                claimed_by=op.owner,
                lease_until=now + timedelta(seconds=op.lease_seconds),
                attempts=Notification.attempts + 1,
            )
            .returning(*(getattr(Notification, f) for f in CLAIMED_FIELDS))
        ).all()
        claimed = [ClaimedRow(**r._mapping, possible_duplicate=r.id in lost) for r in rows]
        held = self.suppression.check(conn, claimed)
        if held:
            for row_id, reason in held.items():
                conn.execute(
                    update(Notification)
                    .where(Notification.id == row_id)
                    .values(
                        status="suppressed",
                        status_reason=reason,
                        claimed_by=None,
                        lease_until=None,
                        attempts=Notification.attempts - 1,
                    )
                )
        return Claimed(
            sorted((c for c in claimed if c.id not in held), key=lambda c: c.id),
            [(c.channel, c.provider) for c in claimed if c.id in held],
        )


# A message that went out is sent whoever holds the row now (another dispatcher may have
# claimed it since our lease ran out); the usual outcome, so one statement for all of them.
_MARK_SENT = (
    update(Notification)
    .where(Notification.id == bindparam("row_id"), Notification.status != "sent")
    .values(
        status="sent",
        claimed_by=None,
        lease_until=None,
        status_reason=None,
        sent_at=bindparam("at"),
        provider_id=bindparam("given_id"),
    )
)


class AttemptRecorder(Executor):
    """Executes ``RecordAttempt`` (and re-enqueues a technician's notice on their next
    channel when this one failed for good). Set-based: a batch's attempts are one insert
    and its sent rows one update; only the other outcomes take a statement each."""

    isolated = False

    def __init__(self, fallback: Any = None) -> None:
        self.fallback = fallback  # notifiers.fallback.NextChannel, set by the wiring

    def run(self, conn: Connection, ops: Sequence[RecordAttempt], ctx: WriteContext) -> list[str]:
        core_insert(conn, DeliveryAttempt.__table__, [_attempt_row(op) for op in ops])
        sent = [
            {
                "row_id": op.notification_id,
                "at": ctx.now,
                "given_id": _cut(op.provider_message_id, 200),
            }
            for op in ops
            if op.status == "sent"
        ]
        if sent:
            conn.execute(_MARK_SENT, sent)
        for op in ops:
            if op.status != "sent":
                self._settle(conn, op, ctx)
        return [op.status for op in ops]

    def _settle(self, conn: Connection, op: RecordAttempt, ctx: WriteContext) -> None:
        values: dict[str, Any] = {
            "status": op.status,
            "claimed_by": None,
            "lease_until": None,
            "status_reason": None if op.status == "pending" else op.reason,
            "last_error": op.reason,
        }
        if op.status == "pending":
            values["next_attempt_at"] = op.retry_at or ctx.now
        # A row another dispatcher has claimed since our lease ran out is theirs now.
        mine = or_(Notification.claimed_by == op.owner, Notification.claimed_by.is_(None))
        done = conn.execute(
            update(Notification).where(Notification.id == op.notification_id, mine).values(**values)
        )
        if op.gone:
            self._forget(conn, op.notification_id)
        if done.rowcount and op.status in ("failed", "dead") and self.fallback is not None:
            self.fallback.enqueue_next(conn, op.notification_id, ctx.now)

    @staticmethod
    def _forget(conn: Connection, notification_id: int) -> None:
        row = conn.execute(
            select(Notification.technician_id, Notification.channel, Notification.recipient).where(
                Notification.id == notification_id
            )
        ).first()
        if row is not None and row.technician_id is not None:
            conn.execute(
                delete(TechnicianChannel).where(
                    TechnicianChannel.technician_id == row.technician_id,
                    TechnicianChannel.channel == row.channel,
                    TechnicianChannel.address == row.recipient,
                )
            )


def _cut(value: str | None, size: int) -> str | None:
    # Providers' codes and ids are cut to their columns: an odd answer must not make the
    # outcome unrecordable.
    return (value or "")[:size] or None


def _attempt_row(op: RecordAttempt) -> dict[str, Any]:
    return {
        "notification_id": op.notification_id,
        "started_at": op.started_at,
        "duration_ms": op.duration_ms,
        "outcome": op.outcome,
        "provider": op.provider,
        "provider_code": _cut(op.code, 40),
        "provider_response": _cut(op.response, 4000),
        "provider_message_id": _cut(op.provider_message_id, 200),
        "error": op.reason if op.outcome != "sent" else None,
        "possible_duplicate": op.possible_duplicate,
        "dispatcher": op.owner[:100],
    }


class ClaimReleaser(Executor):
    """Executes ``ReleaseClaims``: claimed but unsent rows go back to ``pending`` now."""

    def run_one(self, conn: Connection, op: ReleaseClaims, ctx: WriteContext) -> int:
        where = [Notification.status == "sending", Notification.claimed_by == op.owner]
        if op.in_flight:
            conn.execute(
                update(Notification)
                .where(*where, Notification.id.in_(op.in_flight))
                .values(lease_until=ctx.now)
            )
            if not op.ids:
                return 0
        if op.ids:
            where.append(Notification.id.in_(op.ids))
        done = conn.execute(
            update(Notification)
            .where(*where)
            .values(
                status="pending",
                claimed_by=None,
                lease_until=None,
                next_attempt_at=ctx.now,
                attempts=func.max(Notification.attempts - 1, 0)
                if conn.dialect.name == "sqlite"
                else func.greatest(Notification.attempts - 1, 0),
            )
        )
        return int(done.rowcount)


def outbox_depth(conn: Connection, now: datetime) -> Sequence[Any]:
    """Due rows per channel and provider, and the age of the oldest (for metrics)."""
    return conn.execute(
        select(
            Notification.channel,
            Notification.provider,
            func.count(),
            func.min(Notification.next_attempt_at),
        )
        .where(_due(now))
        .group_by(Notification.channel, Notification.provider)
    ).all()
