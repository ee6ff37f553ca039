"""Read queries of the outbound log: the filtered list, its count, one message with its
attempts and resend chain, saved filters and resend jobs.

The list is ordered by (time, id), newest first or oldest first, and paginated by keyset
on that pair: a cursor names the last row seen, so rows inserted while someone pages
neither shift nor repeat what they see, and a page 10,000 rows deep costs what the first
does (each filter's index ends in that key; ``storage.log_filters``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from storage.log_filters import LogFilters, conditions, time_column
from storage.models import (
    Case,
    Customer,
    DeliveryAttempt,
    Notification,
    ResendJob,
    SavedFilter,
    User,
)
from storage.paging import MAX_LIMIT, Page, QueryError, columns_of, from_row

if TYPE_CHECKING:
    from storage.paging import AnySelect

Order = Literal["newest", "oldest"]
COUNT_CAP = 10_000
_CURSOR_TAG = "n1"
FIRST_LINE = 120


@dataclass(frozen=True, slots=True)
class LogItem:
    """One row of the log's table."""

    id: int
    channel: str
    recipient: str
    customer_id: int | None
    customer_name: str | None
    case_number: str | None
    subject: str  # the subject, or the text's first line where there is none
    status: str
    status_reason: str | None
    attempts: int
    trigger: str
    template: str
    provider: str
    audience: str
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    requested_by: str | None
    reason: str | None
    resend_of: int | None


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: int
    started_at: datetime
    duration_ms: int
    outcome: str
    provider: str
    provider_code: str | None
    provider_response: str | None
    provider_message_id: str | None
    error: str | None
    possible_duplicate: bool
    dispatcher: str | None


@dataclass(frozen=True, slots=True)
class ChainLink:
    id: int
    status: str
    trigger: str
    created_at: datetime
    sent_at: datetime | None
    requested_by: str | None
    reason: str | None
    resend_of: int | None


@dataclass(frozen=True, slots=True)
class LogDetail:
    item: LogItem
    language: str
    body: str
    html: str | None
    headers: dict[str, Any]
    message_id: str | None
    provider_id: str | None
    segments: int | None
    attachments: list[Any]
    technician_id: int | None
    case_title: str | None
    last_error: str | None
    attempt_log: tuple[AttemptRow, ...]
    chain: tuple[ChainLink, ...]  # the original first, then every resend, oldest first


@dataclass(frozen=True, slots=True)
class SavedFilterRow:
    id: int
    user_id: int
    user: str
    name: str
    params: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    requested_by: str
    reason: str | None
    status: str
    total: int
    done: int
    queued: int
    skipped: dict[str, Any]
    as_sent: bool
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


_ITEM_COLUMNS = (
    Notification.id,
    Notification.channel,
    Notification.recipient,
    Notification.customer_id,
    Customer.name.label("customer_name"),
    Case.number.label("case_number"),
    Notification.subject,
    Notification.body,
    Notification.status,
    Notification.status_reason,
    Notification.attempts,
    Notification.trigger,
    Notification.template,
    Notification.provider,
    Notification.audience,
    Notification.created_at,
    Notification.sent_at,
    Notification.next_attempt_at,
    Notification.requested_by,
    Notification.reason,
    Notification.resend_of,
)


def _item_select(*extra: Any) -> AnySelect:
    return (
        select(*_ITEM_COLUMNS, *extra)
        .select_from(Notification)
        .outerjoin(Customer, Customer.id == Notification.customer_id)
        .outerjoin(Case, Case.id == Notification.case_id)
    )


def first_line(subject: str | None, body: str | None) -> str:
    if subject:
        return subject
    for line in (body or "").splitlines():
        if line.strip():
            text = line.strip()
            return text if len(text) <= FIRST_LINE else text[: FIRST_LINE - 1] + "…"
    return ""


def _item(row: Any) -> LogItem:
    return from_row(LogItem, row, subject=first_line(row.subject, row.body))


