"""Telegram rows through the outbox dispatcher and the Telegram notifier to a loopback Bot
API (SQLite writer process, and PostgreSQL): sent with Telegram's message id, flood control
honoured as the row's next attempt, refusals failed for good, and a technician whose chat
blocked the bot forgotten on Telegram and told by email instead."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from config.app import Services
from notifiers.base import Delivered, Outgoing
from notifiers.dispatcher import OutboxDispatcher
from notifiers.outbox import OutboundRequest, Outbox
from notifiers.retry import RetryPolicy
from notifiers.telegram import TelegramConfig, TelegramNotifier
from storage.models import Notification, Technician, TechnicianChannel, utcnow
from tests.notifiers.dispatch_support import dispatcher_for, running, until
from tests.notifiers.telegram_api import TOKEN, BotApi, bot_api
from tests.notifiers.test_dispatch_email import attempts, make_due, rows

pytestmark = [
    pytest.mark.writer_process,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:telegram"),
]

CONTEXT = {
    "case_number": "CAS-000042",
    "title": "Sin señal <desde> ayer & hoy",
    "customer_name": "Ana Pérez",
    "category": "Problema grave",
    "priority": "Alta",
    "area": "Técnica",
    "technician_name": "Juan Gómez",
    "description": "No tengo señal.",
}


async def enqueue(services: Services, request: OutboundRequest) -> int:
    """A row as the outbox writes it (rendered now)."""
    row = Outbox(services.renderer).row(request, utcnow())
    async with services.db.session() as session, session.begin():
        row_id = await session.scalar(insert(Notification).values(row).returning(Notification.id))
    assert row_id is not None
    return int(row_id)


def ack(chat: str = "555001") -> OutboundRequest:
    return OutboundRequest("telegram", "ack_telegram", "es", chat, CONTEXT)


@asynccontextmanager
async def telegram_dispatcher(
    services: Services, api: BotApi, **kw: Any
) -> AsyncIterator[tuple[OutboxDispatcher, BotApi]]:
    async with bot_api(api) as (served, url):
        notifier = TelegramNotifier(TelegramConfig(TOKEN, url, timeout_seconds=0.5))
        notifiers: dict[str, Any] = {"telegram": notifier, **kw.pop("others", {})}
        dispatcher = dispatcher_for(services, notifiers, **kw)
        async with running(dispatcher):
            yield dispatcher, served


async def statuses(services: Services) -> list[str]:
    return [r.status for r in await rows(services)]


async def test_an_acknowledgement_arrives_in_the_chat(services: Services) -> None:
    await enqueue(services, ack())
    async with telegram_dispatcher(services, BotApi()) as (_d, api):
        await until(lambda: _is(services, ["sent"]))
    [form] = api.received
    assert form["chat_id"] == "555001" and form["parse_mode"] == "HTML"
    first, _, rest = form["text"].partition("\n")
    assert first == "<b>Caso CAS-000042: consulta recibida</b>"
    assert "Sin señal &lt;desde&gt; ayer &amp; hoy" in rest  # the customer's text, escaped
    [row] = await rows(services)
    [attempt] = await attempts(services)
    assert (attempt.outcome, attempt.provider, attempt.provider_code) == ("sent", "telegram", "200")
    assert row.provider_id == "101" and row.sent_at is not None


async def test_flood_control_sets_the_next_attempt_then_it_is_sent(services: Services) -> None:
    await enqueue(services, ack())
    # The policy alone would wait at most 2 s: the 7 s come from Telegram's retry_after.
    policy = RetryPolicy(max_attempts=3, base_seconds=1, max_seconds=2)
    async with telegram_dispatcher(services, BotApi(answers=["flood"]), policy=policy) as (
        dispatcher,
        api,
    ):
        await until(lambda: _tried(services, 1))
        [row] = await rows(services)
        assert row.status == "pending"
        assert row.next_attempt_at is not None
        assert row.next_attempt_at >= utcnow() + timedelta(seconds=5)
        await asyncio.sleep(0.5)
        assert api.received == []  # not before it is due
        await make_due(services)
        dispatcher.poke()
        await until(lambda: _is(services, ["sent"]))
    outcomes = [(a.outcome, a.provider_code) for a in await attempts(services)]
    assert outcomes == [("transient", "429"), ("sent", "200")]


async def test_server_errors_and_timeouts_are_retried(services: Services) -> None:
    await enqueue(services, ack("1001"))
    await enqueue(services, ack("1002"))
    async with telegram_dispatcher(services, BotApi(answers=["error_500", "hang"])) as (_d, _a):
        await until(lambda: _tried(services, 2))
        await until(lambda: _is(services, ["pending", "pending"]))
    codes = sorted(str(a.provider_code) for a in await attempts(services))
    assert codes == ["None", "timeout"]
    assert all(a.outcome == "transient" for a in await attempts(services))


async def test_refusals_fail_for_good_with_telegram_s_words(services: Services) -> None:
    await enqueue(services, ack("2001"))
    await enqueue(services, ack("2002"))
    async with telegram_dispatcher(services, BotApi(answers=["blocked", "chat_not_found"])) as (
        _d,
        _a,
    ):
        await until(lambda: _is(services, ["failed", "failed"]))
    reasons = sorted(r.status_reason or "" for r in await rows(services))
    assert "Chat not found" in reasons[0]  # PTB drops the "Bad Request: " prefix
    assert "Forbidden: bot was blocked by the user" in reasons[1]
    assert sorted(str(a.provider_code) for a in await attempts(services)) == ["400", "403"]


class Mailbox:
    """An email notifier that only keeps what it is given."""

    channel, name, concurrency = "email", "email", 1

    def __init__(self) -> None:
        self.sent: list[Outgoing] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: Outgoing) -> Delivered:
        self.sent.append(message)
        return Delivered("mail-1", "250", "ok")


async def test_a_technician_who_blocked_the_bot_is_forgotten_there_and_told_by_email(
    services: Services,
) -> None:
    async with services.db.session() as session, session.begin():
        tech = Technician(name="Juan Gómez", email="juan@example.com")
        session.add(tech)
        await session.flush()
        session.add_all([
            TechnicianChannel(technician_id=tech.id, position=1, channel="telegram",
                              address="3001"),
            TechnicianChannel(technician_id=tech.id, position=2, channel="email",
                              address="juan@example.com"),
        ])  # fmt: skip
    await enqueue(
        services,
        OutboundRequest(
            "telegram", "assigned_telegram", "es", "3001", CONTEXT,
            audience="technician", technician_id=tech.id,
            fallback=({"channel": "email", "address": "juan@example.com"},),
        ),
    )  # fmt: skip
    mailbox = Mailbox()
    async with telegram_dispatcher(services, BotApi(answers=["blocked"]),
                                   others={"email": mailbox}):  # fmt: skip
        await until(lambda: _is(services, ["failed", "sent"]))
    first, second = await rows(services)
    assert (first.template, second.template) == ("assigned_telegram", "assigned_email")
    [mail] = mailbox.sent
    assert mail.recipient == "juan@example.com"
    assert mail.subject.startswith("[CAS-000042] Caso asignado (Alta)")
    assert mail.html and "Sin señal &lt;desde&gt; ayer &amp; hoy" in mail.html
    async with services.db.session() as session:
        left = (await session.scalars(select(TechnicianChannel.channel))).all()
    assert left == ["email"]  # the blocked chat is gone (PermanentError.gone)


async def _is(services: Services, wanted: list[str]) -> bool:
    return await statuses(services) == wanted


async def _tried(services: Services, count: int) -> bool:
    return len(await attempts(services)) >= count
