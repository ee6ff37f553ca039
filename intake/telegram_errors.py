"""python-telegram-bot's errors as the Telegram intake needs them: how long flood control
asks us to wait, and an error's text without the bot token (which is part of every Bot API
URL, so PTB's messages may carry it)."""

from __future__ import annotations

import datetime as dt
import warnings

from telegram.error import RetryAfter, TelegramError


def retry_seconds(exc: RetryAfter) -> float:
    """RetryAfter's wait in seconds: an int before PTB 22.2, an int (deprecated) or a
    timedelta (with PTB_TIMEDELTA set) since."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        value: int | float | dt.timedelta = exc.retry_after
    return value.total_seconds() if isinstance(value, dt.timedelta) else float(value)


def said(exc: TelegramError, token: str) -> str:
    """What the Bot API (or PTB) said, with the token replaced."""
    return exc.message.replace(token, "<token>") if token else exc.message
