"""Which acknowledgement a new case gets, or why it gets none (loop protection).

The customer hears back on the channel they can be reached on: email when they gave an
address, else SMS. Automatic messages and imports are never acknowledged; the reason is
recorded on the case instead.
"""

from __future__ import annotations

from intake.lookups import Work
from notifiers.outbox import OutboundRequest
from routing.catalog import CatalogSnapshot


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
    if msg.sender.email:
        return OutboundRequest(
            "email",
            "ack_email",
            msg.language,
            msg.sender.email,
            context,
            w.case_id,
            w.customer_id,
        )
    if msg.sender.phone:
        return OutboundRequest(
            "sms", "ack_sms", msg.language, msg.sender.phone, context, w.case_id, w.customer_id
        )
    return "no address to acknowledge to"
