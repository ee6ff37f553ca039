"""A Message-ID seen before but carried by a different message (broken mailers reuse them)
is stored as a new message with the reuse recorded; a true retransmission of either stays
a duplicate, even when its transport headers differ (an SMTP and an IMAP copy)."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from sqlalchemy import select

from config.app import Services
from intake.email.ingest import EmailIngest, EmailSource
from intake.email.mailboxes import Mailbox, MailboxDirectory
from storage.models import CaseEvent, Inbound

SMTP = EmailSource("smtp")
REUSED = "1234@mailer.example.org"


def build(subject: str, body: str, *, date: str = "Mon, 30 Nov 2026 10:00:00 +0000",
          received: str = "from a.example.org by mx.example.com") -> bytes:  # fmt: skip
    msg = EmailMessage()
    msg["Received"] = received
    msg["From"] = "Ana Pérez <ana@example.com>"
    msg["To"] = "soporte@example.com"
    msg["Subject"] = subject
    msg["Date"] = date
    msg["Message-ID"] = f"<{REUSED}>"
    msg.set_content(body)
    return msg.as_bytes()


def ingest(services: Services) -> EmailIngest:
    return EmailIngest(
        services.writer,
        services.attachments,
        MailboxDirectory([Mailbox("soporte@example.com")]),
        services.email.limits,
        "ventanilla.localdomain",
    )


async def stored(services: Services) -> list[tuple[str, str]]:
    async with services.db.session() as session:
        rows = await session.execute(
            select(Inbound.external_id, Inbound.status).order_by(Inbound.id)
        )
        return [(r.external_id, r.status) for r in rows]


async def test_a_reused_message_id_is_a_new_message_and_retransmissions_stay_one(
    services: Services,
) -> None:
    mail = ingest(services)
    first = build("Sin conexión", "Desde ayer no tengo conexión.\n")
    other = build("Factura de noviembre", "No me llegó la factura.\n",
                  date="Tue, 01 Dec 2026 09:00:00 +0000")  # fmt: skip
    a = await mail.ingest(first, SMTP)
    b = await mail.ingest(other, SMTP)
    assert (a.outcome, b.outcome) == ("created", "created")
    assert a.case_number != b.case_number
    # The same mails again, one through another relay (another Received header).
    again = await mail.ingest(build("Sin conexión", "Desde ayer no tengo conexión.\n",
                                    received="from b.example.org by imap"), SMTP)  # fmt: skip
    other_again = await mail.ingest(other, SMTP)
    assert (again.outcome, again.inbound_id) == ("duplicate", a.inbound_id)
    assert (other_again.outcome, other_again.inbound_id) == ("duplicate", b.inbound_id)
    rows = await stored(services)
    assert len(rows) == 2 and rows[0][0] == REUSED and rows[1][0].startswith(f"{REUSED}#")
    async with services.db.session() as session:
        event = await session.scalar(select(CaseEvent).where(CaseEvent.kind == "message_id_reused"))
    assert event is not None and event.detail["message_id"] == REUSED


async def test_a_reused_message_id_in_one_batch(services: Services) -> None:
    mail = ingest(services)
    results = await asyncio.gather(
        mail.ingest(build("Uno", "primero\n"), SMTP),
        mail.ingest(build("Dos", "segundo\n"), SMTP),
        mail.ingest(build("Uno", "primero\n"), SMTP),
    )
    outcomes = sorted(r.outcome for r in results)
    assert outcomes == ["created", "created", "duplicate"]
    assert len(await stored(services)) == 2
