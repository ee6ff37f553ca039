"""Enqueueing outbound notifications: rows written in the caller's transaction.

Nothing leaves Ventanilla except through these rows; the dispatcher (``notifiers.dispatcher``)
claims them. Writing them in the same transaction as the case makes "case stored but
customer never told" impossible. Each row is rendered here, so the log shows exactly what
is sent, gets its provider (the configured sender of its channel, unless the request names
one), and, for email, the headers that thread it and mark it automatic: our Message-ID,
In-Reply-To and References to the customer's message, and ``Auto-Submitted``
(``auto-replied`` for acknowledgements, ``auto-generated`` for notices; RFC 3834); an
SMS gets the number of parts its text takes.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jinja2
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from notifiers.sms_segments import segments, sms_text
from notifiers.templates import Rendered, TemplateRenderer
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
    provider: str = ""  # default: the channel's configured sender
    audience: str = "customer"  # customer | technician | watcher
    technician_id: int | None = None
    in_reply_to: tuple[str, ...] = ()  # email: the Message-IDs it answers, newest first
    automatic: str | None = None  # Auto-Submitted value; None: by template (ack_ → replied)
    fallback: tuple[dict[str, str], ...] = ()  # a technician's next channels to try
    requested_by: str | None = None
    reason: str | None = None
    idempotency_key: str | None = None
    resend_of: int | None = None
    # Files sent with it: {"sha256", "filename", "content_type", "size"} each.
    attachments: tuple[dict[str, Any], ...] = ()


class Outbox:
    """Renders each request and inserts it as a pending notification."""

    def __init__(
        self,
        renderer: TemplateRenderer,
        message_id_domain: str = "localhost",
        providers: dict[str, str] | None = None,
    ) -> None:
        """``providers``: the sender each channel goes through by default."""
        self.providers = {"email": "email", "telegram": "telegram", **(providers or {})}
        self.renderer = renderer
        self.domain = message_id_domain
        # Message-IDs need uniqueness, not secrecy: a PRNG seeded once from the OS avoids a
        # syscall per row in the writer thread.
        self._ids = random.Random(secrets.randbits(128))

    def new_message_id(self) -> str:
        """A Message-ID (without brackets) in our own domain, RFC 5322 §3.6.4."""
        return f"{self._ids.getrandbits(96):024x}@{self.domain}"

    def row(
        self, request: OutboundRequest, now: datetime, rendered: Rendered | None = None
    ) -> dict[str, Any]:
        """The row for ``request``, rendered from its template unless ``rendered`` gives
        the text already (a resend of the original text)."""
        problem: str | None = None
        try:
            if rendered is None:
                rendered = self.renderer.render(request.template, request.language, request.context)
        except jinja2.TemplateError as exc:
            # A template mistake must not cost the message that caused the notice: the row
            # is kept, failed, with the reason (and resent once the template is fixed).
            rendered, problem = Rendered("", ""), f"template {request.template}: {exc}"
        message_id = self.new_message_id() if request.channel == "email" else None
        return {
            "channel": request.channel,
            "trigger": request.trigger,
            "template": request.template,
            "language": request.language,
            "recipient": request.recipient,
            "subject": rendered.subject,
            "body": rendered.body,
            "html": rendered.html if request.channel == "email" else None,
            "headers": self.headers(request) if request.channel == "email" else {},
            "context": _plain(request.context),
            "case_id": request.case_id,
            "customer_id": request.customer_id,
            "audience": request.audience,
            "technician_id": request.technician_id,
            "provider": request.provider or self.providers.get(request.channel, request.channel),
            "fallback": [dict(f) for f in request.fallback],
            "attachments": [dict(a) for a in request.attachments],
            "status": "failed" if problem else "pending",
            "status_reason": problem,
            "attempts": 0,
            "created_at": now,
            "next_attempt_at": now,
            "message_id": message_id,
            "requested_by": request.requested_by,
            "reason": request.reason,
            "idempotency_key": request.idempotency_key,
            "resend_of": request.resend_of,
            # SMS: the parts the text takes (what it costs), counted on the text as sent.
            "segments": segments(sms_text(rendered.body)) if request.channel == "sms" else None,
        }

    @staticmethod
    def headers(request: OutboundRequest) -> dict[str, Any]:
        automatic = request.automatic or (
            "auto-replied" if request.template.startswith("ack_") else "auto-generated"
        )
        headers: dict[str, Any] = {}
        if automatic != "no":
            headers["Auto-Submitted"] = automatic
        if request.in_reply_to:
            # RFC 5322 §3.6.4: In-Reply-To names the parent, References the thread.
            headers["In-Reply-To"] = f"<{request.in_reply_to[0]}>"
            chain = list(dict.fromkeys(reversed(request.in_reply_to)))[-20:]
            headers["References"] = " ".join(f"<{ref}>" for ref in chain)
        return headers

    def enqueue_one(self, conn: Connection, request: OutboundRequest, now: datetime) -> int:
        """Insert one row; its id."""
        row_id = conn.scalar(
            insert(Notification).values(self.row(request, now)).returning(Notification.id)
        )
        assert row_id is not None
        return int(row_id)

    def enqueue(self, conn: Connection, requests: Sequence[OutboundRequest], now: datetime) -> None:
        rows = [self.row(r, now) for r in requests]
        if rows:
            core_insert(conn, Notification.__table__, rows)


def _plain(context: dict[str, Any]) -> dict[str, Any]:
    """The context as JSON can keep it (what a resend renders again from)."""
    return {k: v if isinstance(v, str | int | float | bool | None) else str(v)
            for k, v in context.items()}  # fmt: skip
