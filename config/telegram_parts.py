"""Builds the Telegram intake from Settings: python-telegram-bot's Application (no Updater,
on the daemon's loop), the update handling, and the poller or the webhook that feeds it,
with its readiness check and its route."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from aiohttp import web
from telegram import Bot
from telegram.ext import Application, ApplicationBuilder
from telegram.request import HTTPXRequest

from config.http import ReadinessCheck
from config.settings import Settings
from intake.accept import IntakeWriter
from intake.attachments import AttachmentStore
from intake.telegram import TelegramTranslator, TranslateOptions
from intake.telegram_files import FileLimits, TelegramFiles
from intake.telegram_loops import ChatLoopGuard
from intake.telegram_poll import TelegramPoller, UpdatesRequest
from intake.telegram_replay import TelegramReplay
from intake.telegram_updates import TelegramUpdates
from intake.telegram_webhook import PATH, TelegramWebhook
from notifiers.telegram import URL_LOGGERS, TokenRedactor
from storage.db import Database


def build_application(settings: Settings, polls: HTTPXRequest | None = None) -> Application:  # type: ignore[type-arg]
    """The Application without an Updater (we fetch updates ourselves, see
    intake.telegram_updates), talking to ``[telegram] api_base_url``; ``polls`` is the
    getUpdates client."""
    telegram = settings.telegram
    base = telegram.api_base_url.rstrip("/")
    timeout = telegram.timeout_seconds
    # Files are fetched for several chats at once; getUpdates has a client of its own
    # whose read timeout PTB extends by the long-poll timeout.
    calls = HTTPXRequest(
        connection_pool_size=8,
        connect_timeout=timeout,
        read_timeout=timeout,
        write_timeout=timeout,
        pool_timeout=timeout,
    )
    polls = polls or HTTPXRequest(
        connection_pool_size=1, connect_timeout=timeout, read_timeout=timeout, pool_timeout=timeout
    )
    return (
        ApplicationBuilder()
        .token(telegram.token)
        # PTB appends the token: <api_base_url>/bot<token>/<method> and
        # <api_base_url>/file/bot<token>/<file_path> (Bot API "Making requests", getFile).
        .base_url(f"{base}/bot")
        .base_file_url(f"{base}/file/bot")
        .request(calls)
        .get_updates_request(polls)
        .updater(None)
        .build()
    )


@dataclass
class TelegramParts:
    """The Telegram intake, when enabled: one poller or one webhook."""

    poller: TelegramPoller | None = None
    webhook: TelegramWebhook | None = None
    token: str = field(default="", repr=False)
    _redactor: TokenRedactor | None = None

    @property
    def active(self) -> bool:
        return self.poller is not None or self.webhook is not None

    def routes(self) -> list[web.RouteDef]:
        return self.webhook.routes() if self.webhook is not None else []

    def readiness(self) -> dict[str, ReadinessCheck]:
        poller, webhook = self.poller, self.webhook
        if poller is not None:

            async def polling() -> tuple[bool, dict[str, object]]:
                return poller.ready, poller.state()

            return {"telegram": polling}
        if webhook is not None:

            async def hooked() -> tuple[bool, dict[str, object]]:
                return webhook.ready, await webhook.state()

            return {"telegram": hooked}
        return {}

    async def run(self) -> None:
        """Until ``stop``; the bot token is kept out of PTB's and httpx's log lines."""
        self._redactor = TokenRedactor(self.token)
        for name in URL_LOGGERS:
            logging.getLogger(name).addFilter(self._redactor)
        try:
            if self.poller is not None:
                await self.poller.run()
            elif self.webhook is not None:
                await self.webhook.run()
        finally:
            for name in URL_LOGGERS:
                logging.getLogger(name).removeFilter(self._redactor)

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        if self.webhook is not None:
            await self.webhook.stop()


def file_limits(settings: Settings) -> FileLimits:
    intake = settings.intake
    return FileLimits(
        max_attachments=intake.max_attachments,
        max_attachment_bytes=intake.max_attachment_bytes,
        max_total_attachment_bytes=intake.max_total_attachment_bytes,
    )


def translate_options(settings: Settings) -> TranslateOptions:
    return TranslateOptions(settings.intake.default_language, settings.sms.default_region)


def telegram_replay(settings: Settings, store: AttachmentStore) -> TelegramReplay:
    """What ``ventanilla inbound retry`` translates a kept Telegram update with."""
    base = settings.telegram.api_base_url.rstrip("/")

    def make_bot() -> Bot:
        return Bot(
            settings.telegram.token, base_url=f"{base}/bot", base_file_url=f"{base}/file/bot"
        )

    return TelegramReplay(make_bot, store, file_limits(settings), translate_options(settings))


def build_telegram_parts(
    settings: Settings, writer: IntakeWriter, store: AttachmentStore, db: Database
) -> TelegramParts:
    telegram = settings.telegram
    if not (telegram.enabled and telegram.intake):
        return TelegramParts()
    timeout = telegram.timeout_seconds
    polls = UpdatesRequest(
        connection_pool_size=1, connect_timeout=timeout, read_timeout=timeout, pool_timeout=timeout
    )
    app = build_application(settings, polls)
    intake = settings.intake
    files = TelegramFiles(app.bot, store, file_limits(settings))
    translator = TelegramTranslator(files, translate_options(settings))
    updates = TelegramUpdates(
        app,
        writer,
        translator,
        ChatLoopGuard(db, telegram.max_messages_per_minute),
        allow_groups=telegram.allow_groups,
        default_language=intake.default_language,
    )
    if telegram.mode == "webhook":
        url = settings.http.public_url.rstrip("/") + PATH
        hook = TelegramWebhook(updates, telegram.token, telegram.webhook_secret, url)
        return TelegramParts(webhook=hook, token=telegram.token)
    poller = TelegramPoller(
        updates, telegram.token, poll_timeout=telegram.poll_timeout_seconds, raw_source=polls
    )
    return TelegramParts(poller=poller, token=telegram.token)
