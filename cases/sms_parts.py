"""The parts of a long inbound SMS, collected on the write path until they are one message.

A provider that splits a long text (Vonage: ``concat-ref``, ``concat-total``,
``concat-part``, "Inbound SMS" → "Concatenated inbound messages" in Vonage's docs) posts
each part in a request of its own, in any order, possibly to different daemons, and each
part is answered only once stored. Each part is therefore a row of ``sms_parts``; the
part that completes its set turns the set into one ``AcceptMessage`` in the same
transaction (the intake batch's own executor runs it), so the message exists exactly when
its last part is committed, whichever daemon took it.

Joined parts keep the inbound id they became: a retried part is then a duplicate of that
message, and a later long text that reuses the same ``concat-ref`` (it is one or two bytes
and wraps) starts a new set. They are deleted a few days later, when no provider retries
any more. A set whose missing parts never come is taken as it is by ``FlushSmsParts``
(scheduled), with a mark where text is missing.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from cases.operations import AcceptMessage
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.db import is_unavailable_error
from storage.models import Case, Inbound, SmsPart
from storage.operations import Executor, WriteContext

log = logging.getLogger(__name__)

# Vonage retries an unanswered webhook for 24 hours: joined parts are kept beyond that.
KEEP_JOINED = timedelta(days=3)
MISSING_MARK = "[…]"


@dataclass(frozen=True, slots=True)
class CollectSmsPart:
    msg: InboundMessage  # this part as a message: sender, its own text, its raw request
    provider: str
    message_id: str  # the provider's id of this part
    concat_ref: str
    total: int
    part: int  # 1-based


@dataclass(frozen=True, slots=True)
class FlushSmsParts:
    """Take every set whose newest part is older than ``older_than`` as it is."""

    older_than: datetime
    language: str = "es"


@dataclass(frozen=True, slots=True)
class PartCollected:
    missing: int  # parts still to come (0 once the message exists)
    result: AcceptResult | None = None  # the joined message, once it is stored


class Accepts(Protocol):
    """The intake batch's executor (``cases.intake_batch.IntakeBatch``)."""

    def run(self, conn: Connection, ops: Any, ctx: WriteContext) -> list[AcceptResult]: ...

    def failed(
        self, conn: Connection, op: AcceptMessage, error: Exception, ctx: WriteContext
    ) -> AcceptResult: ...


def joined_id(sender: str, concat_ref: str, first_part_id: str) -> str:
    """The joined message's external id: the sender and concat-ref name the set, and the
    first part's own id tells it from an earlier set that used the same reference."""
    return f"concat:{sender}:{concat_ref}:{first_part_id}"


class SmsPartCollector(Executor):
    """Executes ``CollectSmsPart``."""

    def __init__(self, intake: Accepts) -> None:
        self.intake = intake

    def run_one(self, conn: Connection, op: CollectSmsPart, ctx: WriteContext) -> PartCollected:
        sender = op.msg.sender.phone or ""
        if conn.dialect.name == "postgresql":
            # Two parts of one set committed at once by two daemons would each miss the
            # other's row and leave the set waiting forever: one set at a time.
            key = f"sms_parts:{op.provider}:{sender}:{op.concat_ref}"
            conn.execute(select(func.pg_advisory_xact_lock(func.hashtext(key))))
        seen = conn.execute(
            select(SmsPart.inbound_id).where(
                SmsPart.provider == op.provider, SmsPart.message_id == op.message_id
            )
        ).first()
        if seen is not None and seen.inbound_id is not None:
            return PartCollected(0, _duplicate(conn, seen.inbound_id))
        if seen is None:
            conn.execute(
                insert(SmsPart).values(
                    provider=op.provider,
                    message_id=op.message_id,
                    sender=sender,
                    concat_ref=op.concat_ref,
                    total=op.total,
                    part=op.part,
                    text=op.msg.text,
                    raw=op.msg.raw,
                    received_at=ctx.now,
                )
            )
        parts = _waiting(conn, op.provider, sender, op.concat_ref, op.total)
        numbers = {p.part for p in parts}
        if not numbers >= set(range(1, op.total + 1)):
            return PartCollected(op.total - len(numbers & set(range(1, op.total + 1))))
        result = self._accept(conn, _joined(op.msg, parts, op.total, op.concat_ref), ctx)
        _mark_joined(conn, parts, result.inbound_id, ctx.now)
        return PartCollected(0, result)

    def _accept(self, conn: Connection, msg: InboundMessage, ctx: WriteContext) -> AcceptResult:
        accept = AcceptMessage(msg)
        savepoint = conn.begin_nested()
        try:
            result = self.intake.run(conn, [accept], ctx)[0]
        except Exception as exc:
            savepoint.rollback()
            if is_unavailable_error(exc):
                raise
            # As the runner does for any message: kept as a failed row, replayed later.
            return self.intake.failed(conn, accept, exc, ctx)
        savepoint.commit()
        return result


