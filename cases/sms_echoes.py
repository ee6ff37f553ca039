"""Loop protection for SMS: a text that repeats one we sent to that number is not
acknowledged.

An autoresponder on the customer's phone answers our acknowledgement with our own words;
acknowledging that would start a loop that only the daily cap (``cases.acks``) ends. When
a new case's first SMS equals (whitespace and case aside) a text we queued to the same
number in the last 24 hours, its acknowledgement is suppressed with the reason, which the
batch records as the case's ``ack_suppressed`` event. One query per batch, over the
recipient index of ``notifications``.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from cases.lookups import Work
from notifiers.outbox import OutboundRequest
from storage.models import Notification, UtcDateTime

log = logging.getLogger(__name__)

ECHO_WINDOW = timedelta(hours=24)

_RECENT_TEXTS = select(Notification.recipient, Notification.body).where(
    Notification.channel == "sms",
    Notification.recipient.in_(bindparam("recipients", expanding=True)),
    Notification.created_at >= bindparam("since", type_=UtcDateTime()),
)


def folded(text: str) -> str:
    return " ".join(text.split()).casefold()


def suppress_echoes(
    conn: Connection, wanted: dict[Work, OutboundRequest | str | None], now: datetime
) -> None:
    """Replace the acknowledgement of every SMS echo in ``wanted`` by the reason."""
    sms: dict[Work, Any] = {
        w: ack
        for w, ack in wanted.items()
        if isinstance(ack, OutboundRequest)
        and w.item.msg.channel.value == "sms"
        and w.item.msg.sender.phone
    }
    if not sms:
        return
    phones = sorted({w.item.msg.sender.phone or "" for w in sms})
    rows = conn.execute(_RECENT_TEXTS, {"recipients": phones, "since": now - ECHO_WINDOW})
    sent = {(r.recipient, folded(r.body)) for r in rows}
    if not sent:
        return
    for w in sms:
        phone = w.item.msg.sender.phone
        if (phone, folded(w.item.msg.text)) in sent:
            reason = f"the text repeats an SMS we sent to {phone} (autoresponder loop guard)"
            log.info("acknowledgement suppressed: %s", reason)
            wanted[w] = reason
