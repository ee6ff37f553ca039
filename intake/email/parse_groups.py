"""Hands mails to the parser processes a group at a time: one round trip per group.

Per mail, a hand-off to a parser process (pickling, a pipe write that wakes the process,
the answer coming back the same way) cost about a third of the parser processes' time in
an import (measured with the process pool this replaced) and a share of the event loop's
under SMTP load. ``ParseGroups.prepare(raw)`` waits for up to ``size``
mails, or ``wait`` seconds after the first, and sends them together; each caller gets
its own mail's outcome (a failure included), so one bad mail never fails the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

GROUP_SIZE = 8
GROUP_WAIT_S = 0.001


class ParseGroups(Generic[T]):
    def __init__(
        self,
        prepare_many: Callable[[Sequence[bytes]], Awaitable[list[T]]],
        size: int = GROUP_SIZE,
        wait: float = GROUP_WAIT_S,
    ) -> None:
        self.prepare_many = prepare_many
        self.size = size
        self.wait = wait
        self._waiting: list[tuple[bytes, asyncio.Future[T]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._running: set[asyncio.Task[None]] = set()

    async def prepare(self, raw: bytes) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._waiting.append((raw, future))
        if len(self._waiting) >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self.wait, self._flush)
        # Shielded like accept(): a caller that goes away does not cancel its group-mates.
        return await asyncio.shield(future)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self._waiting = self._waiting, []
        if group:
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, group: list[tuple[bytes, asyncio.Future[T]]]) -> None:
        try:
            outcomes = await self.prepare_many([raw for raw, _ in group])
        except BaseException as exc:  # the pool broke, or the process is stopping
            for _, future in group:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if not future.done():
                future.set_result(outcome)

    def cancel(self) -> None:
        """Stop the groups in progress (their callers get CancelledError)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._running:
            task.cancel()
