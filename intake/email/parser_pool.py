"""The MIME parser processes: ``workers`` children of ``intake.email.prepare``, one call
at a time each to the least busy.

Parsing is CPU-bound Python; in processes of their own the parsers use every core while
the event loop keeps answering (PERFORMANCE.md: the parser alone is ~700 mails/s on one
core). The processes start with the pool, before the first mail, and import only the
parser. A process that dies (killed, out of memory) takes the mails it was parsing with
it as ``ParserCrashed``: they are committed as failed with their raw bytes, replayable with
``ventanilla inbound retry``, and the next call starts a new process in its place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from intake.email.parse import ParsedEmail
from intake.email.prepare import Outcome, ParserCrashed, ParserSetup
from plumbing.child_process import ChildGone, ChildProcess

log = logging.getLogger(__name__)

MODULE = "intake.email.prepare"


class ParserPool:
    def __init__(self, workers: int, setup: ParserSetup) -> None:
        self.workers = max(1, workers)
        self.setup = setup
        self._children: list[ChildProcess | None] = [None] * self.workers
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        """Start every process that is not running; returns once all are ready."""
        async with self._starting:
            missing = [i for i, c in enumerate(self._children) if c is None or not c.alive]
            started = await asyncio.gather(
                *(ChildProcess.spawn(MODULE, self.setup) for _ in missing),
                return_exceptions=True,
            )
            failed: BaseException | None = None
            for index, child in zip(missing, started, strict=True):
                if isinstance(child, BaseException):
                    failed = failed or child
                else:
                    self._children[index] = child
            if failed is not None:
                raise failed

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c is not None and c.alive]

    async def _least_busy(self) -> ChildProcess:
        alive = [c for c in self._children if c is not None and c.alive]
        if len(alive) < self.workers:
            await self.start()  # replace the dead ones first
            alive = [c for c in self._children if c is not None and c.alive]
        return min(alive, key=lambda c: c.in_flight)

    async def _call(self, op: str, arg: Any) -> Any:
        child = await self._least_busy()
        return await child.call((op, arg))

    async def prepare(self, raws: Sequence[bytes]) -> list[Outcome]:
        """Parse and store each mail; each outcome in its place."""
        try:
            outcomes: list[Outcome] = await self._call("prepare", list(raws))
        except ChildGone as exc:
            log.error("parser process died with %d mail(s): %s", len(raws), exc)
            return [ParserCrashed(f"parser process died: {exc}") for _ in raws]
        return outcomes

    async def parse(self, raw: bytes) -> ParsedEmail:
        """The parsed mail, attachment bytes included; raises like ``parse_email``."""
        try:
            parsed: ParsedEmail = await self._call("parse", raw)
        except ChildGone as exc:
            raise ParserCrashed(f"parser process died: {exc}") from exc
        return parsed

    async def close(self) -> None:
        """Let the calls in flight finish, then stop the processes."""
        children, self._children = self._children, [None] * self.workers
        await asyncio.gather(*(c.close() for c in children if c is not None))
