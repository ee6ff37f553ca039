"""The Telegram notifier: chat messages through the Bot API with python-telegram-bot's ``Bot``.

The ``Bot`` runs on the daemon's own event loop (``initialize`` in ``start``, ``shutdown`` in
``stop``); nothing here polls for updates. A row's body becomes the message text; a subject,
when the row has one, becomes a bold first line, which needs ``parse_mode`` HTML, so then
both are HTML-escaped (Bot API "HTML style": only ``<``, ``>`` and ``&`` must be escaped).
Without a subject the text goes as plain text and nothing is escaped. Text beyond the Bot
API's 4096 characters is cut with an ellipsis rather than refused.

PTB's errors are translated here: flood control (``RetryAfter``), network trouble and
timeouts are transient; a chat that blocked the bot (``Forbidden``) or does not exist
(``BadRequest: chat not found``) is permanent and *gone*; another ``BadRequest`` is
permanent; a rejected token is permanent with a reason naming the config key. The token is
part of every Bot API URL, so it is kept out of errors and out of the log records of PTB
and httpx.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import warnings
from dataclasses import dataclass, field

from telegram import Bot, LinkPreviewOptions, Message
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import HTTPXRequest

from notifiers.base import Delivered, Outgoing, PermanentError, TransientError
from notifiers.templates import cut, utf16_len

log = logging.getLogger(__name__)

# sendMessage takes 1-4096 characters of text after entity parsing (Bot API, sendMessage).
# Counted in UTF-16 code units, as Telegram counts entity offsets: never more than that.
MAX_TEXT = 4096
MAX_SUBJECT = 256
# BadRequest descriptions that mean the chat itself is not there (so it is gone).
CHAT_GONE = ("chat not found", "user not found", "peer_id_invalid", "chat_id is empty")
# Loggers that write Bot API URLs (which carry the token): PTB's and httpx's request log.
URL_LOGGERS = ("telegram.Bot", "telegram.BaseRequest", "telegram.HTTPXRequest", "httpx")


@dataclass(frozen=True)
class TelegramConfig:
    token: str = field(repr=False)
    api_base_url: str = "https://api.telegram.org"
    concurrency: int = 8  # messages in flight at once (and HTTP connections kept)
    timeout_seconds: float = 15.0  # connect, write, read and pool wait, each


class TokenRedactor(logging.Filter):
    """Replaces the bot token in a log record's message (a record is never dropped)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token and self.token in message:
            record.msg, record.args = message.replace(self.token, "<token>"), None
        return True


def compose(subject: str, text: str) -> tuple[str, ParseMode | None]:
    """The message text and its parse mode: a subject as a bold first line (HTML), else
    the plain text."""
    subject = cut(" ".join(subject.split()), MAX_SUBJECT)
    text = text.strip()
    if not subject:
        return cut(text, MAX_TEXT), None
    # The limit counts the text after entity parsing: the escapes do not count.
    body = cut(text, MAX_TEXT - utf16_len(subject) - 1)
    markup = f"<b>{html.escape(subject, quote=False)}</b>"
    if body:
        markup += "\n" + html.escape(body, quote=False)
    return markup, ParseMode.HTML


class TelegramNotifier:
    channel = "telegram"

    def __init__(self, config: TelegramConfig, name: str = "telegram") -> None:
        self.config = config
        self.name = name
        self.concurrency = max(1, config.concurrency)
        self._redactor = TokenRedactor(config.token)
        for logger in URL_LOGGERS:
            logging.getLogger(logger).addFilter(self._redactor)
        timeout = config.timeout_seconds
        request = HTTPXRequest(
            connection_pool_size=self.concurrency,
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            pool_timeout=timeout,
        )
        base = config.api_base_url.rstrip("/")
        # PTB appends the token to base_url: <api_base_url>/bot<token>/<method>.
        self.bot = Bot(config.token, base_url=f"{base}/bot", request=request)

    async def start(self) -> None:
        """Open the HTTP client and ask the Bot API who we are. A Bot API that cannot be
        reached now is no reason to stop the daemon: its messages wait and are retried."""
        try:
            await self.bot.initialize()
        except InvalidToken:
            log.error(
                "telegram: the Bot API at %s rejected the bot token ([telegram] token): "
                "Telegram messages will fail until it is fixed",
                self.config.api_base_url,
            )
        except TelegramError as exc:
            log.warning(
                "telegram: the Bot API at %s did not answer at start (%s); messages are "
                "retried until it does",
                self.config.api_base_url,
                self._said(exc),
            )
        else:
            log.info("telegram: sending as @%s", self.bot.username)

    async def stop(self) -> None:
        try:
            await self.bot.shutdown()
        finally:
            for logger in URL_LOGGERS:
                logging.getLogger(logger).removeFilter(self._redactor)

    async def send(self, message: Outgoing) -> Delivered:
        text, mode = compose(message.subject, message.text)
        try:
            sent = await self._deliver(message.recipient, text, mode)
        except ChatMigrated as moved:
            # A group that became a supergroup has a new id (Bot API ResponseParameters
            # migrate_to_chat_id): the message goes there, and the answer says so.
            new_id = str(moved.new_chat_id)
            try:
                sent = await self._deliver(new_id, text, mode)
            except TelegramError as exc:
                raise self._translate(exc) from None
            response = f"message {sent.message_id}; chat {message.recipient} moved to {new_id}"
            return Delivered(str(sent.message_id), "200", response)
        except TelegramError as exc:
            raise self._translate(exc) from None
        return Delivered(
            str(sent.message_id), "200", f"message {sent.message_id} in chat {sent.chat_id}"
        )

    async def _deliver(self, chat_id: str, text: str, mode: ParseMode | None) -> Message:
        return await self.bot.send_message(
            chat_id=chat_id,
            text=text,
            parse_mode=mode,
            # A notice's link is for clicking, not for a preview card.
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )

    def _said(self, exc: TelegramError) -> str:
        token = self.config.token
        return exc.message.replace(token, "<token>") if token else exc.message

    def _translate(self, exc: TelegramError) -> TransientError | PermanentError:
        said = self._said(exc)
        if isinstance(exc, RetryAfter):
            return TransientError(
                f"telegram flood control: {said}",
                retry_after=_seconds(exc),
                code="429",
                response=said,
            )
        if isinstance(exc, InvalidToken):
            return PermanentError(
                "the Telegram Bot API rejected the bot token ([telegram] token)",
                code="401",
                response=said,
            )
        if isinstance(exc, Forbidden):
            # Blocked by the user, a deactivated account, a bot removed from the group: the
            # bot can no longer write to this chat.
            return PermanentError(f"telegram: {said}", code="403", response=said, gone=True)
        if isinstance(exc, BadRequest):
            gone = any(marker in said.lower() for marker in CHAT_GONE)
            return PermanentError(f"telegram: {said}", code="400", response=said, gone=gone)
        if isinstance(exc, TimedOut):
            return TransientError(f"telegram: timed out ({said})", code="timeout", response=said)
        if isinstance(exc, NetworkError):
            return TransientError(f"telegram: {said}", response=said)
        return TransientError(f"telegram: {type(exc).__name__}: {said}", response=said)


def _seconds(exc: RetryAfter) -> float:
    """RetryAfter's wait in seconds: an int before PTB 22.2, an int (deprecated) or a
    timedelta (with PTB_TIMEDELTA set) since."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        value: int | float | dt.timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)
