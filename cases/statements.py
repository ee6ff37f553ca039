"""The intake writer's per-batch statements, built once with expanding IN parameters.

Building a SQLAlchemy statement (operator coercion, then its cache key to find the compiled
form) cost more than running it for the small batches that mail produces (measured: a
quarter of the writer process's time under SMTP load). Built once at import, each is
only executed with the batch's values; ``bindparam(..., expanding=True)`` renders an IN
list of whatever length is given.

Pairs such as (channel, external id) are looked up with two plain IN lists, a superset
the caller filters: SQLite uses no index for a row-value ``(a, b) IN ((…), …)`` list and
scans the whole table (measured: the dedup lookup became the bottleneck as it grew),
while two IN lists use the unique (a, b) index on both engines.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select, update
from sqlalchemy.orm import InstrumentedAttribute

from storage.models import (
    Case,
    Counter,
    CustomerIdentity,
    Inbound,
    Message,
    MessageRef,
    Notification,
    UtcDateTime,
)


def _in(column: InstrumentedAttribute[Any], name: str) -> ColumnElement[bool]:
    return column.in_(bindparam(name, expanding=True))


# Dedup: (channel, external id) → inbound row and its case (params: channels, ids).
DUPLICATES = select(
    Inbound.channel, Inbound.external_id, Inbound.id, Inbound.case_id, Inbound.fingerprint
).where(_in(Inbound.channel, "channels"), _in(Inbound.external_id, "ids"))
# Case numbers of case ids (param: ids).
CASE_NUMBERS = select(Case.id, Case.number).where(_in(Case.id, "ids"))
# Known customers by identity (params: kinds, values).
IDENTITIES = select(
    CustomerIdentity.kind, CustomerIdentity.value, CustomerIdentity.customer_id
).where(_in(CustomerIdentity.kind, "kinds"), _in(CustomerIdentity.value, "values"))

# Threading (param: refs / numbers / customers + since / ids).
MESSAGES_BY_REF = select(Message.external_id, Message.case_id).where(
    _in(Message.external_id, "refs")
)
NOTIFICATIONS_BY_REF = select(Notification.message_id, Notification.case_id).where(
    _in(Notification.message_id, "refs"), Notification.case_id.is_not(None)
)
# Earlier replies naming these Message-IDs (param: ids): an original arriving late.
ANSWERED_BY = (
    select(MessageRef.ref, Message.case_id)
    .join(Message, Message.id == MessageRef.message_id)
    .where(_in(MessageRef.ref, "ids"))
    .order_by(Message.id)
)
CASES_BY_NUMBER = select(Case.number, Case.id, Case.customer_id).where(_in(Case.number, "numbers"))
RECENT_CASES_OF = (
    select(Case.id, Case.customer_id, Case.title)
    .where(
        _in(Case.customer_id, "customers"),
        Case.updated_at >= bindparam("since", type_=UtcDateTime()),
    )
    .order_by(Case.updated_at.desc())
)
CASE_STATES = select(Case.id, Case.status_id, Case.merged_into_id).where(_in(Case.id, "ids"))
# The same, holding the rows against a concurrent merge until this batch commits (PostgreSQL
# FOR SHARE, in id order like the merge's own locks; SQLite has one writer and ignores it).
CASE_STATES_HELD = CASE_STATES.order_by(Case.id).with_for_update(read=True)

# Acknowledgements sent per recipient in the last day (params: recipients, since).
ACKS_SENT = (
    select(Notification.recipient, func.count())
    .where(
        _in(Notification.recipient, "recipients"),
        Notification.trigger == "auto",
        Notification.template.like("ack_%"),
        Notification.created_at >= bindparam("since", type_=UtcDateTime()),
    )
    .group_by(Notification.recipient)
)

# Cases a batch continues (params: ids, now / ids, status).
TOUCH_CASES = (
    update(Case).where(_in(Case.id, "ids")).values(updated_at=bindparam("now", type_=UtcDateTime()))
)
REOPEN_CASES = (
    update(Case)
    .where(_in(Case.id, "ids"))
    .values(status_id=bindparam("status"), closed_at=None, version=Case.version + 1)
)

# SQLite's case counter: reserve ``n`` numbers (param: n).
RESERVE_NUMBERS = (
    update(Counter)
    .where(Counter.name == "case")
    .values(value=Counter.value + bindparam("n"))
    .returning(Counter.value)
)
