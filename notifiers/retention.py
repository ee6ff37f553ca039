"""``LogRetention``: deletes the outbound log's rows older than ``keep_days``, in batches.

The scheduler pokes it (``config.schedule``); each poke starts one pass, which submits
``PruneLog`` batches to the write path one after another until a batch deletes fewer than
``batch`` rows. Each batch is a transaction of its own, queued behind whatever intake and
dispatch writes are waiting, so a long backlog never holds them up. A poke during a pass
is one more pass after it (never two at once); a pass that cannot write ends with a warning
and the next poke tries again. One INFO line per pass that deleted something.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from prometheus_client import CollectorRegistry, Counter

from notifiers.retention_ops import Pruned, PruneLog
from plumbing.runner import Runner
from storage.models import utcnow
from storage.write_path import WritePath

log = logging.getLogger(__name__)


class RetentionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.pruned = Counter(
            "ventanilla_log_pruned",
            "Notifications deleted from the outbound log by its retention (each with its "
            "delivery attempts).",
            registry=registry,
        )


@dataclass
class _Pass:
    before: datetime
    started: float  # perf_counter
    batches: int = 0
    notifications: int = 0
    attempts: int = 0


class LogRetention(Runner[PruneLog]):
    def __init__(
        self,
        writes: WritePath,
        metrics: RetentionMetrics,
        *,
        keep_days: int,
        batch: int,
        grace_seconds: float = 10.0,
    ) -> None:
        # One batch at a time. Its poll finds nothing to do: a pass starts only when poked.
        super().__init__("log retention", slots=1, poll_seconds=3600.0,
                         grace_seconds=grace_seconds)  # fmt: skip
        self.writes = writes
        self.metrics = metrics
        self.keep = timedelta(days=keep_days)
        self.batch = batch
        self._asked = False
        self._pass: _Pass | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    def poke(self) -> None:
        self._asked = True
        self._idle.clear()
        super().poke()

    async def idle(self) -> None:
        """Until no pass runs and none was asked for."""
        await self._idle.wait()

    async def claim(self, capacity: int) -> Sequence[PruneLog]:
        if self._pass is None:
            if not self._asked:
                return ()
            self._asked = False
            self._pass = _Pass(utcnow() - self.keep, time.perf_counter())
        return (PruneLog(self._pass.before, self.batch),)

    async def process(self, item: PruneLog) -> None:
        current = self._pass
        assert current is not None
        try:
            pruned: Pruned = await self.writes.submit(item)
        except Exception as exc:  # the database may be down: the next poke tries again
            log.warning("log retention: a batch failed, stopping this run: %s", exc)
            self._finish()
            return
        current.batches += 1
        current.notifications += pruned.notifications
        current.attempts += pruned.attempts
        self.metrics.pruned.inc(pruned.notifications)
        if pruned.notifications < item.limit:
            self._finish()

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # A stop mid-pass: what was deleted so far is still reported. (A batch cut off
            # by the stop commits or not on its own: the write path shields it.)
            self._finish()

    def _finish(self) -> None:
        done, self._pass = self._pass, None
        if not self._asked:
            self._idle.set()
        if done is not None and done.notifications:
            log.info(
                "log retention: deleted %d notification(s) and %d attempt(s) created before "
                "%s in %d batch(es), %.1f s",
                done.notifications,
                done.attempts,
                done.before.isoformat(timespec="seconds"),
                done.batches,
                time.perf_counter() - done.started,
            )
