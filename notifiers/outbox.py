"""Enqueueing outbound notifications: rows written in the caller's transaction.

Nothing leaves Ventanilla except through these rows; the dispatcher (a later part) claims
them. Writing them in the same transaction as the case makes "case stored but customer never
told" impossible.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from notifiers.templates import TemplateRenderer
from storage.bulk import core_insert
from storage.models import Notification


@dataclass(frozen=True, slots=True)
class OutboundRequest:
    channel: str  # email | sms | push | telegram
    template: str
    language: str
    recipient: str
    context: dict[str, Any]
    case_id: int | None = None
    customer_id: int | None = None
    trigger: str = "auto"


class Outbox:
    """Renders each request and inserts it as a pending notification."""

    def __init__(self, renderer: TemplateRenderer, message_id_domain: str = "localhost") -> None:
        self.renderer = renderer
        self.domain = message_id_domain
        # Message-IDs need uniqueness, not secrecy: a PRNG seeded once from the OS avoids a
        # syscall per row in the writer thread.
        self._ids = random.Random(secrets.randbits(128))

    def new_message_id(self) -> str:
        """A Message-ID (without brackets) in our own domain, RFC 5322 §3.6.4."""
        return f"{self._ids.getrandbits(96):024x}@{self.domain}"

    def row(self, request: OutboundRequest, now: datetime) -> dict[str, Any]:
        rendered = self.renderer.render(request.template, request.language, request.context)
        return {
            "channel": request.channel,
            "trigger": request.trigger,
            "template": request.template,
            "language": request.language,
            "recipient": request.recipient,
            "subject": rendered.subject,
            "body": rendered.body,
            "case_id": request.case_id,
            "customer_id": request.customer_id,
            "status": "pending",
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "message_id": self.new_message_id() if request.channel == "email" else None,
        }

    def enqueue(self, conn: Connection, requests: Sequence[OutboundRequest], now: datetime) -> None:
        rows = [self.row(r, now) for r in requests]
        if rows:
            core_insert(conn, Notification.__table__, rows)