class SmsPartFlusher(Executor):
    """Executes ``FlushSmsParts``: each stale set becomes a message of its own, with
    ``[…]`` where parts are missing, so no text that was answered 200 is lost."""

    def __init__(self, intake: Accepts) -> None:
        self.collector = SmsPartCollector(intake)

    def run_one(self, conn: Connection, op: FlushSmsParts, ctx: WriteContext) -> int:
        stale = conn.execute(
            select(SmsPart.provider, SmsPart.sender, SmsPart.concat_ref, SmsPart.total)
            .where(SmsPart.inbound_id.is_(None))
            .group_by(SmsPart.provider, SmsPart.sender, SmsPart.concat_ref, SmsPart.total)
            .having(func.max(SmsPart.received_at) < op.older_than)
        ).all()
        for provider, sender, ref, total in stale:
            parts = _waiting(conn, provider, sender, ref, total)
            template = InboundMessage(
                channel=Channel.SMS,
                external_id="",
                sender=Address(phone=sender),
                raw=b"",
                language=op.language,
            )
            msg = _joined(template, parts, total, ref)
            log.warning(
                "a long SMS from %s (%s concat-ref %s) is taken with %d of its %d parts",
                sender, provider, ref, len({p.part for p in parts}), total,
            )  # fmt: skip
            result = self.collector._accept(conn, msg, ctx)
            _mark_joined(conn, parts, result.inbound_id, ctx.now)
        return len(stale)


def _waiting(conn: Connection, provider: str, sender: str, ref: str, total: int) -> list[Any]:
    return list(
        conn.execute(
            select(SmsPart.id, SmsPart.part, SmsPart.text, SmsPart.raw, SmsPart.message_id)
            .where(
                SmsPart.provider == provider,
                SmsPart.sender == sender,
                SmsPart.concat_ref == ref,
                SmsPart.total == total,
                SmsPart.inbound_id.is_(None),
            )
            .order_by(SmsPart.part, SmsPart.id)
        ).all()
    )


def _joined(template: InboundMessage, parts: list[Any], total: int, ref: str) -> InboundMessage:
    """The parts in order as one message. A carrier splits the text at a byte boundary
    with no separator, so the parts are joined as they are."""
    by_number: dict[int, Any] = {}
    for p in parts:
        by_number.setdefault(p.part, p)
    texts = [by_number[n].text if n in by_number else MISSING_MARK for n in range(1, total + 1)]
    first = by_number.get(1) or by_number[min(by_number)]
    return dataclasses.replace(
        template,
        external_id=joined_id(template.sender.phone or "", ref, first.message_id),
        text="".join(texts),
        raw=b"[" + b",".join(by_number[n].raw for n in sorted(by_number)) + b"]",
    )


def _mark_joined(conn: Connection, parts: list[Any], inbound_id: int, now: datetime) -> None:
    conn.execute(
        update(SmsPart).where(SmsPart.id.in_([p.id for p in parts])).values(inbound_id=inbound_id)
    )
    # Old joined parts are past any retry; deleting them here needs no scheduled job.
    conn.execute(
        delete(SmsPart).where(
            and_(SmsPart.inbound_id.is_not(None), SmsPart.received_at < now - KEEP_JOINED)
        )
    )


def _duplicate(conn: Connection, inbound_id: int) -> AcceptResult:
    number = conn.scalar(
        select(Case.number)
        .join(Inbound, Inbound.case_id == Case.id)
        .where(Inbound.id == inbound_id)
    )
    return AcceptResult("duplicate", inbound_id, number)
