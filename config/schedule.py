"""The daemon's clock: the table of scheduled jobs, run by APScheduler 3 on the daemon's loop.

Every row of the table pokes a runner (DESIGN §5): the job itself does no work, so a slow
database never makes a job overrun its interval, and the work gets the runner's logging,
its one-at-a-time slot and its graceful stop. Jobs are coalesced (runs missed while the
loop was busy become one), never overlap (``max_instances=1``) and have no misfire grace
limit: a late poke still pokes. ``JobScheduler`` is a long-lived part like any other: the
daemon starts and stops it; no library owns the loop.

A new job (escalation, reopen, auto-close) is one more row in ``job_table`` and one more
runner given to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any, Protocol

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from config.settings import Settings

log = logging.getLogger(__name__)


class Pokeable(Protocol):
    def poke(self) -> None:
        """Work may be due: look for it now."""


@dataclass(frozen=True)
class ScheduledJob:
    name: str  # the job's id, in APScheduler's log lines too
    target: Pokeable
    every: timedelta


def job_table(settings: Settings, *, log_retention: Pokeable | None = None) -> list[ScheduledJob]:
    """What runs on the clock: a row for each job whose runner was built and is enabled."""
    jobs: list[ScheduledJob] = []
    if log_retention is not None and settings.log.keep_days > 0:
        every = timedelta(minutes=settings.log.prune_every_minutes)
        jobs.append(ScheduledJob("log-retention", log_retention, every))
    return jobs


async def _poke(target: Pokeable) -> None:
    # A coroutine, so APScheduler's asyncio executor runs it on the loop (a plain function
    # would go to a thread, where poking an asyncio runner is not safe).
    target.poke()


class JobScheduler:
    def __init__(self, jobs: Sequence[ScheduledJob]) -> None:
        self.jobs = list(jobs)
        self._scheduler: Any = None
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        # UTC throughout: no dependence on the host's zone, nor on DST changes.
        scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=UTC)
        self._stopped.clear()
        scheduler.add_listener(lambda _event: self._stopped.set(), EVENT_SCHEDULER_SHUTDOWN)
        scheduler.start()
        for job in self.jobs:
            scheduler.add_job(
                _poke,
                IntervalTrigger(seconds=job.every.total_seconds(), timezone=UTC),
                args=(job.target,),
                id=job.name,
                name=job.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=None,
            )
        self._scheduler = scheduler
        if self.jobs:
            log.info(
                "scheduled: %s",
                ", ".join(f"{job.name} every {job.every}" for job in self.jobs),
            )

    async def stop(self) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is None or not scheduler.running:
            return
        scheduler.shutdown(wait=False)
        # AsyncIOScheduler stops in a callback it queues on the loop: wait for it to run.
        await self._stopped.wait()
