"""One walk over a parsed MIME tree: body text, sanitized HTML and attachments within limits.

Body selection follows RFC 2046: in multipart/alternative the plain part gives the text and
the last HTML part the markup; multipart/related shows its root (RFC 2387) and keeps the
other parts as inline resources; every other multipart contributes its parts in order.
Each attachment is decoded at most once, and one that is clearly over a limit judging by
its encoded size is dropped without being decoded at all.
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass, field
from email import policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesParser
from email.policy import Compat32
from io import BytesIO
from typing import TYPE_CHECKING, NamedTuple

from intake.attachments import sanitize_filename
from intake.email.mime_charsets import HeaderCharsets, decode_bytes
from intake.email.mime_headers import clean_text, decode_header, one_line
from intake.email.mime_html import adds_to, html_to_text, sanitize_html, text_as_html

if TYPE_CHECKING:
    from intake.email.parse import ParseLimits

MAX_DEPTH = 40  # deeper nesting is hostile, not mail
MAX_DROPPED_REASONS = 50
_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "image/jpeg": ".jpg",
    "application/pgp-signature": ".asc",
}
_MULTIPART_TYPE = re.compile(r"^multipart/[a-z0-9.+-]{1,60}$")
# A delimiter line followed by a header line: the boundary a broken multipart really uses.
_BOUNDARY_LINE = re.compile(r"^--([^\s\"]{1,200})[ \t]*\r?\n(?=[A-Za-z][\w-]*:)", re.MULTILINE)


class Attached(NamedTuple):
    filename: str
    content_type: str
    data: bytes
    inline: bool
    content_id: str | None


@dataclass(slots=True)
class Body:
    text: str = ""
    html: str | None = None
    attachments: list[Attached] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Piece:
    """One displayable body part: plain text, sanitized HTML, or both (an alternative)."""

    text: str | None
    html: str | None

    def as_text(self) -> str:
        return self.text if self.text is not None else html_to_text(self.html or "")


def param(part: Message, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        value = value[2]
    return clean_text(str(value)) if value is not None else None


_NAMING_FIELDS = ("content-disposition", "content-type")


def _naming_fields(part: Message, charsets: HeaderCharsets | None) -> Message:
    """``part``, or, when its Content-Disposition or Content-Type holds raw 8-bit bytes, a
    stand-in holding those two fields read as text: compat32 hands such a field out as a
    Header whose str() turns every raw byte into U+FFFD before the parameters are split."""
    fields = [(k, str(v)) for k, v in part.raw_items() if k.lower() in _NAMING_FIELDS]
    if all(value.isascii() for _, value in fields):
        return part
    stand_in = Message()
    for key, value in fields:
        stand_in[key] = clean_text(value, charsets)
    return stand_in


def _filename(part: Message, charsets: HeaderCharsets | None) -> str | None:
    """Content-Disposition filename, else Content-Type name (RFC 2183, RFC 2231), decoded."""
    try:
        name = _naming_fields(part, charsets).get_filename()
    except Exception:
        return None
    return decode_header(name, charsets) if name else None


def _charset(part: Message) -> str | None:
    try:
        return part.get_content_charset()
    except Exception:
        return param(part, "charset")


def _header(part: Message, name: str) -> str | None:
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value)
    return None


def unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of format=flowed text (RFC 3676 §4.2, §4.4 stuffing)."""
    out: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]
        flowed = content.endswith(" ") and content != "-- "  # §4.3: the sig line is fixed
        if flowed and delsp:
            content = content[:-1]
        if pending is not None and depth != pending_depth:
            out.append(">" * pending_depth + (" " if pending_depth else "") + pending)
            pending = None
        pending = content if pending is None else pending + content
        pending_depth = depth
        if not flowed:
            out.append(">" * depth + (" " if depth else "") + pending)
            pending = None
    if pending is not None:
        out.append(">" * pending_depth + (" " if pending_depth else "") + pending)
    return "\n".join(out)


