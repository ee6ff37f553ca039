"""The email notifier: messages over SMTP with aiosmtplib, connections kept and reused.

Each message carries the headers the outbox gave it (our Message-ID, In-Reply-To and
References so the customer's client threads our answers, Auto-Submitted per RFC 3834),
a text part and, when there is one, an HTML alternative, plus any attachments. SMTP
replies are translated here: a 4xx (or a lost connection, a timeout) is transient and the
message is retried; a 5xx is permanent and fails with the server's words.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import Literal

import aiosmtplib

from notifiers.base import Delivered, Outgoing, PermanentError, TransientError
from notifiers.email_compose import compose

log = logging.getLogger(__name__)
Security = Literal["none", "tls", "starttls"]


@dataclass(frozen=True)
class EmailConfig:
    host: str
    port: int
    sender: str
    security: Security = "none"
    username: str = ""
    password: str = field(default="", repr=False)
    concurrency: int = 4  # connections kept open, one message in flight on each
    timeout_seconds: float = 30.0
    message_id_domain: str = "localhost"
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)


class EmailNotifier:
    channel = "email"

    def __init__(self, config: EmailConfig, name: str = "email") -> None:
        self.config = config
        self.name = name
        self.concurrency = max(1, config.concurrency)
        self._idle: list[aiosmtplib.SMTP] = []

    async def start(self) -> None:
        """Connections open on first use (a mail server down at start is not fatal)."""

    async def stop(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), 5)

    async def send(self, message: Outgoing) -> Delivered:
        cfg = self.config
        if message.attachments:  # files are read off the event loop
            email = await asyncio.to_thread(compose, cfg.sender, cfg.message_id_domain, message)
        else:
            email = compose(cfg.sender, cfg.message_id_domain, message)
        client = await self._client()
        try:
            _errors, answer = await client.sendmail(
                email.sender,
                [message.recipient],
                email.data,
                mail_options=["SMTPUTF8"] if email.utf8 else None,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._discard(client)
            first = exc.recipients[0]
            raise _by_code(first.code, first.message) from exc
        except aiosmtplib.SMTPResponseException as exc:
            self._discard(client)
            raise _by_code(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._discard(client)
            raise TransientError(f"SMTP: {type(exc).__name__}: {exc}") from exc
        except BaseException:
            self._discard(client)  # cancelled mid-dialogue: the connection is unusable
            raise
        self._idle.append(client)
        # aiosmtplib answers the text of the server's final reply; success is 250.
        return Delivered(email.message_id, "250", answer)

    async def _client(self) -> aiosmtplib.SMTP:
        while self._idle:
            client = self._idle.pop()
            if client.is_connected:
                return client
        cfg = self.config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            use_tls=cfg.security == "tls",
            start_tls=cfg.security == "starttls",
            tls_context=cfg.ssl_context,
            timeout=cfg.timeout_seconds,
            username=cfg.username or None,
            password=cfg.password or None,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            # Refused before any message was offered (greeting, STARTTLS, a wrong login):
            # the relay's or our configuration's fault, never the message's, so the rows
            # wait for it to be fixed rather than fail for good.
            login = isinstance(exc, aiosmtplib.SMTPAuthenticationError)
            what = "login refused" if login else "connection refused"
            log.error("SMTP %s by %s:%d: %d %s", what, cfg.host, cfg.port, exc.code, exc.message)
            raise TransientError(
                f"SMTP {what}: {exc.code} {exc.message}", code=str(exc.code), response=exc.message
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TransientError(
                f"SMTP: cannot connect to {cfg.host}:{cfg.port}: {type(exc).__name__}: {exc}"
            ) from exc
        return client

    def _discard(self, client: aiosmtplib.SMTP) -> None:
        with contextlib.suppress(Exception):
            client.close()


def _by_code(code: int, text: str) -> TransientError | PermanentError:
    """RFC 5321 §4.2.1: 4yz is a transient failure, 5yz a permanent one."""
    reply = f"{code} {text}".strip()
    if 400 <= code < 500 or code < 0:
        return TransientError(f"SMTP {reply}", code=str(code), response=text)
    return PermanentError(f"SMTP {reply}", code=str(code), response=text)
