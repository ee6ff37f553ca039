"""Executor of ``ReplyToCase``: an agent answers the customer.

The reply is queued on the outbox for the channel the customer wrote by (or the one the
agent chose, at the customer's address for it), threaded under the customer's last mail
for email (with the agent's files, already in the attachment store: email only), put on
the case's timeline as an outbound message, and the case's first response is recorded the
first time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from cases.case_fields import find_case
from cases.catalog_state import CatalogInTransaction
from cases.edit import refuse_merged
from cases.events import record_event
from cases.notices import case_context, customer_address
from cases.operations import CaseChanged, ReplyToCase
from notifiers.outbox import OutboundRequest, Outbox
from storage.models import Attachment, Case, CustomerIdentity, Message, Notification
from storage.operations import Executor, OperationRefused, WriteContext

CHANNELS = ("email", "sms", "telegram")
# Which identity of the customer a channel needs.
IDENTITY_OF = {"email": "email", "sms": "phone", "telegram": "telegram"}
MAX_REPLY = 100_000
MAX_FILES = 20


class CaseReplier(Executor):
    def __init__(
        self,
        catalogs: CatalogInTransaction,
        outbox: Outbox,
        missing_files: Callable[[Iterable[str]], set[str]] | None = None,
    ) -> None:
        """``missing_files`` names the digests among these not in the attachment store."""
        self.catalogs = catalogs
        self.outbox = outbox
        self.missing_files = missing_files

    def run_one(self, conn: Connection, op: ReplyToCase, ctx: WriteContext) -> CaseChanged:
        text = op.text.strip()
        if not text:
            raise OperationRefused("invalid", "a reply needs text", "text")
        if len(text) > MAX_REPLY:
            raise OperationRefused("invalid", f"a reply is at most {MAX_REPLY} characters", "text")
        case = find_case(conn, op.number)
        refuse_merged(conn, case)
        channel, address = self._where(conn, case, op.channel)
        self._check_files(op, channel)
        files = tuple(
            {"sha256": a.sha256, "filename": a.filename, "content_type": a.content_type,
             "size": a.size}
            for a in op.attachments
        )  # fmt: skip
        thread = self._thread(conn, case.id) if channel == "email" else ()
        context = case_context(case, self.catalogs.get(conn, ctx), text=text)
        notification_id = self.outbox.enqueue_one(
            conn,
            OutboundRequest(
                channel, f"reply_{channel}", case.language, address, context, case.id,
                case.customer_id, trigger="manual", automatic="no", in_reply_to=thread,
                requested_by=op.actor, attachments=files,
            ),
            ctx.now,
        )  # fmt: skip
        sent = conn.execute(
            select(Notification.subject, Notification.message_id).where(
                Notification.id == notification_id
            )
        ).one()
        message_id = conn.scalar(
            insert(Message)
            .values(
                case_id=case.id,
                direction="out",
                channel=channel,
                # Our Message-ID: the customer's answer to it threads into this case.
                external_id=sent.message_id,
                sender=op.actor[:320],
                subject=(sent.subject or "")[:1000],
                text=text,
                created_at=ctx.now,
            )
            .returning(Message.id)
        )
        if files:
            conn.execute(insert(Attachment), [{"message_id": message_id, **f} for f in files])
        values: dict[str, Any] = {"updated_at": ctx.now}
        if case.first_response_at is None:
            values["first_response_at"] = ctx.now
        conn.execute(update(Case).where(Case.id == case.id).values(**values))
        event_id = record_event(
            conn, case.id, "replied",
            {"channel": channel, "to": address, "notification": notification_id,
             **({"attachments": [f["filename"] for f in files]} if files else {})},
            op.actor, ctx.now,
        )  # fmt: skip
        return CaseChanged(case.number, case.version, event_id=event_id, at=ctx.now)

    def _check_files(self, op: ReplyToCase, channel: str) -> None:
        if not op.attachments:
            return
        if channel != "email":
            raise OperationRefused(
                "invalid", f"attachments go by email only, not by {channel}", "attachments"
            )
        if len(op.attachments) > MAX_FILES:
            raise OperationRefused("invalid", f"at most {MAX_FILES} attachments", "attachments")
        if self.missing_files is not None:
            missing = self.missing_files(a.sha256 for a in op.attachments)
            if missing:
                raise OperationRefused(
                    "invalid", "an attachment is not in the attachment store", "attachments"
                )

    @staticmethod
    def _where(conn: Connection, case: Row[Any], chosen: str | None) -> tuple[str, str]:
        usual = customer_address(case)
        if chosen is None or (usual is not None and usual[0] == chosen):
            if usual is None:
                raise OperationRefused("conflict", f"{case.number} has no address to reply to")
            return usual
        if chosen not in CHANNELS:
            raise OperationRefused(
                "invalid", f"channel must be one of {', '.join(CHANNELS)}", "channel"
            )
        address = conn.scalar(
            select(CustomerIdentity.value)
            .where(
                CustomerIdentity.customer_id == case.customer_id,
                CustomerIdentity.kind == IDENTITY_OF[chosen],
            )
            .order_by(CustomerIdentity.id.desc())
        )
        if address is None:
            raise OperationRefused(
                "invalid", f"the customer has no {IDENTITY_OF[chosen]} to reply by {chosen}",
                "channel",
            )  # fmt: skip
        return chosen, str(address)

    @staticmethod
    def _thread(conn: Connection, case_id: int) -> tuple[str, ...]:
        """The customer's last mail on the case, to answer under it."""
        last = conn.scalar(
            select(Message.external_id)
            .where(
                Message.case_id == case_id,
                Message.direction == "in",
                Message.channel == "email",
                Message.external_id.is_not(None),
            )
            .order_by(Message.id.desc())
        )
        return (str(last),) if last else ()
