"""The MIME parser processes: ``workers`` children of ``intake.email.prepare``, one call
at a time each to the least busy.

Parsing is CPU-bound Python; in processes of their own the parsers use every core while
the event loop keeps answering (PERFORMANCE.md: the parser alone is ~700 mails/s on one
core). The processes start with the pool, before the first mail, and import only the
parser. A process that dies (killed, out of memory) takes the mails it was parsing with
it as ``ParserCrashed``: they are committed as failed with their raw bytes, replayable with
``ventanilla inbound retry``, and the next call starts a new process in its place.

A mail that hangs its parser (a loop, or a crawl through some pathological structure)
would hold a process and its sender forever: each call gets ``timeout`` seconds, after
which its process is killed. A mail that ran out of time alone is ``ParseTimedOut``, kept
as failed in the same way; mails that ran out of time together are tried again one by
one; the calls queued behind on that process had not begun and go to another one.

Each process installs the faster feedparser (``intake.email.feedparser_fast``) or not, as
its setup says; the pool asks a new process which is in force and logs it when it changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from intake.email.parse import ParsedEmail
from intake.email.prepare import Outcome, ParserCrashed, ParserSetup, ParseTimedOut
from plumbing.child_process import CallTimedOut, ChildGone, ChildProcess

log = logging.getLogger(__name__)

MODULE = "intake.email.prepare"

# How often a call is handed to another process when the one it waited on was killed
# before beginning it (each time, for a mail before it that ran past its deadline).
REQUEUES = 3


class ParserPool:
    def __init__(self, workers: int, setup: ParserSetup, *, timeout: float | None = None) -> None:
        """``timeout``: the seconds a process may spend on one call, a mail or a group of
        them (None: no deadline)."""
        self.workers = max(1, workers)
        self.setup = setup
        self.timeout = timeout
        # What the processes report about intake.email.feedparser_fast, once they run.
        self.fast_mime_parser: str | None = None
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
            if missing:
                await self._report_fast_parser(self._children[missing[0]])

    async def _report_fast_parser(self, child: ChildProcess | None) -> None:
        """Log whether the processes parse with the faster feedparser, once per change."""
        if child is None:
            return
        state: str = await child.call(("fast_mime_parser", None))
        if state != self.fast_mime_parser:
            self.fast_mime_parser = state
            how = {
                "active": "active",
                "off": "off ([intake] fast_mime_parser = false)",
                "unsupported": "not installed: this Python's email.feedparser is not the "
                "one it was written for",
            }
            log.info("MIME parser processes: fast feedparser %s", how.get(state, state))

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
        for requeue in range(REQUEUES + 1):
            child = await self._least_busy()
            try:
                return await child.call((op, arg), self.timeout)
            except ChildGone as exc:
                if exc.started or requeue == REQUEUES:
                    raise
        raise AssertionError("unreachable")

    async def prepare(self, raws: Sequence[bytes]) -> list[Outcome]:
        """Parse and store each mail; each outcome in its place."""
        try:
            outcomes: list[Outcome] = await self._call("prepare", list(raws))
        except CallTimedOut as exc:
            if len(raws) > 1:
                # Which of them hung is unknown (or all were slow, and together took longer
                # than one may): each again on its own, with its own deadline, so that only
                # a mail that hangs alone fails (stored attachments are the same files again).
                alone = await asyncio.gather(*(self.prepare([raw]) for raw in raws))
                return [outcome for (outcome,) in alone]
            log.error("parser process killed: a mail took more than %g s to parse", self.timeout)
            return [ParseTimedOut(f"parse took longer than {exc.deadline:g} s; process killed")]
        except ChildGone as exc:
            log.error("parser process died with %d mail(s): %s", len(raws), exc)
            return [ParserCrashed(f"parser process died: {exc}") for _ in raws]
        return outcomes

    async def parse(self, raw: bytes) -> ParsedEmail:
        """The parsed mail, attachment bytes included; raises like ``parse_email``."""
        try:
            parsed: ParsedEmail = await self._call("parse", raw)
        except CallTimedOut as exc:
            log.error("parser process killed: a mail took more than %g s to parse", self.timeout)
            raise ParseTimedOut(
                f"parse took longer than {exc.deadline:g} s; process killed"
            ) from exc
        except ChildGone as exc:
            raise ParserCrashed(f"parser process died: {exc}") from exc
        return parsed

    async def close(self) -> None:
        """Let the calls in flight finish, then stop the processes."""
        children, self._children = self._children, [None] * self.workers
        await asyncio.gather(*(c.close() for c in children if c is not None))
