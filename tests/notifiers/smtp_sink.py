"""A loopback SMTP sink for the email notifier's tests (aiosmtpd): it keeps what it gets,
and a test can make it answer 4xx, 5xx, or hang at DATA; it can speak STARTTLS or
implicit TLS and require AUTH, like a real relay."""

from __future__ import annotations

import asyncio
import email
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class SinkHandler:
    received: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)  # next DATA answers, in order
    hang: bool = False
    delay: float = 0.0  # seconds before each DATA is answered
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)
    data_began: asyncio.Event = field(default_factory=asyncio.Event)  # a DATA came in
    connections: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_began.set()
        if self.hang:
            await self.released.wait()
            return "421 4.3.0 shutting down"
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answers:
            answer = self.answers.pop(0)
            if not answer.startswith("250"):
                return answer
        self.received.append(email.message_from_bytes(envelope.content, policy=default_policy))
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.arrived.set()
        return f"250 2.0.0 queued as sink-{len(self.received)}"


@dataclass
class Sink:
    handler: SinkHandler
    port: int


@asynccontextmanager
async def smtp_sink(
    *,
    tls: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    users: dict[str, str] | None = None,
) -> AsyncIterator[Sink]:
    """With ``tls``: STARTTLS offered and required (or, ``implicit_tls``, TLS from the
    first byte); with ``users``: AUTH required, over TLS only."""
    handler = SinkHandler()
    loop = asyncio.get_running_loop()

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth: Any) -> Any:
        ok = (
            isinstance(auth, LoginPassword)
            and users is not None
            and (users.get(auth.login.decode()) == auth.password.decode())
        )
        return AuthResult(success=ok, handled=False)  # aiosmtpd answers 235 or 535

    def protocol() -> SMTP:
        handler.connections += 1
        return SMTP(
            handler,
            hostname="sink.example.net",
            tls_context=None if implicit_tls else tls,
            require_starttls=tls is not None and not implicit_tls,
            authenticator=authenticate if users is not None else None,
            auth_required=users is not None,
            # With implicit TLS aiosmtpd cannot tell the transport is encrypted.
            auth_require_tls=users is not None and not implicit_tls,
        )

    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=tls if implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Sink(handler, port)
    finally:
        handler.released.set()
        server.close()
        await server.wait_closed()
