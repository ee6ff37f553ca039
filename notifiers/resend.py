"""Resending from the outbound log: new outbox rows that point at the original.

History is never rewritten: a resend inserts a row with ``resend_of``, trigger ``manual``,
who asked and why, and leaves the original untouched. It is rendered again from the
original's context refreshed with the case as it is now, or (``as_sent``) carries the
original's text unchanged. A row is not resent, and the reason says why, when the original
is still queued, the recipient opted out, or the recipient is gone (a technician's push
subscription removed since).

Idempotency: a caller's key is stored per original row as ``<user>:<key>:<id>``, so the
same key asked twice (a double click, a retried request, two daemons) queues one row and
answers the first; on PostgreSQL the loser of a concurrent race hits the unique index
and answers the winner's row (``failed``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from notifiers.outbox import OutboundRequest, Outbox
from notifiers.suppression import opted_out
from notifiers.templates import Rendered
from storage.bulk import core_insert
from storage.models import Notification, TechnicianChannel
from storage.operations import Executor, OperationRefused, WriteContext

# The cases' current facts for rendering again: (conn, case ids, ctx) → each case's
# context by id (a case that is gone is left out). One call per batch of originals: a bulk
# resend's step renders hundreds of rows, mostly of different cases.
CaseContext = Callable[[Connection, Collection[int], WriteContext], dict[int, dict[str, Any]]]

STILL_QUEUED = "still queued"
OPTED_OUT = "opted out"
RECIPIENT_GONE = "recipient gone"
ALREADY_RESENT = "already resent under this key"
MAX_REASON = 2_000

ORIGINAL_FIELDS = (
    Notification.id, Notification.channel, Notification.template, Notification.language,
    Notification.recipient, Notification.subject, Notification.body, Notification.html,
    Notification.headers, Notification.context, Notification.case_id,
    Notification.customer_id, Notification.status, Notification.provider,
    Notification.audience, Notification.technician_id, Notification.attachments,
    Notification.segments, Notification.created_at,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ResendOne:
    notification_id: int
    requested_by: str
    reason: str | None = None
    as_sent: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class Resent:
    """The answer to one resend: the new row, or why there is none."""

    original: int
    notification_id: int | None
    skipped: str | None = None
    repeated: bool = False  # the key had been used: this is the first request's row


def row_key(requested_by: str, key: str, original: int) -> str:
    return f"{requested_by}:{key}:{original}"[:200]


class ResendWriter:
    """Builds resend rows for a batch of originals (shared by one resend and a job's step)."""

    def __init__(self, outbox: Outbox, case_context: CaseContext | None = None) -> None:
        self.outbox = outbox
        self.case_context = case_context

    def originals(self, conn: Connection, ids: Sequence[int]) -> list[Any]:
        if not ids:
            return []
        rows = conn.execute(select(*ORIGINAL_FIELDS).where(Notification.id.in_(list(ids))))
        return sorted(rows, key=lambda r: int(r.id))

    def resend(
        self,
        conn: Connection,
        originals: Sequence[Any],
        keys: dict[int, str],
        *,
        requested_by: str,
        reason: str | None,
        as_sent: bool,
        ctx: WriteContext,
    ) -> tuple[dict[int, str], int | None]:
        """Insert a resend of each original (keyed by ``keys``): the skipped ones with
        their reasons, and the new row's id when there is exactly one."""
        skipped = self._skipped(conn, originals, keys)
        rows = []
        contexts: dict[int, dict[str, Any]] = {}
        if not as_sent and self.case_context is not None:
            cases = {o.case_id for o in originals if o.id not in skipped and o.case_id is not None}
            if cases:
                contexts = self.case_context(conn, cases, ctx)
        for original in originals:
            if original.id in skipped:
                continue
            row = self._row(original, requested_by, reason, as_sent, ctx, contexts)
            row["idempotency_key"] = keys.get(original.id)
            rows.append(row)
        if len(rows) == 1:
            new_id = conn.scalar(insert(Notification).values(rows[0]).returning(Notification.id))
            return skipped, new_id
        core_insert(conn, Notification.__table__, rows)
        return skipped, None

    def _skipped(
        self, conn: Connection, originals: Sequence[Any], keys: dict[int, str]
    ) -> dict[int, str]:
        skipped: dict[int, str] = {}
        used = set(conn.scalars(
            select(Notification.idempotency_key).where(
                Notification.idempotency_key.in_([k for k in keys.values() if k])
            )
        )) if keys else set()  # fmt: skip
        by_channel: dict[str, set[str]] = {}
        for o in originals:
            by_channel.setdefault(o.channel, set()).add(o.recipient)
        refused = {
            (channel, address)
            for channel, addresses in by_channel.items()
            for address in opted_out(conn, channel, addresses)
        }
        technicians = {o.technician_id for o in originals if o.technician_id is not None}
        current = set()
        if technicians:
            current = {
                (r.technician_id, r.channel, r.address)
                for r in conn.execute(
                    select(TechnicianChannel.technician_id, TechnicianChannel.channel,
                           TechnicianChannel.address)
                    .where(TechnicianChannel.technician_id.in_(technicians))
                )
            }  # fmt: skip
        for o in originals:
            if keys.get(o.id) in used:
                skipped[o.id] = ALREADY_RESENT
            elif o.status in ("pending", "sending"):
                skipped[o.id] = STILL_QUEUED
            elif (o.channel, o.recipient) in refused:
                skipped[o.id] = OPTED_OUT
            elif not o.recipient.strip() or (
                o.channel == "push" and (o.technician_id, o.channel, o.recipient) not in current
            ):
                skipped[o.id] = RECIPIENT_GONE
        return skipped

    def _row(
        self,
        original: Any,
        requested_by: str,
        reason: str | None,
        as_sent: bool,
        ctx: WriteContext,
        contexts: dict[int, dict[str, Any]],
    ) -> dict[str, Any]:
        context = dict(original.context or {})
        if not as_sent and original.case_id is not None:
            context.update(contexts.get(original.case_id) or {})
        headers = dict(original.headers or {})
        request = OutboundRequest(
            original.channel, original.template, original.language, original.recipient,
            context, original.case_id, original.customer_id, trigger="manual",
            provider=original.provider, audience=original.audience,
            technician_id=original.technician_id,
            automatic=headers.get("Auto-Submitted", "no"),
            requested_by=requested_by, reason=reason, resend_of=original.id,
            attachments=tuple(original.attachments or ()),
        )  # fmt: skip
        text = Rendered(original.subject, original.body, original.html) if as_sent else None
        row = self.outbox.row(request, ctx.now, text)
        # The thread the original answered stays the thread the resend answers.
        for name in ("In-Reply-To", "References"):
            if name in headers:
                row["headers"][name] = headers[name]
        return row


class SingleResender(Executor):
    """Executor of ``ResendOne``."""

    def __init__(self, writer: ResendWriter) -> None:
        self.writer = writer

    def run_one(self, conn: Connection, op: ResendOne, ctx: WriteContext) -> Resent:
        key = row_key(op.requested_by, op.idempotency_key, op.notification_id) if (
            op.idempotency_key) else None  # fmt: skip
        if key is not None:
            earlier = self._earlier(conn, key, op.notification_id)
            if earlier is not None:
                return earlier
        originals = self.writer.originals(conn, [op.notification_id])
        if not originals:
            raise OperationRefused("not_found", f"no notification {op.notification_id}")
        skipped, new_id = self.writer.resend(
            conn, originals, {op.notification_id: key} if key else {},
            requested_by=op.requested_by, reason=at_most(op.reason), as_sent=op.as_sent,
            ctx=ctx,
        )  # fmt: skip
        if op.notification_id in skipped:
            return Resent(op.notification_id, None, skipped[op.notification_id])
        return Resent(op.notification_id, new_id)

    def failed(self, conn: Connection, op: ResendOne, error: Exception, ctx: WriteContext) -> Any:
        # PostgreSQL: a concurrent twin with the same key committed first and this insert
        # hit the unique index; the answer is the twin's row.
        if not op.idempotency_key:
            return None
        return self._earlier(
            conn, row_key(op.requested_by, op.idempotency_key, op.notification_id),
            op.notification_id,
        )  # fmt: skip

    @staticmethod
    def _earlier(conn: Connection, key: str, original: int) -> Resent | None:
        found = conn.scalar(select(Notification.id).where(Notification.idempotency_key == key))
        return None if found is None else Resent(original, int(found), repeated=True)


def at_most(reason: str | None) -> str | None:
    """A resend's reason as stored: trimmed, bounded, None when blank."""
    text = (reason or "").strip()
    return text[:MAX_REASON] or None
