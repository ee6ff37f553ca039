"""The log's retention as an operation on the one write path: delete one batch of old rows.

``PruneLog(before, limit)`` deletes at most ``limit`` notifications created before
``before``, oldest first, with their delivery attempts, and answers how many went. A row
is kept, whatever its age, while

- it is ``pending`` or ``sending`` (still the outbox's business);
- another row names it in ``resend_of`` (the foreign key would refuse it; it goes in a
  later run, once its resends are gone);
- a running bulk resend (``resend_jobs``) may still read it: every id of an ``ids``
  selection; for a filter selection every row from the job's position on, or, before the
  job started, every row up to its ``max_id``.

The candidates are picked in the order of ``ix_notifications_list`` (created_at, id), so a
batch reads one index range; on PostgreSQL they are locked ``FOR UPDATE SKIP LOCKED``, so
several daemons pruning at once, or a row being claimed or resent meanwhile, never make a
batch wait or fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Delete, Select, cast, delete, exists, func, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from storage.models import DeliveryAttempt, Notification, ResendJob
from storage.operations import Executor, WriteContext

UNFINISHED = ("pending", "sending")


@dataclass(frozen=True, slots=True)
class PruneLog:
    before: datetime
    limit: int


@dataclass(frozen=True, slots=True)
class Pruned:
    notifications: int
    attempts: int


@dataclass(frozen=True, slots=True)
class ResendHolds:
    """What the running bulk resends keep: rows created at or after ``from_created`` (the
    earliest position of a filter job), rows with an id up to ``through_id`` (a filter job
    not yet started), the ids an ``ids`` job names (``by_ids``), or everything (``all``: a
    job whose selection is not understood, so nothing is risked)."""

    from_created: datetime | None = None
    through_id: int | None = None
    by_ids: bool = False
    all: bool = False


def resend_holds(conn: Connection) -> ResendHolds:
    """Read the running resend jobs (a handful, through ``ix_resend_jobs_status``)."""
    rows = conn.execute(
        select(ResendJob.selection, ResendJob.position).where(ResendJob.status == "running")
    ).all()
    from_created: datetime | None = None
    through_id: int | None = None
    by_ids = False
    for selection, position in rows:
        if not isinstance(selection, dict):
            return ResendHolds(all=True)
        if "ids" in selection:
            by_ids = True
        elif "params" in selection:
            if position is None:
                max_id = selection.get("max_id")
                if not isinstance(max_id, int):
                    return ResendHolds(all=True)
                through_id = max(max_id, through_id or 0)
            else:
                at = _position_created(position)
                if at is None:
                    return ResendHolds(all=True)
                from_created = at if from_created is None else min(at, from_created)
        else:
            return ResendHolds(all=True)
    return ResendHolds(from_created, through_id, by_ids)


def _position_created(position: Any) -> datetime | None:
    """The created_at of a job's position ``[created_at_iso, id]``, or None if malformed."""
    if not isinstance(position, Sequence) or isinstance(position, str) or not position:
        return None
    try:
        at = datetime.fromisoformat(str(position[0]))
    except ValueError:
        return None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def resent_ids(dialect: str) -> Select[Any]:
    """Every id named by the ``ids`` selection of a running resend job, read from the JSON
    column itself, so a long list needs no bound parameter per id."""
    running = ResendJob.status == "running"
    if dialect == "postgresql":
        return select(
            cast(func.json_array_elements_text(ResendJob.selection["ids"]), BigInteger)
        ).where(running)
    ids = func.json_each(ResendJob.selection, "$.ids").table_valued("value")
    return select(ids.c.value).select_from(ResendJob).join(ids, true()).where(running)


def prunable(dialect: str, op: PruneLog, holds: ResendHolds) -> Select[Any]:
    """The ids of the next batch to delete, oldest first (one range of
    ``ix_notifications_list``)."""
    resend = aliased(Notification)
    before = op.before
    if holds.from_created is not None:
        before = min(before, holds.from_created)
    pick = (
        select(Notification.id)
        .where(
            Notification.created_at < before,
            Notification.status.not_in(UNFINISHED),
            ~exists().where(resend.resend_of == Notification.id),
        )
        .order_by(Notification.created_at, Notification.id)
        .limit(op.limit)
    )
    if holds.through_id is not None:
        pick = pick.where(Notification.id > holds.through_id)
    if holds.by_ids:
        pick = pick.where(Notification.id.not_in(resent_ids(dialect)))
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    return pick


def deletions(ids: Sequence[int]) -> tuple[Delete, Delete]:
    """The batch's attempts (through ``ix_delivery_attempts_notification_id``), then its
    notifications (by primary key). The attempts go explicitly rather than by ON DELETE
    CASCADE: their count is part of the answer, and nothing hangs on SQLite's
    foreign_keys pragma."""
    return (
        delete(DeliveryAttempt).where(DeliveryAttempt.notification_id.in_(ids)),
        delete(Notification).where(Notification.id.in_(ids)),
    )


class LogPruner(Executor):
    """Executes ``PruneLog``: picks one batch and deletes it with its attempts."""

    def run_one(self, conn: Connection, op: PruneLog, ctx: WriteContext) -> Pruned:
        holds = resend_holds(conn)
        if holds.all or op.limit <= 0:
            return Pruned(0, 0)
        ids = list(conn.scalars(prunable(conn.dialect.name, op, holds)))
        if not ids:
            return Pruned(0, 0)
        of_attempts, of_rows = deletions(ids)
        attempts = conn.execute(of_attempts)
        rows = conn.execute(of_rows)
        return Pruned(int(rows.rowcount), int(attempts.rowcount))
