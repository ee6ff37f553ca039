"""Loop protection for Telegram: which messages are recorded but not acknowledged, and why.

Three signs of a loop (DESIGN §5): the sender is a bot (Bot API ``User.is_bot``); the text
repeats one we sent to that chat lately (an autoresponder echoing our acknowledgement
back); or the chat sends more than ``per_minute`` messages a minute. Such a message is
still stored; only the acknowledgement is withheld, with the reason recorded on the case
and logged here.

The per-chat count is kept in memory: it guards one daemon's intake (one poller, or the
webhook requests one daemon receives), and a restart starts it afresh.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection
from telegram import Message

from storage.db import Database
from storage.models import Notification, utcnow

log = logging.getLogger(__name__)

ECHO_WINDOW = timedelta(hours=24)  # how far back "a text we sent" reaches
ECHO_ROWS = 500  # the most recent rows read per lookup: enough for any live conversation
MAX_CHATS = 100_000  # chats whose counts are kept; the oldest are forgotten past that


def fold(text: str) -> str:
    """Text as compared for echoes: whitespace folded, case ignored."""
    return " ".join(text.split()).casefold()


def _recent_texts(conn: Connection, chats: list[str]) -> dict[str, set[str]]:
    rows = conn.execute(
        select(Notification.recipient, Notification.subject, Notification.body)
        .where(
            Notification.recipient.in_(chats),
            Notification.created_at >= utcnow() - ECHO_WINDOW,
            Notification.channel == "telegram",
        )
        .order_by(Notification.created_at.desc())
        .limit(ECHO_ROWS)
    )
    found: dict[str, set[str]] = {}
    for r in rows:
        texts = found.setdefault(r.recipient, set())
        # As the chat shows it: the subject as a first line, then the body
        # (notifiers.telegram.compose).
        texts.add(fold(r.body))
        if r.subject:
            texts.add(fold(f"{r.subject}\n{r.body}"))
    return found


class ChatLoopGuard:
    """Decides a message's ``suppress_ack_reason``; counts messages per chat."""

    def __init__(
        self,
        db: Database,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[int, deque[float]] = {}

    async def sent_texts(self, chats: Iterable[int]) -> dict[str, set[str]]:
        """What we sent to these chats lately, folded: one read for a batch of updates."""
        wanted = sorted({str(c) for c in chats})
        if not wanted:
            return {}
        return await self.db.read(_recent_texts, wanted)

    def count(self, chat_id: int) -> int:
        """Count one message of this chat; how many it sent in the last minute."""
        now = self.clock()
        seen = self._seen.get(chat_id)
        if seen is None:
            if len(self._seen) >= MAX_CHATS:
                self._seen.pop(next(iter(self._seen)))
            seen = self._seen[chat_id] = deque()
        while seen and seen[0] <= now - 60:
            seen.popleft()
        seen.append(now)
        return len(seen)

    def reason(self, message: Message, sent: dict[str, set[str]]) -> str | None:
        """Why ``message`` must not be acknowledged, or None; counts it too."""
        in_last_minute = self.count(message.chat_id)
        found: str | None = None
        user = message.from_user
        text = message.text or message.caption or ""
        if user is not None and user.is_bot:
            found = "sent by a bot (loop protection)"
        elif text and fold(text) in sent.get(str(message.chat_id), ()):
            found = "repeats a message we sent to this chat (loop protection)"
        elif self.per_minute and in_last_minute > self.per_minute:
            found = (
                f"more than {self.per_minute} messages a minute from this chat (loop protection)"
            )
        if found:
            log.info(
                "telegram: chat %s message %s recorded without acknowledgement: %s",
                message.chat_id,
                message.message_id,
                found,
            )
        return found
