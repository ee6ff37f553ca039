"""``ventanilla import mbox|maildir``: counts, idempotence, no acknowledgements, dry runs.

The handler is called directly, the way ``config.cli.run_ops`` calls it, against the
``services`` fixture (SQLite and PostgreSQL). Assertions that depend on the MIME parser
(new cases vs. follow-ups) skip with the reason while ``parse_email`` is still the stub.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import mailbox
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from config.app import Services
from config.cli_import import add_import_parsers
from intake.email import importer, parse_groups
from intake.email.importer import ThreadGate, thread_keys
from intake.email.ingest import EmailSource
from intake.email.parse import EmailParseError, ParseLimits, parse_email
from intake.message import AcceptResult
from storage.db import StorageUnavailable
from storage.models import Case, Inbound, Message, Notification

SUPPORT = "soporte@example.com"


def _parser_missing() -> str | None:
    probe = mail(0, "ana@example.com", "Prueba", "Hola.").as_bytes()
    try:
        parse_email(probe, ParseLimits())
    except EmailParseError as exc:
        return f"parse_email is not implemented yet ({exc}): outcomes depend on it"
    return None


def mail(
    n: int,
    sender: str,
    subject: str,
    text: str,
    *,
    reply_to: EmailMessage | None = None,
    html: str | None = None,
    attachment: bytes | None = None,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Cliente {n} <{sender}>"
    msg["To"] = SUPPORT
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(hours=n))
    msg["Message-ID"] = f"<import-test-{n}@clientes.example.net>"
    if reply_to is not None:
        msg["In-Reply-To"] = reply_to["Message-ID"]
        msg["References"] = reply_to["Message-ID"]
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    if attachment is not None:
        msg.add_attachment(
            attachment, maintype="application", subtype="pdf", filename="factura.pdf"
        )
    return msg


def five_mails() -> list[bytes]:
    """Five mails from four customers; the last answers the first (a thread)."""
    first = mail(1, "ana@example.com", "No tengo Internet", "Desde ayer no tengo conexión.")
    return [
        m.as_bytes()
        for m in (
            first,
            mail(
                2,
                "beto@example.com",
                "Factura duplicada",
                "Me cobraron dos veces este mes.",
                attachment=b"%PDF-1.4 " + bytes(range(256)) * 40,
            ),
            mail(
                3,
                "carla@example.com",
                "Servicio lento",
                "Por la noche anda muy lento.",
                html="<p>Por la noche anda <b>muy</b> lento.</p>",
            ),
            mail(4, "dario@example.com", "Cambio de plan", "Quiero pasar al plan de 300 megas."),
            mail(
                5,
                "ana@example.com",
                "Re: No tengo Internet",
                "Sigo sin conexión, el módem parpadea en naranja.",
                reply_to=first,
            ),
        )
    ]


def write_mbox(path: Path, raws: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.close()
    return path


def write_maildir(path: Path, raws: list[bytes]) -> Path:
    box = mailbox.Maildir(path, create=True)
    for raw in raws:
        box.add(raw)
    box.close()
    return path


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ventanilla")
    add_import_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run(services: Services, *argv: str) -> tuple[int, str]:
    args = parse("import", *argv, "--quiet")
    assert args.needs_services
    out = io.StringIO()
    code: int = await args.handler(services, args, out)
    return code, out.getvalue()


async def run_json(services: Services, *argv: str) -> tuple[int, dict[str, Any]]:
    code, output = await run(services, *argv, "--json")
    return code, json.loads(output)


async def count(services: Services, model: type, *where: Any) -> int:
    async with services.db.session() as session:
        stmt = select(func.count()).select_from(model).where(*where)
        return int(await session.scalar(stmt) or 0)


def outcomes(summary: dict[str, Any]) -> int:
    return sum(summary[k] for k in ("created", "continued", "duplicate", "failed"))


# --- imports -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
async def test_import_counts_every_message_and_acknowledges_none(
    services: Services, tmp_path: Path, kind: str
) -> None:
    writer = write_mbox if kind == "mbox" else write_maildir
    archive = writer(tmp_path / f"archive.{kind}", five_mails())
    code, summary = await run_json(services, kind, str(archive))
    assert code == 0, summary
    assert summary["read"] == 5 and summary["total"] == 5
    assert outcomes(summary) == 5
    assert summary["duplicate"] == 0 and summary["not_stored"] == 0
    assert len(summary["failures"]) == summary["failed"]  # each failure quoted (≤ 5)
    assert await count(services, Inbound) == 5
    # Imported mail is never acknowledged: no outbound row of any kind.
    assert await count(services, Notification, Notification.audience == "customer") == 0


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
async def test_second_import_is_all_duplicates(
    services: Services, tmp_path: Path, kind: str
) -> None:
    writer = write_mbox if kind == "mbox" else write_maildir
    archive = writer(tmp_path / f"archive.{kind}", five_mails())
    code, _ = await run_json(services, kind, str(archive))
    assert code == 0
    rows = await count(services, Inbound), await count(services, Case)
    code, again = await run_json(services, kind, str(archive))
    assert code == 0
    assert again["read"] == 5 and again["duplicate"] == 5
    assert again["created"] == again["continued"] == again["failed"] == 0
    assert (await count(services, Inbound), await count(services, Case)) == rows
    assert await count(services, Notification, Notification.audience == "customer") == 0


async def test_import_threads_and_routes_when_the_parser_works(
    services: Services, tmp_path: Path
) -> None:
    reason = _parser_missing()
    if reason:
        pytest.skip(reason)
    archive = write_mbox(tmp_path / "archive.mbox", five_mails())
    code, summary = await run_json(services, "mbox", str(archive))
    assert code == 0
    assert (summary["created"], summary["continued"], summary["failed"]) == (4, 1, 0)
    assert await count(services, Case) == 4
    async with services.db.session() as session:
        rows = await session.execute(
            select(Message.external_id, Message.case_id).where(
                Message.external_id.in_(
                    ["import-test-1@clientes.example.net", "import-test-5@clientes.example.net"]
                )
            )
        )
        cases = {external_id: case_id for external_id, case_id in rows}
    assert len(cases) == 2 and len(set(cases.values())) == 1


async def test_replies_continue_their_case_despite_concurrency(
    services: Services, tmp_path: Path
) -> None:
    """Originals and replies close together in one archive: every reply must continue."""
    reason = _parser_missing()
    if reason:
        pytest.skip(reason)
    raws: list[bytes] = []
    for n in range(40):
        original = mail(100 + n, f"cliente{n}@example.com", f"Consulta {n}", "Hola.")
        reply = mail(
            200 + n,
            f"cliente{n}@example.com",
            f"RE: Consulta {n}",
            "¿Novedades?",
            reply_to=original,
        )
        raws += [original.as_bytes(), reply.as_bytes()]
    archive = write_mbox(tmp_path / "threads.mbox", raws)
    code, summary = await run_json(services, "mbox", str(archive), "--in-flight", "256")
    assert code == 0
    assert (summary["created"], summary["continued"]) == (40, 40)


async def test_text_summary_names_the_counts(services: Services, tmp_path: Path) -> None:
    archive = write_mbox(tmp_path / "archive.mbox", five_mails())
    code, output = await run(services, "mbox", str(archive))
    assert code == 0
    for label in ("messages read", "new cases", "follow-ups", "duplicates", "failed"):
        assert label in output
    assert "No acknowledgements are sent" in output
    if _parser_missing():  # every message failed: the reasons are quoted
        assert "failures" in output and "parse:" in output and "inbound retry" in output


async def test_a_busy_database_is_retried_and_what_stays_away_is_reported(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One mail meets a busy database once (retried, stored); another never gets through
    (reported as not stored, exit 1); importing again stores it, the rest are duplicates."""
    monkeypatch.setattr(importer, "STORE_BACKOFF_S", 0.001)
    real_ingest = services.email.ingest
    refusals: Counter[str] = Counter()

    async def flaky(
        raw: bytes, source: EmailSource, envelope_to: Any = (), **options: Any
    ) -> AcceptResult:
        for marker in (b"Factura duplicada", b"Cambio de plan"):
            if marker in raw:
                refusals[marker.decode()] += 1
                if marker == b"Cambio de plan" or refusals[marker.decode()] == 1:
                    raise StorageUnavailable("database is locked")
        return await real_ingest(raw, source, envelope_to, **options)

    monkeypatch.setattr(services.email, "ingest", flaky)
    archive = write_mbox(tmp_path / "archive.mbox", five_mails())
    code, summary = await run_json(services, "mbox", str(archive))
    assert code == 1
    assert summary["not_stored"] == 1 and outcomes(summary) == 4
    assert refusals == {"Factura duplicada": 2, "Cambio de plan": importer.STORE_ATTEMPTS}
    [failure] = [f for f in summary["failures"] if "not stored" in f["reason"]]
    assert failure["message"] == "#4" and "database is locked" in failure["reason"]
    code, output = await run(services, "mbox", str(archive))
    assert code == 1 and "Run the same import again" in output

    monkeypatch.setattr(services.email, "ingest", real_ingest)
    code, again = await run_json(services, "mbox", str(archive))
    assert code == 0
    assert again["duplicate"] == 4 and outcomes(again) - again["duplicate"] == 1
    assert await count(services, Inbound) == 5


