"""Which acknowledgement a new case gets, or why it gets none (loop protection).

The customer hears back on the channel they can be reached on: a Telegram message in its
chat, else email when they gave an address, else SMS. Automatic messages, imports and SMS
that echo our own texts are never acknowledged; the reason is recorded on the case instead.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy.engine import Connection

from cases.lookups import Work
from cases.sms_echoes import suppress_echoes
from cases.statements import ACKS_SENT
from notifiers.outbox import OutboundRequest
from routing.catalog import CatalogSnapshot


def acknowledgements(
    conn: Connection, work: list[Work], catalog: CatalogSnapshot, now: datetime
) -> dict[Work, OutboundRequest | str | None]:
    """Each message's acknowledgement or the reason it gets none (``acknowledgement_for``,
    then SMS echoes of our own texts: ``cases.sms_echoes``)."""
    wanted = {w: acknowledgement_for(w, catalog) for w in work}
    suppress_echoes(conn, wanted, now)
    return wanted


def acknowledgement_for(w: Work, catalog: CatalogSnapshot) -> OutboundRequest | str | None:
    """The acknowledgement to enqueue, or the reason it is suppressed (a str)."""
    msg = w.item.msg
    if w.outcome != "created":
        return None  # follow-ups are not acknowledged again
    if msg.suppress_ack_reason:
        return msg.suppress_ack_reason
    if msg.auto_submitted:
        return "automatic message (loop protection)"
    category = catalog.get("categories", (w.new_case or {}).get("category_id"))
    context = {
        "case_number": w.case_number,
        "title": (w.new_case or {}).get("title", ""),
        "customer_name": msg.sender.name,
        "category": category.public_name if category else "",
    }
    if msg.channel.value == "telegram" and (msg.conversation_key or msg.sender.telegram_id):
        # Answered in the chat it came from (a group's, when groups are taken); the
        # customer's other identities (a shared phone) are not where they wrote.
        chat = msg.conversation_key or msg.sender.telegram_id or ""
        return OutboundRequest(
            "telegram", "ack_telegram", msg.language, chat, context, w.case_id, w.customer_id
        )
    if msg.sender.email:
        # Threaded under the customer's own mail, so their client shows our answer there.
        thread = (msg.external_id, *msg.in_reply_to) if msg.channel.value == "email" else ()
        return OutboundRequest(
            "email",
            "ack_email",
            msg.language,
            msg.sender.email,
            context,
            w.case_id,
            w.customer_id,
            in_reply_to=thread,
        )
    if msg.sender.phone:
        return OutboundRequest(
            "sms", "ack_sms", msg.language, msg.sender.phone, context, w.case_id, w.customer_id
        )
    return "no address to acknowledge to"


class AckLimiter:
    """Caps automatic acknowledgements per recipient per 24 hours (loop protection).

    Two autoresponders answering each other would otherwise open a case and send an
    acknowledgement per message forever; the cap breaks such a loop within a day's budget.
    """

    def __init__(self, conn: Connection, recipients: set[str], per_day: int, now: datetime) -> None:
        """``recipients``: those the batch would acknowledge; only their counts are read."""
        self.per_day = per_day
        self.sent: Counter[str] = Counter()
        if per_day > 0 and recipients:
            rows = conn.execute(
                ACKS_SENT, {"recipients": sorted(recipients), "since": now - timedelta(days=1)}
            )
            self.sent.update({r[0]: int(r[1]) for r in rows})

    def check(self, ack: OutboundRequest | str | None) -> OutboundRequest | str | None:
        if not isinstance(ack, OutboundRequest) or self.per_day <= 0:
            return ack
        if self.sent[ack.recipient] >= self.per_day:
            return f"acknowledgement limit reached ({self.per_day} per day to {ack.recipient})"
        self.sent[ack.recipient] += 1
        return ack
