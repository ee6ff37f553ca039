"""The only inbound write path: ``IntakeWriter.accept`` and the single group-commit writer.

Adapters call ``accept(msg)``; it queues the message and waits. One writer task takes
whatever is queued, writes it in one transaction (``intake.batch``) and resolves every
waiting caller only after the commit, so an adapter never acknowledges an uncommitted
message. If the batch fails for a reason other than the database being down, the writer
replays the batch one message at a time so one bad message cannot fail its batch-mates;
a message that still fails is committed as a failed inbound row with its raw bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from intake.attachments import AttachmentStore
from intake.batch import BatchWriter
from intake.lookups import BatchItem, attachment_digests
from intake.message import AcceptResult, Address, Channel, InboundMessage
from intake.metrics import IntakeMetrics
from routing.catalog import CatalogCache
from storage.db import Database, StorageUnavailable, is_unavailable_error
from storage.models import Inbound, utcnow
from storage.writer_process import WriterProcess

log = logging.getLogger(__name__)


class IntakeOverloaded(StorageUnavailable):
    """The writer's queue is full; the sender should retry shortly."""


@dataclass
class _Pending:
    item: BatchItem
    future: asyncio.Future[AcceptResult]
    queued_at: float = field(default_factory=time.perf_counter)


_STOP = object()


