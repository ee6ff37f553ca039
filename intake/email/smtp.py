"""``SmtpIntake``: the SMTP or LMTP listener that turns received mail into ``ingest()`` calls.

The server runs on the daemon's own event loop (``loop.create_server`` with aiosmtpd's
protocol classes, not aiosmtpd's threaded Controller). What it promises senders:

- mail is taken only for our mailboxes (addresses or whole domains); anyone else gets
  ``550 5.1.1`` at RCPT, before any data is sent;
- SIZE (RFC 1870) advertises ``max_message_bytes``; a larger SIZE= or DATA gets
  ``552 5.3.4``;
- ``250`` only after the message is committed; if the database cannot take it,
  ``451 4.3.0`` so the sender keeps it and retries; a retry of a stored message is a
  duplicate and gets ``250`` again;
- in LMTP mode (RFC 2033), one reply per accepted recipient after DATA;
- optional STARTTLS (RFC 3207), optionally required, and AUTH PLAIN/LOGIN (RFC 4954) for
  trusted relays, optionally required before MAIL.

The bytes are stored exactly as received: no Received/Return-Path header is prepended
(RFC 5321 §4.4 asks that of relays and final delivery into a mailbox; here the envelope is
logged instead), so a resent copy of a mail without a Message-ID still deduplicates.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from intake.email.ingest import EmailIngest
from intake.email.mailboxes import MailboxDirectory
from intake.email.smtp_handler import IntakeHandler
from intake.email.smtp_protocol import IntakeLMTP, IntakeSMTP

log = logging.getLogger("intake.email.smtp")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_users_from_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``["relay:secret", ...]`` (the ``smtp.auth_users`` setting) → ``{"relay": "secret"}``.

    The error names the entry by position only: the entry holds a password.
    """
    users: dict[str, str] = {}
    for index, pair in enumerate(pairs):
        user, sep, password = pair.partition(":")
        if not sep or not user.strip() or not password:
            raise ValueError(f"smtp.auth_users[{index}]: expected 'user:password'")
        users[user.strip()] = password
    return users


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str = "127.0.0.1"
    port: int = 8025
    protocol: Literal["smtp", "lmtp"] = "smtp"
    max_message_bytes: int = 26_214_400
    hostname: str = "ventanilla.localdomain"
    tls_cert_file: Path | None = None  # STARTTLS is offered when cert and key are set
    tls_key_file: Path | None = None
    require_tls: bool = False
    auth_users: Mapping[str, str] = field(default_factory=dict)
    auth_required: bool = False
    # AUTH sends the password in clear unless TLS is up. Allowed without TLS only on a
    # loopback listener (the relay runs on this host; nothing crosses a wire) or when set.
    allow_plaintext_auth: bool = False
    session_timeout_seconds: float = 300.0  # RFC 5321 §4.5.3.2.7: server timeout 5 min
    stop_timeout_seconds: float = 30.0  # stop() waits this long for mail being stored

    def __post_init__(self) -> None:
        if self.protocol not in ("smtp", "lmtp"):
            raise ValueError(f"smtp.protocol: expected 'smtp' or 'lmtp', got {self.protocol!r}")
        if self.max_message_bytes < 1:
            raise ValueError("smtp.max_message_bytes: must be positive")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("smtp.tls_cert_file and smtp.tls_key_file: set both or neither")
        if self.require_tls and not self.tls_enabled:
            raise ValueError("smtp.require_tls: needs smtp.tls_cert_file and smtp.tls_key_file")
        if self.auth_required and not self.auth_users:
            raise ValueError("smtp.auth_required: needs at least one entry in smtp.auth_users")
        if self.auth_users and self.auth_needs_tls and not self.tls_enabled:
            raise ValueError(
                f"smtp.auth_users: AUTH on {self.host} would need STARTTLS; set "
                "smtp.tls_cert_file and smtp.tls_key_file, or listen on loopback"
            )

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @property
    def auth_needs_tls(self) -> bool:
        """AUTH only after STARTTLS whenever TLS is configured, and when the listener is
        reachable from other hosts, unless plain-text AUTH is explicitly allowed."""
        if self.allow_plaintext_auth:
            return False
        return self.tls_enabled or not is_loopback(self.host)


@dataclass(frozen=True, slots=True)
class SmtpState:
    """For readiness and the ops console."""

    listening: bool
    protocol: str
    host: str
    port: int | None
    sessions: int
    in_flight: int


