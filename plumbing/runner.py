"""The one shape of every background worker: claim work, process each item, record it.

A ``Runner`` claims as many items as it has free slots, processes each in a task of its
own, and claims again when a slot frees, when it is poked (new work was committed) or
when its poll interval passes. Logging, bounded concurrency and the graceful stop live
here once: ``stop`` stops claiming, lets the items in flight finish within a grace
period, cancels the rest and hands them to ``release`` (which must put them back, e.g.
end their claim), so a subclass writes only ``claim``, ``process`` and ``release``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Runner(ABC, Generic[T]):
    def __init__(
        self,
        name: str,
        *,
        slots: int,
        poll_seconds: float,
        grace_seconds: float = 10.0,
        min_claim: int = 1,
    ) -> None:
        """``min_claim``: while items are in flight, claim only once this many slots are
        free, so that claims come in batches rather than one per finished item."""
        self.name = name
        self.slots = max(1, slots)
        self.min_claim = max(1, min(min_claim, self.slots))
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._tasks: dict[asyncio.Task[None], T] = {}
        self.running = False

    @abstractmethod
    async def claim(self, capacity: int) -> Sequence[T]:
        """Up to ``capacity`` items, now claimed by this runner."""

    @abstractmethod
    async def process(self, item: T) -> None:
        """Do one item and record what happened (never raises on the item's behalf)."""

    async def release(self, items: Sequence[T]) -> None:
        """Give back items claimed but not finished when the runner stops."""

    def poke(self) -> None:
        """New work may be waiting: claim now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        self.running = True
        try:
            while not self._stopping.is_set():
                for task in [t for t in self._tasks if t.done()]:
                    del self._tasks[task]
                free = self.slots - len(self._tasks)
                if self._tasks and free < self.min_claim:
                    # A few slots free: wait for more before claiming (the claim then
                    # made sees whatever a poke meanwhile announced).
                    free = 0
                    self._wake.clear()
                claimed: Sequence[T] = ()
                if free > 0:
                    self._wake.clear()
                    try:
                        claimed = await self.claim(free)
                    except Exception as exc:  # the database may be down: try again later
                        log.warning("%s: cannot claim work: %s", self.name, exc)
                for item in claimed:
                    task = asyncio.create_task(self._one(item))
                    self._tasks[task] = item
                if free > 0 and len(claimed) == free:
                    continue  # there may be more: claim again at once
                # Every slot busy: wait for one to free. Nothing (more) due: wait for a
                # poke or the poll, not for tasks ending, which would claim for nothing.
                await self._wait(for_slot=free <= 0)
        finally:
            await self._drain()
            self.running = False

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _one(self, item: T) -> None:
        try:
            await self.process(item)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: processing failed", self.name)

    async def _wait(self, *, for_slot: bool) -> None:
        """Until a task ends (``for_slot``: every slot is busy), a poke, a stop or the poll."""
        waits: list[asyncio.Future[object]] = [
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        tasks = set(self._tasks)
        if for_slot and tasks:
            waits.append(
                asyncio.ensure_future(asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED))
            )
        try:
            timeout = None if for_slot else self.poll_seconds
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    async def _drain(self) -> None:
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.grace_seconds)
            unfinished = [self._tasks[t] for t in pending]
            for task in pending:
                task.cancel()
            for task in pending:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks.clear()
            if unfinished:
                log.info("%s: giving back %d unfinished item(s)", self.name, len(unfinished))
                try:
                    await self.release(unfinished)
                except Exception as exc:
                    log.warning("%s: cannot give back items: %s", self.name, exc)
