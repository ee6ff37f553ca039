"""Threading and loop protection in the accept path: replies, tags, subjects, closed cases,
acknowledgement caps and bounces."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from cases.threads import ThreadingPolicy, normalize_subject
from config.app import Services
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.models import Case, CaseEvent, Notification, utcnow
from tests.conftest import intake_batch


def mail(
    subject: str = "No funciona el módem",
    sender: str = "ana@example.com",
    **extra: object,
) -> InboundMessage:
    return InboundMessage(
        channel=Channel.EMAIL,
        external_id=f"{uuid.uuid4().hex}@mail.example.com",
        sender=Address(name="Ana", email=sender),
        raw=b"From: ana@example.com\r\n\r\nhola\r\n",
        subject=subject,
        text="Hola, sigue sin andar.",
        **extra,  # type: ignore[arg-type]
    )


async def case_of(services: Services, result: AcceptResult) -> Case:
    async with services.db.session() as session:
        case = await session.scalar(select(Case).where(Case.number == result.case_number))
    assert case is not None
    return case


async def ack_of(services: Services, case_id: int) -> Notification:
    async with services.db.session() as session:
        ack = await session.scalar(
            select(Notification).where(
                Notification.case_id == case_id, Notification.audience == "customer"
            )
        )
    assert ack is not None
    return ack


async def event_kinds(services: Services, case_id: int) -> list[str]:
    async with services.db.session() as session:
        return list(
            await session.scalars(
                select(CaseEvent.kind).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
            )
        )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Re: RE: Fwd: No funciona", "no funciona"),
        ("RV: [CAS-000012] Factura  duplicada", "factura duplicada"),
        ("AW: Re[2]: Hola", "hola"),
        ("Consulta", "consulta"),
    ],
)
def test_normalize_subject(raw: str, expected: str) -> None:
    assert normalize_subject(raw) == expected


async def test_reply_headers_continue_the_case(services: Services) -> None:
    first = await services.writer.accept(mail())
    # Any sender may continue by Message-ID (a colleague in Cc answering).
    reply = await services.writer.accept(
        mail("otra cosa", sender="colega@example.com", in_reply_to=("unknown@elsewhere",))
    )
    assert reply.outcome == "created"  # an unknown Message-ID threads nothing
    original = mail("Consulta")
    opened = await services.writer.accept(original)
    answer = await services.writer.accept(
        mail("Respuesta", sender="colega@example.com", in_reply_to=(original.external_id,))
    )
    assert answer.outcome == "continued" and answer.case_number == opened.case_number
    assert first.case_number != opened.case_number


async def test_reply_to_our_acknowledgement_continues_the_case(services: Services) -> None:
    opened = await services.writer.accept(mail())
    ack = await ack_of(services, (await case_of(services, opened)).id)
    assert ack.message_id and ack.message_id.endswith("@ventanilla.localdomain")
    reply = await services.writer.accept(mail("Re: gracias", in_reply_to=(ack.message_id,)))
    assert reply.outcome == "continued" and reply.case_number == opened.case_number


async def test_same_sender_and_subject_within_window(services: Services) -> None:
    opened = await services.writer.accept(mail("Sin conexión"))
    again = await services.writer.accept(mail("RE: sin  CONEXIÓN"))
    assert again.outcome == "continued" and again.case_number == opened.case_number
    other = await services.writer.accept(mail("Factura"))
    assert other.outcome == "created"
    # The web form always opens a case: the subject rule is for email only.
    web = await services.writer.accept(replace(mail("Sin conexión"), channel=Channel.WEB))
    assert web.outcome == "created"
    # Outside the window it is a new case.
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Case)
            .where(Case.number.in_([opened.case_number, web.case_number]))
            .values(updated_at=utcnow() - timedelta(days=8))
        )
    later = await services.writer.accept(mail("Sin conexión"))
    assert later.outcome == "created"
    # And the rule can be switched off.
    intake_batch(services).threading = ThreadingPolicy(same_subject_days=0)
    off = await services.writer.accept(mail("Sin conexión"))
    assert off.outcome == "created"


async def close(services: Services, number: str | None) -> None:
    closed = services.catalog.current.find("statuses", "Cerrada")
    async with services.db.session() as session, session.begin():
        await session.execute(update(Case).where(Case.number == number).values(status_id=closed.id))


async def test_reply_to_closed_case_reopens_it(services: Services) -> None:
    opened = await services.writer.accept(mail())
    await close(services, opened.case_number)
    reply = await services.writer.accept(mail(f"Re: [{opened.case_number}] sigue igual"))
    assert reply.outcome == "continued"
    case = await case_of(services, opened)
    assert services.catalog.current.get("statuses", case.status_id).name == "Abierta"
    assert "reopened" in await event_kinds(services, case.id)


async def test_reply_to_closed_case_opens_a_linked_case(services: Services) -> None:
    intake_batch(services).threading = ThreadingPolicy(reply_to_closed="new_case")
    opened = await services.writer.accept(mail())
    await close(services, opened.case_number)
    reply = await services.writer.accept(mail(f"Re: [{opened.case_number}] sigue igual"))
    assert reply.outcome == "created" and reply.case_number != opened.case_number
    parent = await case_of(services, opened)
    child = await case_of(services, reply)
    assert child.parent_id == parent.id
    assert services.catalog.current.get("statuses", parent.status_id).name == "Cerrada"


async def test_acknowledgements_are_capped_per_sender(services: Services) -> None:
    intake_batch(services).acks_per_day = 2
    results = [await services.writer.accept(mail(f"Asunto {i}")) for i in range(3)]
    assert [r.outcome for r in results] == ["created"] * 3
    async with services.db.session() as session:
        acks = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.audience == "customer")
        )
    assert acks == 2
    third = await case_of(services, results[2])
    assert "ack_suppressed" in await event_kinds(services, third.id)


async def test_bounce_marks_the_notification_failed(services: Services) -> None:
    opened = await services.writer.accept(mail())
    case = await case_of(services, opened)
    ack = await ack_of(services, case.id)
    bounce = await services.writer.accept(
        mail(
            "Undelivered Mail Returned to Sender",
            sender="mailer-daemon@mx.example.com",
            auto_submitted=True,
            auto_reason="delivery status notification",
            reports_on=(ack.message_id or "",),
            report_error="failed 5.1.1 (ana@example.com)",
        )
    )
    assert bounce.outcome == "continued" and bounce.case_number == opened.case_number
    ack = await ack_of(services, case.id)
    assert ack.status == "failed" and "5.1.1" in (ack.last_error or "")
    assert "delivery_failed" in await event_kinds(services, case.id)
    async with services.db.session() as session:
        acks = await session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.audience == "customer")
        )
    assert acks == 1  # the bounce itself is never acknowledged
