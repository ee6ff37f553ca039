"""What the push tests share: a technician with a push channel, push notices queued for
them through the outbox, a dispatcher over given notifiers, and reading back rows and
attempts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from config.app import Services
from notifiers.base import Notifier
from notifiers.dispatcher import OutboxDispatcher
from notifiers.outbox import OutboundRequest, Outbox
from notifiers.templates import TemplateRenderer
from storage.models import DeliveryAttempt, Notification, Technician, TechnicianChannel, utcnow
from tests.notifiers import dispatch_support
from tests.notifiers.dispatch_support import until


def push_outbox(directory: Path) -> Outbox:
    """An outbox with a technician's push notice template (``assigned_push``)."""
    for lang in ("es", "en"):
        folder = directory / lang
        folder.mkdir(parents=True, exist_ok=True)
        subject = "Caso {{ case }} asignado: atención"
        (folder / "assigned_push.subject.j2").write_text(subject, encoding="utf-8")
        (folder / "assigned_push.txt.j2").write_text("{{ text }}", encoding="utf-8")
    return Outbox(TemplateRenderer(directory))


async def add_technician(services: Services, provider: str, address: str) -> int:
    """A technician whose first channel is ``address`` on push ``provider``, then email."""
    async with services.db.session() as session, session.begin():
        tech = Technician(name=f"Técnico {uuid.uuid4().hex[:8]}", email="tec@example.com")
        session.add(tech)
        await session.flush()
        session.add_all([
            TechnicianChannel(technician_id=tech.id, position=0, channel="push",
                              provider=provider, address=address),
            TechnicianChannel(technician_id=tech.id, position=1, channel="email",
                              address="tec@example.com"),
        ])  # fmt: skip
        return tech.id


async def enqueue_push(
    services: Services,
    outbox: Outbox,
    provider: str,
    recipient: str,
    technician_id: int | None = None,
    *,
    case: str = "CAS-000123",
    text: str = "Sin conexión desde ayer en la sucursal.",
) -> int:
    request = OutboundRequest(
        channel="push",
        template="assigned_push",
        language="es",
        recipient=recipient,
        context={"case": case, "text": text},
        provider=provider,
        audience="technician" if technician_id else "customer",
        technician_id=technician_id,
    )
    async with services.db.session() as session, session.begin():
        conn = await session.connection()
        return await conn.run_sync(lambda c: outbox.enqueue_one(c, request, utcnow()))


def dispatcher_for(services: Services, notifiers: Mapping[str, Notifier]) -> OutboxDispatcher:
    return dispatch_support.dispatcher_for(services, notifiers, owner="push-test", poll_seconds=0.1)


async def row(services: Services, row_id: int) -> Notification:
    async with services.db.session() as session:
        found = await session.get(Notification, row_id, populate_existing=True)
        assert found is not None
        return found


async def attempts(services: Services, row_id: int) -> list[DeliveryAttempt]:
    async with services.db.session() as session:
        found = await session.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.notification_id == row_id)
            .order_by(DeliveryAttempt.id)
        )
        return list(found.all())


async def channels(services: Services, technician_id: int) -> list[tuple[str, str]]:
    async with services.db.session() as session:
        found = await session.execute(
            select(TechnicianChannel.channel, TechnicianChannel.address)
            .where(TechnicianChannel.technician_id == technician_id)
            .order_by(TechnicianChannel.position)
        )
        return [(r.channel, r.address) for r in found]


async def settled(services: Services, *row_ids: int) -> None:
    """Every row has an outcome: sent, failed, dead, or back to pending after an attempt."""

    async def done() -> bool:
        for row_id in row_ids:
            found = await row(services, row_id)
            if found.status == "sending" or (found.status == "pending" and not found.attempts):
                return False
        return True

    await until(done)


async def all_sent(services: Services, *row_ids: int) -> None:
    async def sent() -> bool:
        return [(await row(services, i)).status for i in row_ids] == ["sent"] * len(row_ids)

    await until(sent)


async def make_due(services: Services, row_id: int) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Notification).where(Notification.id == row_id).values(next_attempt_at=utcnow())
        )


def later_than(when: datetime | None, seconds: float) -> bool:
    assert when is not None
    return when > utcnow() + timedelta(seconds=seconds)


def summary(found: list[DeliveryAttempt]) -> list[tuple[str, Any]]:
    return [(a.outcome, a.provider_code) for a in found]
