"""A loopback proxy in front of the Dovecot fixture that hides new-mail announcements.

Some servers (Cyrus) announce mail that arrives during a batch only inside their replies to
FETCH/MOVE and never again at IDLE start; others lose a push now and then. Dovecot does
neither, so this proxy plays those servers: it passes every byte between the poller and
Dovecot except the untagged ``* N EXISTS`` / ``* N RECENT`` lines it is told to drop,
either only while the client idles (``hide="idle"``) or always (``hide="all"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from tests.email.dovecot import DovecotAccount

ANNOUNCEMENT = re.compile(rb"\* \d+ (EXISTS|RECENT)\r\n", re.IGNORECASE)
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
IDLE_COMMAND = re.compile(rb"\S+ IDLE\r\n", re.IGNORECASE)
Hide = Literal["idle", "all"]


@dataclass
class _Link:
    """One client connection and whether that client is idling."""

    hide: Hide
    dropped: list[bytes]
    idling: bool = False

    async def client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # Line by line: a command's literal ends in the CRLF that closes its command line.
        while line := await reader.readline():
            if IDLE_COMMAND.fullmatch(line):
                self.idling = True
            elif line.upper() == b"DONE\r\n":
                self.idling = False
            writer.write(line)
            await writer.drain()

    async def server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while line := await reader.readline():
            response = line
            # A response line may carry literals ({N}\r\n then N bytes): keep them whole so
            # a message body is never mistaken for a response.
            while found := LITERAL.search(line):
                literal = await reader.readexactly(int(found.group(1)))
                line = await reader.readline()
                response += literal + line
            if ANNOUNCEMENT.fullmatch(response) and (self.hide == "all" or self.idling):
                self.dropped.append(response)
                continue
            writer.write(response)
            await writer.drain()


@dataclass
class AnnouncementHidingProxy:
    """Forwards its port to Dovecot; ``dropped`` lists the announcements it hid."""

    upstream_host: str
    upstream_port: int
    hide: Hide
    port: int = 0
    dropped: list[bytes] = field(default_factory=list)

    async def serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        server_reader, server_writer = await asyncio.open_connection(
            self.upstream_host, self.upstream_port
        )
        link = _Link(self.hide, self.dropped)
        pumps = [
            asyncio.create_task(link.client_to_server(client_reader, server_writer)),
            asyncio.create_task(link.server_to_client(server_reader, client_writer)),
        ]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for writer in (client_writer, server_writer):
                writer.close()
            for pump in pumps:
                with contextlib.suppress(BaseException):
                    await pump


@asynccontextmanager
async def hiding_proxy(
    account: DovecotAccount, hide: Hide
) -> AsyncIterator[tuple[AnnouncementHidingProxy, DovecotAccount]]:
    """The proxy, and ``account`` as seen through it (same user, the proxy's port)."""
    proxy = AnnouncementHidingProxy(account.host, account.port, hide)
    server = await asyncio.start_server(proxy.serve, "127.0.0.1", 0)
    proxy.port = server.sockets[0].getsockname()[1]
    try:
        yield proxy, DovecotAccount(account.host, proxy.port, account.user, account.password)
    finally:
        server.close()
        await server.wait_closed()
