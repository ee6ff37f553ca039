"""The daemon's clock: the job table from the settings, APScheduler on the daemon's own loop
poking runners, and the log's retention driven by it end to end on both engines."""

from __future__ import annotations

import asyncio
import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select

from config.app import Services
from config.schedule import JobScheduler, ScheduledJob, job_table
from config.scheduled_parts import build_scheduled_parts
from config.settings import Settings
from notifiers.retention import LogRetention
from storage.models import Notification
from tests.conftest import make_settings
from tests.notifiers.dispatch_support import until
from tests.notifiers.retention_support import OLD, add_row


class Target:
    """Counts pokes and notes the thread each came on."""

    def __init__(self) -> None:
        self.pokes = 0
        self.threads: set[int] = set()
        self.poked = asyncio.Event()

    def poke(self) -> None:
        self.pokes += 1
        self.threads.add(threading.get_ident())
        self.poked.set()


def sqlite_settings(tmp_path: Path, **env: str) -> Settings:
    return make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}", **env)


def test_keep_days_0_schedules_nothing(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, VENTANILLA_LOG__KEEP_DAYS="0")
    assert job_table(settings, log_retention=Target()) == []
    parts = build_scheduled_parts(settings, SimpleNamespace())  # type: ignore[arg-type]
    assert parts.runners == {}
    assert parts.scheduler.jobs == []


def test_the_retention_job_runs_as_often_as_configured(tmp_path: Path) -> None:
    settings = sqlite_settings(tmp_path, VENTANILLA_LOG__PRUNE_EVERY_MINUTES="15")
    target = Target()
    assert job_table(settings, log_retention=target) == [
        ScheduledJob("log-retention", target, timedelta(minutes=15))
    ]
    services = SimpleNamespace(writes=object(), registry=CollectorRegistry())
    parts = build_scheduled_parts(settings, services)  # type: ignore[arg-type]
    retention = parts.runners["log retention"]
    assert isinstance(retention, LogRetention)
    assert (retention.keep, retention.batch) == (timedelta(days=365), 500)
    assert [job.target for job in parts.scheduler.jobs] == [retention]


async def test_jobs_poke_on_the_loop_coalesced_one_at_a_time() -> None:
    target = Target()
    scheduler = JobScheduler([ScheduledJob("test", target, timedelta(seconds=0.05))])
    await scheduler.start()
    try:
        job = scheduler._scheduler.get_job("test")
        assert (job.coalesce, job.max_instances, job.misfire_grace_time) == (True, 1, None)
        await asyncio.wait_for(target.poked.wait(), 5)
        target.poked.clear()
        await asyncio.wait_for(target.poked.wait(), 5)  # and again: it is a clock
    finally:
        await scheduler.stop()
    assert target.pokes >= 2
    # On the daemon's loop, not in a worker thread: a runner's poke is not thread-safe.
    assert target.threads == {threading.get_ident()}
    assert scheduler._scheduler is None
    await scheduler.stop()  # a second stop is harmless


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    # Retention of a day, its job every 60 ms.
    return make_settings(
        tmp_path,
        db_url,
        VENTANILLA_LOG__KEEP_DAYS="1",
        VENTANILLA_LOG__PRUNE_EVERY_MINUTES="0.001",
    )


@pytest.mark.writer_process
async def test_the_clock_drives_the_log_retention(services: Services) -> None:
    old = await add_row(services, OLD, attempts=1)
    kept = await add_row(services, OLD, "pending")
    parts = build_scheduled_parts(services.settings, services)
    runs = [asyncio.create_task(runner.run()) for runner in parts.runners.values()]
    await parts.scheduler.start()
    try:

        async def pruned() -> bool:
            async with services.db.session() as session:
                ids = set(await session.scalars(select(Notification.id)))
            return ids == {kept}

        await until(pruned)
    finally:
        await parts.stop()
        await asyncio.gather(*runs)
    assert services.registry.get_sample_value("ventanilla_log_pruned_total") == 1
    assert old != kept
