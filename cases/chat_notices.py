"""Notices to a chat that belong to no case: the greeting a new chat gets (Telegram
``/start``) and the polite refusal a group chat gets.

They leave through the outbox like everything else (``ChatNotice`` is a write operation),
so they are logged, retried and resendable. Each carries a key naming the message that
caused it: the same message delivered twice (a webhook retried, an update polled again
after a restart) queues one notice. ``once_per_hours`` keeps a notice from being repeated
to the same chat within that time: a busy group hears the refusal once, not once per
message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from notifiers.outbox import OutboundRequest, Outbox
from storage.models import Notification
from storage.operations import Executor, WriteContext


@dataclass(frozen=True, slots=True)
class ChatNotice:
    """Queue ``template`` to the chat ``recipient`` on ``channel``, once per ``key``."""

    channel: str
    template: str
    language: str
    recipient: str
    key: str
    context: dict[str, Any] = field(default_factory=dict)
    once_per_hours: float = 0.0


class ChatNoticeWriter(Executor):
    """Executes ``ChatNotice``; answers ``queued``, ``duplicate`` (the key was used) or
    ``recent`` (the chat had this notice within ``once_per_hours``)."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def run_one(self, conn: Connection, op: ChatNotice, ctx: WriteContext) -> str:
        seen = conn.scalar(
            select(Notification.id).where(Notification.idempotency_key == op.key).limit(1)
        )
        if seen is not None:
            return "duplicate"
        if op.once_per_hours > 0:
            recent = conn.scalar(
                select(func.count())
                .select_from(Notification)
                .where(
                    Notification.recipient == op.recipient,
                    Notification.created_at >= ctx.now - timedelta(hours=op.once_per_hours),
                    Notification.template == op.template,
                    Notification.channel == op.channel,
                )
            )
            if recent:
                return "recent"
        request = OutboundRequest(
            op.channel,
            op.template,
            op.language,
            op.recipient,
            op.context,
            idempotency_key=op.key,
        )
        self.outbox.enqueue_one(conn, request, ctx.now)
        return "queued"
