"""The one inbound type: every channel adapter produces an ``InboundMessage``.

Routing and storage see only these typed fields, never a channel library's objects; if a
channel fact matters to a rule it becomes a field here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class PickledByFields:
    """Base of the frozen slots dataclasses that cross a process pipe with every message
    (parser → event loop → writer): pickled as a call of the class with the field values.
    For such classes dataclasses installs a ``__getstate__``/``__setstate__`` pair that
    walks ``fields()`` in Python per object: measured 75 µs to pickle one parsed mail,
    against 8 µs this way. Every field must be an ``__init__`` argument in order (they
    are what ``__match_args__`` lists)."""

    __slots__ = ()
    __match_args__: tuple[str, ...]

    def __reduce__(self) -> tuple[type[Any], tuple[Any, ...]]:
        return type(self), tuple([getattr(self, name) for name in self.__match_args__])


class Channel(StrEnum):
    EMAIL = "email"
    WEB = "web"
    API = "api"
    TELEGRAM = "telegram"
    SMS = "sms"


@dataclass(frozen=True, slots=True)
class Address(PickledByFields):
    """A sender or recipient identity. ``email`` lower-cased, ``phone`` E.164."""

    name: str = ""
    email: str | None = None
    phone: str | None = None
    telegram_id: str | None = None

    def display(self) -> str:
        ident = (
            self.email or self.phone or (f"telegram:{self.telegram_id}" if self.telegram_id else "")
        )
        return f"{self.name} <{ident}>" if self.name and ident else (ident or self.name)


@dataclass(frozen=True, slots=True)
class Attachment(PickledByFields):
    """A file already written to the content-addressed store (see intake.attachments)."""

    sha256: str
    size: int
    content_type: str
    filename: str


@dataclass(frozen=True, slots=True)
class InboundMessage(PickledByFields):
    channel: Channel
    external_id: str
    sender: Address
    raw: bytes
    subject: str = ""
    text: str = ""
    html: str | None = None
    recipients: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    # Thread hints: email Message-ID headers, or a chat/phone conversation key.
    in_reply_to: tuple[str, ...] = ()
    conversation_key: str | None = None
    auto_submitted: bool = False
    auto_reason: str | None = None  # why it counts as automatic (RFC 3834 header, bounce …)
    cc: tuple[str, ...] = ()
    # The reply itself, without the quoted history and signature (display only; ``text``
    # keeps everything).
    reply_text: str | None = None
    # A delivery status notification: the Message-IDs it reports on and the reason.
    reports_on: tuple[str, ...] = ()
    report_error: str | None = None
    # Opens a new case linked (as child) to this case number, never threading elsewhere:
    # the other areas' cases of a mail sent to several mailboxes.
    parent_case: str | None = None
    # Customer choices and presets (web form, API, mailbox presets).
    category: str | None = None
    subreason: str | None = None
    area: str | None = None
    priority: str | None = None
    language: str = "es"
    # Do not acknowledge (imports, automatic mail); the reason is recorded.
    suppress_ack_reason: str | None = None
    # A digest of what the sender said (``content_fingerprint``): a message whose external
    # id was seen before with another fingerprint is not a retransmission. None: unchecked.
    fingerprint: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The normalized form stored beside the raw bytes (everything but ``raw``)."""
        # Built by hand: dataclasses.asdict deep-copies every field and was a tenth of the
        # accept path's CPU time.
        sender = self.sender
        return {
            "channel": self.channel.value,
            "external_id": self.external_id,
            "sender": {
                "name": sender.name,
                "email": sender.email,
                "phone": sender.phone,
                "telegram_id": sender.telegram_id,
            },
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "recipients": list(self.recipients),
            "attachments": [
                {
                    "sha256": a.sha256,
                    "size": a.size,
                    "content_type": a.content_type,
                    "filename": a.filename,
                }
                for a in self.attachments
            ],
            "in_reply_to": list(self.in_reply_to),
            "conversation_key": self.conversation_key,
            "auto_submitted": self.auto_submitted,
            "category": self.category,
            "subreason": self.subreason,
            "area": self.area,
            "priority": self.priority,
            "language": self.language,
            "suppress_ack_reason": self.suppress_ack_reason,
            "auto_reason": self.auto_reason,
            "cc": list(self.cc),
            "reply_text": self.reply_text,
            "reports_on": list(self.reports_on),
            "report_error": self.report_error,
            "parent_case": self.parent_case,
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], raw: bytes) -> InboundMessage:
        fields = dict(data)
        fields["channel"] = Channel(fields["channel"])
        fields["sender"] = Address(**fields["sender"])
        fields["attachments"] = tuple(Attachment(**a) for a in fields.get("attachments", ()))
        for name in ("recipients", "in_reply_to", "cc", "reports_on"):
            fields[name] = tuple(fields.get(name, ()))
        return cls(raw=raw, **fields)


def content_fingerprint(*parts: str) -> str:
    """A digest of a message's content parts (sender, date, subject, text …)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AcceptResult(PickledByFields):
    """What ``accept`` tells the adapter once the message is committed."""

    outcome: str  # created | continued | duplicate | conflict | failed
    inbound_id: int
    case_number: str | None = None
    error: str | None = None
    reasons: tuple[str, ...] = field(default=())
