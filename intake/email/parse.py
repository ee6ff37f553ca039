"""MIME → ParsedEmail: one pure function, safe to run in a worker process.

The bytes are parsed with the stdlib's tolerant compat32 policy and every header is decoded
here (intake.email.mime_headers; raw 8-bit bytes in legacy charsets by
intake.email.mime_charsets), after any stray line in front of the header section, which
the stdlib would take for the start of the body. email.policy.default's structured headers
were measured at four times the cost of the whole parse on the shared corpus, and they drop
display names given as comments and all but the first of repeated Cc lines; the MIME
structure and the transfer decoding are the same either way. Nothing but bytes that are
not a mail at all raises: broken charsets, headers and boundaries fall back to the best
reading available.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesParser

from intake.email import feedparser_fast  # noqa: F401  (installs itself on import)
from intake.email.mime_charsets import HeaderCharsets, decode_bytes
from intake.email.mime_headers import (
    HeaderMap,
    address_list,
    decode_header,
    message_ids,
    one_line,
    parse_addresses,
    parse_date,
)
from intake.email.mime_walk import Body, MimeWalker
from intake.email.parse_loops import Report, automatic_reason, read_report
from intake.email.parse_quotes import strip_reply
from intake.message import Address, PickledByFields

# Compound File Binary signature (MS-CFB §2.2): an Outlook .msg, not RFC 5322 text.
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
MAX_SUBJECT = 1000
MAX_THREAD_IDS = 50  # In-Reply-To plus the newest References; older ones add nothing
_UTF8_BOM = b"\xef\xbb\xbf"
# What the stdlib parser takes for a header line (email.feedparser.headerRE): a field name
# and colon, a folded continuation, or the mbox "From " envelope line (kept as unixfrom).
_PARSER_HEADER_LINE = re.compile(rb"From |[\x21-\x39\x3b-\x7e]*:|[\t ]")
_FIELD_LINE = re.compile(rb"([\x21-\x39\x3b-\x7e]+):")  # RFC 5322 §2.2 field name and colon
_CONTINUATION = re.compile(rb"[\t ]")
_LINE_END = re.compile(rb"\r\n|\r|\n")
MAX_STRAY_LINES = 3
MAX_LINE = 998  # RFC 5322 §2.1.1; a longer first line is not a stray separator
MAX_HEADER_LINES = 2000
# Fields of a message's own header section. RFC 5322 §3.6 requires Date and From in every
# message, so two of these in a row are a header section, not prose that names one.
_MESSAGE_FIELDS = frozenset(
    {
        b"from", b"to", b"cc", b"bcc", b"subject", b"date", b"message-id", b"sender",
        b"reply-to", b"in-reply-to", b"references", b"received", b"return-path",
        b"delivered-to", b"mime-version", b"content-type", b"content-transfer-encoding",
    }
)  # fmt: skip


class EmailParseError(Exception):
    """The bytes are not a usable email (e.g. not RFC 5322 at all)."""


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_attachments: int = 10
    max_attachment_bytes: int = 10_485_760
    max_total_attachment_bytes: int = 26_214_400


@dataclass(frozen=True, slots=True)
class RawAttachment:
    filename: str  # already sanitized for display
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedEmail(PickledByFields):
    message_id: str  # without angle brackets; "sha256:<hex of raw>" when the mail has none
    sender: Address
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    subject: str = ""
    text: str = ""
    html: str | None = None  # sanitized with nh3
    reply_text: str | None = None
    in_reply_to: tuple[str, ...] = ()  # In-Reply-To then References (newest first)
    auto_submitted: bool = False
    auto_reason: str | None = None
    reports_on: tuple[str, ...] = ()
    report_error: str | None = None
    attachments: tuple[RawAttachment, ...] = ()
    dropped: tuple[str, ...] = field(default=())  # why attachments were left out
    date: datetime | None = None


def _is_ours(email: str, own_domain: str | None) -> bool:
    if not own_domain:
        return False
    domain = email.rsplit("@", 1)[-1]
    own = own_domain.lower()
    return domain == own or domain.endswith("." + own)


def choose_sender(
    headers: HeaderMap, own_domain: str | None, charsets: HeaderCharsets | None = None
) -> Address:
    """The customer: Reply-To (where answers must go) unless it is one of our own
    addresses, else From, else Sender, else Return-Path (RFC 5322 §3.6.2, RFC 5321 §4.4)."""
    from_pairs = parse_addresses(headers.first("from"), charsets)
    reply_to = [
        pair
        for pair in parse_addresses(headers.first("reply-to"), charsets)
        if pair[1] and not _is_ours(pair[1], own_domain)
    ]
    for pairs in (
        reply_to,
        from_pairs,
        parse_addresses(headers.first("sender"), charsets),
        parse_addresses(headers.first("return-path"), charsets),
    ):
        found = next((pair for pair in pairs if pair[1]), None)
        if found is not None:
            name, email = found
            if not name:  # a bare Reply-To of the same person: keep From's name
                name = next((n for n, e in from_pairs if e == email and n), "")
            return Address(name=name, email=email)
    return Address(name=next((n for n, _ in from_pairs if n), ""))


def _thread_ids(headers: HeaderMap, own_id: str) -> tuple[str, ...]:
    """In-Reply-To ids, then References newest first (RFC 5322 §3.6.4), deduplicated."""
    ids = dict.fromkeys(message_ids(headers.first("in-reply-to")))
    references = [i for raw in headers.all("references") for i in message_ids(raw)]
    ids.update(dict.fromkeys(reversed(references)))
    ids.pop(own_id, None)
    return tuple(ids)[:MAX_THREAD_IDS]


def _read_body(message: Message, raw: bytes, limits: ParseLimits, charsets: HeaderCharsets) -> Body:
    try:
        return MimeWalker(limits, charsets).run(message)
    except Exception as exc:  # a walker bug must not cost the mail: keep its raw text
        _, _, rest = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        return Body(text=decode_bytes(rest, None), dropped=[f"body unreadable: {exc!r}"[:300]])


def _read_report(message: Message, refs: tuple[str, ...]) -> Report | None:
    try:
        return read_report(message, refs)
    except Exception:  # a report we cannot read is still a report
        is_report = message.get_content_type() == "multipart/report"
        return Report("delivery status notification") if is_report else None


def _line_after(raw: bytes, pos: int) -> int | None:
    """Where the line after the one starting at ``pos`` begins; None past the end."""
    found = _LINE_END.search(raw, pos, pos + MAX_LINE + 2)
    return found.end() if found is not None and found.end() < len(raw) else None


def _is_header_section(raw: bytes, pos: int) -> bool:
    """Whether header field lines start at ``pos`` and run, with their continuations, to an
    empty line or the end (RFC 5322 §2.1), naming at least two message fields."""
    names: set[bytes] = set()
    for _ in range(MAX_HEADER_LINES):
        field = _FIELD_LINE.match(raw, pos)
        if field is not None:
            names.add(field.group(1).lower())
        elif not _CONTINUATION.match(raw, pos):
            blank = raw.startswith((b"\r", b"\n"), pos) or pos >= len(raw)
            return blank and len(names & _MESSAGE_FIELDS) >= 2
        end = _LINE_END.search(raw, pos)
        if end is None:
            return len(names & _MESSAGE_FIELDS) >= 2
        pos = end.end()
    return False


def header_start(raw: bytes) -> int:
    """Where the header section begins: after a UTF-8 byte order mark, and after up to
    ``MAX_STRAY_LINES`` lines that are no header fields (a forwarding client's "---- Original
    message ----", an empty line, a quoted ">From " line) when header fields follow them.

    The stdlib parser ends the header section at the first line that is neither a field
    nor a continuation, so one such line in front makes every header part of the body.
    """
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    if _PARSER_HEADER_LINE.match(raw, start):
        return start  # the usual case, decided on the first line
    pos = start
    for _ in range(MAX_STRAY_LINES):
        after = _line_after(raw, pos)
        if after is None:
            break
        pos = after
        if _FIELD_LINE.match(raw, pos):
            return pos if _is_header_section(raw, pos) else start
    return start


def parse_email(raw: bytes, limits: ParseLimits, own_domain: str | None = None) -> ParsedEmail:
    """Parse one RFC 5322 message. Raises EmailParseError only for bytes that are no mail."""
    if raw.startswith(_OLE_MAGIC):
        raise EmailParseError("an Outlook .msg file (OLE compound document), not RFC 5322")
    if not raw.strip():
        raise EmailParseError("empty message")
    # The caller keeps and stores ``raw`` as received; only the parse skips stray lines.
    start = header_start(raw)
    mail = raw[start:] if start else raw
    try:
        message = BytesParser(policy=policy.compat32).parsebytes(mail)
    except RecursionError as exc:
        raise EmailParseError("MIME structure nested too deeply") from exc
    headers = HeaderMap.of(message)
    charsets = HeaderCharsets(message)
    if not len(headers) and b"\x00" in mail[:8192]:
        # Binary data with no header fields. Headerless text still parses: RFC 2046 §5.1.1
        # reads a part without headers as text/plain, and digests hold such parts.
        raise EmailParseError("no header fields and binary content: not an RFC 5322 message")

    ids = message_ids(headers.first("message-id"))
    message_id = ids[0] if ids else "sha256:" + hashlib.sha256(raw).hexdigest()
    in_reply_to = _thread_ids(headers, message_id)
    sender = choose_sender(headers, own_domain, charsets)
    report = _read_report(message, in_reply_to)
    if report is not None:
        auto_reason: str | None = report.reason
    else:
        senders = [e for h in ("from", "sender") for e in address_list(headers.all(h))]
        senders += [sender.email] if sender.email else []
        auto_reason = automatic_reason(headers, senders, message_id, own_domain)
    body = _read_body(message, mail, limits, charsets)
    return ParsedEmail(
        message_id=message_id,
        sender=sender,
        to=address_list(headers.all("to")),
        cc=address_list(headers.all("cc")),
        subject=one_line(decode_header(headers.first("subject") or "", charsets), MAX_SUBJECT),
        text=body.text,
        html=body.html,
        reply_text=strip_reply(body.text) if body.text else None,
        in_reply_to=in_reply_to,
        auto_submitted=auto_reason is not None,
        auto_reason=auto_reason,
        reports_on=report.reports_on if report else (),
        report_error=report.error if report else None,
        attachments=tuple(RawAttachment(*found) for found in body.attachments),
        dropped=tuple(body.dropped),
        date=parse_date(headers.first("date")),
    )
