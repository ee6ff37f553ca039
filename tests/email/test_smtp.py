"""SmtpIntake against real clients on loopback (smtplib in a thread, aiosmtplib, raw lines):
mailbox checks at RCPT, SIZE, persist-before-250, temporary failures, dedup, LMTP replies.
Every test runs on SQLite and on PostgreSQL (the ``services`` fixture)."""

from __future__ import annotations

import asyncio
import logging
import smtplib

import aiosmtplib
import pytest

from config.app import Services
from intake.email.ingest import EmailIngest
from intake.email.mailboxes import MailboxDirectory
from intake.email.smtp import SmtpIntake
from storage.db import StorageUnavailable
from tests.email.test_smtp_support import (
    DOMAIN,
    GOOD,
    HOST,
    LIMIT,
    UNKNOWN,
    Dialog,
    inbound_count,
    mail,
    running,
)


def smtp_session(port: int | None, *recipients: str, content: bytes) -> list[tuple[int, bytes]]:
    """EHLO, MAIL, RCPT each, DATA with smtplib; every reply after EHLO (blocking: run in a
    thread)."""
    assert port is not None
    with smtplib.SMTP(HOST, port, timeout=10) as client:
        client.ehlo("cliente.example.org")
        replies = [client.mail("ana@example.org")]
        replies += [client.rcpt(r) for r in recipients]
        replies.append(client.data(content))
        return replies


async def test_accepts_mail_with_smtplib(services: Services) -> None:
    async with running(services) as smtp:
        replies = await asyncio.to_thread(smtp_session, smtp.port, GOOD, content=mail())
    assert [code for code, _ in replies] == [250, 250, 250]
    assert replies[-1][1].startswith(b"2.0.0 Stored as inbound #")
    assert await inbound_count(services) == 1


async def test_accepts_mail_with_aiosmtplib(services: Services) -> None:
    async with running(services) as smtp:
        errors, reply = await aiosmtplib.send(
            mail(), sender="ana@example.org", recipients=[GOOD], hostname=HOST, port=smtp.port,
            start_tls=False,
        )  # fmt: skip
    assert errors == {}
    assert reply.startswith("2.0.0 Stored as inbound #")
    assert await inbound_count(services) == 1


async def test_unknown_recipient_is_refused_at_rcpt_and_the_others_kept(
    services: Services,
) -> None:
    async with running(services) as smtp:
        replies = await asyncio.to_thread(
            smtp_session, smtp.port, UNKNOWN, GOOD, DOMAIN, content=mail(to=(GOOD, DOMAIN))
        )
        # aiosmtplib: a partly refused envelope is still sent, the refusal reported.
        errors, _ = await aiosmtplib.send(
            mail(), sender="ana@example.org", recipients=[UNKNOWN, DOMAIN], hostname=HOST,
            port=smtp.port, start_tls=False,
        )  # fmt: skip
    mail_reply, unknown, good, domain, data = replies
    assert unknown == (550, f"5.1.1 <{UNKNOWN}>: no such mailbox here".encode())
    assert (mail_reply[0], good[0], domain[0], data[0]) == (250, 250, 250, 250)
    assert errors[UNKNOWN].code == 550
    assert errors[UNKNOWN].message.startswith("5.1.1 ")
    assert await inbound_count(services) == 2


async def test_without_mailboxes_every_recipient_is_refused(services: Services) -> None:
    async with running(services, mailboxes=MailboxDirectory([])) as smtp:
        dialog, _ = await Dialog.open(smtp.port)
        await dialog.send("EHLO cliente.example.org")
        await dialog.send("MAIL FROM:<ana@example.org>")
        reply = await dialog.send(f"RCPT TO:<{GOOD}>")
        await dialog.close()
    assert reply.startswith("550 5.1.1 ")
    assert "no mailboxes are configured" in reply


