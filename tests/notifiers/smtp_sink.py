"""A loopback SMTP sink for the email notifier's tests (aiosmtpd): it keeps what it gets,
and a test can make it answer 4xx, 5xx, or hang at DATA."""

from __future__ import annotations

import asyncio
import email
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import Message
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.smtp import SMTP


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
async def smtp_sink() -> AsyncIterator[Sink]:
    handler = SinkHandler()
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        handler.connections += 1
        return SMTP(handler, hostname="sink.example.net")

    server = await loop.create_server(protocol, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield Sink(handler, port)
    finally:
        handler.released.set()
        server.close()
        await server.wait_closed()
