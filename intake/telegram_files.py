"""The files of a Telegram message (photo, document, voice note, audio, video), downloaded
through the Bot API (``getFile``, then the file URL) into the attachment store.

Within the intake's limits (per file, per message, count): a file over them is not
fetched, and the message says so in its text instead, so the agent knows something was
sent. A file the Bot API refuses to hand over (``BadRequest``: too big for bots, gone) is
noted the same way. Anything that may work later (flood control, the network, a 5xx)
raises ``FileFetchDeferred``: the message is not stored now and the update is taken again
(polling does not confirm it; a webhook answers 503).
"""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Bot, Message
from telegram.error import BadRequest, InvalidToken, RetryAfter, TelegramError

from intake.attachments import AttachmentStore
from intake.message import Attachment
from intake.telegram_errors import retry_seconds

# getFile: "For the moment, bots can download files of up to 20MB in size" (Bot API).
BOT_API_DOWNLOAD_MAX = 20 * 1024 * 1024

NAMES = {
    "es": {"photo": "foto", "voice": "nota-de-voz", "video_note": "video", "video": "video",
           "audio": "audio", "document": "documento"},
    "en": {"photo": "photo", "voice": "voice-note", "video_note": "video", "video": "video",
           "audio": "audio", "document": "document"},
}  # fmt: skip
NOTES = {
    "es": {
        "too_big": "[Adjunto no guardado: {name} ({size}) supera el límite de {limit}]",
        "too_many": "[Adjunto no guardado: {name}; se guardan hasta {count} por mensaje]",
        "refused": "[Adjunto no guardado: {name}; Telegram no lo entregó: {reason}]",
    },
    "en": {
        "too_big": "[Attachment not kept: {name} ({size}) is over the {limit} limit]",
        "too_many": "[Attachment not kept: {name}; up to {count} are kept per message]",
        "refused": "[Attachment not kept: {name}; Telegram did not hand it over: {reason}]",
    },
}
DEFAULT_TYPES = {"photo": "image/jpeg", "voice": "audio/ogg", "video_note": "video/mp4",
                 "video": "video/mp4", "audio": "audio/mpeg"}  # fmt: skip
EXTENSIONS = {"image/jpeg": ".jpg", "audio/ogg": ".ogg", "video/mp4": ".mp4",
              "audio/mpeg": ".mp3"}  # fmt: skip


class FileFetchDeferred(Exception):
    """A file could not be fetched now but may be later; ``retry_after`` when the Bot API
    said how long to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class FileLimits:
    max_attachments: int = 10
    max_attachment_bytes: int = 10_485_760
    max_total_attachment_bytes: int = 26_214_400


@dataclass(frozen=True, slots=True)
class _Wanted:
    kind: str
    file_id: str
    size: int | None
    filename: str
    content_type: str


class TelegramFiles:
    """Fetches a message's files with the bot, within ``limits``."""

    def __init__(self, bot: Bot, store: AttachmentStore, limits: FileLimits) -> None:
        self.bot = bot
        self.store = store
        self.limits = limits

    async def fetch(
        self, message: Message, language: str
    ) -> tuple[tuple[Attachment, ...], list[str]]:
        """The stored files and the notes on files not kept (in ``language``)."""
        notes_text = NOTES.get(language, NOTES["en"])
        per_file = min(self.limits.max_attachment_bytes, BOT_API_DOWNLOAD_MAX)
        kept: list[Attachment] = []
        notes: list[str] = []
        total = 0
        for wanted in _files_of(message, language):
            if len(kept) >= self.limits.max_attachments:
                notes.append(notes_text["too_many"].format(
                    name=wanted.filename, count=self.limits.max_attachments))  # fmt: skip
                continue
            room = min(per_file, self.limits.max_total_attachment_bytes - total)
            if wanted.size is not None and wanted.size > room:
                notes.append(_too_big(notes_text, wanted.filename, wanted.size, room))
                continue
            try:
                data = await self._download(wanted.file_id)
            except BadRequest as exc:
                notes.append(notes_text["refused"].format(name=wanted.filename, reason=exc.message))
                continue
            if len(data) > room:  # file_size is optional, and only what Telegram says
                notes.append(_too_big(notes_text, wanted.filename, len(data), room))
                continue
            kept.append(await self.store.save(data, wanted.filename, wanted.content_type))
            total += len(data)
        return tuple(kept), notes

    async def _download(self, file_id: str) -> bytes:
        try:
            found = await self.bot.get_file(file_id)
            return bytes(await found.download_as_bytearray())
        except BadRequest:
            raise
        except RetryAfter as exc:
            raise FileFetchDeferred("flood control", retry_seconds(exc)) from exc
        except InvalidToken as exc:
            # PTB raises InvalidToken for any 404, and a file URL answers 404 when the
            # path expired; getUpdates tells a rejected token apart.
            raise FileFetchDeferred(f"file download refused: {exc.message}") from exc
        except TelegramError as exc:
            raise FileFetchDeferred(f"file download failed: {exc.message}") from exc


def _files_of(message: Message, language: str) -> list[_Wanted]:
    names = NAMES.get(language, NAMES["en"])
    found: list[_Wanted] = []
    if message.photo:
        # Bot API Message.photo: the sizes available, smallest first; the last is the
        # original resolution.
        photo = message.photo[-1]
        found.append(_wanted("photo", photo.file_id, photo.file_size, None, None, message, names))
    for kind in ("document", "voice", "audio", "video", "video_note"):
        item = getattr(message, kind, None)
        if item is not None:
            found.append(_wanted(
                kind, item.file_id, item.file_size, getattr(item, "file_name", None),
                getattr(item, "mime_type", None), message, names))  # fmt: skip
    return found


def _wanted(
    kind: str,
    file_id: str,
    size: int | None,
    filename: str | None,
    content_type: str | None,
    message: Message,
    names: dict[str, str],
) -> _Wanted:
    content_type = content_type or DEFAULT_TYPES.get(kind, "application/octet-stream")
    if not filename:
        filename = f"{names[kind]}-{message.message_id}{EXTENSIONS.get(content_type, '')}"
    return _Wanted(kind, file_id, size, filename, content_type)


def _too_big(notes: dict[str, str], name: str, size: int, limit: int) -> str:
    return notes["too_big"].format(name=name, size=_human(size), limit=_human(max(limit, 0)))


def _human(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} kB"
    return f"{size} B"
