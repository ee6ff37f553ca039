"""The bytes of an outgoing email: headers, a text part, an HTML alternative, attachments.

Composed with the standard library's MIME classes under the compat32 policy and
flattened once here, so the SMTP client sends ready bytes (``sendmail``): the modern
``EmailMessage`` API parses every header it is given through the header registry and the
client folds them all again, which costs three times as much per message and is the
dispatcher's main CPU cost on email. Non-ASCII display names and subjects are RFC 2047
encoded, attachment names RFC 2231. A message whose sender or recipient address itself is
not ASCII (an internationalized mailbox) takes the modern API and needs SMTPUTF8.

Parts are base64 (UTF-8 text included), so a boundary with ``_`` in it, which base64
never produces, cannot occur in the body and needs no search.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from email import encoders, policy
from email.charset import BASE64, Charset
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import formataddr, formatdate, make_msgid, parseaddr
from typing import Any

from notifiers.base import FileRef, Outgoing, PermanentError

# Headers the outbox may set on a message; anything else in ``headers`` is not SMTP's.
PASSED_HEADERS = ("Message-ID", "In-Reply-To", "References", "Auto-Submitted", "Reply-To")


class _Wire(Compat32):
    """compat32 on the wire (CRLF), with a short plain-ASCII header written as it is: the
    library turns every header into a ``Header`` object to fold it, even one that fits on
    its line, and that was a third of a message's cost. Anything longer, encoded or
    holding a line break takes the library's way."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (
            isinstance(value, str)
            and len(name) + len(value) < 76
            and value.isascii()
            and "\r" not in value
            and "\n" not in value
        ):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


WIRE = _Wire(linesep="\r\n")
# Encoded words in base64: the library's default for UTF-8 ("shortest") measures the
# quoted-printable form character by character at every fold, most of a message's cost.
UTF8 = Charset("utf-8")
UTF8.header_encoding = BASE64


@dataclass(frozen=True, slots=True)
class Composed:
    data: bytes
    message_id: str  # without the angle brackets
    sender: str  # the envelope sender (MAIL FROM)
    utf8: bool  # needs the server's SMTPUTF8


def compose(sender: str, message_id_domain: str, message: Outgoing) -> Composed:
    """The message as it goes on the wire. Attachments are read from disk here, so call
    it off the event loop when there are any; a missing file is a ``PermanentError``."""
    from_header, address = _sender(sender)
    if not (address.isascii() and message.recipient.isascii()):
        return _compose_utf8(sender, address, message_id_domain, message)
    body: Message = MIMEText(message.text, "plain", "utf-8")
    if message.html:
        body = MIMEMultipart(
            "alternative", _boundary(), [body, MIMEText(message.html, "html", "utf-8")]
        )
    if message.attachments:
        body = MIMEMultipart("mixed", _boundary(), [body, *map(_attachment, message.attachments)])
    body["From"] = from_header
    body["To"] = message.recipient
    subject = message.subject
    # compat32 takes a Header for a value that must be encoded.
    body["Subject"] = subject if subject.isascii() else Header(subject, UTF8)  # type: ignore[assignment]
    body["Date"] = formatdate(localtime=False)
    message_id = _headers(body, message, message_id_domain)
    return Composed(body.as_bytes(policy=WIRE), message_id, address, utf8=False)


@functools.cache
def _sender(sender: str) -> tuple[str, str]:
    """The From header and the envelope address, worked out once per configured sender."""
    name, address = parseaddr(sender)
    return (formataddr((name, address), UTF8) if name else address), address


def _headers(email: Message, message: Outgoing, domain: str) -> str:
    for name in PASSED_HEADERS:
        value = message.headers.get(name)
        if value:
            email[name] = str(value)
    if email["Message-ID"] is None:
        email["Message-ID"] = make_msgid(domain=domain)
    return str(email["Message-ID"]).strip().strip("<>")


def _boundary() -> str:
    return f"=_vent_{secrets.token_hex(12)}"


def _read(file: FileRef) -> bytes:
    try:
        return file.path.read_bytes()
    except FileNotFoundError:
        raise PermanentError(
            f"attachment {file.filename!r} is not in the attachment store", code="attachment"
        ) from None


def _attachment(file: FileRef) -> Message:
    maintype, _, subtype = file.content_type.partition("/")
    part = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(_read(file))
    encoders.encode_base64(part)
    filename = file.filename if file.filename.isascii() else ("utf-8", "", file.filename)
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def _compose_utf8(sender: str, address: str, domain: str, message: Outgoing) -> Composed:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Date"] = formatdate(localtime=False)
    message_id = _headers(email, message, domain)
    email.set_content(message.text)
    if message.html:
        email.add_alternative(message.html, subtype="html")
    for file in message.attachments:
        maintype, _, subtype = file.content_type.partition("/")
        email.add_attachment(
            _read(file),
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=file.filename,
        )
    return Composed(email.as_bytes(policy=policy.SMTPUTF8), message_id, address, utf8=True)
