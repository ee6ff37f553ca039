"""``IntakeWriter.accept``: how every adapter hands a message to the one write path.

Adapters call ``accept(msg)``; it submits an ``AcceptMessage`` operation to the write path
(``storage.write_path``), which group-commits whatever is waiting and answers only after
the commit, so an adapter never acknowledges an uncommitted message. What happens to the
message (dedup, customer, threading, routing, acknowledgement) is the case domain's
(``cases.intake_batch``). A message that cannot be stored for a reason of its own is kept
as a failed inbound row with its raw bytes; one that cannot be stored because the database
is down raises ``StorageUnavailable`` so the adapter answers "retry later".
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable

from cases.operations import AcceptMessage, RecordFailedInbound
from intake.message import AcceptResult, Channel, InboundMessage
from intake.metrics import IntakeMetrics
from storage.db import Database, StorageUnavailable
from storage.models import Inbound
from storage.write_path import WritePath


class IntakeWriter:
    """The intake's side of the write path: accept, replay, and keep the unparseable."""

    def __init__(self, db: Database, writes: WritePath, metrics: IntakeMetrics) -> None:
        self.db = db
        self.writes = writes
        self.metrics = metrics
        # channel → "parse these raw bytes again", for replaying rows whose parse failed
        self.reparsers: dict[str, Callable[[bytes], Awaitable[InboundMessage]]] = {}

    async def accept(self, msg: InboundMessage) -> AcceptResult:
        """Persist ``msg`` (dedup, route, enqueue acknowledgements); return after commit.

        Raises ``StorageUnavailable`` when the database cannot take it now: the adapter
        must answer a temporary failure (SMTP 451, HTTP 503) so the sender retries.
        """
        return await self._submit(msg.channel, AcceptMessage(msg))

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
        return await self._submit(msg.channel, AcceptMessage(msg, retry_of=inbound_id))

    async def record_failed(
        self, channel: Channel, external_id: str, raw: bytes, error: str
    ) -> AcceptResult:
        """Commit bytes that could not even be parsed, as a failed inbound row.

        Deduplicated like accept(): the same unparseable bytes twice are one row.
        """
        return await self._submit(channel, RecordFailedInbound(channel, external_id, raw, error))

    async def _submit(self, channel: Channel, op: object) -> AcceptResult:
        started = time.perf_counter()
        try:
            result: AcceptResult = await self.writes.submit(op)
        except StorageUnavailable:
            self.metrics.storage_errors.inc()
            raise
        self.metrics.observe(channel.value, result.outcome, time.perf_counter() - started)
        return result
