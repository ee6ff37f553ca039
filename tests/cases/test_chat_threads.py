"""Threading of chat and text messages (SMS, Telegram), on SQLite (writer process) and
PostgreSQL: the customer's open conversation on the channel within the window continues,
a case number in the text continues that case only for its own customer, quick messages
sent together become one case, a closed case or an old conversation starts a new one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import insert, select, update

from cases.chat_threads import CaseMentions
from config.app import Services
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.models import Case, Notification, Status, utcnow
from tests.cases.test_batch_threading import held


def sms(phone: str, text: str) -> InboundMessage:
    return InboundMessage(Channel.SMS, f"SM{uuid.uuid4().hex}", Address(phone=phone), b"raw",
                          text=text)  # fmt: skip


def chat(user: str, text: str) -> InboundMessage:
    return InboundMessage(Channel.TELEGRAM, f"tg-{uuid.uuid4().hex}",
                          Address(name="Ana", telegram_id=user), b"raw", text=text)  # fmt: skip


async def accept(services: Services, msg: InboundMessage) -> AcceptResult:
    return await services.writer.accept(msg)


async def age(services: Services, number: str, hours: float) -> None:
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Case).where(Case.number == number)
            .values(updated_at=utcnow() - timedelta(hours=hours))
        )  # fmt: skip


def test_case_numbers_are_found_in_free_text() -> None:
    find = CaseMentions("CAS-", 6)
    assert find("mi caso es el CAS-000123, gracias") == "CAS-000123"
    assert find("cas-123 sigue sin luz") == "CAS-000123"
    assert find("XCAS-000123") is None and find("nada que ver") is None


async def test_sms_continue_the_open_conversation_within_the_window(services: Services) -> None:
    first = await accept(services, sms("+5491155501111", "Hola, no tengo señal"))
    again = await accept(services, sms("+5491155501111", "Sigo sin señal"))
    assert first.outcome == "created"
    assert (again.outcome, again.case_number) == ("continued", first.case_number)
    # Another channel of the same person is another conversation.
    other = await accept(services, chat("777001", "Hola"))
    assert other.outcome == "created"
    # Past the window: a new case.
    assert first.case_number is not None
    await age(services, first.case_number, 25)
    later = await accept(services, sms("+5491155501111", "Otra consulta"))
    assert later.outcome == "created" and later.case_number != first.case_number


async def test_a_closed_case_starts_a_new_conversation(services: Services) -> None:
    first = await accept(services, chat("777002", "Hola"))
    async with services.db.session() as session, session.begin():
        closed = await session.scalar(select(Status.id).where(Status.kind == "closed"))
        await session.execute(
            update(Case).where(Case.number == first.case_number).values(status_id=closed)
        )
    again = await accept(services, chat("777002", "Hola de nuevo"))
    assert again.outcome == "created" and again.case_number != first.case_number


async def test_a_case_number_in_the_text_continues_it_for_its_own_customer(
    services: Services,
) -> None:
    old = await accept(services, sms("+5491155502222", "Primer problema"))
    assert old.case_number is not None
    await age(services, old.case_number, 100)  # long out of the window
    newer = await accept(services, sms("+5491155502222", "Otro problema"))
    assert newer.case_number != old.case_number
    digits = int(old.case_number.removeprefix("CAS-"))
    back = await accept(services, sms("+5491155502222", f"Sobre el caso cas-{digits}: sigue"))
    assert (back.outcome, back.case_number) == ("continued", old.case_number)
    # A stranger naming it gets a case of their own.
    stranger = await accept(services, sms("+5491155503333", f"caso {old.case_number}"))
    assert stranger.outcome == "created" and stranger.case_number != old.case_number


async def test_a_web_form_case_acknowledged_by_sms_continues_by_sms(services: Services) -> None:
    form = await services.writer.accept(
        InboundMessage(
            Channel.WEB,
            uuid.uuid4().hex,
            Address(name="Ana", phone="+5491155504444"),
            b"raw",
            subject="Sin luz",
            text="Desde ayer",
        )
    )
    async with services.db.session() as session, session.begin():
        case_id = await session.scalar(select(Case.id).where(Case.number == form.case_number))
        sent = await session.scalar(
            select(Notification.channel).where(Notification.case_id == case_id)
        )
        if sent is None:  # acknowledged by SMS as the form's notices say; make sure of it
            await session.execute(
                insert(Notification).values(
                    channel="sms", trigger="auto", template="ack_sms", recipient="+5491155504444",
                    case_id=case_id, status="sent",
                )
            )  # fmt: skip
    reply = await accept(services, sms("+5491155504444", "Gracias, sigue igual"))
    assert (reply.outcome, reply.case_number) == ("continued", form.case_number)


async def test_quick_messages_sent_together_are_one_case(services: Services) -> None:
    async with held(services) as release:
        sent = [
            asyncio.ensure_future(accept(services, chat("777003", f"parte {n}"))) for n in range(4)
        ]
        await release(4)
        results = await asyncio.gather(*sent)
    numbers = {r.case_number for r in results}
    assert len(numbers) == 1, results
    assert sorted(r.outcome for r in results) == ["continued"] * 3 + ["created"]
