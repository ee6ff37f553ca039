"""Helpers shared by the SMTP/LMTP tests (no tests here): a running ``SmtpIntake`` on a
free loopback port, test mail, a raw line-by-line client, and inbound row counts."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from config.app import Services
from intake.email.ingest import EmailIngest
from intake.email.mailboxes import Mailbox, MailboxDirectory
from intake.email.parse import ParseLimits
from intake.email.smtp import SmtpConfig, SmtpIntake
from storage.models import Inbound

HOST = "127.0.0.1"
GOOD = "soporte@example.com"
DOMAIN = "ventas@ventas.example.com"  # ours through the "@ventas.example.com" mailbox
UNKNOWN = "nadie@otro.example.net"
LIMIT = 8192  # max_message_bytes in these tests


def directory(*mailboxes: Mailbox) -> MailboxDirectory:
    return MailboxDirectory(
        mailboxes or (Mailbox(GOOD, category="Problema Grave"), Mailbox("@ventas.example.com"))
    )


def email_ingest(services: Services, mailboxes: MailboxDirectory) -> EmailIngest:
    return EmailIngest(
        services.writer, services.attachments, mailboxes, ParseLimits(), "ventanilla.localdomain"
    )


@contextlib.asynccontextmanager
async def running(
    services: Services, mailboxes: MailboxDirectory | None = None, **config: Any
) -> AsyncIterator[SmtpIntake]:
    """An SmtpIntake on 127.0.0.1, port 0, stopped afterwards."""
    mailboxes = directory() if mailboxes is None else mailboxes
    config.setdefault("max_message_bytes", LIMIT)
    intake = SmtpIntake(
        email_ingest(services, mailboxes), mailboxes, SmtpConfig(host=HOST, port=0, **config)
    )
    await intake.start()
    try:
        yield intake
    finally:
        await intake.stop()


def mail(subject: str = "No tengo Internet", to: Sequence[str] = (GOOD,), body: str = "") -> bytes:
    msg = EmailMessage(policy=SMTP_POLICY)  # CRLF line ends, as on the wire
    msg["From"] = "Ana Pérez <ana@example.org>"
    msg["To"] = ", ".join(to)
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.org>"
    msg.set_content(body or "Desde ayer no tengo conexión.\n")
    return msg.as_bytes()


async def inbound_count(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Inbound)) or 0)


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made by the openssl command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


class Dialog:
    """A raw client: one command line out, one reply (all its lines) back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int | None) -> tuple[Dialog, str]:
        assert port is not None
        reader, writer = await asyncio.open_connection(HOST, port)
        dialog = cls(reader, writer)
        return dialog, await dialog.reply()

    async def reply(self) -> str:
        """The next reply; a multi-line one is joined with newlines."""
        lines: list[str] = []
        while True:
            raw = await asyncio.wait_for(self.reader.readline(), 10)
            assert raw, f"connection closed after {lines}"
            line = raw.decode("utf-8").rstrip("\r\n")
            lines.append(line)
            if line[3:4] != "-":
                return "\n".join(lines)

    async def send(self, line: str) -> str:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def data(self, content: bytes) -> None:
        """Send DATA's content and its end (the caller reads the reply or replies)."""
        stuffed = b"\r\n".join(
            b"." + line if line.startswith(b".") else line for line in content.split(b"\r\n")
        )
        if not stuffed.endswith(b"\r\n"):
            stuffed += b"\r\n"
        self.writer.write(stuffed + b".\r\n")
        await self.writer.drain()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
