"""The aiosmtpd handler behind ``SmtpIntake``: who may send (AUTH), for whom (RCPT), and
the DATA that becomes one ``EmailIngest.ingest`` call, answered only after it committed.

aiosmtpd calls the ``handle_*`` hooks with the session and envelope; each returns the
reply line(s) to send. Replies carry RFC 3463 enhanced status codes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session, TLSSetupException

from intake.email.ingest import EmailIngest, EmailSource
from intake.email.mailboxes import MailboxDirectory
from intake.email.smtp_protocol import peer_text
from intake.message import AcceptResult
from storage.db import StorageUnavailable, is_unavailable_error

log = logging.getLogger("intake.email.smtp")

# RFC 5321 §4.5.3.1.8: a server must take at least 100 recipients; more gets 452 4.5.3
# (§4.5.3.1.10), and the client sends the rest in another transaction.
MAX_RECIPIENTS = 100

TRY_LATER = "451 4.3.0 Cannot store the message right now; try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error; try again later"


def shown(address: str) -> str:
    """An address as it may appear in a reply: ASCII only (SMTPUTF8 arguments may hold
    undecodable bytes as surrogates, which cannot be written back)."""
    return address.encode("ascii", "backslashreplace").decode("ascii")


class IntakeHandler:
    """One handler shared by every session of one ``SmtpIntake``."""

    def __init__(
        self,
        ingest: EmailIngest,
        mailboxes: MailboxDirectory,
        *,
        kind: str,
        hostname: str,
        require_tls: bool,
        auth_users: Mapping[str, str],
        auth_required: bool,
    ) -> None:
        self.ingest = ingest
        self.mailboxes = mailboxes
        self.kind = kind  # "smtp" | "lmtp", recorded as the EmailSource
        self.hostname = hostname
        self.require_tls = require_tls
        # Not "auth_*": aiosmtpd takes every handler attribute so named for a mechanism.
        self.users = dict(auth_users)
        self.login_required = auth_required
        self.closing = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    # --- greeting and envelope --------------------------------------------------------

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        # With this hook in place aiosmtpd leaves recording the client's name to us.
        session.host_name = hostname
        if not self.users:  # nobody could authenticate: do not offer AUTH at all
            responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        return responses

    def refuse_before_mail(self, session: Session) -> str | None:
        if self.closing:
            return f"421 4.3.2 {self.hostname} is shutting down; try again later"
        # aiosmtpd enforces STARTTLS itself in SMTP mode; in LMTP its check would refuse
        # LHLO too, so the gate is here (RFC 3207 §4: 530 until TLS is up).
        if self.require_tls and session.ssl is None:
            return "530 5.7.0 Must issue a STARTTLS command first"
        # Checked here rather than by aiosmtpd so that AUTH over plain text on loopback
        # does not log aiosmtpd's warning on every connection (RFC 4954 §6: 530 5.7.0).
        if self.login_required and not session.authenticated:
            return "530 5.7.0 Authentication required"
        return None

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        refusal = self.refuse_before_mail(session)
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        refusal = self.refuse_before_mail(session)
        if refusal is not None:
            return refusal
        # Refused here, at RCPT, so a sender learns at once that the address is not ours
        # and nothing is accepted that we would have to bounce (RFC 5321 §3.3).
        if not self.mailboxes:
            return (
                f"550 5.1.1 <{shown(address)}>: no mailboxes are configured here, "
                "so no mail is accepted"
            )
        if self.mailboxes.match(address) is None:
            return f"550 5.1.1 <{shown(address)}>: no such mailbox here"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients; send the rest in another transaction"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Recipient OK"

    # --- the message ------------------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content
        raw = content if isinstance(content, bytes) else b""
        recipients = list(envelope.rcpt_tos)
        peer = peer_text(session.peer)
        self.in_flight += 1
        self._idle.clear()
        try:
            reply = await self._store(raw, recipients, envelope.mail_from, peer)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()
        if self.kind == "lmtp":
            # RFC 2033 §4.2: one reply per successful RCPT, in order, duplicates included.
            # The message is stored once for all of them, so they share its fate.
            code, _, text = reply.partition(" ")
            status, _, detail = text.partition(" ")
            return "\r\n".join(f"{code} {status} <{shown(r)}> {detail}" for r in recipients)
        return reply

    async def _store(
        self, raw: bytes, recipients: list[str], mail_from: str | None, peer: str
    ) -> str:
        envelope_to = list(dict.fromkeys(recipients))
        try:
            result = await self.ingest.ingest(raw, EmailSource(kind=self.kind), envelope_to)
        except StorageUnavailable as exc:
            # Persist before acknowledge: without a commit, a temporary failure makes the
            # sender keep the mail and retry (RFC 5321 §4.2.5).
            log.warning("SMTP %s: mail from <%s> not stored: %s", peer, mail_from, exc)
            return TRY_LATER
        except Exception as exc:
            if is_unavailable_error(exc):
                log.warning("SMTP %s: mail from <%s> not stored: %s", peer, mail_from, exc)
                return TRY_LATER
            log.exception("SMTP %s: mail from <%s> not stored", peer, mail_from)
            return INTERNAL_ERROR
        log.info(
            "SMTP %s: mail from <%s> to %s: %s, inbound #%d%s",
            peer,
            mail_from,
            ", ".join(envelope_to),
            result.outcome,
            result.inbound_id,
            f", case {result.case_number}" if result.case_number else "",
        )
        return accepted_reply(result)

    async def handle_exception(self, error: Exception) -> str:
        """Anything unexpected in a session: logged here, never shown to the client."""
        if isinstance(error, TLSSetupException):
            log.warning("SMTP TLS handshake failed: %s", error.__cause__ or error)
            return "454 4.7.0 TLS handshake failed"
        log.error("SMTP session error", exc_info=error)
        return INTERNAL_ERROR

    # --- AUTH for trusted relays (RFC 4954) -------------------------------------------

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """aiosmtpd's authenticator for the built-in PLAIN and LOGIN mechanisms."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        expected = self.users.get(user, "")
        # Compared in constant time, against something even for unknown users.
        good = hmac.compare_digest(expected.encode("utf-8"), auth_data.password)
        if good and user in self.users:
            log.info("SMTP %s: AUTH %s as %r", peer_text(session.peer), mechanism, user)
            return AuthResult(success=True, auth_data=user)
        log.warning("SMTP %s: AUTH %s failed for %r", peer_text(session.peer), mechanism, user)
        return AuthResult(success=False, handled=False)  # aiosmtpd answers 535 5.7.8

    async def wait_idle(self, seconds: float) -> bool:
        """Wait for the DATA being stored to finish; False if ``seconds`` ran out."""
        try:
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True


def accepted_reply(result: AcceptResult) -> str:
    """250 once committed, whatever became of it: a duplicate is a sender retrying after a
    lost reply, and a failed one is kept for ``ventanilla inbound retry``."""
    if result.outcome == "duplicate":
        return f"250 2.0.0 Already stored as inbound #{result.inbound_id}"
    if result.outcome == "failed":
        return f"250 2.0.0 Stored as inbound #{result.inbound_id}, held for review"
    case = f", case {result.case_number}" if result.case_number else ""
    return f"250 2.0.0 Stored as inbound #{result.inbound_id}{case}"
