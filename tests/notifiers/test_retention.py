"""The log's retention on both engines: old finished rows and their attempts go in batches,
through the write path (on SQLite in the writer process, as in the daemon); rows still
pending or sending, originals of kept resends and rows a running bulk resend may read stay."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from config.app import Services
from notifiers.retention import LogRetention, RetentionMetrics
from notifiers.retention_ops import Pruned, PruneLog, ResendHolds, deletions, prunable
from storage.explain import query_plan
from storage.models import DeliveryAttempt, Notification, ResendJob, utcnow
from tests.notifiers.dispatch_support import until
from tests.notifiers.retention_support import OLD, add_row

pytestmark = pytest.mark.writer_process

NOW = utcnow()
CUTOFF = NOW - timedelta(days=365)


async def old_rows(services: Services, count: int, **kw: Any) -> list[int]:
    return [await add_row(services, OLD + timedelta(minutes=i), **kw) for i in range(count)]


async def remaining(services: Services) -> set[int]:
    async with services.db.session() as session:
        return set(await session.scalars(select(Notification.id)))


async def attempts_of(services: Services, ids: Sequence[int]) -> int:
    async with services.db.session() as session:
        found = await session.scalar(
            select(func.count()).where(DeliveryAttempt.notification_id.in_(ids))
        )
    return int(found or 0)


async def prune(services: Services, limit: int = 100) -> Pruned:
    pruned: Pruned = await services.writes.submit(PruneLog(CUTOFF, limit))
    return pruned


async def add_job(services: Services, selection: dict[str, Any], position: Any = None) -> int:
    async with services.db.session() as session, session.begin():
        job_id: int = await session.scalar(
            insert(ResendJob)
            .values(requested_by="ops", selection=selection, position=position, status="running")
            .returning(ResendJob.id)
        )
    return job_id


async def finish_job(services: Services, job_id: int) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(update(ResendJob).where(ResendJob.id == job_id).values(status="done"))


async def test_old_finished_rows_go_oldest_first_with_their_attempts(services: Services) -> None:
    finished = []
    for i, status in enumerate(["sent", "failed", "dead", "suppressed", "sent"]):
        finished.append(await add_row(services, OLD + timedelta(minutes=i), status, attempts=2))
    pending = await add_row(services, OLD, "pending", attempts=1)
    sending = await add_row(services, OLD, "sending", attempts=1)
    recent = await add_row(services, NOW - timedelta(days=3), attempts=1)

    assert await prune(services, limit=3) == Pruned(notifications=3, attempts=6)
    assert await remaining(services) == {*finished[3:], pending, sending, recent}
    assert await attempts_of(services, finished) == 4
    assert await prune(services, limit=3) == Pruned(notifications=2, attempts=4)
    assert await prune(services, limit=3) == Pruned(0, 0)
    assert await remaining(services) == {pending, sending, recent}
    assert await attempts_of(services, [pending, sending, recent]) == 3


async def test_an_original_stays_while_a_resend_of_it_is_kept(services: Services) -> None:
    resent_lately = await add_row(services, OLD)
    await add_row(services, NOW, resend_of=resent_lately)
    resend_waiting = await add_row(services, OLD)
    await add_row(services, OLD + timedelta(hours=1), "pending", resend_of=resend_waiting)
    both_old = await add_row(services, OLD)
    old_resend = await add_row(services, OLD + timedelta(hours=1), resend_of=both_old)

    assert await prune(services) == Pruned(1, 0)  # the old resend; its original waits
    assert old_resend not in await remaining(services)
    assert both_old in await remaining(services)
    assert await prune(services) == Pruned(1, 0)  # the next run: now nothing names it
    kept = await remaining(services)
    assert both_old not in kept
    assert {resent_lately, resend_waiting} <= kept


async def test_rows_a_running_resend_job_names_stay_until_it_is_done(services: Services) -> None:
    rows = await old_rows(services, 5)
    job = await add_job(services, {"ids": [rows[1], rows[3]]})
    assert await prune(services) == Pruned(3, 0)
    assert await remaining(services) == {rows[1], rows[3]}
    await finish_job(services, job)
    assert await prune(services) == Pruned(2, 0)
    assert await remaining(services) == set()


async def test_a_filter_job_keeps_the_rows_from_its_position_on(services: Services) -> None:
    rows = await old_rows(services, 6)
    async with services.db.session() as session:
        at = await session.scalar(select(Notification.created_at).where(Notification.id == rows[2]))
    assert at is not None
    job = await add_job(services, {"params": {"status": "failed"}, "max_id": rows[-1]},
                        position=[at.isoformat(), rows[2]])  # fmt: skip
    assert await prune(services) == Pruned(2, 0)
    assert await remaining(services) == set(rows[2:])
    await finish_job(services, job)
    assert await prune(services) == Pruned(4, 0)


async def test_a_filter_job_not_started_keeps_every_row_up_to_its_max_id(
    services: Services,
) -> None:
    rows = await old_rows(services, 3)
    job = await add_job(services, {"params": {"channel": "email"}, "max_id": rows[-1]})
    later = await add_row(services, OLD - timedelta(days=1))  # old, but created after the job
    assert await prune(services) == Pruned(1, 0)
    assert await remaining(services) == set(rows)
    assert later not in await remaining(services)
    await finish_job(services, job)
    assert await prune(services) == Pruned(3, 0)


async def test_a_job_whose_selection_is_not_understood_keeps_everything(
    services: Services,
) -> None:
    await old_rows(services, 2)
    job = await add_job(services, {"params": {}}, position="garbled")
    assert await prune(services) == Pruned(0, 0)
    await finish_job(services, job)
    assert await prune(services) == Pruned(2, 0)


async def test_the_runner_repeats_batches_and_reports_once(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    rows = await old_rows(services, 7, attempts=1)
    recent = await add_row(services, NOW)
    registry = CollectorRegistry()
    batches: list[int] = []
    services.writes.on_batch = batches.append
    runner = LogRetention(services.writes, RetentionMetrics(registry), keep_days=365, batch=3)
    task = asyncio.create_task(runner.run())
    try:
        with caplog.at_level(logging.INFO, logger="notifiers.retention"):
            runner.poke()

            async def pruned_all() -> bool:
                return registry.get_sample_value("ventanilla_log_pruned_total") == 7

            await until(pruned_all)
            await asyncio.wait_for(runner.idle(), 10)
    finally:
        await runner.stop()
        await task
    assert await remaining(services) == {recent}
    assert await attempts_of(services, rows) == 0
    assert len(batches) == 3  # 3 + 3 + 1: the short batch ends the pass
    lines = [r.getMessage() for r in caplog.records if r.name == "notifiers.retention"]
    assert len(lines) == 1
    assert "deleted 7 notification(s) and 7 attempt(s)" in lines[0]
    assert "in 3 batch(es)" in lines[0]


class FailingWrites:
    def __init__(self) -> None:
        self.calls = 0

    async def submit(self, op: Any) -> Any:
        self.calls += 1
        raise ConnectionError("database down")


async def test_a_failed_batch_ends_the_pass_and_the_next_poke_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writes = FailingWrites()
    runner = LogRetention(writes, RetentionMetrics(CollectorRegistry()),  # type: ignore[arg-type]
                          keep_days=1, batch=10)  # fmt: skip
    task = asyncio.create_task(runner.run())
    try:
        with caplog.at_level(logging.WARNING, logger="notifiers.retention"):
            runner.poke()
            await until(lambda: _calls(writes, 1))
            await asyncio.wait_for(runner.idle(), 10)
            runner.poke()
            await until(lambda: _calls(writes, 2))
    finally:
        await runner.stop()
        await task
    assert "a batch failed, stopping this run: database down" in caplog.text
    assert writes.calls == 2  # one batch per poke, not a retry loop


async def _calls(writes: FailingWrites, count: int) -> bool:
    return writes.calls >= count


def plans(conn: Connection, holds: ResendHolds) -> list[str]:
    if conn.dialect.name == "postgresql":
        # A test table is a few pages, where a sequential scan wins; this asks whether the
        # statements can be served by their index at all (bench/log_retention.py shows the
        # plans PostgreSQL picks by itself at 100,000 rows: the same).
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("SET LOCAL enable_sort = off")
    pick = prunable(conn.dialect.name, PruneLog(CUTOFF, 500), holds)
    return [query_plan(conn, statement) for statement in (pick, *deletions([1, 2, 3]))]


@pytest.mark.parametrize("holds", [ResendHolds(), ResendHolds(through_id=5, by_ids=True)])
async def test_a_batch_reads_and_deletes_through_indexes(
    services: Services, holds: ResendHolds
) -> None:
    await old_rows(services, 3)
    await add_job(services, {"ids": [1]})
    pick, attempts, rows = await services.db.read(plans, holds)
    if services.db.is_sqlite:
        assert "SEARCH notifications USING INDEX ix_notifications_list (created_at<?" in pick
        assert "USING INDEX ix_notifications_resend_list (resend_of=?)" in pick
        assert "INDEX ix_delivery_attempts_notification_id (notification_id=?)" in attempts
        assert "USING INTEGER PRIMARY KEY (rowid=?)" in rows
    else:
        assert "Index Scan using ix_notifications_list on notifications" in pick
        assert "Sort" not in pick  # the index gives the order: the LIMIT stops early
        assert "ix_notifications_resend_list" in pick
        assert "ix_delivery_attempts_notification_id" in attempts
        assert "pk_notifications" in rows
