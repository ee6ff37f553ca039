"""The email notifier as the settings build it, against relays that require encryption and
a login: STARTTLS with AUTH, implicit TLS, a private CA named by ``tls_ca_file``, and a
refused login keeping the row waiting (a configuration fault) with the relay's answer."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest

from config.app import Services
from config.outbound_parts import build_notifiers
from config.settings import Settings
from tests.email.test_smtp_support import self_signed
from tests.notifiers.dispatch_support import dispatcher_for, running, until
from tests.notifiers.smtp_sink import smtp_sink
from tests.notifiers.test_dispatch_email import accept, rows, status_is

pytestmark = pytest.mark.writer_process
USERS = {"relay@example.com": "s3creto"}


def with_email(settings: Settings, **changes: Any) -> Settings:
    email = settings.notifiers.email.model_copy(update={"enabled": True, **changes})
    notifiers = settings.notifiers.model_copy(update={"email": email})
    return settings.model_copy(update={"notifiers": notifiers})


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


# The sink cannot see that an implicit-TLS connection is encrypted, and says so.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_mail_goes_out_encrypted_and_logged_in(
    services: Services, tmp_path: Path, security: str
) -> None:
    cert, key = self_signed(tmp_path)
    async with smtp_sink(
        tls=server_context(cert, key), implicit_tls=security == "tls", users=USERS
    ) as sink:
        settings = with_email(
            services.settings, port=sink.port, security=security, tls_ca_file=cert,
            username="relay@example.com", password="s3creto",
        )  # fmt: skip
        async with running(dispatcher_for(services, build_notifiers(settings))):
            await accept(services)
            await until(lambda: status_is(services, "sent"))
    [mail] = sink.handler.received
    assert mail["To"] == "ana@example.com"


async def test_a_refused_login_keeps_the_row_waiting_with_the_relays_answer(
    services: Services, tmp_path: Path
) -> None:
    cert, key = self_signed(tmp_path)
    async with smtp_sink(tls=server_context(cert, key), users=USERS) as sink:
        settings = with_email(
            services.settings, port=sink.port, security="starttls", tls_ca_file=cert,
            username="relay@example.com", password="equivocada",
        )  # fmt: skip
        async with running(dispatcher_for(services, build_notifiers(settings))):
            await accept(services)
            await until(lambda: last_error_has(services, "535"))
    # The login is our configuration's fault, not the message's: it waits for a fix.
    [row] = await rows(services)
    assert row.status == "pending" and "login refused" in (row.last_error or "")
    assert sink.handler.received == []


async def last_error_has(services: Services, text: str) -> bool:
    return any(text in (r.last_error or "") for r in await rows(services))
