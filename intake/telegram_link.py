"""The Telegram intake's connection to the Bot API: starting the bot with retries, the
errors translated at this edge, and the status /readyz shows.

Flood control (429, ``RetryAfter``) waits the ``retry_after`` the Bot API names; network
trouble and 5xx back off and try again; a rejected token (401, ``InvalidToken``) stops the
Telegram intake with one clear log line: the daemon keeps running its other parts, and
/readyz reports the Telegram part stopped until the token is fixed and the daemon
restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime

from telegram.error import Conflict, InvalidToken, RetryAfter, TelegramError

from intake.telegram_errors import retry_seconds, said
from intake.telegram_updates import TelegramUpdates
from storage.models import utcnow

log = logging.getLogger(__name__)


class TokenRejected(Exception):
    """The Bot API rejected the bot token: the part stops for good."""


@dataclass
class TelegramStatus:
    """What /readyz shows of the Telegram intake."""

    mode: str
    state: str = "starting"  # starting | running | retrying | stopped
    bot: str | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_success: datetime | None = None
    offset: int | None = None  # polling: the next update_id to ask for
    extra: dict[str, object] = field(default_factory=dict)

    def as_dict(self, counts: dict[str, int]) -> dict[str, object]:
        return {
            "mode": self.mode,
            "state": self.state,
            "bot": self.bot,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at.isoformat() if self.last_error_at else None,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "offset": self.offset,
            "updates": dict(counts),
            **self.extra,
        }


class BotLink:
    """Starts the bot and waits between tries; shared by the poller and the webhook."""

    def __init__(
        self,
        updates: TelegramUpdates,
        status: TelegramStatus,
        token: str,
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
    ) -> None:
        self.updates = updates
        self.status = status
        self.token = token
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stopping = asyncio.Event()
        self._failures = 0
        self.started = False

    async def connect(self) -> bool:
        """Start the bot (getMe), retrying until it answers; False when stopping first.
        Raises ``TokenRejected``."""
        while not self.stopping.is_set():
            try:
                await self.updates.start()
            except TelegramError as exc:
                await self.updates.stop_quietly()
                await self.failed(exc, "starting")
                continue
            self.started = True
            self.status.bot = self.updates.bot_name
            log.info("telegram: receiving as @%s (%s)", self.status.bot, self.status.mode)
            return True
        return False

    async def failed(self, exc: TelegramError, doing: str) -> None:
        """Record ``exc`` and wait as it asks: ``retry_after``, else a growing backoff.
        Raises ``TokenRejected`` for a rejected token."""
        text = said(exc, self.token)
        self.status.last_error, self.status.last_error_at = f"{doing}: {text}", utcnow()
        if isinstance(exc, InvalidToken):
            self.status.state = "stopped"
            log.error(
                "telegram: the Bot API rejected the bot token ([telegram] token): the "
                "Telegram intake is stopped until the token is fixed and the daemon restarted"
            )
            raise TokenRejected(text) from None
        self.status.state = "retrying"
        if isinstance(exc, RetryAfter):
            delay = retry_seconds(exc)
            log.warning("telegram: flood control while %s: waiting %.0f s", doing, delay)
        else:
            delay = self.next_delay()
            if isinstance(exc, Conflict):
                # Bot API: getUpdates is refused while a webhook is set or another
                # process polls the same bot.
                log.warning("telegram: %s: %s (another poller or webhook?)", doing, text)
            else:
                log.warning("telegram: %s failed: %s; retrying in %.1f s", doing, text, delay)
        await self.pause(delay)

    def succeeded(self) -> None:
        self._failures = 0
        self.status.state = "running"
        self.status.last_success = utcnow()

    def next_delay(self) -> float:
        self._failures += 1
        ceiling = min(self.backoff_max, self.backoff_initial * 2 ** min(self._failures - 1, 30))
        return random.uniform(ceiling / 2, ceiling)  # jitter: no retries in lockstep

    async def pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(seconds, 0))

    async def idle_until_stopped(self) -> None:
        await self.stopping.wait()

    async def close(self) -> None:
        if self.started:
            self.started = False
            await self.updates.stop_quietly()