def encode_cursor(at: datetime, row_id: int) -> str:
    micros = int(at.timestamp() * 1_000_000)
    raw = f"{_CURSOR_TAG}:{micros}:{row_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        tag, micros, row_id = text.split(":")
        if tag != _CURSOR_TAG:
            raise ValueError(tag)
        at = datetime.fromtimestamp(int(micros) / 1_000_000, UTC)
        return at, int(row_id)
    except (binascii.Error, UnicodeError, ValueError, OverflowError, OSError):
        raise QueryError("cursor", "cursor is not valid; use next_cursor as given") from None


def _after(column: Any, at: datetime, row_id: int, order: Order) -> Any:
    """Rows past the cursor in the list's order. The leading ``<=`` (``>=``) is what both
    engines turn into an index range; the OR settles ties on the time."""
    if order == "newest":
        return and_(column <= at, or_(column < at, Notification.id < row_id))
    return and_(column >= at, or_(column > at, Notification.id > row_id))


def list_statement(
    conn: Connection,
    filters: LogFilters,
    limit: int = 50,
    cursor: str | None = None,
    order: Order = "newest",
) -> AnySelect:
    """The SELECT of one page of the list: ``limit + 1`` rows past ``cursor``, so that the
    extra row tells whether there are more (what ``list_notifications`` runs, and what a
    benchmark or an operator explains)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    at, row_id = decode_cursor(cursor) if cursor else (None, None)
    conds = conditions(conn, filters, row_id if order == "newest" else None)
    column = time_column(filters)
    if at is not None and row_id is not None:
        conds.append(_after(column, at, row_id, order))
    keys = (column.desc(), Notification.id.desc()) if order == "newest" else (
        column.asc(), Notification.id.asc())  # fmt: skip
    return _item_select(column.label("_key")).where(*conds).order_by(*keys).limit(limit + 1)


def list_notifications(
    conn: Connection,
    filters: LogFilters,
    limit: int = 50,
    cursor: str | None = None,
    order: Order = "newest",
) -> Page[LogItem]:
    stmt = list_statement(conn, filters, limit, cursor, order)
    rows = list(conn.execute(stmt).all())
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = encode_cursor(rows[-1]._key, rows[-1].id) if more else None
    return Page([_item(r) for r in rows], next_cursor)


def iterate_notifications(
    conn: Connection, filters: LogFilters, page_size: int = 500
) -> Iterator[LogItem]:
    """Every matching row, newest first, fetched a page at a time (the CSV export)."""
    cursor: str | None = None
    while True:
        page = list_notifications(conn, filters, min(page_size, MAX_LIMIT), cursor)
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def count_notifications(conn: Connection, filters: LogFilters, cap: int = COUNT_CAP) -> int:
    """The exact number of matching rows up to ``cap``; ``cap + 1`` means "more than cap"."""
    inner = select(Notification.id).where(*conditions(conn, filters)).limit(cap + 1).subquery()
    return int(conn.scalar(select(func.count()).select_from(inner)) or 0)


def notification_scope(conn: Connection, notification_id: int) -> int | None:
    """The technician assigned to the row's case (what decides whether an agent sees it)."""
    return conn.scalar(
        select(Case.assignee_id)
        .join(Notification, Notification.case_id == Case.id)
        .where(Notification.id == notification_id)
    )


