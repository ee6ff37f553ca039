"""Telegram → ``InboundMessage``: one customer chat message as the one inbound type.

An adapter only: it says who wrote (their Telegram user id, their name, and their phone
when they shared their own contact), what they wrote (text or caption, a location, a
contact, the files downloaded into the attachment store by ``intake.telegram_files``) and
which chat it came from; finding the customer and the case is the intake's
(``cases``).

External ids are ``tg:<chat id>:<message id>``: a message has one id in its chat whatever
update carried it, so dedup on the update and on (chat, message) both hold. The ``tg:``
prefix keeps them apart from other channels' ids, as thread references
(``messages.external_id``) are looked up across channels. An edited message is recorded as
a message of its own, ``tg:<chat>:<message>:edit:<edit_date>``, that names the original
in ``in_reply_to`` (so it continues the original's case) and says in its subject that it
is an edit: nothing stored is ever rewritten.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from telegram import Contact, Location, Message, Update, User, Venue

from intake.forms import normalize_phone
from intake.message import Address, Channel, InboundMessage
from intake.telegram_files import TelegramFiles

LANGUAGES = ("es", "en")

LABELS: dict[str, dict[str, str]] = {
    "es": {
        "edit": "Edición del mensaje {message_id}",
        "location": "Ubicación",
        "venue": "Lugar",
        "contact": "Contacto compartido",
        "empty": "(mensaje sin texto: {kind})",
    },
    "en": {
        "edit": "Edit of message {message_id}",
        "location": "Location",
        "venue": "Place",
        "contact": "Shared contact",
        "empty": "(message without text: {kind})",
    },
}
# What a message with nothing else to show is, in the order Telegram's Message lists them.
KINDS = ("sticker", "animation", "dice", "poll", "game", "story", "invoice")


def message_key(chat_id: int, message_id: int) -> str:
    return f"tg:{chat_id}:{message_id}"


def edit_key(message: Message) -> str:
    stamp = int(message.edit_date.timestamp()) if message.edit_date else 0
    return f"{message_key(message.chat_id, message.message_id)}:edit:{stamp}"


def language_of(user: User | None, default: str) -> str:
    """The sender's language as Telegram reports it (IETF tag: ``es-AR`` → ``es``), when we
    have templates in it; else the configured default."""
    code = ((user.language_code if user else None) or "").split("-")[0].lower()
    return code if code in LANGUAGES else default


def is_group(message: Message) -> bool:
    return message.chat.type in ("group", "supergroup")


@dataclass(frozen=True, slots=True)
class TranslateOptions:
    default_language: str = "es"
    region: str = "AR"  # [sms] default_region: a shared phone written without a country


class TelegramTranslator:
    """Builds the ``InboundMessage`` of a Telegram message (files fetched on the way)."""

    def __init__(self, files: TelegramFiles, options: TranslateOptions) -> None:
        self.files = files
        self.options = options

    async def translate(
        self,
        update: Update,
        message: Message,
        *,
        suppress_ack_reason: str | None = None,
        raw: bytes | None = None,
    ) -> InboundMessage:
        """``raw``: the update as Telegram sent it, else it is serialized from ``update``.
        Raises what ``TelegramFiles.fetch`` raises for a download to try again later."""
        user = message.from_user
        language = language_of(user, self.options.default_language)
        labels = LABELS[language]
        edited = update.edited_message is not None
        key = message_key(message.chat_id, message.message_id)
        attachments, notes = await self.files.fetch(message, language)
        parts = [message.text or message.caption or ""]
        if message.venue is not None:
            parts.append(_venue(message.venue, labels))
        elif message.location is not None:
            parts.append(f"{labels['location']}: {_place(message.location)}")
        if message.contact is not None:
            parts.append(_contact(message.contact, labels))
        parts += notes
        text = "\n\n".join(p for p in parts if p)
        if not text and not attachments:
            kind = next((k for k in KINDS if getattr(message, k, None)), "?")
            emoji = message.sticker.emoji if message.sticker and message.sticker.emoji else ""
            text = labels["empty"].format(kind=f"{kind} {emoji}".strip())
        return InboundMessage(
            channel=Channel.TELEGRAM,
            external_id=edit_key(message) if edited else key,
            sender=Address(
                name=user.full_name if user else (message.chat.effective_name or ""),
                telegram_id=str(user.id if user else message.chat_id),
                phone=self._own_phone(message),
            ),
            raw=raw or json.dumps(update.to_dict(), ensure_ascii=False).encode("utf-8"),
            subject=labels["edit"].format(message_id=message.message_id) if edited else "",
            text=text,
            attachments=attachments,
            in_reply_to=self._references(message, key, edited),
            conversation_key=str(message.chat_id),
            auto_submitted=bool(user and user.is_bot),
            auto_reason="sent by a bot" if user and user.is_bot else None,
            language=language,
            suppress_ack_reason=suppress_ack_reason,
        )

    def _own_phone(self, message: Message) -> str | None:
        """The sender's phone, E.164, when the message shares the sender's own contact.

        Only one's own contact links: Telegram sets ``contact.user_id`` to the account the
        number belongs to, and anyone can share anyone's card."""
        contact, user = message.contact, message.from_user
        if contact is None or user is None or contact.user_id != user.id:
            return None
        number = contact.phone_number.strip()
        # Bot API Contact.phone_number: Telegram sends a user's own number as international
        # digits without the "+"; a card typed by hand may be national.
        if not number.startswith("+"):
            found = normalize_phone("+" + number, self.options.region)
            if found:
                return found
        return normalize_phone(number, self.options.region)

    @staticmethod
    def _references(message: Message, key: str, edited: bool) -> tuple[str, ...]:
        """The message this one continues: the original of an edit, or the one it answers
        with Telegram's reply (a message of this chat, so of this conversation)."""
        if edited:
            return (key,)
        replied = message.reply_to_message
        if replied is not None and not (replied.from_user and replied.from_user.is_bot):
            return (message_key(message.chat_id, replied.message_id),)
        return ()


def _place(location: Location) -> str:
    lat, lon = location.latitude, location.longitude
    return f"{lat:.6f}, {lon:.6f} (https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f})"


def _venue(venue: Venue, labels: dict[str, str]) -> str:
    return f"{labels['venue']}: {venue.title}, {venue.address} — {_place(venue.location)}"


def _contact(contact: Contact, labels: dict[str, str]) -> str:
    name = " ".join(n for n in (contact.first_name, contact.last_name) if n)
    return f"{labels['contact']}: {name} {contact.phone_number}".strip()
