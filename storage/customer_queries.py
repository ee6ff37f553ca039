"""Typed read queries about customers: search, one customer, their interaction history.

The history (seed 003's interaction timeline, seed 004's customer page) merges every case
the customer opened, every message they sent or were sent on those cases, and every
notification addressed to them, newest first, keyset-paginated on (time, kind, id) so a
page is stable while new interactions arrive.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, exists, func, literal, or_, select, tuple_, union_all
from sqlalchemy import case as when
from sqlalchemy.engine import Connection

from storage.models import (
    Case,
    Customer,
    CustomerIdentity,
    Message,
    Notification,
    Status,
    UtcDateTime,
)
from storage.paging import MAX_LIMIT, Page, QueryError, keyset_page, like_pattern


@dataclass(frozen=True, slots=True)
class IdentityRow:
    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class CustomerRow:
    id: int
    name: str
    created_at: datetime
    identities: tuple[IdentityRow, ...]
    open_cases: int
    cases: int


@dataclass(frozen=True, slots=True)
class CustomerCaseRow:
    number: str
    title: str
    status: str
    status_kind: str
    origin_channel: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerDetail:
    row: CustomerRow
    open: tuple[CustomerCaseRow, ...]


@dataclass(frozen=True, slots=True)
class Interaction:
    type: str  # case | message | notification
    id: int
    at: datetime
    case: str | None
    channel: str | None
    direction: str | None
    subject: str | None
    text: str | None
    status: str | None


_OPEN = and_(Status.kind != "closed", Case.merged_into_id.is_(None))


def _rows(conn: Connection, ids: list[int]) -> dict[int, CustomerRow]:
    if not ids:
        return {}
    customers = conn.execute(
        select(Customer.id, Customer.name, Customer.created_at).where(Customer.id.in_(ids))
    )
    idents: dict[int, list[IdentityRow]] = {}
    for r in conn.execute(
        select(CustomerIdentity.customer_id, CustomerIdentity.kind, CustomerIdentity.value)
        .where(CustomerIdentity.customer_id.in_(ids))
        .order_by(CustomerIdentity.id)
    ):
        idents.setdefault(r.customer_id, []).append(IdentityRow(r.kind, r.value))
    counts: dict[int, tuple[int, int]] = {}
    for r in conn.execute(
        select(
            Case.customer_id,
            func.count(),
            func.sum(when((_OPEN, 1), else_=0)),
        )
        .join(Status, Status.id == Case.status_id)
        .where(Case.customer_id.in_(ids))
        .group_by(Case.customer_id)
    ):
        counts[r[0]] = (int(r[1]), int(r[2] or 0))
    return {
        c.id: CustomerRow(
            c.id,
            c.name,
            c.created_at,
            tuple(idents.get(c.id, ())),
            counts.get(c.id, (0, 0))[1],
            counts.get(c.id, (0, 0))[0],
        )
        for c in customers
    }


def list_customers(
    conn: Connection, q: str | None, limit: int, cursor: str | None
) -> Page[CustomerRow]:
    """Customers whose name or any identity (email, phone, Telegram id) contains ``q``,
    newest first."""
    stmt = select(Customer.id)
    if q and q.strip():
        text = q.strip()
        pattern = like_pattern(text)
        compact = like_pattern("".join(text.split()))  # phones are stored without spaces
        stmt = stmt.where(
            or_(
                Customer.name.ilike(pattern, escape="\\"),
                exists().where(
                    CustomerIdentity.customer_id == Customer.id,
                    or_(
                        CustomerIdentity.value.ilike(pattern, escape="\\"),
                        CustomerIdentity.value.ilike(compact, escape="\\"),
                    ),
                ),
            )
        )
    rows, next_cursor = keyset_page(conn, stmt, Customer.id, limit, cursor)
    found = _rows(conn, [r.id for r in rows])
    return Page([found[r.id] for r in rows if r.id in found], next_cursor)


def get_customer(conn: Connection, customer_id: int) -> CustomerDetail | None:
    found = _rows(conn, [customer_id])
    if customer_id not in found:
        return None
    cases = conn.execute(
        select(
            Case.number,
            Case.title,
            Status.name.label("status"),
            Status.kind.label("status_kind"),
            Case.origin_channel,
            Case.created_at,
            Case.updated_at,
        )
        .join(Status, Status.id == Case.status_id)
        .where(Case.customer_id == customer_id, _OPEN)
        .order_by(Case.id.desc())
    )
    return CustomerDetail(found[customer_id], tuple(CustomerCaseRow(**r._mapping) for r in cases))


# --- the interaction history -----------------------------------------------------------------

_KIND_ORDER = {"case": 0, "message": 1, "notification": 2}


def _encode(at: datetime, kind: str, item_id: int) -> str:
    raw = json.dumps([at.isoformat(), _KIND_ORDER[kind], item_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, kind, item_id = json.loads(raw)
        return datetime.fromisoformat(at), int(kind), int(item_id)
    except (binascii.Error, ValueError, TypeError, UnicodeError):
        raise QueryError("cursor", "cursor is not valid; use next_cursor as given") from None


def customer_timeline(
    conn: Connection, customer_id: int, limit: int, cursor: str | None
) -> Page[Interaction] | None:
    """The customer's history, or None when there is no such customer."""
    if conn.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
        return None
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    none = literal(None, String())
    cases = (
        select(
            literal("case", String()).label("type"),
            literal(0).label("rank"),
            Case.id.label("id"),
            Case.created_at.label("at"),
            Case.number.label("case"),
            Case.origin_channel.label("channel"),
            none.label("direction"),
            Case.title.label("subject"),
            Case.description.label("text"),
            Status.name.label("status"),
        )
        .join(Status, Status.id == Case.status_id)
        .where(Case.customer_id == customer_id)
    )
    messages = (
        select(
            literal("message", String()),
            literal(1),
            Message.id,
            Message.created_at,
            Case.number,
            Message.channel,
            Message.direction,
            Message.subject,
            Message.text,
            none,
        )
        .join(Case, Case.id == Message.case_id)
        .where(Case.customer_id == customer_id)
    )
    sent = (
        select(
            literal("notification", String()),
            literal(2),
            Notification.id,
            Notification.created_at,
            Case.number,
            Notification.channel,
            literal("out", String()),
            Notification.subject,
            Notification.body,
            Notification.status,
        )
        .outerjoin(Case, Case.id == Notification.case_id)
        .where(Notification.customer_id == customer_id, Notification.audience == "customer")
    )
    every = union_all(cases, messages, sent).subquery()
    stmt = select(every)
    if cursor:
        at, rank, item_id = _decode(cursor)
        key = tuple_(every.c.at, every.c.rank, every.c.id)
        stmt = stmt.where(key < tuple_(literal(at, UtcDateTime()), literal(rank), literal(item_id)))
    stmt = stmt.order_by(every.c.at.desc(), every.c.rank.desc(), every.c.id.desc()).limit(limit + 1)
    rows: list[Any] = list((conn.execute(stmt)).all())
    items = [
        Interaction(r.type, r.id, r.at, r.case, r.channel, r.direction, r.subject, r.text, r.status)
        for r in rows[:limit]
    ]
    more = len(rows) > limit
    return Page(items, _encode(items[-1].at, items[-1].type, items[-1].id) if more else None)
