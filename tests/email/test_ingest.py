"""The email ingest path end to end in-process: parse, presets, dedup, policies, replay."""

from __future__ import annotations

import asyncio
import dataclasses
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from sqlalchemy import func, select

import intake.email.prepare as prepare_module
from config.app import Services
from intake.email.ingest import EmailIngest, EmailSource
from intake.email.mailboxes import Mailbox, MailboxDirectory
from intake.email.parse import EmailParseError
from storage.models import Case, Inbound, Notification

SMTP = EmailSource("smtp")


def build(
    to: str = "soporte@example.com",
    subject: str = "No tengo Internet",
    sender: str = "Ana Pérez <ana@example.com>",
    **headers: str,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = make_msgid(domain="mail.example.com")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("Desde ayer no tengo conexión.\n")
    return msg.as_bytes()


@pytest.fixture
def ingest(services: Services) -> EmailIngest:
    return EmailIngest(
        services.writer,
        services.attachments,
        MailboxDirectory(
            [
                Mailbox("soporte@example.com", category="Problema Grave"),
                Mailbox("@facturas.example.com", area="Administración", priority="Alta"),
            ]
        ),
        services.email.limits,
        "ventanilla.localdomain",
    )


async def acks(services: Services) -> int:
    """Notifications to the customer (a new case also tells its technician)."""
    async with services.db.session() as session:
        stmt = select(func.count()).select_from(Notification)
        return int(await session.scalar(stmt.where(Notification.audience == "customer")) or 0)


async def rows(services: Services, model: type) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_mailbox_preset_routes_and_acknowledges(
    services: Services, ingest: EmailIngest
) -> None:
    result = await ingest.ingest(build(), SMTP, ["soporte@example.com"])
    assert result.outcome == "created"
    async with services.db.session() as session:
        case = await session.scalar(select(Case).where(Case.number == result.case_number))
    assert case is not None
    assert services.catalog.current.get("areas", case.area_id).name == "Técnica"
    assert await acks(services) == 1


async def test_domain_mailbox_presets_area_and_priority(
    services: Services, ingest: EmailIngest
) -> None:
    result = await ingest.ingest(build(to="pagos@facturas.example.com"), SMTP)
    async with services.db.session() as session:
        case = await session.scalar(select(Case).where(Case.number == result.case_number))
    assert case is not None
    assert services.catalog.current.get("areas", case.area_id).name == "Administración"
    assert services.catalog.current.get("priorities", case.priority_id).name == "Alta"


async def test_same_mail_twice_is_one_message(services: Services, ingest: EmailIngest) -> None:
    raw = build()
    first = await ingest.ingest(raw, SMTP)
    again = await ingest.ingest(raw, EmailSource("imap:soporte"))
    assert again.outcome == "duplicate" and again.case_number == first.case_number
    assert await rows(services, Inbound) == 1


async def test_automatic_mail_is_threaded_but_not_acknowledged(
    services: Services, ingest: EmailIngest
) -> None:
    result = await ingest.ingest(build(Auto_Submitted="auto-replied"), SMTP)
    assert result.outcome == "created"
    assert await acks(services) == 0


async def test_one_case_per_area(services: Services) -> None:
    ingest = EmailIngest(
        services.writer,
        services.attachments,
        MailboxDirectory(
            [
                Mailbox("soporte@example.com", area="Técnica"),
                Mailbox("pagos@example.com", area="Administración"),
            ]
        ),
        services.email.limits,
        "ventanilla.localdomain",
        case_per_area=True,
    )
    raw = build(to="soporte@example.com, pagos@example.com")
    first = await ingest.ingest(raw, SMTP)
    async with services.db.session() as session:
        cases = (await session.scalars(select(Case).order_by(Case.id))).all()
    assert len(cases) == 2
    parent, child = cases
    assert parent.number == first.case_number and child.parent_id == parent.id
    areas = {services.catalog.current.get("areas", c.area_id).name for c in cases}
    assert areas == {"Técnica", "Administración"}
    assert await acks(services) == 1  # the customer hears back once
    await ingest.ingest(raw, SMTP)  # resent: nothing new
    assert await rows(services, Case) == 2


async def test_unparseable_mail_is_kept_and_replayed_after_a_fix(
    services: Services, ingest: EmailIngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> object:
        raise EmailParseError("parser bug")

    raw = build()
    monkeypatch.setattr(prepare_module, "parse_email", broken)
    failed = await ingest.ingest(raw, SMTP)
    assert failed.outcome == "failed"
    async with services.db.session() as session:
        row = await session.get(Inbound, failed.inbound_id)
    assert row is not None and row.raw == raw and row.status == "failed"
    assert await ingest.ingest(raw, SMTP) == dataclasses.replace(
        failed, outcome="duplicate", error=None
    )
    monkeypatch.undo()
    services.writer.reparsers["email"] = ingest.reparse
    replayed = await services.writer.retry(failed.inbound_id)
    assert replayed.outcome == "created" and replayed.case_number


async def test_a_received_mail_is_parsed_alone_at_once(
    services: Services, ingest: EmailIngest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SMTP, LMTP and IMAP mail does not wait for group-mates: the sender waits for the
    250, and a group-mate's parse would be added to its wait."""
    calls: list[int] = []
    real_prepare = ingest.prepare

    async def counting(raws: Any) -> Any:
        calls.append(len(raws))
        return await real_prepare(raws)

    monkeypatch.setattr(ingest, "prepare", counting)
    mails = [build(sender=f"p{n}@example.com", subject=f"Consulta {n}") for n in range(6)]
    results = await asyncio.gather(*(ingest.ingest(raw, SMTP) for raw in mails))
    assert [r.outcome for r in results] == ["created"] * 6
    assert calls == [1] * 6
