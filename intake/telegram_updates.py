"""What the Telegram intake does with one update, through python-telegram-bot's
``Application`` on the daemon's own event loop (never ``run_polling``'s loop of its own).

The Application is built without PTB's ``Updater``: its polling confirms an update to
Telegram (the next getUpdates offset) as soon as the update is queued, before any handler
has stored it. Updates are fed in by ``intake.telegram_poll`` or ``intake.telegram_webhook``
through ``process``, which awaits the handlers and answers an ``UpdateOutcome``: only a
``done`` outcome (committed, or nothing to commit) lets the caller confirm the update.

Handlers, first match wins: a group chat is declined (unless allowed); ``/start`` and
``/help`` queue a greeting in the user's language; every other message or edit becomes an
``InboundMessage`` (``intake.telegram``) handed to the intake writer. Greetings and
refusals are ``ChatNotice`` operations on the one write path, so they leave through the
outbox like every other message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from telegram import Message, Update
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes, MessageHandler, filters

from cases.chat_notices import ChatNotice
from intake.accept import IntakeWriter
from intake.message import Channel
from intake.telegram import TelegramTranslator, edit_key, language_of, message_key
from intake.telegram_files import FileFetchDeferred
from intake.telegram_loops import ChatLoopGuard
from storage.db import StorageUnavailable, is_unavailable_error

log = logging.getLogger(__name__)

# Bot API getUpdates/setWebhook allowed_updates: only what becomes a message. Other kinds
# (callback queries, member changes …) are never sent to us, so none waits unconfirmed.
ALLOWED_UPDATES = ("message", "edited_message")
GROUP_NOTICE_HOURS = 24.0  # a group hears the refusal at most once a day


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    """What became of one update. ``kind``: stored (created or continued a case),
    duplicate, failed (kept as a failed inbound row), greeted, declined, ignored, deferred
    (a file to fetch later) or unavailable (the database is down)."""

    kind: str
    detail: str = ""
    case_number: str | None = None
    retry_after: float | None = None

    @property
    def done(self) -> bool:
        """Committed, or nothing to commit: Telegram may forget the update."""
        return self.kind not in ("deferred", "unavailable")


NOT_TRIED = UpdateOutcome("deferred", "an earlier update of its chat was not stored")


@dataclass
class OutcomeCounts:
    by_kind: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: UpdateOutcome) -> None:
        self.by_kind[outcome.kind] = self.by_kind.get(outcome.kind, 0) + 1


class TelegramUpdates:
    """The Application and its handlers; ``process`` one update or a batch."""

    def __init__(
        self,
        app: Application,  # type: ignore[type-arg]
        writer: IntakeWriter,
        translator: TelegramTranslator,
        guard: ChatLoopGuard,
        *,
        allow_groups: bool = False,
        default_language: str = "es",
    ) -> None:
        self.app = app
        self.writer = writer
        self.translator = translator
        self.guard = guard
        self.allow_groups = allow_groups
        self.default_language = default_language
        self.counts = OutcomeCounts()
        # Per update object being processed: its outcome, and the texts we sent its chat.
        self._outcomes: dict[int, UpdateOutcome] = {}
        self._sent: dict[int, dict[str, set[str]]] = {}
        self._raw: dict[int, bytes] = {}
        if not allow_groups:
            app.add_handler(MessageHandler(filters.ChatType.GROUPS, self._decline))
        app.add_handler(
            CommandHandler(("start", "help"), self._greet, filters=filters.UpdateType.MESSAGE)
        )
        app.add_handler(MessageHandler(filters.ALL, self._take))

    @property
    def bot_name(self) -> str | None:
        try:
            name: str = self.app.bot.username
        except RuntimeError:  # not initialized (getMe not answered yet)
            return None
        return name

    async def start(self) -> None:
        """Open the bot's HTTP clients and ask the Bot API who we are (getMe); raises
        PTB's errors (InvalidToken, NetworkError) for the caller to translate."""
        await self.app.initialize()
        await self.app.start()

    async def stop_quietly(self) -> None:
        """Stop and close the Application; a Bot API that does not answer now is no
        reason to fail a stop."""
        try:
            if self.app.running:
                await self.app.stop()
            await self.app.shutdown()
        except TelegramError as exc:
            log.debug("telegram: closing the bot: %s", exc)

    async def process(
        self, update: Update, sent: dict[str, set[str]] | None = None, raw: bytes | None = None
    ) -> UpdateOutcome:
        """Run the handlers for ``update``; its outcome. ``sent``: the texts we sent its
        chat lately, when the caller read them for a whole batch; ``raw``: the update as
        Telegram sent it (kept as the message's raw bytes)."""
        key = id(update)
        if sent is not None:
            self._sent[key] = sent
        if raw is not None:
            self._raw[key] = raw
        try:
            await self.app.process_update(update)
        finally:
            self._sent.pop(key, None)
            self._raw.pop(key, None)
        outcome = self._outcomes.pop(key, None) or UpdateOutcome("ignored", "not a message")
        self.counts.add(outcome)
        return outcome

    async def process_batch(
        self, updates: Sequence[Update], raws: dict[int, bytes] | None = None
    ) -> list[UpdateOutcome]:
        """Each chat's updates in order, chats side by side (so their messages share the
        writer's group commits). A chat stops at its first update not ``done``: a later
        message must not be stored before an earlier one of the same conversation."""
        chats: dict[int, list[int]] = {}
        for index, update in enumerate(updates):
            chat = update.effective_chat
            chats.setdefault(chat.id if chat else 0, []).append(index)
        try:
            sent = await self.guard.sent_texts(c for c in chats if c)
        except Exception as exc:
            if not (isinstance(exc, StorageUnavailable) or is_unavailable_error(exc)):
                raise
            outcome = UpdateOutcome("unavailable", f"storage: {exc}")
            return [outcome for _ in updates]
        outcomes: list[UpdateOutcome] = [NOT_TRIED] * len(updates)
        raws = raws or {}

        async def one_chat(indexes: list[int]) -> None:
            for i in indexes:
                update = updates[i]
                outcomes[i] = await self.process(update, sent, raws.get(update.update_id))
                if not outcomes[i].done:
                    return

        await asyncio.gather(*(one_chat(indexes) for indexes in chats.values()))
        return outcomes

    # --- handlers ----------------------------------------------------------------------

    async def _decline(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None  # filters.ChatType matches messages only
        if update.edited_message is not None:
            self._outcomes[id(update)] = UpdateOutcome("ignored", "an edit in a group chat")
            return
        log.info("telegram: group chat %s declined (allow_groups = false)", message.chat_id)
        notice = ChatNotice(
            "telegram",
            "group_declined_telegram",
            language_of(message.from_user, self.default_language),
            str(message.chat_id),
            f"telegram:group_declined:{message_key(message.chat_id, message.message_id)}",
            once_per_hours=GROUP_NOTICE_HOURS,
        )
        self._outcomes[id(update)] = await self._notice(notice, "declined")

    async def _greet(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        assert message is not None
        user = message.from_user
        notice = ChatNotice(
            "telegram",
            "welcome_telegram",
            language_of(user, self.default_language),
            str(message.chat_id),
            f"telegram:welcome:{message_key(message.chat_id, message.message_id)}",
            {"customer_name": user.first_name if user else ""},
        )
        self._outcomes[id(update)] = await self._notice(notice, "greeted")

    async def _take(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.effective_message
        if message is None:
            return
        self._outcomes[id(update)] = await self._store(update, message)

    # --- the work ------------------------------------------------------------------------

    async def _notice(self, notice: ChatNotice, kind: str) -> UpdateOutcome:
        try:
            answer = await self.writer.writes.submit(notice)
        except Exception as exc:
            return _storage_outcome(exc)
        return UpdateOutcome(kind if answer == "queued" else "duplicate", str(answer))

    async def _store(self, update: Update, message: Message) -> UpdateOutcome:
        key = id(update)
        try:
            sent = self._sent.get(key)
            if sent is None:  # a webhook's single update
                sent = await self.guard.sent_texts([message.chat_id])
            reason = self.guard.reason(message, sent)
            inbound = await self.translator.translate(
                update, message, suppress_ack_reason=reason, raw=self._raw.get(key)
            )
        except FileFetchDeferred as exc:
            log.warning(
                "telegram: chat %s message %s: a file could not be fetched now (%s); "
                "the update is taken again later",
                message.chat_id,
                message.message_id,
                exc,
            )
            return UpdateOutcome("deferred", str(exc), retry_after=exc.retry_after)
        except Exception as exc:
            if isinstance(exc, StorageUnavailable) or is_unavailable_error(exc):
                return _storage_outcome(exc)
            # A message this adapter cannot translate is still kept (raw update, failed
            # status) for `ventanilla inbound retry` after a fix: nothing accepted is lost.
            log.exception("telegram: update %s could not be translated", update.update_id)
            return await self._keep_failed(update, message, exc)
        try:
            result = await self.writer.accept(inbound)
        except Exception as exc:
            return _storage_outcome(exc)
        kind = "stored" if result.outcome in ("created", "continued") else result.outcome
        return UpdateOutcome(kind, result.error or "", result.case_number)

    async def _keep_failed(
        self, update: Update, message: Message, error: Exception
    ) -> UpdateOutcome:
        raw = self._raw.get(id(update)) or update.to_json().encode("utf-8")
        external_id = (
            edit_key(message)
            if update.edited_message is not None
            else message_key(message.chat_id, message.message_id)
        )
        try:
            await self.writer.record_failed(
                Channel.TELEGRAM, external_id, raw, f"{type(error).__name__}: {error}"
            )
        except Exception as exc:
            return _storage_outcome(exc)
        return UpdateOutcome("failed", f"{type(error).__name__}: {error}")


def _storage_outcome(exc: Exception) -> UpdateOutcome:
    """The write path did not take it: the update is not confirmed, so Telegram hands it
    over again (the database down, or an error of ours: never dropped)."""
    if isinstance(exc, StorageUnavailable) or is_unavailable_error(exc):
        return UpdateOutcome("unavailable", f"storage: {exc}")
    log.error("telegram: the write path failed: %s: %s", type(exc).__name__, exc)
    return UpdateOutcome("deferred", f"{type(exc).__name__}: {exc}")
