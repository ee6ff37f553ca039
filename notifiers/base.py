"""What every channel sender is: the ``Notifier`` protocol, the message it sends, what it
answers, and the two errors it may raise.

A notifier translates one provider's protocol (SMTP, Twilio's API, FCM, the Telegram Bot
API …) and nothing else: it never touches the database. Every library or HTTP error is
translated at its edge into ``TransientError`` (try again later, perhaps after
``retry_after``) or ``PermanentError`` (this message will never go; ``gone`` when the
address itself no longer exists, so its owner can be told to forget it). Anything else a
notifier raises is treated as transient: a bug must not lose a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class FileRef:
    """An attachment of an agent's reply, in the attachment store."""

    path: Path
    filename: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One rendered message, ready for its provider."""

    notification_id: int
    channel: str  # email | sms | push | telegram
    provider: str  # the configured sender's name (email, twilio, vonage, a push provider …)
    recipient: str  # address, E.164 number, chat id, push token / subscription JSON / topic
    subject: str
    text: str
    html: str | None = None
    # Email: Message-ID, In-Reply-To, References, Auto-Submitted; push/Telegram: extras.
    headers: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[FileRef, ...] = ()
    # Stable for the notification: a provider that honours one sends a retry once.
    idempotency_key: str = ""
    # A previous claim of this row may have delivered it already (its outcome was lost).
    possible_duplicate: bool = False


@dataclass(frozen=True, slots=True)
class Delivered:
    """The provider took the message: its id for the message and its answer."""

    provider_message_id: str | None = None
    code: str | None = None
    response: str | None = None


class TransientError(Exception):
    """Not now: retry later (after ``retry_after`` seconds when the provider said so)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        response: str | None = None,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.code = code
        self.response = response


class PermanentError(Exception):
    """Never: the provider refused this message for good (``gone``: the address no longer
    exists, e.g. a push subscription the provider reports unregistered)."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        response: str | None = None,
        gone: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.response = response
        self.gone = gone


class Notifier(Protocol):
    """One provider of one channel. ``start``/``stop`` open and close its connections;
    ``send`` delivers one message or raises one of the errors above."""

    channel: str
    name: str
    concurrency: int  # messages in flight at once through this provider

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, message: Outgoing) -> Delivered: ...
