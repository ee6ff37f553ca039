"""SmtpIntake's STARTTLS (RFC 3207), AUTH (RFC 4954), settings checks, readiness and
graceful stop, against smtplib (in a thread), aiosmtplib and raw lines on loopback."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from pathlib import Path

import aiosmtplib
import pytest

from config.app import Services
from intake.email.ingest import EmailIngest, EmailSource
from intake.email.smtp import SmtpConfig, auth_users_from_pairs
from intake.message import AcceptResult
from tests.email.test_smtp_support import (
    GOOD,
    HOST,
    Dialog,
    inbound_count,
    mail,
    running,
    self_signed,
)

USERS = {"relay": "s3creto"}


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_require_tls_refuses_mail_before_starttls(
    services: Services, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    async with running(services, tls_cert_file=cert, tls_key_file=key, require_tls=True) as smtp:

        def with_smtplib() -> tuple[bool, tuple[int, bytes], tuple[int, bytes]]:
            assert smtp.port is not None
            with smtplib.SMTP(HOST, smtp.port, timeout=10) as client:
                client.ehlo("cliente.example.org")
                offered = client.has_extn("starttls")
                refused = client.mail("ana@example.org")
                client.starttls(context=client_context(cert))
                client.ehlo("cliente.example.org")
                client.mail("ana@example.org")
                client.rcpt(GOOD)
                return offered, refused, client.data(mail())

        offered, refused, stored = await asyncio.to_thread(with_smtplib)
        # aiosmtplib upgrades on its own when STARTTLS is offered.
        errors, reply = await aiosmtplib.send(
            mail(), sender="ana@example.org", recipients=[GOOD], hostname=HOST, port=smtp.port,
            tls_context=client_context(cert),
        )  # fmt: skip
    assert offered
    assert refused == (530, b"5.7.0 Must issue a STARTTLS command first")
    assert stored[0] == 250
    assert errors == {} and reply.startswith("2.0.0 ")
    assert await inbound_count(services) == 2


async def test_lmtp_require_tls_takes_lhlo_then_wants_starttls(
    services: Services, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    async with running(
        services, protocol="lmtp", tls_cert_file=cert, tls_key_file=key, require_tls=True
    ) as smtp:

        def with_smtplib() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            assert smtp.port is not None
            with smtplib.LMTP(HOST, smtp.port) as client:
                client.ehlo("cliente.example.org")  # LHLO
                refused = client.mail("ana@example.org")
                client.starttls(context=client_context(cert))
                client.ehlo("cliente.example.org")
                client.mail("ana@example.org")
                client.rcpt(GOOD)
                return refused, client.data(mail())

        refused, stored = await asyncio.to_thread(with_smtplib)
    assert refused[0] == 530 and refused[1].startswith(b"5.7.0 ")
    assert stored[0] == 250 and stored[1].startswith(f"2.0.0 <{GOOD}>".encode())


async def test_auth_required_on_loopback(services: Services) -> None:
    async with running(services, auth_users=USERS, auth_required=True) as smtp:

        def with_smtplib() -> list[tuple[int, bytes]]:
            assert smtp.port is not None
            with smtplib.SMTP(HOST, smtp.port, timeout=10) as client:
                client.ehlo("cliente.example.org")
                assert client.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
                replies = [client.mail("ana@example.org")]
                client.user, client.password = "relay", "equivocada"
                try:
                    client.auth("PLAIN", client.auth_plain)
                except smtplib.SMTPAuthenticationError as exc:
                    assert isinstance(exc.smtp_error, bytes)
                    replies.append((exc.smtp_code, exc.smtp_error))
                client.password = "s3creto"
                replies.append(client.auth("LOGIN", client.auth_login, initial_response_ok=False))
                replies.append(client.mail("ana@example.org"))
                replies.append(client.rcpt(GOOD))
                replies.append(client.data(mail()))
                return replies

        replies = await asyncio.to_thread(with_smtplib)
        client = aiosmtplib.SMTP(hostname=HOST, port=smtp.port, start_tls=False)
        async with client:
            with pytest.raises(aiosmtplib.SMTPAuthenticationError) as bad:
                await client.login("relay", "equivocada")
            await client.auth_plain("relay", "s3creto")
            errors, reply = await client.sendmail("ana@example.org", [GOOD], mail())
    before, wrong, good, *rest = replies
    assert before == (530, b"5.7.0 Authentication required")
    assert wrong == (535, b"5.7.8 Authentication credentials invalid")
    assert good[0] == 235
    assert [code for code, _ in rest] == [250, 250, 250]
    assert (bad.value.code, bad.value.message[:6]) == (535, "5.7.8 ")
    assert errors == {} and reply.startswith("2.0.0 ")
    assert await inbound_count(services) == 2


async def test_auth_waits_for_starttls_when_tls_is_configured(
    services: Services, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    async with running(
        services, tls_cert_file=cert, tls_key_file=key, auth_users=USERS, auth_required=True
    ) as smtp:
        dialog, _ = await Dialog.open(smtp.port)
        ehlo = await dialog.send("EHLO cliente.example.org")
        too_early = await dialog.send("AUTH PLAIN AHJlbGF5AHMzY3JldG8=")
        await dialog.close()
        client = aiosmtplib.SMTP(hostname=HOST, port=smtp.port, tls_context=client_context(cert))
        async with client:  # STARTTLS on its own, then AUTH is offered
            await client.login("relay", "s3creto")
            errors, _ = await client.sendmail("ana@example.org", [GOOD], mail())
    assert "STARTTLS" in ehlo and "AUTH" not in ehlo
    assert too_early.startswith("538 5.7.11 ")
    assert errors == {}


async def test_auth_is_not_offered_without_users(services: Services) -> None:
    async with running(services) as smtp:
        dialog, greeting = await Dialog.open(smtp.port)
        ehlo = await dialog.send("EHLO cliente.example.org")
        await dialog.close()
    assert greeting.startswith("220 ventanilla.localdomain ")
    assert "AUTH" not in ehlo and "250-SIZE 8192" in ehlo and "STARTTLS" not in ehlo


def test_config_errors_name_the_setting(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    with pytest.raises(ValueError, match=r"smtp\.tls_cert_file and smtp\.tls_key_file"):
        SmtpConfig(tls_cert_file=cert)
    with pytest.raises(ValueError, match=r"smtp\.require_tls"):
        SmtpConfig(require_tls=True)
    with pytest.raises(ValueError, match=r"smtp\.auth_required"):
        SmtpConfig(auth_required=True)
    with pytest.raises(ValueError, match=r"smtp\.auth_users: AUTH on 0\.0\.0\.0"):
        SmtpConfig(host="0.0.0.0", auth_users=USERS)
    with pytest.raises(ValueError, match=r"smtp\.protocol"):
        SmtpConfig(protocol="pop3")  # type: ignore[arg-type]
    assert SmtpConfig(host="0.0.0.0", auth_users=USERS, allow_plaintext_auth=True)
    assert not SmtpConfig(host="::1", auth_users=USERS).auth_needs_tls
    assert SmtpConfig(tls_cert_file=cert, tls_key_file=cert).auth_needs_tls
    assert auth_users_from_pairs(["relay:a:b", " otro :x"]) == {"relay": "a:b", "otro": "x"}
    with pytest.raises(ValueError, match=r"smtp\.auth_users\[1\]") as bad:
        auth_users_from_pairs(["relay:a", "sin-clave"])
    assert "sin-clave" not in str(bad.value)


async def test_unreadable_certificate_is_a_start_error(services: Services, tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=r"smtp\.tls_cert_file"):
        async with running(services, tls_cert_file=missing, tls_key_file=missing):
            pass


async def test_state_and_graceful_stop(services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    real_ingest = EmailIngest.ingest

    async def slow(
        self: EmailIngest, raw: bytes, source: EmailSource, envelope_to: list[str]
    ) -> AcceptResult:
        entered.set()
        await release.wait()
        return await real_ingest(self, raw, source, envelope_to)

    monkeypatch.setattr(EmailIngest, "ingest", slow)
    async with running(services) as smtp:
        ready, info = await smtp.readiness()
        assert ready and info["port"] == smtp.port and info["protocol"] == "smtp"
        idle, _ = await Dialog.open(smtp.port)
        busy, _ = await Dialog.open(smtp.port)
        for line in ("EHLO c.example.org", "MAIL FROM:<ana@example.org>", f"RCPT TO:<{GOOD}>"):
            await busy.send(line)
        await busy.send("DATA")
        await busy.data(mail())
        await entered.wait()
        assert smtp.state().in_flight == 1 and smtp.state().sessions == 2
        stopping = asyncio.create_task(smtp.stop())
        await asyncio.sleep(0.1)
        assert not stopping.done()  # waits for the mail being stored
        assert not smtp.state().listening
        release.set()
        await stopping
        stored = await busy.reply()
        goodbye = await idle.reply()
        await busy.close()
        await idle.close()
        assert (await smtp.readiness())[0] is False
    assert stored.startswith("250 2.0.0 Stored as inbound #")
    assert goodbye.startswith("421 4.3.2 ")
    assert await inbound_count(services) == 1