class IntakeWriter:
    """Owns the accept queue and the writer task (``run``) that drains it."""

    def __init__(
        self,
        db: Database,
        catalog: CatalogCache,
        batch_writer: BatchWriter,
        metrics: IntakeMetrics,
        *,
        attachments: AttachmentStore | None = None,
        batch_max: int = 256,
        queue_max: int = 10_000,
        writers: int = 1,
    ) -> None:
        self.db = db
        self.catalog = catalog
        self.batch_writer = batch_writer
        self.metrics = metrics
        self.attachments = attachments
        self.batch_max = batch_max
        self.writers = 1 if db.is_sqlite else max(1, writers)
        self._queue: asyncio.Queue[_Pending | object] = asyncio.Queue(maxsize=queue_max)
        self._closing = False
        self._started = asyncio.Event()
        self.running = False
        # SQLite only, set by the daemon: batches run in a writer process (storage.writer_process)
        self.process: WriterProcess[list[AcceptResult]] | None = None
        self.on_batch: Callable[[int], None] | None = None  # test hook: batch sizes
        # channel → "parse these raw bytes again", for replaying rows whose parse failed
        self.reparsers: dict[str, Callable[[bytes], Awaitable[InboundMessage]]] = {}

    # --- the adapters' side ----------------------------------------------------------

    async def accept(self, msg: InboundMessage) -> AcceptResult:
        """Persist ``msg`` (dedup, route, enqueue acknowledgements); return after commit.

        Raises ``StorageUnavailable`` when the database cannot take it now: the adapter
        must answer a temporary failure (SMTP 451, HTTP 503) so the sender retries.
        """
        return await self._submit(BatchItem(msg))

    async def retry(self, inbound_id: int) -> AcceptResult:
        """Replay a failed inbound row: from its normalized form, or, when parsing itself
        failed (no normalized form), by parsing its raw bytes again with the channel's
        parser (``reparsers``)."""
        async with self.db.session() as session:
            row = await session.get(Inbound, inbound_id)
        if row is None:
            raise LookupError(f"no inbound message {inbound_id}")
        if row.status != "failed":
            raise ValueError(f"inbound message {inbound_id} is {row.status}, not failed")
        if row.normalized:
            msg = InboundMessage.from_json(row.normalized, row.raw)
        elif row.channel in self.reparsers:
            try:
                msg = await self.reparsers[row.channel](row.raw)
            except Exception as exc:  # still unparseable: the row stays failed
                return AcceptResult("failed", inbound_id, None, f"parse: {exc}")
            # The row keeps the key it was stored under (a hash when parsing failed).
            msg = dataclasses.replace(msg, external_id=row.external_id)
        else:
            raise ValueError(f"inbound message {inbound_id} has no normalized form to replay")
        return await self._submit(BatchItem(msg, retry_of=inbound_id))

    async def record_failed(
        self, channel: Channel, external_id: str, raw: bytes, error: str
    ) -> AcceptResult:
        """Commit bytes that could not even be parsed, as a failed inbound row.

        Deduplicated like accept(): the same unparseable bytes twice are one row.
        """
        msg = InboundMessage(channel=channel, external_id=external_id, sender=Address(), raw=raw)
        try:
            result = await self._record_failure(
                BatchItem(msg), RuntimeError(error), normalized=False
            )
        except Exception as exc:
            if is_unavailable_error(exc):
                raise StorageUnavailable(str(exc)) from exc
            raise
        self.metrics.observe(channel.value, result.outcome, 0.0)
        return result

    async def _submit(self, item: BatchItem) -> AcceptResult:
        if self._closing or not self.running:
            raise StorageUnavailable("intake is not running")
        future: asyncio.Future[AcceptResult] = asyncio.get_running_loop().create_future()
        pending = _Pending(item, future)
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise IntakeOverloaded("intake queue is full") from None
        # Shielded: if the client goes away the message is still written, and the caller
        # being cancelled must not cancel the shared future other code may look at.
        result = await asyncio.shield(future)
        channel = item.msg.channel.value
        self.metrics.observe(channel, result.outcome, time.perf_counter() - pending.queued_at)
        return result

    # --- the writer's side -----------------------------------------------------------

    async def run(self) -> None:
        """Drain the queue until ``close`` is called and everything queued is written.

        ``writers`` batches may be in flight at once. SQLite has one writer by nature; on
        PostgreSQL a batch spends most of its time waiting for round trips and the commit's
        fsync, so a few concurrent batches keep the server busy (its own group commit).
        The writer process (SQLite) gets one drainer too: it commits one batch at a time,
        and mail that arrives meanwhile is best sent as one batch when it is done (a second
        drainer sent each first arrival alone to wait at the child's door: batches of three
        under SMTP load instead of six, a fifth more of the child's time per message).
        When mail waited meanwhile, a drainer hands that batch over before it answers the
        senders of the one just committed (measured: 4–6 % more SMTP mail per second).
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

    async def _drain(self) -> None:
        written: list[tuple[_Pending, AcceptResult]] = []  # committed, not yet answered
        while True:
            if written and self._queue.empty():
                self._answer(written)  # nothing waits to be written: answer at once
                written = []
            first = await self._queue.get()
            if first is _STOP:
                self._answer(written)
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
                # The batch that waited goes to the database first (the task's first step
                # hands it over), then the last batch's senders get their answers: the
                # writer is not left idle while the event loop writes those replies.
                asyncio.get_running_loop().call_soon(self._answer, written)
                written = []
            try:
                # Shielded so that a cancellation mid-batch still lets the commit finish
                # and every waiting caller get its answer.
                written = await asyncio.shield(write)
            except asyncio.CancelledError:
                write.add_done_callback(self._answer_when_done)
                raise

    def _answer(self, written: list[tuple[_Pending, AcceptResult]]) -> None:
        for pending, result in written:
            if not pending.future.done():
                pending.future.set_result(result)

    def _answer_when_done(self, write: asyncio.Future[list[tuple[_Pending, AcceptResult]]]) -> None:
        if not write.cancelled() and write.exception() is None:
            self._answer(write.result())

    async def wait_started(self) -> None:
        await self._started.wait()

    async def close(self) -> None:
        """Stop taking new messages; ``run`` returns once the queue is drained."""
        self._closing = True
        await self._queue.put(_STOP)

    def _fail_queued(self) -> None:
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if isinstance(pending, _Pending) and not pending.future.done():
                pending.future.set_exception(StorageUnavailable("intake stopped"))

    async def _write(self, batch: list[_Pending]) -> list[tuple[_Pending, AcceptResult]]:
        """Write one batch; what committed is returned for the drainer to answer (a batch
        that failed is answered here, message by message)."""
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            results = await self._write_items([p.item for p in batch])
        except Exception as exc:
            if is_unavailable_error(exc):
                self._fail_batch(batch, exc)
                return []
            log.warning("batch of %d failed (%s); writing one by one", len(batch), exc)
            for pending in batch:
                await self._write_one(pending)
            return []
        return list(zip(batch, results, strict=True))

    async def _write_items(self, items: list[BatchItem]) -> list[AcceptResult]:
        if self.process is not None:  # it flushes the batch's files itself, beside its work
            return await self.process.write(items, self.catalog.current)
        digests = attachment_digests(items)
        if digests and self.attachments is not None:
            # The files a batch references reach the disk before its commit (see
            # intake.attachments): one thread hop per batch.
            await asyncio.to_thread(self.attachments.sync, digests)
        return await self.db.write(self.batch_writer.write, items, self.catalog.current)

    async def _write_one(self, pending: _Pending) -> None:
        result: AcceptResult | None = None
        error: Exception | None = None
        for _attempt in range(2):  # an IntegrityError may be a concurrent writer: retry once
            try:
                result = (await self._write_items([pending.item]))[0]
                break
            except IntegrityError as exc:
                error = exc
            except Exception as exc:
                error = exc
                break
        if result is None and error is not None and not is_unavailable_error(error):
            try:
                result = await self._record_failure(pending.item, error)
            except Exception as exc:
                error = exc
        if pending.future.done():
            return
        if result is not None:
            pending.future.set_result(result)
        else:
            self._fail_batch([pending], error or RuntimeError("unknown write failure"))

    async def _record_failure(
        self, item: BatchItem, error: Exception, *, normalized: bool = True
    ) -> AcceptResult:
        """Keep the raw message as a failed row: nothing accepted is ever lost."""
        msg = item.msg
        text = (f"{type(error).__name__}: {error}" if normalized else str(error))[:4000]
        log.error("inbound %s/%s failed: %s", msg.channel.value, msg.external_id, text)
        async with self.db.session() as session, session.begin():
            if item.retry_of is not None:
                return AcceptResult("failed", item.retry_of, None, text)
            existing = await session.scalar(
                select(Inbound.id).where(
                    Inbound.channel == msg.channel.value, Inbound.external_id == msg.external_id
                )
            )
            if existing is not None:
                return AcceptResult("duplicate", existing, None)
            inbound_id = await session.scalar(
                insert(Inbound)
                .values(
                    channel=msg.channel.value,
                    external_id=msg.external_id,
                    received_at=utcnow(),
                    status="failed",
                    error=text,
                    raw=msg.raw,
                    normalized=msg.to_json() if normalized else None,
                    retries=0,
                )
                .returning(Inbound.id)
            )
        assert inbound_id is not None
        return AcceptResult("failed", inbound_id, None, text)

    def _fail_batch(self, batch: list[_Pending], exc: BaseException) -> None:
        log.error("cannot store %d inbound message(s): %s", len(batch), exc)
        self.metrics.storage_errors.inc(len(batch))
        for pending in batch:
            if not pending.future.done():
                pending.future.set_exception(StorageUnavailable(str(exc)))