async def test_size_is_advertised_and_enforced(services: Services) -> None:
    big = mail(body=("y" * 76 + "\n") * (LIMIT // 70))
    async with running(services) as smtp:

        def check() -> tuple[str, tuple[int, bytes], tuple[int, bytes]]:
            assert smtp.port is not None
            with smtplib.SMTP(HOST, smtp.port, timeout=10) as client:
                client.ehlo("cliente.example.org")
                size = client.esmtp_features["size"]
                refused_mail = client.mail("ana@example.org", [f"SIZE={LIMIT + 1}"])
                client.rset()
                client.mail("ana@example.org")  # no SIZE= given: caught during DATA
                client.rcpt(GOOD)
                return size, refused_mail, client.data(big)

        size, refused_mail, refused_data = await asyncio.to_thread(check)
        client = aiosmtplib.SMTP(hostname=HOST, port=smtp.port, start_tls=False)
        async with client:
            await client.ehlo()
            advertised = client.esmtp_extensions["size"]
            with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
                await client.sendmail("ana@example.org", [GOOD], big)  # sends SIZE= itself
    assert size == advertised == str(LIMIT)
    assert refused_mail[0] == refused_data[0] == refused.value.code == 552
    assert refused_mail[1].startswith(b"5.3.4 ")
    assert refused_data[1].startswith(b"5.3.4 ")
    assert refused.value.message.startswith("5.3.4 ")
    assert await inbound_count(services) == 0


async def test_storage_down_is_a_temporary_failure(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*_args: object, **_kwargs: object) -> None:
        raise StorageUnavailable("database is down")

    # Both ways in: accept() for parsed mail, record_failed() for mail that did not parse.
    monkeypatch.setattr(services.writer, "accept", down)
    monkeypatch.setattr(services.writer, "record_failed", down)
    async with running(services) as smtp:
        replies = await asyncio.to_thread(smtp_session, smtp.port, GOOD, content=mail())
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await aiosmtplib.send(
                mail(), sender="ana@example.org", recipients=[GOOD], hostname=HOST,
                port=smtp.port, start_tls=False,
            )  # fmt: skip
    assert replies[-1][0] == 451
    assert replies[-1][1].startswith(b"4.3.0 ")
    assert (refused.value.code, refused.value.message[:6]) == (451, "4.3.0 ")


async def test_unexpected_error_is_451_and_logged_not_shown(
    services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(EmailIngest, "ingest", broken)
    caplog.set_level(logging.INFO, logger="intake.email.smtp")
    async with running(services) as smtp:
        replies = await asyncio.to_thread(smtp_session, smtp.port, GOOD, content=mail())
    code, text = replies[-1]
    assert (code, text[:6]) == (451, b"4.3.0 ")
    assert b"internal detail" not in text and b"RuntimeError" not in text
    assert "internal detail" in caplog.text  # the traceback is in the log
    assert "refused: 451 4.3.0" in caplog.text


async def test_same_mail_twice_is_one_inbound_row(services: Services) -> None:
    content = mail()
    async with running(services) as smtp:
        first = await asyncio.to_thread(smtp_session, smtp.port, GOOD, content=content)
        second = await asyncio.to_thread(smtp_session, smtp.port, GOOD, content=content)
    assert first[-1][0] == second[-1][0] == 250
    assert second[-1][1].startswith(b"2.0.0 Already stored as inbound #")
    assert await inbound_count(services) == 1


async def lmtp_transaction(smtp: SmtpIntake, *recipients: str, content: bytes) -> list[str]:
    """LHLO, MAIL, RCPT each, DATA over raw lines; RCPT replies then every DATA reply."""
    dialog, greeting = await Dialog.open(smtp.port)
    assert greeting.startswith("220 ")
    assert (await dialog.send("LHLO cliente.example.org")).startswith("250-")
    assert (await dialog.send("MAIL FROM:<ana@example.org>")).startswith("250 ")
    rcpt = [await dialog.send(f"RCPT TO:<{r}>") for r in recipients]
    accepted = sum(reply.startswith("250") for reply in rcpt)
    assert (await dialog.send("DATA")).startswith("354 ")
    await dialog.data(content)
    data = [await dialog.reply() for _ in range(accepted)]
    # In step: the next reply belongs to the next command, not to DATA.
    assert (await dialog.send("NOOP")).startswith("250 ")
    await dialog.close()
    return rcpt + data


async def test_lmtp_answers_each_recipient(services: Services) -> None:
    async with running(services, protocol="lmtp") as smtp:
        replies = await lmtp_transaction(smtp, GOOD, DOMAIN, content=mail(to=(GOOD, DOMAIN)))

        def with_smtplib() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            assert smtp.port is not None
            with smtplib.LMTP(HOST, smtp.port) as client:
                client.ehlo("cliente.example.org")  # LHLO
                client.mail("ana@example.org")
                client.rcpt(GOOD)
                client.rcpt(DOMAIN)
                # smtplib reads one DATA reply only; the second is read explicitly.
                return client.data(mail()), client.getreply()

        first, second = await asyncio.to_thread(with_smtplib)
    assert replies[2].startswith(f"250 2.0.0 <{GOOD}> Stored as inbound #")
    assert replies[3].startswith(f"250 2.0.0 <{DOMAIN}> Stored as inbound #")
    assert first[0] == second[0] == 250
    assert first[1].startswith(f"2.0.0 <{GOOD}>".encode())
    assert second[1].startswith(f"2.0.0 <{DOMAIN}>".encode())
    assert await inbound_count(services) == 2  # one per message, not per recipient


async def test_lmtp_refuses_unknown_recipient_and_answers_the_other(services: Services) -> None:
    async with running(services, protocol="lmtp") as smtp:
        replies = await lmtp_transaction(smtp, UNKNOWN, GOOD, content=mail())

        def with_smtplib() -> dict[str, tuple[int, bytes]]:
            assert smtp.port is not None
            with smtplib.LMTP(HOST, smtp.port) as client:
                return client.sendmail("ana@example.org", [UNKNOWN, GOOD], mail())

        refused = await asyncio.to_thread(with_smtplib)
    assert replies[0].startswith("550 5.1.1 ")
    assert replies[1].startswith("250 ")
    assert replies[2].startswith(f"250 2.0.0 <{GOOD}> ")
    assert len(replies) == 3
    assert refused[UNKNOWN][0] == 550 and list(refused) == [UNKNOWN]
    assert await inbound_count(services) == 2


async def test_lmtp_storage_down_is_451_for_each_recipient(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(*_args: object, **_kwargs: object) -> None:
        raise StorageUnavailable("database is down")

    monkeypatch.setattr(EmailIngest, "ingest", down)
    async with running(services, protocol="lmtp") as smtp:
        replies = await lmtp_transaction(smtp, GOOD, DOMAIN, GOOD, content=mail())
    # RFC 2033 §4.2: a recipient given twice is answered twice.
    assert [r[:10] for r in replies[3:]] == ["451 4.3.0 "] * 3
    assert await inbound_count(services) == 0


async def test_lmtp_too_big_is_552_for_each_recipient(services: Services) -> None:
    async with running(services, protocol="lmtp") as smtp:
        replies = await lmtp_transaction(
            smtp, GOOD, DOMAIN, content=mail(body=("z" * 76 + "\n") * (LIMIT // 70))
        )
    assert [r[:10] for r in replies[2:]] == ["552 5.3.4 "] * 2
    assert await inbound_count(services) == 0


async def test_undecodable_recipient_is_refused_cleanly(services: Services) -> None:
    async with running(services) as smtp:
        dialog, _ = await Dialog.open(smtp.port)
        await dialog.send("EHLO cliente.example.org")
        await dialog.send("MAIL FROM:<ana@example.org> SMTPUTF8")
        utf8 = await dialog.send("RCPT TO:<ñandú@example.com>")
        dialog.writer.write(b"RCPT TO:<\xff\xfe@example.com>\r\n")
        undecodable = await dialog.reply()
        noop = await dialog.send("NOOP")
        await dialog.close()
    assert utf8 == "550 5.1.1 <\\xf1and\\xfa@example.com>: no such mailbox here"
    assert undecodable.startswith("550 5.1.1 <\\udcff\\udcfe@example.com>")
    assert noop.startswith("250")
