"""What the SMS tests share: a dispatcher over the configured notifiers, a customer who
writes from a phone (and so is acknowledged by SMS), and reads of the outbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import insert, select, update

from config.app import Services
from config.outbound_parts import build_notifiers
from intake.message import AcceptResult, Address, Channel, InboundMessage
from notifiers.dispatcher import OutboxDispatcher
from storage.models import DeliveryAttempt, Notification, utcnow
from tests.notifiers.dispatch_support import dispatcher_for, running

PHONE = "+5491155550123"


@asynccontextmanager
async def dispatching(services: Services, **kw: Any) -> AsyncIterator[OutboxDispatcher]:
    """The notifiers the settings configure, driven by a dispatcher that is poked by
    every commit (so tests wait on rows, not on polls)."""
    dispatcher = dispatcher_for(services, build_notifiers(services.settings), **kw)
    services.writes.listeners.append(lambda ops: dispatcher.poke())
    async with running(dispatcher):
        yield dispatcher


async def accept_from_phone(services: Services, phone: str = PHONE) -> AcceptResult:
    """A new case from a customer known only by phone: acknowledged by SMS."""
    return await services.writer.accept(
        InboundMessage(
            channel=Channel.SMS,
            external_id=uuid.uuid4().hex,
            sender=Address(name="Ana Pérez", phone=phone),
            raw=b"raw",
            subject="",
            text="Desde ayer no tengo conexión.",
        )
    )


async def rows(services: Services, *, every_channel: bool = False) -> list[Notification]:
    """The SMS rows, or all of them (a routed case also queues its technician's notice,
    by email, which most SMS tests leave aside)."""
    query = select(Notification).order_by(Notification.id)
    if not every_channel:
        query = query.where(Notification.channel == "sms")
    async with services.db.session() as session:
        return list((await session.scalars(query)).all())


async def attempts(services: Services) -> list[DeliveryAttempt]:
    async with services.db.session() as session:
        found = await session.scalars(
            select(DeliveryAttempt)
            .join(Notification, Notification.id == DeliveryAttempt.notification_id)
            .where(Notification.channel == "sms")
            .order_by(DeliveryAttempt.id)
        )
        return list(found.all())


def statuses(services: Services, *wanted: str) -> Callable[[], Awaitable[bool]]:
    """A check: the rows' statuses are ``wanted`` (in id order) and each was tried."""

    async def check() -> bool:
        found = await rows(services)
        return [r.status for r in found] == list(wanted) and all(
            r.attempts or r.status == "suppressed" for r in found
        )

    return check


async def make_due(services: Services) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(update(Notification).values(next_attempt_at=utcnow()))


async def sent_sms(services: Services, provider: str, provider_id: str, **kw: Any) -> int:
    """A notification that went out through ``provider`` (as the dispatcher leaves it)."""
    values: dict[str, Any] = {
        "channel": "sms", "trigger": "auto", "template": "ack_sms", "language": "es",
        "recipient": PHONE, "body": "Recibimos su consulta.", "status": "sent",
        "attempts": 1, "provider": provider, "provider_id": provider_id,
        "sent_at": utcnow(), "created_at": utcnow(), "segments": 1,
        **kw,
    }  # fmt: skip
    async with services.db.session() as session, session.begin():
        row_id = await session.scalar(
            insert(Notification).values(values).returning(Notification.id)
        )
    assert row_id is not None
    return int(row_id)
