"""Builds what runs on the daemon's clock from the settings: the runners the scheduler
pokes (the outbound log's retention; ``[log] keep_days = 0`` builds none), the runners
that keep their own time (long SMS whose parts never all came) and the scheduler with
its job table (``config.schedule``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from config.app import Services
from config.schedule import JobScheduler, job_table
from config.settings import Settings
from config.sms_intake_parts import stale_parts_runner
from notifiers.retention import LogRetention, RetentionMetrics
from plumbing.runner import Runner


@dataclass
class ScheduledParts:
    scheduler: JobScheduler
    runners: dict[str, Runner[Any]] = field(default_factory=dict)  # name → runner

    async def stop(self) -> None:
        """The clock first, so nothing is poked any more; then the runners, whose work in
        flight finishes within their grace period (the write path is still running)."""
        await self.scheduler.stop()
        for runner in self.runners.values():
            await runner.stop()


def build_scheduled_parts(settings: Settings, services: Services) -> ScheduledParts:
    runners: dict[str, Runner[Any]] = {}
    retention: LogRetention | None = None
    if settings.log.keep_days > 0:
        retention = LogRetention(
            services.writes,
            RetentionMetrics(services.registry),
            keep_days=settings.log.keep_days,
            batch=settings.log.prune_batch,
            grace_seconds=settings.daemon.shutdown_timeout_seconds,
        )
        runners["log retention"] = retention
    stale_parts = stale_parts_runner(settings, services)
    if stale_parts is not None:  # polls on its own: a long wait needs no clock job
        runners["stale sms parts"] = stale_parts
    return ScheduledParts(JobScheduler(job_table(settings, log_retention=retention)), runners)
