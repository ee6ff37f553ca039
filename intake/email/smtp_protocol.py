"""aiosmtpd's SMTP and LMTP sessions, adjusted where their own replies fall short.

- Enhanced status codes (RFC 3463) on the replies aiosmtpd words without one, notably
  552 → 5.3.4 for the size limits of RFC 1870 and 530 → 5.7.0 for RFC 3207's "STARTTLS
  first".
- In LMTP, a DATA reply that aiosmtpd writes itself (message too big, line too long, an
  exception) is repeated once per accepted recipient: the client waits for exactly that
  many replies (RFC 2033 §4.2) and would hang on one.
- Every 4xx/5xx reply is logged with the peer; the reply text carries the reason.
- Open sessions are tracked so that ``SmtpIntake.stop`` can say 421 and close them.
- DATA is read in a few large reads rather than line by line (intake.email.smtp_data), with
  the same limits and the same replies.
- MAIL and RCPT addresses are parsed as aiosmtpd does, without the typing class it defines
  on every call (measured: a tenth of the event loop's time per mail went to that).
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any, AnyStr

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Session

from intake.email.smtp_data import read_data

log = logging.getLogger("intake.email.smtp")

# RFC 3463 codes for aiosmtpd's own replies that come without one, by basic reply code.
_ENHANCED = {
    "501": "5.5.4",  # invalid command arguments
    "503": "5.5.1",  # command out of sequence
    "530": "5.7.0",  # STARTTLS (RFC 3207 §4) or AUTH (RFC 4954 §6) required first
    "552": "5.3.4",  # message too big for system (RFC 1870 §6)
    "555": "5.5.4",  # MAIL/RCPT parameters not recognized
}
_HAS_ENHANCED = re.compile(r"\d{3}[ -]\d\.\d{1,3}\.\d{1,3}(?:\s|$)")


def enhance(line: str) -> str:
    """``552 Error: ...`` → ``552 5.3.4 Error: ...``; lines that have a code are kept."""
    code = line[:3]
    if code in _ENHANCED and not _HAS_ENHANCED.match(line):
        return f"{code}{line[3:4] or ' '}{_ENHANCED[code]} {line[4:]}".rstrip()
    return line


def peer_text(peer: object) -> str:
    """``("127.0.0.1", 41234)`` → ``127.0.0.1:41234`` for the log."""
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


def log_reply(peer: object, line: str) -> None:
    """A refusal is logged with its reason: 4xx (ours, the sender retries) as a warning,
    5xx (the sender's mistake or our policy) as information."""
    if line.startswith("4"):
        log.warning("SMTP %s refused: %s", peer_text(peer), line)
    elif line.startswith("5"):
        log.info("SMTP %s refused: %s", peer_text(peer), line)


# "<local@domain>" with both parts plain dot-atoms of ASCII atext (RFC 5322 §3.2.3): what
# nearly every MAIL and RCPT carries. For it the stdlib parser's address is the text
# itself; anything else (quotes, comments, routes, UTF-8) goes to the stdlib parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PLAIN_PATH = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>")


@functools.lru_cache(maxsize=4096)
def parse_path(arg: str) -> tuple[str | None, str | None]:
    """The address and the rest of a MAIL/RCPT argument, ``(None, None)`` when it does not
    parse. The stdlib's RFC 5322 parser takes about 0.1 ms per address, so plain paths
    are read by a pattern, and our own mailboxes come back in every RCPT and senders
    write again, so the answers are kept."""
    plain = _PLAIN_PATH.match(arg)
    if plain is not None:
        rest = arg[plain.end() :]
        if rest[:1] in (" ", "\t"):  # the stdlib drops folding white space after ">"...
            rest = rest.lstrip()
        if rest[:1] != "(":  # ...and comments, which are left to it
            return plain.group(1), rest
    return parse_path_fully(arg)


def parse_path_fully(arg: str) -> tuple[str | None, str | None]:
    """``parse_path`` by the stdlib's RFC 5322 parser, as aiosmtpd does it."""
    try:
        if arg.lstrip().startswith("<"):
            angle, rest = get_angle_addr(arg)
            return angle.addr_spec, rest
        spec, rest = get_addr_spec(arg)
        return spec.addr_spec, rest
    except HeaderParseError:
        return None, None


class _QuietSession(Session):
    """aiosmtpd's own AUTH code sets ``login_data``, whose accessor logs a deprecation
    warning every time; the same attribute without the noise."""

    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class IntakeSMTP(SMTP):
    """One SMTP session (one TCP connection)."""

    per_recipient_data_replies = False

    def __init__(self, handler: Any, *, sessions: set[IntakeSMTP], **kwargs: Any) -> None:
        # aiosmtpd keeps command_size_limits on the class and widens MAIL's limit on every
        # EHLO; a per-session copy keeps one client's EHLOs from loosening everyone's.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        super().__init__(handler, **kwargs)
        self._sessions = sessions
        self._data_replies = 0  # > 0 between LMTP's "354" and the end of DATA

    def _create_session(self) -> Session:
        return _QuietSession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._sessions.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        super().connection_lost(error)

    @property
    def in_data(self) -> bool:
        return self._data_replies > 0

    def goodbye(self, reply: str) -> None:
        """Shutdown: one last reply (RFC 5321 §3.8: 421 when the service closes) and
        close, whatever the session was doing. Nothing unacknowledged is lost: the
        sender keeps the mail and retries."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        log_reply(self.session.peer if self.session else None, reply)
        write = getattr(transport, "write", None)  # uvloop's transports: no asyncio classes
        if write is not None:
            write(reply.encode("ascii") + b"\r\n")
        transport.close()

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd 1.4's address parsing for MAIL FROM and RCPT TO, same results:
        ``("", "")`` for no argument, ``(None, None)`` for one that does not parse or has
        a local part over ``local_part_limit``, else the address and the rest."""
        if not arg:
            return "", ""
        address, rest = parse_path(arg)
        if address is None:
            return None, None
        local_part = address.rpartition("@")[0]
        if self.local_part_limit and len(local_part) > self.local_part_limit:
            return None, None
        return address, rest

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA command (same checks, replies and handler call) with the
        payload read by ``read_data``. The content stays bytes: these sessions never
        decode it (``decode_data`` is left off), the parser wants the raw octets."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            payload = await read_data(self._reader, self.data_size_limit, self.line_length_limit)
        except asyncio.CancelledError:
            # EOF or a reset while the data came in: aiosmtpd cancels the session task.
            log.info("SMTP connection lost during DATA")
            self._writer.close()
            raise
        except asyncio.IncompleteReadError:
            log.info("SMTP connection closed during DATA")
            self._writer.close()
            return
        if payload.too_long or payload.too_big:
            # aiosmtpd's wording; push() adds the enhanced code (5.3.4 for the size).
            too_long = "500 Line too long (see RFC5321 4.5.3.1.6)"
            await self.push(too_long if payload.too_long else "552 Error: Too much mail data")
            self.envelope = self._create_envelope()  # aiosmtpd: _set_post_data_state
            return
        self.envelope.content = self.envelope.original_content = payload.content
        status = await self._call_handler_hook("DATA")
        self.envelope = self._create_envelope()  # aiosmtpd: _set_post_data_state
        await self.push("250 OK" if status is MISSING else status)

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, bytes):  # AUTH challenges (334 ...): nothing to adjust
            await super().push(status)
            return
        lines = [enhance(line) for line in status.split("\r\n")]
        if lines[0].startswith("354"):
            if self.per_recipient_data_replies and self.envelope is not None:
                self._data_replies = len(self.envelope.rcpt_tos)
        elif self._data_replies:
            # The reply that ends DATA. The handler already answers per recipient; a
            # single line is aiosmtpd's own (size, line length, exception): repeat it.
            if len(lines) == 1:
                lines *= self._data_replies
            self._data_replies = 0
        peer = self.session.peer if self.session else None
        for line in lines:
            log_reply(peer, line)
        await super().push("\r\n".join(lines))


class IntakeLMTP(IntakeSMTP, LMTP):
    """One LMTP session: LHLO instead of EHLO, and one DATA reply per recipient."""

    per_recipient_data_replies = True
