"""Which case a chat or text message continues (Telegram, SMS), where there are no reply
headers and no subjects.

1. A case number written in the text (``CAS-000123``, ``cas-123``) continues that case when
   it belongs to the same customer; a stranger's number is ignored.
2. Otherwise the customer's open case that is being talked about on this channel (opened
   by it, or that we last wrote to them about on it: a web-form case acknowledged by SMS)
   and was updated within ``chat_window_hours`` continues; the most recently updated wins.
3. Messages of one batch from the same sender on the same channel are one conversation
   (several quick messages become one case; ``cases.threads`` joins them).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

from cases.lookups import Work
from routing.catalog import CatalogSnapshot
from storage.models import Case, Notification, UtcDateTime

CHAT_CHANNELS = frozenset({"sms", "telegram"})

_RECENT_CASES = (
    select(Case.id, Case.customer_id, Case.status_id, Case.origin_channel)
    .where(
        Case.customer_id.in_(bindparam("customers", expanding=True)),
        Case.updated_at >= bindparam("since", type_=UtcDateTime()),
        Case.merged_into_id.is_(None),
    )
    .order_by(Case.updated_at.desc(), Case.id.desc())
)
_WRITTEN_ON = select(Notification.case_id, Notification.channel).where(
    Notification.case_id.in_(bindparam("cases", expanding=True)),
    Notification.audience == "customer",
    Notification.channel.in_(tuple(CHAT_CHANNELS)),
)


def is_chat(w: Work) -> bool:
    return w.item.msg.channel.value in CHAT_CHANNELS


class CaseMentions:
    """Finds a case number in free text and writes it the way numbers are stored."""

    def __init__(self, prefix: str, width: int) -> None:
        self.prefix = prefix
        self.width = width
        self._pattern = re.compile(
            r"(?<![\w-])" + re.escape(prefix) + r"(\d{1,12})(?!\d)", re.IGNORECASE
        )

    def __call__(self, text: str) -> str | None:
        found = self._pattern.search(text)
        if found is None:
            return None
        return f"{self.prefix}{int(found.group(1)):0{self.width}d}"


Mentions = Callable[[str], str | None]


def chat_window(
    conn: Connection,
    work: list[Work],
    window_hours: float,
    catalog: CatalogSnapshot,
    now: datetime,
) -> None:
    """Continue each chat message without a case yet in its customer's recent open case on
    that channel (rule 2)."""
    candidates = [w for w in work if is_chat(w) and w.customer_id is not None]
    if window_hours <= 0 or not candidates:
        return
    customers = sorted({w.customer_id for w in candidates if w.customer_id is not None})
    rows = conn.execute(
        _RECENT_CASES,
        {"customers": customers, "since": now - timedelta(hours=window_hours)},
    ).all()
    open_rows = [r for r in rows if _is_open(catalog, r.status_id)]
    if not open_rows:
        return
    channels: dict[int, set[str]] = {r.id: {r.origin_channel} for r in open_rows}
    for r in conn.execute(_WRITTEN_ON, {"cases": sorted(channels)}):
        channels[r.case_id].add(r.channel)
    for w in candidates:
        channel = w.item.msg.channel.value
        hit = next(
            (r.id for r in open_rows
             if r.customer_id == w.customer_id and channel in channels[r.id]),
            None,
        )  # fmt: skip
        if hit is not None:
            w.case_id, w.outcome = hit, "continued"
            w.reasons = (f"the customer's open {channel} conversation (within "
                         f"{window_hours:g} h)",)  # fmt: skip


def _is_open(catalog: CatalogSnapshot, status_id: int) -> bool:
    status = catalog.get("statuses", status_id)
    return status is None or status.kind != "closed"
