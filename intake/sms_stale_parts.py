"""``StaleSmsParts``: takes the long SMS whose missing parts never came as they are.

Every part was answered 200 once stored, so the provider will not send it again: a set
that stays incomplete (a carrier lost a part) would otherwise never reach anyone. Every
few minutes this runner submits one ``FlushSmsParts`` (``cases.sms_parts``), which turns
each set whose newest part is older than ``[sms] parts_wait_minutes`` into one message,
with ``[…]`` where text is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol

from cases.sms_parts import FlushSmsParts
from plumbing.runner import Runner
from storage.models import utcnow

log = logging.getLogger(__name__)


class Writes(Protocol):
    async def submit(self, op: Any) -> Any: ...


class StaleSmsParts(Runner[FlushSmsParts]):
    def __init__(
        self,
        writes: Writes,
        *,
        wait_minutes: float,
        language: str,
        every_seconds: float = 300.0,
        grace_seconds: float = 10.0,
    ) -> None:
        super().__init__("stale sms parts", slots=1, poll_seconds=every_seconds,
                         grace_seconds=grace_seconds)  # fmt: skip
        self.writes = writes
        self.wait = timedelta(minutes=wait_minutes)
        self.language = language
        self._next = 0.0

    async def claim(self, capacity: int) -> Sequence[FlushSmsParts]:
        now = time.monotonic()
        if now < self._next:
            return ()
        self._next = now + self.poll_seconds
        return (FlushSmsParts(utcnow() - self.wait, self.language),)

    async def process(self, item: FlushSmsParts) -> None:
        try:
            flushed: int = await self.writes.submit(item)
        except Exception as exc:  # the database may be down: the next round tries again
            log.warning("stale SMS parts: not flushed this time: %s", exc)
            return
        if flushed:
            log.info("stale SMS parts: %d incomplete long SMS taken as they are", flushed)