# --- dry run -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mbox", "maildir"])
async def test_dry_run_parses_and_writes_nothing(
    services: Services, tmp_path: Path, kind: str
) -> None:
    writer = write_mbox if kind == "mbox" else write_maildir
    archive = writer(tmp_path / f"archive.{kind}", five_mails())
    code, summary = await run_json(services, kind, str(archive), "--dry-run")
    assert code == 0
    assert summary["dry_run"] is True
    assert summary["read"] == 5
    assert summary["parseable"] + summary["failing"] == 5
    assert summary["already_imported"] == 0
    if _parser_missing():
        assert summary["failing"] == 5
    else:
        assert (summary["parseable"], summary["automatic"]) == (5, 0)
    assert await count(services, Inbound) == 0
    assert await count(services, Case) == 0
    attachments = services.settings.intake.attachments_dir
    assert not attachments.exists() or not any(attachments.rglob("*"))


async def test_dry_run_after_an_import_reports_the_duplicates(
    services: Services, tmp_path: Path
) -> None:
    archive = write_mbox(tmp_path / "archive.mbox", five_mails())
    assert (await run_json(services, "mbox", str(archive)))[0] == 0
    code, summary = await run_json(services, "mbox", str(archive), "--dry-run")
    assert code == 0 and summary["already_imported"] == 5
    code, output = await run(services, "mbox", str(archive), "--dry-run")
    assert "nothing was written" in output and "already imported" in output


