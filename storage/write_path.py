"""The one write path: operations queued by any part, group-committed, answered after COMMIT.

``submit(op)`` queues a typed operation (``storage.operations``) and waits. Drainer tasks
take whatever is queued and hand it as one batch to the ``TransactionRunner``: on SQLite in
the writer process (``storage.writer_process``) or, in tests and tools, a writer thread; on
PostgreSQL on the async engine, with a few batches in flight at once. Every caller is
answered only after its batch committed, so nobody acknowledges (SMTP 250, HTTP 2xx, an
IMAP move) what is not on disk. On SQLite this is the only connection that writes, so no
other connection ever competes for the write lock.

If the database is unavailable the whole batch fails with ``StorageUnavailable`` (the
callers answer "retry later"); a single operation's failure is its own (``Failure``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from storage.db import Database, StorageUnavailable, is_unavailable_error
from storage.operations import Failure, TransactionRunner
from storage.writer_process import WriterProcess

log = logging.getLogger(__name__)


class WriteQueueFull(StorageUnavailable):
    """The write queue is full; the caller should answer "retry shortly"."""


@dataclass
class _Pending:
    op: Any
    future: asyncio.Future[Any]
    queued_at: float = field(default_factory=time.perf_counter)


_STOP = object()
Written = list[tuple[_Pending, Any]]


class WritePath:
    """Owns the write queue and the drainer tasks (``run``)."""

    def __init__(
        self,
        db: Database,
        runner: TransactionRunner,
        *,
        batch_max: int = 256,
        queue_max: int = 10_000,
        writers: int = 1,
        before_write: Callable[[Sequence[Any]], Awaitable[None]] | None = None,
    ) -> None:
        """``runner`` executes batches in a writer thread or on PostgreSQL; ``process``
        (set by the composition root) takes over on SQLite. ``before_write`` runs before a
        batch that is not written by the process (the intake flushes attachment files
        there; the process flushes them itself, beside its work)."""
        self.db = db
        self.runner = runner
        self.batch_max = batch_max
        self.writers = 1 if db.is_sqlite else max(1, writers)
        self.before_write = before_write
        self.process: WriterProcess[list[Any]] | None = None
        self.on_batch: Callable[[int], None] | None = None  # test hook: batch sizes
        # Told of every committed batch (cheap, synchronous: e.g. wake the dispatcher).
        self.listeners: list[Callable[[Sequence[Any]], None]] = []
        self.running = False
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue(maxsize=queue_max)
        self._closing = False
        self._started = asyncio.Event()

    # --- callers ----------------------------------------------------------------------

    async def submit(self, op: Any) -> Any:
        """Queue ``op``; its result once committed. Raises the operation's own error
        (``OperationRefused``, ``OperationFailed``) or ``StorageUnavailable``."""
        if self._closing or not self.running:
            raise StorageUnavailable("the write path is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(op, future))
        except asyncio.QueueFull:
            raise WriteQueueFull("the write queue is full") from None
        # Shielded: if the caller goes away the operation is still written, and its
        # cancellation must not cancel the future the drainer answers.
        answer = await asyncio.shield(future)
        if isinstance(answer, Failure):
            raise answer.error
        return answer

    # --- drainers ---------------------------------------------------------------------

    async def run(self) -> None:
        """Drain the queue until ``close`` is called and everything queued is written.

        ``writers`` batches may be in flight at once on PostgreSQL, where a batch mostly
        waits for round trips and the commit's fsync. SQLite has one writer by nature; its
        drainer hands a batch that waited to the database before it answers the senders
        of the one just committed, so the writer is not left idle meanwhile.
        """
        self.running = True
        self._started.set()
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.writers):
                    group.create_task(self._drain())
        finally:
            self.running = False
            self._fail_queued()

    async def wait_started(self) -> None:
        await self._started.wait()

    async def close(self) -> None:
        """Stop taking operations; ``run`` returns once the queue is drained."""
        self._closing = True
        await self._queue.put(_STOP)

    async def _drain(self) -> None:
        written: Written = []  # committed, not yet answered
        while True:
            if written and self._queue.empty():
                _answer(written)
                written = []
            first = await self._queue.get()
            if first is _STOP:
                _answer(written)
                self._queue.put_nowait(_STOP)  # let the other drainers see it too
                return
            batch = [first]
            while len(batch) < self.batch_max and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is _STOP:
                    self._queue.put_nowait(_STOP)  # finish this batch, then stop
                    break
                batch.append(nxt)
            write = asyncio.ensure_future(
                self._write([p for p in batch if isinstance(p, _Pending)])
            )
            if written:
                asyncio.get_running_loop().call_soon(_answer, written)
                written = []
            try:
                # Shielded so that a cancellation mid-batch still lets the commit finish
                # and every waiting caller get its answer.
                written = await asyncio.shield(write)
            except asyncio.CancelledError:
                write.add_done_callback(_answer_when_done)
                raise

    async def _write(self, batch: list[_Pending]) -> Written:
        if self.on_batch is not None:
            self.on_batch(len(batch))
        ops = [p.op for p in batch]
        try:
            if self.process is not None:
                answers = await self.process.write(ops)
            else:
                if self.before_write is not None:
                    await self.before_write(ops)
                answers = await self.db.write(self.runner, ops)
        except Exception as exc:
            reason = (
                exc if is_unavailable_error(exc) or isinstance(exc, StorageUnavailable) else None
            )
            if reason is None:
                # The runner isolates operations, so this is the transaction itself failing
                # (e.g. at COMMIT): nothing of the batch is stored; callers retry.
                log.error("a batch of %d operation(s) failed: %s", len(batch), exc)
            else:
                log.error("cannot store %d operation(s): %s", len(batch), exc)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(StorageUnavailable(str(exc)))
            return []
        for listener in self.listeners:
            try:
                listener(ops)
            except Exception:
                log.exception("a commit listener failed")
        return list(zip(batch, answers, strict=True))

    def _fail_queued(self) -> None:
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if isinstance(pending, _Pending) and not pending.future.done():
                pending.future.set_exception(StorageUnavailable("the write path stopped"))


def _answer(written: Written) -> None:
    for pending, answer in written:
        if not pending.future.done():
            pending.future.set_result(answer)


def _answer_when_done(write: asyncio.Future[Written]) -> None:
    if not write.cancelled() and write.exception() is None:
        _answer(write.result())
