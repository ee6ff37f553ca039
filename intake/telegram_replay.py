"""Replaying a Telegram update kept as a failed inbound row (``ventanilla inbound retry``).

An update the adapter could not translate is kept raw, as Telegram sent it, with no
normalized form; after a fix, ``IntakeWriter.retry`` hands its bytes here to be translated
again, files fetched through the Bot API as at first (Telegram keeps a file id usable).
A bot is opened for the replay and closed after it: the command runs outside the daemon.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from telegram import Bot, Update

from intake.attachments import AttachmentStore
from intake.message import InboundMessage
from intake.telegram import TelegramTranslator, TranslateOptions
from intake.telegram_files import FileLimits, TelegramFiles


class TelegramReplay:
    """``await replay(raw)``: the ``InboundMessage`` of a stored update."""

    def __init__(
        self,
        make_bot: Callable[[], Bot],
        store: AttachmentStore,
        limits: FileLimits,
        options: TranslateOptions,
    ) -> None:
        self.make_bot = make_bot
        self.store = store
        self.limits = limits
        self.options = options

    async def __call__(self, raw: bytes) -> InboundMessage:
        data = json.loads(raw)
        async with self.make_bot() as bot:
            update = Update.de_json(data, bot)
            message = update.effective_message if update is not None else None
            if update is None or message is None:
                raise ValueError("the stored update carries no message")
            files = TelegramFiles(bot, self.store, self.limits)
            translator = TelegramTranslator(files, self.options)
            return await translator.translate(update, message, raw=raw)
