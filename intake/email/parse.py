"""MIME → ParsedEmail: one pure function, safe to run in a worker process.

(Contract only so far; the implementation fills ``parse_email``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from intake.message import Address


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
class ParsedEmail:
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


def parse_email(
    raw: bytes, limits: ParseLimits, own_domain: str | None = None
) -> ParsedEmail:  # pragma: no cover - replaced by the implementation
    raise EmailParseError("parser not built yet")