def get_notification(conn: Connection, notification_id: int) -> LogDetail | None:
    row = conn.execute(
        _item_select(
            Notification.language, Notification.html, Notification.headers,
            Notification.message_id, Notification.provider_id, Notification.segments,
            Notification.attachments, Notification.technician_id, Notification.last_error,
            Case.title.label("case_title"),
        ).where(Notification.id == notification_id)
    ).first()  # fmt: skip
    if row is None:
        return None
    attempts = conn.execute(
        select(*columns_of(DeliveryAttempt, AttemptRow))
        .where(DeliveryAttempt.notification_id == notification_id)
        .order_by(DeliveryAttempt.id)
    )
    return LogDetail(
        item=_item(row),
        language=row.language,
        body=row.body or "",
        html=row.html,
        headers=dict(row.headers or {}),
        message_id=row.message_id,
        provider_id=row.provider_id,
        segments=row.segments,
        attachments=list(row.attachments or []),
        technician_id=row.technician_id,
        case_title=row.case_title,
        last_error=row.last_error,
        attempt_log=tuple(from_row(AttemptRow, a) for a in attempts),
        chain=resend_chain(conn, notification_id, row.resend_of),
    )


_CHAIN_COLUMNS = columns_of(Notification, ChainLink)
MAX_CHAIN = 1_000


def resend_chain(
    conn: Connection, notification_id: int, resend_of: int | None
) -> tuple[ChainLink, ...]:
    """The original of ``notification_id`` and every resend of it (and of those), oldest
    first; a row that was never resent and resends nothing has a chain of itself."""
    root = notification_id
    parent = resend_of
    seen = {root}
    while parent is not None and parent not in seen:
        seen.add(parent)
        root = parent
        parent = conn.scalar(select(Notification.resend_of).where(Notification.id == parent))
    chain = {root}
    frontier = [root]
    while frontier and len(chain) < MAX_CHAIN:
        children = conn.scalars(
            select(Notification.id).where(Notification.resend_of.in_(frontier))
        ).all()
        frontier = [c for c in children if c not in chain]
        chain.update(frontier)
    rows = conn.execute(
        select(*_CHAIN_COLUMNS).where(Notification.id.in_(chain)).order_by(Notification.id)
    )
    return tuple(from_row(ChainLink, r) for r in rows)


_FILTER_COLUMNS = (
    SavedFilter.id,
    SavedFilter.user_id,
    User.name.label("user"),
    SavedFilter.name,
    SavedFilter.params,
    SavedFilter.created_at,
)


def list_saved_filters(conn: Connection, user_id: int | None) -> list[SavedFilterRow]:
    """A user's saved filters by name, or (``None``: an admin asking) everyone's."""
    stmt = select(*_FILTER_COLUMNS).join(User, User.id == SavedFilter.user_id)
    if user_id is not None:
        stmt = stmt.where(SavedFilter.user_id == user_id)
    rows = conn.execute(stmt.order_by(User.name, SavedFilter.name))
    return [from_row(SavedFilterRow, r, params=dict(r.params or {})) for r in rows]


def get_saved_filter(
    conn: Connection, *, filter_id: int | None = None, user_id: int | None = None,
    name: str | None = None,
) -> SavedFilterRow | None:  # fmt: skip
    """One saved filter by id, or by its owner and name."""
    stmt = select(*_FILTER_COLUMNS).join(User, User.id == SavedFilter.user_id)
    if filter_id is not None:
        stmt = stmt.where(SavedFilter.id == filter_id)
    else:
        stmt = stmt.where(SavedFilter.user_id == user_id, SavedFilter.name == name)
    row = conn.execute(stmt).first()
    return None if row is None else from_row(SavedFilterRow, row, params=dict(row.params or {}))


def get_job(conn: Connection, job_id: int) -> JobRow | None:
    row = conn.execute(select(*columns_of(ResendJob, JobRow)).where(ResendJob.id == job_id)).first()
    return None if row is None else from_row(JobRow, row, skipped=dict(row.skipped or {}))


def running_jobs(conn: Connection) -> list[int]:
    running = select(ResendJob.id).where(ResendJob.status == "running")
    return list(conn.scalars(running.order_by(ResendJob.id)))


def user_technician(conn: Connection, user_id: int) -> int | None:
    """The technician a user works as (an agent's scope in the log)."""
    return conn.scalar(select(User.technician_id).where(User.id == user_id))
