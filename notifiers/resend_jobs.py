"""Bulk resends as jobs: started by one operation, worked through in steps by a runner,
resumed after a restart, cancellable.

``StartResendJob`` freezes the selection (a list of ids, or the log's filters over the rows
that exist at that moment: ``max_id``) and counts it. Each ``ResendStep`` takes the next
rows after the job's ``position``, queues their resends (``notifiers.resend``) and moves
the position in the same transaction: a crash loses no step and repeats none, so every
selected row is handled exactly once; each row's idempotency key (``job<id>:<row>``, or
the caller's key) would refuse a second resend anyway. On PostgreSQL the job row is locked
for the step, so two daemons working the same job take turns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from notifiers.resend import ResendWriter, at_most
from plumbing.runner import Runner
from storage.db import Database
from storage.log_filters import LogFilters, conditions, parse_filters
from storage.log_queries import running_jobs
from storage.models import Notification, ResendJob
from storage.operations import Executor, OperationRefused, WriteContext
from storage.paging import QueryError
from storage.write_path import WritePath

log = logging.getLogger(__name__)

STEP_ROWS = 500
MAX_IDS = 100_000
NOT_FOUND = "not found"


@dataclass(frozen=True, slots=True)
class StartResendJob:
    """``selection``: ``{"ids": [...]}`` or ``{"params": {<log filters>}}``."""

    selection: dict[str, Any]
    requested_by: str
    reason: str | None = None
    as_sent: bool = False
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class JobStarted:
    job_id: int
    total: int
    repeated: bool = False  # the key had been used: this is the first request's job


@dataclass(frozen=True, slots=True)
class ResendStep:
    job_id: int
    rows: int = STEP_ROWS


@dataclass(frozen=True, slots=True)
class StepDone:
    finished: bool
    queued: int = 0


@dataclass(frozen=True, slots=True)
class CancelJob:
    job_id: int


def _job_key(requested_by: str, key: str) -> str:
    return f"{requested_by}:{key}"[:200]


def _filters(params: dict[str, Any]) -> LogFilters:
    try:
        return parse_filters(params)
    except QueryError as exc:
        raise OperationRefused("invalid", str(exc), exc.param) from None


class JobStarter(Executor):
    """Executor of ``StartResendJob``."""

    def run_one(self, conn: Connection, op: StartResendJob, ctx: WriteContext) -> JobStarted:
        key = _job_key(op.requested_by, op.idempotency_key) if op.idempotency_key else None
        if key is not None:
            earlier = self._earlier(conn, key)
            if earlier is not None:
                return earlier
        max_id = int(conn.scalar(select(func.max(Notification.id))) or 0)
        selection: dict[str, Any]
        if "ids" in op.selection:
            ids = sorted({int(i) for i in op.selection["ids"]})
            if not ids:
                raise OperationRefused("invalid", "ids is empty", "ids")
            if len(ids) > MAX_IDS:
                raise OperationRefused("invalid", f"at most {MAX_IDS} ids at once", "ids")
            selection, total = {"ids": ids}, len(ids)
        else:
            filters = _filters(dict(op.selection.get("params") or {}))
            total = int(
                conn.scalar(
                    select(func.count()).select_from(Notification).where(
                        *conditions(conn, filters), Notification.id <= max_id
                    )
                ) or 0
            )  # fmt: skip
            selection = {"params": filters.params(), "max_id": max_id}
        finished = total == 0
        job_id = conn.scalar(
            insert(ResendJob).values(
                requested_by=op.requested_by[:200], reason=at_most(op.reason),
                selection=selection, as_sent=op.as_sent, idempotency_key=key,
                status="done" if finished else "running", total=total, done=0, queued=0,
                skipped={}, position=None, created_at=ctx.now, updated_at=ctx.now,
                finished_at=ctx.now if finished else None,
            ).returning(ResendJob.id)
        )  # fmt: skip
        assert job_id is not None
        return JobStarted(int(job_id), total)

    def failed(
        self, conn: Connection, op: StartResendJob, error: Exception, ctx: WriteContext
    ) -> Any:
        # PostgreSQL: a concurrent twin with the same key won the unique index.
        if not op.idempotency_key:
            return None
        return self._earlier(conn, _job_key(op.requested_by, op.idempotency_key))

    @staticmethod
    def _earlier(conn: Connection, key: str) -> JobStarted | None:
        row = conn.execute(
            select(ResendJob.id, ResendJob.total).where(ResendJob.idempotency_key == key)
        ).first()
        return None if row is None else JobStarted(int(row.id), int(row.total), repeated=True)


class StepRunner(Executor):
    """Executor of ``ResendStep``: the next rows of a running job, and its new position."""

    def __init__(self, writer: ResendWriter) -> None:
        self.writer = writer

    def run_one(self, conn: Connection, op: ResendStep, ctx: WriteContext) -> StepDone:
        job = conn.execute(
            select(ResendJob).where(ResendJob.id == op.job_id).with_for_update()
        ).first()
        if job is None:
            raise OperationRefused("not_found", f"no job {op.job_id}")
        if job.status != "running":
            return StepDone(finished=True)
        limit = max(1, op.rows)
        selection = dict(job.selection or {})
        if "ids" in selection:
            after = int(job.position or 0)
            batch = [i for i in selection["ids"] if i > after][:limit]
            originals = self.writer.originals(conn, batch)
            position: Any = batch[-1] if batch else after
            handled = len(batch)
        else:
            originals = self._next_by_filter(conn, selection, job.position, limit)
            last = originals[-1] if originals else None
            position = [last.created_at.isoformat(), last.id] if last else job.position
            handled = len(originals)
        found = {o.id for o in originals}
        missing = handled - len(found)
        prefix = job.idempotency_key or f"job{job.id}"
        skipped, _ = self.writer.resend(
            conn, originals, {o.id: f"{prefix}:{o.id}"[:200] for o in originals},
            requested_by=job.requested_by, reason=job.reason, as_sent=job.as_sent, ctx=ctx,
        )  # fmt: skip
        counts = dict(job.skipped or {})
        for reason in skipped.values():
            counts[reason] = counts.get(reason, 0) + 1
        if missing:
            counts[NOT_FOUND] = counts.get(NOT_FOUND, 0) + missing
        queued = len(originals) - len(skipped)
        finished = handled < limit
        conn.execute(
            update(ResendJob).where(ResendJob.id == job.id).values(
                done=job.done + handled, queued=job.queued + queued, skipped=counts,
                position=position, updated_at=ctx.now,
                **({"status": "done", "finished_at": ctx.now} if finished else {}),
            )
        )  # fmt: skip
        return StepDone(finished, queued)

    def _next_by_filter(
        self, conn: Connection, selection: dict[str, Any], position: Any, limit: int
    ) -> list[Any]:
        filters = _filters(dict(selection.get("params") or {}))
        conds = [*conditions(conn, filters), Notification.id <= int(selection.get("max_id", 0))]
        if position:
            at, last = datetime.fromisoformat(position[0]), int(position[1])
            conds.append(Notification.created_at >= at)
            conds.append((Notification.created_at > at) | (Notification.id > last))
        ids = list(
            conn.scalars(
                select(Notification.id).where(*conds)
                .order_by(Notification.created_at, Notification.id).limit(limit)
            )
        )  # fmt: skip
        originals = self.writer.originals(conn, ids)
        order = {i: n for n, i in enumerate(ids)}
        return sorted(originals, key=lambda o: order[o.id])


class JobCanceller(Executor):
    """Executor of ``CancelJob``: a running job stops after its current step."""

    def run_one(self, conn: Connection, op: CancelJob, ctx: WriteContext) -> str:
        status = conn.scalar(select(ResendJob.status).where(ResendJob.id == op.job_id))
        if status is None:
            raise OperationRefused("not_found", f"no job {op.job_id}")
        if status != "running":
            raise OperationRefused("conflict", f"job {op.job_id} is already {status}")
        conn.execute(
            update(ResendJob).where(ResendJob.id == op.job_id).values(
                status="cancelled", updated_at=ctx.now, finished_at=ctx.now
            )
        )  # fmt: skip
        return "cancelled"


class ResendJobRunner(Runner[int]):
    """Works every running job through to its end, a step (one transaction) at a time;
    poked when a job starts, and finds jobs left running by a restart at its poll.

    ``only``: work that one job and leave the others alone (the CLI following the job it
    started, so that it ends with it even where no daemon runs).
    """

    def __init__(
        self, db: Database, writes: WritePath, *, poll_seconds: float = 30.0,
        only: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__("resend-jobs", slots=2, poll_seconds=poll_seconds)
        self.db = db
        self.writes = writes
        self.only = only
        self._busy: set[int] = set()

    async def claim(self, capacity: int) -> Sequence[int]:
        jobs = [
            j for j in await self.db.read(running_jobs)
            if j not in self._busy and self.only in (None, j)
        ]  # fmt: skip
        taken = jobs[:capacity]
        self._busy.update(taken)
        return taken

    async def process(self, item: int) -> None:
        try:
            queued = 0
            while True:
                step: StepDone = await self.writes.submit(ResendStep(item))
                queued += step.queued
                if step.finished:
                    break
                if self._stopping.is_set():
                    # Stopping: end after this step rather than run the job out during the
                    # grace period; the job is resumed from its position at the next poll.
                    log.info("resend job %d: stopped between steps; it resumes later", item)
                    break
            log.info("resend job %d: %d resend(s) queued here", item, queued)
        finally:
            self._busy.discard(item)
