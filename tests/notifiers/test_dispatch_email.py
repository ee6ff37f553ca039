"""The dispatcher and the email notifier against a real SMTP sink on loopback: what an
acknowledgement looks like when it arrives, and what 4xx, 5xx, a hang, suppression, a
crash mid-send and a stop do to the outbox (SQLite writer process, and PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from config.app import Services
from config.settings import MailboxSettings, Settings
from intake.message import AcceptResult, Address, Channel, InboundMessage
from notifiers.base import Delivered, Outgoing, TransientError
from notifiers.email import EmailConfig, EmailNotifier
from storage.models import DeliveryAttempt, Notification, OptOut, utcnow
from tests.conftest import make_settings
from tests.notifiers.dispatch_support import dispatcher_for, running, until
from tests.notifiers.smtp_sink import Sink, smtp_sink

pytestmark = pytest.mark.writer_process


def email_to(sink: Sink, **kw: Any) -> EmailNotifier:
    return EmailNotifier(
        EmailConfig(
            "127.0.0.1",
            sink.port,
            "Soporte <soporte@example.com>",
            message_id_domain="ventanilla.test",
            **kw,
        )
    )


async def accept(services: Services, email: str = "ana@example.com", **kw: Any) -> AcceptResult:
    return await services.writer.accept(
        InboundMessage(
            channel=kw.pop("channel", Channel.WEB),
            external_id=kw.pop("external_id", uuid.uuid4().hex),
            sender=Address(name="Ana Pérez", email=email),
            raw=b"raw",
            subject=kw.pop("subject", "Sin conexión"),
            text="Desde ayer no tengo conexión.",
            # A category without a default technician: the customer's row only.
            category=kw.pop("category", "Otro tipo de Problema"),
            **kw,
        )
    )


async def rows(services: Services) -> list[Notification]:
    async with services.db.session() as session:
        return list((await session.scalars(select(Notification).order_by(Notification.id))).all())


async def attempts(services: Services) -> list[DeliveryAttempt]:
    async with services.db.session() as session:
        found = await session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id))
        return list(found.all())


async def status_is(services: Services, *wanted: str) -> bool:
    return [r.status for r in await rows(services)] == list(wanted)


async def test_an_acknowledgement_arrives_threaded_and_marked_automatic(
    services: Services,
) -> None:
    async with smtp_sink() as sink:
        dispatcher = dispatcher_for(services, {"email": email_to(sink)})
        services.writes.listeners.append(lambda ops: dispatcher.poke())
        async with running(dispatcher):
            original = f"{uuid.uuid4().hex}@cliente.example.org"
            result = await accept(services, channel=Channel.EMAIL, external_id=original,
                                  in_reply_to=("older@cliente.example.org",))  # fmt: skip
            await asyncio.wait_for(sink.handler.arrived.wait(), 10)
            await until(lambda: status_is(services, "sent"))
    [mail] = sink.handler.received
    [row] = await rows(services)
    assert mail["To"] == "ana@example.com"
    assert f"[{result.case_number}]" in mail["Subject"]
    assert mail["Message-ID"] == f"<{row.message_id}>"
    assert mail["Auto-Submitted"] == "auto-replied"  # RFC 3834
    assert mail["In-Reply-To"] == f"<{original}>"
    assert mail["References"] == f"<older@cliente.example.org> <{original}>"
    assert result.case_number in mail.get_body(("plain",)).get_content()
    [attempt] = await attempts(services)
    assert (attempt.outcome, attempt.provider, attempt.provider_code) == ("sent", "email", "250")
    assert row.sent_at is not None and row.provider_id == row.message_id


async def test_connections_are_reused(services: Services) -> None:
    async with smtp_sink() as sink:
        dispatcher = dispatcher_for(services, {"email": email_to(sink, concurrency=1)})
        for i in range(5):
            await accept(services, f"c{i}@example.com")
        async with running(dispatcher):
            await until(lambda: status_is(services, *["sent"] * 5))
    assert len(sink.handler.received) == 5 and sink.handler.connections == 1


async def test_a_4xx_is_retried_later_and_a_5xx_fails_with_the_reply(services: Services) -> None:
    async with smtp_sink() as sink:
        sink.handler.answers = ["451 4.3.0 try later", "550 5.1.1 no such user"]
        dispatcher = dispatcher_for(services, {"email": email_to(sink)})
        await accept(services, "uno@example.com")
        await accept(services, "dos@example.com")
        async with running(dispatcher):
            await until(lambda: _statuses(services, {"pending", "failed"}))
    first, second = await rows(services)
    later = {r.status: r for r in (first, second)}
    assert later["pending"].next_attempt_at > utcnow() + timedelta(seconds=10)
    assert (
        later["failed"].status_reason and "550 5.1.1 no such user" in later["failed"].status_reason
    )
    kinds = sorted((a.outcome, a.provider_code) for a in await attempts(services))
    assert kinds == [("permanent", "550"), ("transient", "451")]


async def _statuses(services: Services, wanted: set[str]) -> bool:
    return {r.status for r in await rows(services)} == wanted


async def test_a_hanging_server_is_a_transient_failure(services: Services) -> None:
    async with smtp_sink() as sink:
        sink.handler.hang = True
        dispatcher = dispatcher_for(services, {"email": email_to(sink, timeout_seconds=0.5)})
        await accept(services)
        async with running(dispatcher):
            await until(lambda: pending_and_tried(services))
    [attempt] = await attempts(services)
    assert attempt.outcome == "transient" and "Timeout" in (attempt.error or "")


async def _attempted(services: Services) -> bool:
    return bool(await attempts(services))


async def pending_and_tried(services: Services) -> bool:
    return await _statuses(services, {"pending"}) and await _attempted(services)


class Flaky:
    """A notifier that fails transiently ``n`` times (asking for ``retry_after``), then sends."""

    channel, name, concurrency = "email", "email", 2

    def __init__(self, failures: int, retry_after: float | None = None) -> None:
        self.failures, self.retry_after, self.sent = failures, retry_after, []  # type: ignore[var-annotated]

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: Outgoing) -> Delivered:
        if self.failures > 0:
            self.failures -= 1
            raise TransientError("busy", retry_after=self.retry_after, code="429")
        self.sent.append(message)
        return Delivered("ok-1", "200", "ok")


async def make_due(services: Services) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(update(Notification).values(next_attempt_at=utcnow()))


async def test_retry_after_is_honoured_and_the_last_attempt_dies(services: Services) -> None:
    flaky = Flaky(failures=10, retry_after=900)
    dispatcher = dispatcher_for(services, {"email": flaky})
    await accept(services)
    async with running(dispatcher):
        await until(lambda: pending_and_tried(services))
        [row] = await rows(services)
        # The policy's backoff is at most 60 s here: 900 s comes from Retry-After.
        assert row.next_attempt_at > utcnow() + timedelta(seconds=800)
        for _ in range(2):
            await make_due(services)
            dispatcher.poke()
            await asyncio.sleep(0.5)
        await until(lambda: _statuses(services, {"dead"}))
    [row] = await rows(services)
    assert row.attempts == 3 and "gave up after 3 attempts" in (row.status_reason or "")
    assert [a.outcome for a in await attempts(services)] == ["transient"] * 3


async def test_own_mailboxes_and_opted_out_addresses_are_suppressed(services: Services) -> None:

    await accept(services, "soporte@example.com")
    await accept(services, "ana@example.com")
    async with services.db.session() as session, session.begin():
        session.add(OptOut(channel="email", address="ana@example.com", source="test"))
    flaky = Flaky(failures=0)
    dispatcher = dispatcher_for(services, {"email": flaky})
    async with running(dispatcher):
        await until(lambda: _statuses(services, {"suppressed"}))
    reasons = sorted(r.status_reason or "" for r in await rows(services))
    assert any("opted out" in r for r in reasons)
    assert flaky.sent == []


async def test_a_claim_lost_in_a_crash_is_sent_again_marked_possible_duplicate(
    services: Services,
) -> None:
    await accept(services)
    async with services.db.session() as session, session.begin():
        # A dispatcher claimed the row, handed it to the provider and died unrecorded.
        await session.execute(
            update(Notification).values(
                status="sending", claimed_by="dead-daemon", attempts=1,
                lease_until=utcnow() - timedelta(seconds=1),
            )
        )  # fmt: skip
    flaky = Flaky(failures=0)
    async with running(dispatcher_for(services, {"email": flaky})):
        await until(lambda: _statuses(services, {"sent"}))
    [row] = await rows(services)
    [message] = flaky.sent
    assert message.possible_duplicate and message.headers["Message-ID"] == f"<{row.message_id}>"
    assert message.idempotency_key == f"ventanilla-{row.id}"
    [attempt] = await attempts(services)
    assert attempt.possible_duplicate and row.attempts == 2


async def test_a_sent_row_is_never_sent_again(services: Services) -> None:
    await accept(services)
    flaky = Flaky(failures=0)
    async with running(dispatcher_for(services, {"email": flaky})):
        await until(lambda: _statuses(services, {"sent"}))
        await make_due(services)  # even when its due time says so
        dispatcher = None
        await asyncio.sleep(0.5)
    assert len(flaky.sent) == 1 and dispatcher is None


async def test_a_stop_gives_back_claimed_rows_and_marks_the_unknown_ones(
    services: Services,
) -> None:
    async with smtp_sink() as sink:
        sink.handler.hang = True
        # Two claimed, one connection: one row is mid-DATA at the stop, the other waits.
        dispatcher = dispatcher_for(
            services, {"email": email_to(sink, concurrency=1)}, grace_seconds=0.5, slots=2
        )
        await accept(services, "ana@example.com")
        await accept(services, "beto@example.com")
        async with running(dispatcher):
            await until(lambda: _statuses(services, {"sending"}))
            await asyncio.wait_for(sink.handler.data_began.wait(), 10)
        waiting, handed = sorted(await rows(services), key=lambda r: r.status)
    # The waiting one is simply due again; the one the server had may have gone out, so
    # it stays claimed with its lease already run out.
    assert (waiting.status, waiting.claimed_by, waiting.attempts) == ("pending", None, 0)
    assert handed.status == "sending" and handed.lease_until is not None
    assert handed.lease_until <= utcnow()
    assert await attempts(services) == []
    async with smtp_sink() as sink:
        again = dispatcher_for(services, {"email": email_to(sink)})
        async with running(again):
            await until(lambda: _statuses(services, {"sent"}))
    marked = {a.notification_id: a.possible_duplicate for a in await attempts(services)}
    assert marked == {handed.id: True, waiting.id: False}


async def test_a_provider_not_configured_fails_the_row_with_the_reason(
    services: Services,
) -> None:
    await accept(services)
    async with running(dispatcher_for(services, {})):
        await until(lambda: _statuses(services, {"failed"}))
    [row] = await rows(services)
    assert "no provider 'email'" in (row.status_reason or "")


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The example settings with one of our mailboxes (never to be written to)."""
    base = make_settings(tmp_path, db_url)
    return base.model_copy(update={"mailboxes": [MailboxSettings(address="soporte@example.com")]})