class SmtpIntake:
    """Owns the listening socket, the sessions and the handler they share."""

    def __init__(self, ingest: EmailIngest, mailboxes: MailboxDirectory, config: SmtpConfig):
        self.config = config
        self.handler = IntakeHandler(
            ingest,
            mailboxes,
            kind=config.protocol,
            hostname=config.hostname,
            require_tls=config.require_tls,
            auth_users=config.auth_users,
            auth_required=config.auth_required,
        )
        self._server: asyncio.Server | None = None
        self._sessions: set[IntakeSMTP] = set()
        self._tls: ssl.SSLContext | None = None

    def _tls_context(self) -> ssl.SSLContext | None:
        cert, key = self.config.tls_cert_file, self.config.tls_key_file
        if cert is None or key is None:
            return None
        # A server context: no client certificates asked for, which is what mail
        # clients expect (RFC 3207 §4.1 leaves the decision to the server).
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"smtp.tls_cert_file/smtp.tls_key_file: cannot load {cert} and {key}: {exc}"
            ) from exc
        return context

    def _protocol(self) -> IntakeSMTP:
        config = self.config
        lmtp = config.protocol == "lmtp"
        cls = IntakeLMTP if lmtp else IntakeSMTP
        return cls(
            self.handler,
            sessions=self._sessions,
            data_size_limit=config.max_message_bytes,  # advertised as SIZE (RFC 1870)
            enable_SMTPUTF8=True,  # RFC 6531: customers' addresses need not be ASCII
            hostname=config.hostname,
            ident="Ventanilla LMTP" if lmtp else "Ventanilla ESMTP",
            tls_context=self._tls,
            # In LMTP aiosmtpd's own STARTTLS gate would refuse LHLO as well; the handler
            # enforces require_tls for MAIL and RCPT in both modes.
            require_starttls=config.require_tls and not lmtp,
            timeout=config.session_timeout_seconds,
            auth_required=False,  # enforced by the handler at MAIL (see refuse_before_mail)
            auth_require_tls=config.auth_needs_tls,
            authenticator=self.handler.authenticate,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        """Listen. Raises ``OSError`` if the address is taken, ``ValueError`` for a bad
        TLS certificate or key (naming the setting)."""
        if self._server is not None:
            raise RuntimeError("SmtpIntake is already started")
        self._tls = self._tls_context()
        self.handler.closing = False
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, self.config.host, self.config.port)
        config = self.config
        features = [f"SIZE {config.max_message_bytes}"]
        if self._tls is not None:
            features.append("STARTTLS required" if config.require_tls else "STARTTLS")
        if config.auth_users:
            features.append("AUTH required" if config.auth_required else "AUTH")
        log.info(
            "%s listening on %s:%s (%s)",
            config.protocol.upper(), config.host, self.port, ", ".join(features),
        )  # fmt: skip

    async def stop(self) -> None:
        """Stop listening, let mail being stored finish (up to ``stop_timeout_seconds``),
        then say 421 to the remaining sessions and close them."""
        server = self._server
        if server is None:
            return
        self.handler.closing = True  # new transactions get 421 4.3.2
        server.close()
        limit = self.config.stop_timeout_seconds
        if not await self.handler.wait_idle(limit):
            # Their senders get no 250 and retry; what did commit deduplicates then.
            log.warning(
                "SMTP stop: %d message(s) still being stored after %.0fs; closing anyway",
                self.handler.in_flight,
                limit,
            )
        for session in list(self._sessions):
            session.goodbye(f"421 4.3.2 {self.config.hostname} is shutting down")
        await server.wait_closed()
        self._server = None
        log.info("%s stopped", self.config.protocol.upper())

    @property
    def port(self) -> int | None:
        """The bound port (the real one when configured as 0); None when not listening."""
        if self._server is None or not self._server.sockets:
            return None
        return int(self._server.sockets[0].getsockname()[1])

    def state(self) -> SmtpState:
        server = self._server
        return SmtpState(
            listening=server is not None and server.is_serving(),
            protocol=self.config.protocol,
            host=self.config.host,
            port=self.port,
            sessions=len(self._sessions),
            in_flight=self.handler.in_flight,
        )

    async def readiness(self) -> tuple[bool, dict[str, object]]:
        """A readiness check for ``/readyz``: ready while listening."""
        state = self.state()
        return state.listening, asdict(state)
