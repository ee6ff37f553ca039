"""Hands mails to the parser processes: at once while one is free, in groups while all are busy.

Per mail, a hand-off to a parser process (pickling, a pipe write that wakes the process,
the answer coming back the same way) costs a share of both processes' time, so when mail
arrives faster than the parsers take it, it goes in groups: one round trip each. But a
mail that waits for group-mates waits for their parse too, and under SMTP load that wait
came straight out of the sender's time to 250 (measured: half the parse stage's latency
was the group, the other half the parse). So ``ParseGroups.prepare(raw)`` sends a mail
the moment fewer than ``slots()`` calls are in flight (one per parser process), and mail
that arrives while every parser is busy waits and leaves together, up to ``size`` at a
time, when one is done. Each caller gets its own mail's outcome (a failure included), so
one bad mail never fails the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

GROUP_SIZE = 8


class ParseGroups(Generic[T]):
    def __init__(
        self,
        prepare_many: Callable[[Sequence[bytes]], Awaitable[list[T]]],
        slots: Callable[[], int],
        size: int = GROUP_SIZE,
    ) -> None:
        self.prepare_many = prepare_many
        self.slots = slots  # calls that may be in flight at once; asked each time
        self.size = size
        self._waiting: list[tuple[bytes, asyncio.Future[T]]] = []
        self._running: set[asyncio.Task[None]] = set()

    async def prepare(self, raw: bytes) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.append((raw, future))
        self._dispatch()
        # Shielded like accept(): a caller that goes away does not cancel its group-mates.
        return await asyncio.shield(future)

    def _dispatch(self) -> None:
        while self._waiting and len(self._running) < max(1, self.slots()):
            group = self._waiting[: self.size]
            del self._waiting[: self.size]
            task = asyncio.get_running_loop().create_task(self._run(group))
            self._running.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._dispatch()  # what waited meanwhile leaves now, as one group

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
        """Stop the groups in progress and the mail waiting (their callers get
        CancelledError)."""
        waiting, self._waiting = self._waiting, []
        for _, future in waiting:
            future.cancel()
        for task in list(self._running):
            task.cancel()