# --- bad paths -----------------------------------------------------------------------------


async def test_bad_paths_are_refused_with_the_reason(services: Services, tmp_path: Path) -> None:
    code, output = await run(services, "mbox", str(tmp_path / "nope.mbox"))
    assert code == 2 and "no such mbox file" in output
    code, output = await run(services, "mbox", str(tmp_path))
    assert code == 2 and "no such mbox file" in output
    (tmp_path / "plain").mkdir()
    code, output = await run(services, "maildir", str(tmp_path / "plain"))
    assert code == 2 and "not a Maildir" in output
    assert await count(services, Inbound) == 0


async def test_an_empty_archive_imports_nothing(services: Services, tmp_path: Path) -> None:
    archive = write_mbox(tmp_path / "empty.mbox", [])
    code, summary = await run_json(services, "mbox", str(archive))
    assert code == 0 and summary["read"] == 0 and outcomes(summary) == 0


# --- ordering (no database) ----------------------------------------------------------------


def test_thread_keys_read_ids_references_sender_and_subject() -> None:
    raw = (
        b"From: =?utf-8?q?Ana_P=C3=A9rez?= <Ana@Example.com>\n"
        b"Subject: =?utf-8?q?Re=3A_Sin_se=C3=B1al?=\n"
        b"Message-ID: <b@x>\n"
        b"In-Reply-To: <a@x>\n"
        b"References: <z@x>\n <a@x>\n"
        b"\n"
        b"Message-ID: <not-a-header@x>\n"
    )
    keys = thread_keys(raw)
    assert keys.message_id == "b@x"
    assert set(keys.refs) == {"a@x", "z@x"}
    assert keys.conversation == "ana@example.com\nsin señal"
    assert thread_keys(b"no header at all").message_id is None


async def test_thread_gate_holds_a_reply_until_its_original_is_done() -> None:
    gate = ThreadGate()
    first = thread_keys(b"From: a@x\nSubject: Hola\nMessage-ID: <1@x>\n\n")
    other = thread_keys(b"From: b@x\nSubject: Otra cosa\nMessage-ID: <2@x>\n\n")
    reply = thread_keys(b"From: c@x\nSubject: Re: Hola\nIn-Reply-To: <1@x>\n\n")
    again = thread_keys(b"From: a@x\nSubject: RE: hola\nMessage-ID: <3@x>\n\n")
    waits_first, done_first = gate.enter(first)
    waits_other, done_other = gate.enter(other)
    waits_reply, done_reply = gate.enter(reply)
    waits_again, done_again = gate.enter(again)
    assert waits_first == [] and waits_other == []
    assert waits_reply == [done_first]  # by In-Reply-To
    assert waits_again == [done_first]  # same sender, same subject
    gate.leave(first, done_first)
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in waits_reply)), 1)
    for keys, done in ((other, done_other), (reply, done_reply), (again, done_again)):
        gate.leave(keys, done)
    assert gate.enter(again)[0] == []  # nothing in flight any more


async def test_mails_go_to_the_parser_in_groups(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One trip to a parser process per group of mails, each mail still on its own."""
    groups: list[int] = []
    real_prepare = services.email.prepare

    async def counting(raws: Any) -> Any:
        groups.append(len(raws))
        return await real_prepare(raws)

    monkeypatch.setattr(services.email, "prepare", counting)
    raws = [
        mail(n, f"grupo{n}@example.com", f"Consulta {n}", "Texto.").as_bytes() for n in range(40)
    ]
    raws[7] = b"\x00not a mail at all"  # fails alone, its group-mates do not
    code, summary = await run_json(services, "mbox", str(write_mbox(tmp_path / "g.mbox", raws)))
    assert code == 0
    assert summary["created"] + summary["failed"] == 40
    assert sum(groups) == 40 and max(groups) == parse_groups.GROUP_SIZE
    # Far fewer calls than mails; how the first few group depends on timing (a busy CI
    # machine starts with single mails while the pipeline fills).
    assert len(groups) <= 40 // 2
