"""Agent replies: queued on the customer's channel, threaded, on the timeline as outbound
messages, the first response recorded; the CLI does the same."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from config.app import Services
from intake.message import Address, Channel, InboundMessage
from storage.models import Case, Notification
from tests.conftest import TokenFactory
from tests.console.test_case_operations import api_for
from tests.notifiers.smtp_sink import smtp_sink

Client = TestClient[Any, Any]


async def mail_case(services: Services, message_id: str) -> str:
    result = await services.writer.accept(
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=message_id,
            sender=Address(name="Ana", email="ana@example.com", phone="+5491155550101"),
            raw=b"raw",
            subject="Sin conexión",
            text="Hola",
        )
    )
    assert result.case_number
    return result.case_number


async def reply_rows(services: Services) -> list[Notification]:
    async with services.db.session() as session:
        found = await session.scalars(
            select(Notification)
            .where(Notification.template.like("reply_%"))
            .order_by(Notification.id)
        )
        return list(found.all())


async def test_a_reply_goes_by_email_threaded_and_counts_as_first_response(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    original = f"{uuid.uuid4().hex}@cliente.example.org"
    number = await mail_case(services, original)
    api = await api_for(client, make_token)
    status, answer, _ = await api.call(
        "POST", f"/api/v1/cases/{number}/replies", {"text": "Ya reiniciamos su módem."}
    )
    assert status == 201, answer
    assert answer["event"]["kind"] == "replied" and answer["event"]["detail"]["channel"] == "email"
    [row] = await reply_rows(services)
    assert (row.channel, row.recipient, row.trigger) == ("email", "ana@example.com", "manual")
    assert row.headers["In-Reply-To"] == f"<{original}>"
    assert "Auto-Submitted" not in row.headers  # a person answered: not automatic
    assert f"[{number}]" in row.subject and "Ya reiniciamos su módem." in row.body
    _, case, _ = await api.call("GET", f"/api/v1/cases/{number}")
    out = [e for e in case["timeline"] if e["type"] == "message" and e["direction"] == "out"]
    assert [e["text"] for e in out] == ["Ya reiniciamos su módem."]
    async with services.db.session() as session:
        first = await session.scalar(select(Case.first_response_at).where(Case.number == number))
    assert first is not None
    # The customer's answer to our reply threads into the case by its Message-ID.
    again = await services.writer.accept(
        InboundMessage(
            channel=Channel.EMAIL,
            external_id=f"{uuid.uuid4().hex}@cliente.example.org",
            sender=Address(email="otra@example.com"),
            raw=b"raw",
            subject="Re: algo distinto",
            text="Gracias",
            in_reply_to=(row.message_id or "",),
        )
    )
    assert (again.outcome, again.case_number) == ("continued", number)


async def test_a_reply_by_another_channel_and_refusals(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await mail_case(services, f"{uuid.uuid4().hex}@cliente.example.org")
    api = await api_for(client, make_token)
    status, answer, _ = await api.call(
        "POST",
        f"/api/v1/cases/{number}/replies",
        {"text": "Le escribimos por SMS.", "channel": "sms"},
    )
    assert status == 201, answer
    [row] = await reply_rows(services)
    assert (row.channel, row.recipient) == ("sms", "+5491155550101")
    status, answer, _ = await api.call(
        "POST", f"/api/v1/cases/{number}/replies", {"text": "Hola", "channel": "telegram"}
    )
    assert status == 422 and "channel" in answer["error"]["fields"]
    status, answer, _ = await api.call("POST", f"/api/v1/cases/{number}/replies", {"text": ""})
    assert status == 422
    status, _, _ = await api.call("POST", "/api/v1/cases/CAS-999999/replies", {"text": "x"})
    assert status == 404


async def test_the_cli_replies_too(services: Services) -> None:
    from tests.test_cli_ops import run

    number = await mail_case(services, f"{uuid.uuid4().hex}@cliente.example.org")
    code, output = await run(services, "cases", "reply", number, "Respuesta desde la consola")
    assert code == 0 and "queued by email to ana@example.com" in output
    [row] = await reply_rows(services)
    assert row.requested_by and row.requested_by.startswith("cli:")


PDF = b"%PDF-1.4\n% factura de prueba\n" + bytes(range(256)) * 8


async def test_a_reply_carries_its_attachments_by_email(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    from tests.notifiers.dispatch_support import dispatcher_for, running, until
    from tests.notifiers.test_dispatch_email import email_to

    number = await mail_case(services, f"{uuid.uuid4().hex}@cliente.example.org")
    api = await api_for(client, make_token)
    files = [{"filename": "factura.pdf", "content_type": "application/pdf",
              "content": base64.b64encode(PDF).decode()}]  # fmt: skip
    status, answer, _ = await api.call(
        "POST",
        f"/api/v1/cases/{number}/replies",
        {"text": "Adjunto la factura.", "attachments": files},
    )
    assert status == 201, answer
    assert answer["event"]["detail"]["attachments"] == ["factura.pdf"]
    [row] = await reply_rows(services)
    [stored] = row.attachments
    assert (stored["filename"], stored["content_type"], stored["size"]) == (
        "factura.pdf", "application/pdf", len(PDF),
    )  # fmt: skip
    _, case, _ = await api.call("GET", f"/api/v1/cases/{number}")
    [out] = [e for e in case["timeline"] if e["type"] == "message" and e["direction"] == "out"]
    assert [a["filename"] for a in out["attachments"]] == ["factura.pdf"]

    async def reply_sent() -> bool:
        return [r.status for r in await reply_rows(services)] == ["sent"]

    async with smtp_sink() as sink:
        dispatcher = dispatcher_for(
            services, {"email": email_to(sink)}, file_path=services.attachments.path_of
        )
        async with running(dispatcher):
            await until(reply_sent)
    [mail] = [m for m in sink.handler.received if m["Message-ID"] == f"<{row.message_id}>"]
    assert "Adjunto la factura." in mail.get_body(("plain",)).get_content()
    [part] = list(mail.iter_attachments())
    assert (part.get_filename(), part.get_content_type()) == ("factura.pdf", "application/pdf")
    assert part.get_content() == PDF


async def test_reply_attachments_are_checked_and_go_by_email_only(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await mail_case(services, f"{uuid.uuid4().hex}@cliente.example.org")
    api = await api_for(client, make_token)
    path = f"/api/v1/cases/{number}/replies"
    good = {"filename": "a.txt", "content_type": "text/plain", "content": "aG9sYQ=="}
    status, answer, _ = await api.call(
        "POST", path, {"text": "x", "attachments": [good, {**good, "content": "no es base64!"}]}
    )
    assert status == 422 and "attachments.1.content" in answer["error"]["fields"]
    status, answer, _ = await api.call(
        "POST", path, {"text": "x", "channel": "sms", "attachments": [good]}
    )
    assert status == 422 and "attachments" in answer["error"]["fields"]
    assert await reply_rows(services) == []


async def test_the_cli_attaches_files(services: Services, tmp_path: Path) -> None:
    from tests.test_cli_ops import run

    number = await mail_case(services, f"{uuid.uuid4().hex}@cliente.example.org")
    report = tmp_path / "informe técnico.pdf"
    report.write_bytes(PDF)
    code, output = await run(
        services, "cases", "reply", number, "Va el informe", "--attach", str(report)
    )
    assert code == 0, output
    [row] = await reply_rows(services)
    assert [(a["filename"], a["size"]) for a in row.attachments] == [
        ("informe técnico.pdf", len(PDF))
    ]
    assert services.attachments.path_of(row.attachments[0]["sha256"]).read_bytes() == PDF
    code, output = await run(
        services, "cases", "reply", number, "x", "--attach", str(tmp_path / "no-existe")
    )
    assert code == 2 and "cannot read" in output