def part_text(part: Message) -> str:
    """A text part's content as str, whatever its transfer encoding and charset."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if not isinstance(data, bytes):
        payload = part.get_payload()
        data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
    text = decode_bytes(data, _charset(part)).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x00", "")
    if (param(part, "format") or "").lower() == "flowed":
        text = unflow(text, (param(part, "delsp") or "").lower() == "yes")
    return text


class _VerbatimHeaders(Compat32):
    """Writes header fields as they were received: no re-folding, no re-encoding."""

    def fold_binary(self, name: str, value: str) -> bytes:
        return (name + ": " + value + self.linesep).encode("ascii", "surrogateescape")


_VERBATIM = _VerbatimHeaders(linesep="\n")


def _flatten(message: Message) -> bytes:
    buffer = BytesIO()
    try:
        BytesGenerator(buffer, mangle_from_=False, policy=_VERBATIM).flatten(message)
    except Exception:
        return b""
    return buffer.getvalue()


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/*: the enclosed message(s) as bytes
        return b"\n".join(_flatten(m) for m in payload if isinstance(m, Message))
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    return data if isinstance(data, bytes) else b""


def _size_floor(part: Message, ceiling: int) -> int:
    """A lower bound of the decoded size, from the encoded text (no decoding), worked out
    only when it could exceed ``ceiling``: the bound is never more than the encoded length,
    so an encoded text no longer than ``ceiling`` gives 0 without counting its lines (the
    decoded size is still checked after decoding)."""
    payload = part.get_payload()
    if not isinstance(payload, str) or len(payload) <= ceiling:
        return 0
    encoding = (_header(part, "content-transfer-encoding") or "").strip().lower()
    if encoding == "base64":
        spaces = payload.count("\n") + payload.count("\r") + payload.count(" ")
        return max(0, (len(payload) - spaces) * 3 // 4 - 3)
    if encoding == "quoted-printable":
        return len(payload) // 3
    return len(payload)


def _fallback_name(part: Message, content_type: str, charsets: HeaderCharsets | None) -> str:
    extension = _EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type) or ""
    if content_type == "message/rfc822":
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            subject = _header(payload[0], "subject")
            if subject:
                return one_line(decode_header(subject, charsets), 100) + extension
    return "adjunto" + extension


def salvage(part: Message, content_type: str) -> Message | None:
    """Re-parse a multipart whose declared boundary never occurs, with the one it uses."""
    body = part.get_payload()
    if not isinstance(body, str):
        return None
    match = _BOUNDARY_LINE.search(body)
    if match is None:
        return None
    if not _MULTIPART_TYPE.match(content_type):
        content_type = "multipart/mixed"
    head = f'Content-Type: {content_type}; boundary="{match.group(1)}"\n\n'
    try:
        rescued = BytesParser(policy=policy.compat32).parsebytes(
            head.encode("ascii") + body.encode("utf-8", "surrogateescape")
        )
    except Exception:
        return None
    # Only a rescue that found parts counts: trying again on the same text would loop.
    parts = rescued.get_payload()
    return rescued if isinstance(parts, list) and parts else None


class MimeWalker:
    def __init__(self, limits: ParseLimits, charsets: HeaderCharsets | None = None) -> None:
        self.limits = limits
        self.charsets = charsets  # reads raw 8-bit bytes in file names
        self.body = Body()
        self.total = 0

    def run(self, message: Message) -> Body:
        pieces: list[_Piece] = []
        self.walk(message, 0, pieces)
        texts: list[str] = []
        for piece in pieces:
            text = piece.as_text().strip("\n")
            if text.strip() and (not texts or texts[-1] != text):  # broken MIME repeats parts
                texts.append(text)
        self.body.text = "\n\n".join(texts)
        if any(p.html is not None for p in pieces):
            self.body.html = "".join(
                p.html if p.html is not None else text_as_html(p.text or "") for p in pieces
            )
        return self.body

    def walk(self, part: Message, depth: int, pieces: list[_Piece]) -> None:
        content_type = part.get_content_type()
        payload = part.get_payload()
        if depth > MAX_DEPTH:
            self.drop(f"parts nested more than {MAX_DEPTH} levels deep")
            return
        if content_type.startswith("multipart/"):
            if isinstance(payload, list):
                children = [c for c in payload if isinstance(c, Message)]
                if content_type == "multipart/alternative":
                    self.alternative(children, depth, pieces)
                elif content_type == "multipart/related":
                    self.related(part, children, depth, pieces)
                else:
                    for child in children:
                        self.walk(child, depth + 1, pieces)
                return
            rescued = salvage(part, content_type)
            if rescued is not None:
                self.walk(rescued, depth + 1, pieces)
            else:  # no structure left: show what there is as text
                self.add_text(part_text(part), pieces)
            return
        filename = _filename(part, self.charsets)
        disposition = part.get_content_disposition()
        # RFC 2183 §2.1: "inline" parts are shown as part of the message. A named inline
        # text part is both shown and kept as a file; an unnamed one is just body.
        shown = disposition == "inline" or (disposition is None and not filename)
        if shown and content_type == "text/plain":
            self.add_text(part_text(part), pieces)
        elif shown and content_type == "text/html":
            markup = part_text(part)
            if markup.strip():
                pieces.append(_Piece(None, sanitize_html(markup)))
        if not shown or filename or content_type not in ("text/plain", "text/html"):
            self.attach(part, content_type, filename)

    @staticmethod
    def add_text(text: str, pieces: list[_Piece]) -> None:
        if text.strip():
            pieces.append(_Piece(text, None))

    def alternative(self, children: list[Message], depth: int, pieces: list[_Piece]) -> None:
        text: str | None = None
        markup: str | None = None
        for child in children:
            found: list[_Piece] = []
            self.walk(child, depth + 1, found)
            if not found:
                continue
            if text is None and all(p.text is not None for p in found):
                text = "\n\n".join(p.text or "" for p in found)
            if any(p.html is not None for p in found):
                markup = "".join(p.html or text_as_html(p.text or "") for p in found)
        if text is not None and markup is not None and adds_to(text, markup):
            text = text.rstrip() + "\n\n" + html_to_text(markup)
        if text is not None or markup is not None:
            pieces.append(_Piece(text, markup))

    def related(
        self, part: Message, children: list[Message], depth: int, pieces: list[_Piece]
    ) -> None:
        if not children:
            return
        start = (param(part, "start") or "").strip().strip("<>")
        root = next((c for c in children if start and _content_id(c) == start), children[0])
        self.walk(root, depth + 1, pieces)
        for child in children:
            if child is root:
                continue
            if child.is_multipart():
                self.walk(child, depth + 1, pieces)
            else:
                self.attach(child, child.get_content_type(), _filename(child, self.charsets))

    def attach(self, part: Message, content_type: str, filename: str | None) -> None:
        limits = self.limits
        fallback = _fallback_name(part, content_type, self.charsets)
        name = sanitize_filename(filename or "", fallback)
        label = f"{name} ({content_type})"
        if len(self.body.attachments) >= limits.max_attachments:
            self.drop(f"{label}: over the limit of {limits.max_attachments} attachments")
            return
        room = limits.max_total_attachment_bytes - self.total
        floor = _size_floor(part, min(limits.max_attachment_bytes, room))
        if floor > limits.max_attachment_bytes:
            self.drop(
                f"{label}: about {floor} bytes, over the per-file limit of "
                f"{limits.max_attachment_bytes} bytes"
            )
            return
        if self.total + floor > limits.max_total_attachment_bytes:
            self.drop(f"{label}: over the total limit of {limits.max_total_attachment_bytes} bytes")
            return
        data = _payload_bytes(part)
        if len(data) > limits.max_attachment_bytes:
            self.drop(
                f"{label}: {len(data)} bytes, over the per-file limit of "
                f"{limits.max_attachment_bytes} bytes"
            )
            return
        if self.total + len(data) > limits.max_total_attachment_bytes:
            self.drop(f"{label}: over the total limit of {limits.max_total_attachment_bytes} bytes")
            return
        self.total += len(data)
        content_id = _content_id(part)
        inline = content_id is not None and part.get_content_disposition() != "attachment"
        self.body.attachments.append(Attached(name, content_type, data, inline, content_id))

    def drop(self, reason: str) -> None:
        dropped = self.body.dropped
        if len(dropped) < MAX_DROPPED_REASONS:
            dropped.append(reason)
        elif len(dropped) == MAX_DROPPED_REASONS:
            dropped.append("more parts left out; reasons not listed")


def _content_id(part: Message) -> str | None:
    value = _header(part, "content-id")
    if value is None:
        return None
    ident = "".join(clean_text(value).split()).strip("<>")
    return ident or None
