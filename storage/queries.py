"""Typed read queries for operators: case lists and details, the inbound log.

Every list is keyset-paginated on the primary key, newest first: a cursor is the last id
seen, so pages stay stable while new rows arrive (an OFFSET would shift under inserts).
Callers get plain frozen dataclasses with every catalog name already resolved, so nothing
is lazily loaded after the session closes.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.models import (
    Area,
    Attachment,
    Case,
    CaseEvent,
    Category,
    Customer,
    CustomerIdentity,
    Inbound,
    Message,
    Priority,
    Severity,
    Status,
    Technician,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_CURSOR_TAG = "v1"  # lets the cursor format change without misreading old ones

T = TypeVar("T")
D = TypeVar("D", bound="DataclassInstance")
if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    # SQLAlchemy 2.1 types Select by its columns (variadic); 2.0 cannot subscript it so.
    AnySelect = Select[*tuple[Any, ...]]


class QueryError(ValueError):
    """A bad filter, limit or cursor; ``param`` names the offending parameter."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    raw = f"{_CURSOR_TAG}:{last_id}".encode("ascii")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> int:
    """The last id a cursor stands for; QueryError when it is not one of ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    tag, _, last = text.partition(":")
    if tag != _CURSOR_TAG or not last.isdigit():
        raise QueryError("cursor", "cursor is not valid; use next_cursor as given")
    return int(last)


async def _page(
    session: AsyncSession, stmt: AnySelect, id_col: Any, limit: int, cursor: str | None
) -> tuple[list[Any], str | None]:
    """Run ``stmt`` newest first from ``cursor``; one extra row tells whether more exist."""
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError("limit", f"limit must be between 1 and {MAX_LIMIT}")
    if cursor:
        stmt = stmt.where(id_col < decode_cursor(cursor))
    rows = list((await session.execute(stmt.order_by(id_col.desc()).limit(limit + 1))).all())
    more = len(rows) > limit
    return rows[:limit], (encode_cursor(rows[limit - 1].id) if more else None)


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` literally anywhere (``\\`` is the escape)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# --- cases -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseFilters:
    q: str | None = None
    status: str | None = None
    area: str | None = None
    assignee: str | None = None
    channel: str | None = None
    customer: str | None = None


@dataclass(frozen=True, slots=True)
class CaseRow:
    id: int
    number: str
    title: str
    status: str
    priority: str
    severity: str
    category: str | None
    subreason: str | None
    area: str | None
    assignee: str | None
    customer_id: int
    customer_name: str
    contact: str
    origin_channel: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Identity:
    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    filename: str
    content_type: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class TimelineMessage:
    id: int
    direction: str
    channel: str
    sender: str
    subject: str
    text: str
    created_at: datetime
    attachments: tuple[AttachmentInfo, ...] = ()


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    id: int
    kind: str
    detail: dict[str, Any]
    actor: str
    created_at: datetime


TimelineEntry = TimelineMessage | TimelineEvent


@dataclass(frozen=True, slots=True)
class CaseDetail:
    row: CaseRow
    description: str
    status_kind: str
    language: str
    tags: list[Any]
    cc: list[Any]
    is_public: bool
    parent: str | None
    merged_into: str | None
    solution: str
    first_response_due: datetime | None
    resolution_due: datetime | None
    escalation_level: int
    reopen_at: datetime | None
    closed_at: datetime | None
    version: int
    cloned_from: str | None = None
    children: tuple[str, ...] = ()
    identities: tuple[Identity, ...] = ()
    timeline: tuple[TimelineEntry, ...] = ()


# CaseDetail fields that are not plain columns of Case.
_DETAIL_DERIVED = (
    "row",
    "status_kind",
    "parent",
    "merged_into",
    "cloned_from",
    "children",
    "identities",
    "timeline",
)


def _case_select(*extra: Any) -> AnySelect:
    return (
        select(
            Case.id,
            Case.number,
            Case.title,
            Status.name.label("status"),
            Priority.name.label("priority"),
            Severity.name.label("severity"),
            Category.name.label("category"),
            Case.subreason,
            Area.name.label("area"),
            Technician.name.label("assignee"),
            Case.customer_id,
            Customer.name.label("customer_name"),
            Case.contact,
            Case.origin_channel,
            Case.created_at,
            Case.updated_at,
            *extra,
        )
        .join(Status, Status.id == Case.status_id)
        .join(Priority, Priority.id == Case.priority_id)
        .join(Severity, Severity.id == Case.severity_id)
        .join(Customer, Customer.id == Case.customer_id)
        .outerjoin(Category, Category.id == Case.category_id)
        .outerjoin(Area, Area.id == Case.area_id)
        .outerjoin(Technician, Technician.id == Case.assignee_id)
    )


def _columns(model: Any, cls: type[Any], *skip: str) -> list[Any]:
    """The model's columns named like the result dataclass's fields (but ``skip``)."""
    return [getattr(model, f.name) for f in fields(cls) if f.name not in skip]


def _from_row(cls: type[D], source: Any, /, **given: Any) -> D:
    """A result dataclass from a row whose column labels are its field names."""
    values: dict[str, Any] = {
        f.name: source._mapping[f.name] for f in fields(cls) if f.name not in given
    }
    values.update(given)
    return cls(**values)


async def _catalog_id(session: AsyncSession, model: Any, param: str, name: str) -> int:
    """Resolve a catalog name case-insensitively in Python: SQLite's lower() is ASCII-only
    and the names are Spanish ("Técnica"), and catalog tables are small."""
    rows = (await session.execute(select(model.id, model.name))).all()
    wanted = name.strip().casefold()
    for row in rows:
        if row.name.casefold() == wanted:
            return int(row.id)
    raise QueryError(param, f"unknown {param} {name!r}")


async def _case_conditions(session: AsyncSession, f: CaseFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.status:
        conds.append(Case.status_id == await _catalog_id(session, Status, "status", f.status))
    if f.area:
        conds.append(Case.area_id == await _catalog_id(session, Area, "area", f.area))
    if f.assignee:
        tech = await _catalog_id(session, Technician, "assignee", f.assignee)
        conds.append(Case.assignee_id == tech)
    if f.channel:
        conds.append(Case.origin_channel == f.channel.strip().lower())
    if f.customer:
        value = f.customer.strip()
        # Identities are stored normalized: emails lower-cased, phones E.164 without spaces.
        idents = {value.lower(), value.replace(" ", "")}
        by_identity = Case.customer_id.in_(
            select(CustomerIdentity.customer_id).where(CustomerIdentity.value.in_(idents))
        )
        # A short all-digit value may be a customer id (a phone would carry its "+").
        is_id = value.isdigit() and len(value) <= 18
        conds.append(or_(Case.customer_id == int(value), by_identity) if is_id else by_identity)
    if f.q and f.q.strip():
        pattern = like_pattern(f.q.strip())

        def has(*cols: Any) -> ColumnElement[bool]:
            return or_(*(col.ilike(pattern, escape="\\") for col in cols))

        in_messages = exists().where(Message.case_id == Case.id, has(Message.subject, Message.text))
        conds.append(or_(has(Case.title, Case.description), in_messages))
    return conds


async def list_cases(
    session: AsyncSession,
    filters: CaseFilters | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[CaseRow]:
    """Cases matching every given filter, newest first. Unknown catalog names raise
    QueryError (a typo should not look like "no cases")."""
    conds = await _case_conditions(session, filters or CaseFilters())
    stmt = _case_select().where(and_(*conds)) if conds else _case_select()
    rows, next_cursor = await _page(session, stmt, Case.id, limit, cursor)
    return Page([_from_row(CaseRow, r) for r in rows], next_cursor)


async def get_case(session: AsyncSession, number: str) -> CaseDetail | None:
    """One case by number with names resolved and its merged timeline, or None."""
    parent = aliased(Case)
    merged = aliased(Case)
    cloned = aliased(Case)
    stmt = (
        _case_select(
            *_columns(Case, CaseDetail, *_DETAIL_DERIVED),
            Status.kind.label("status_kind"),
            parent.number.label("parent"),
            merged.number.label("merged_into"),
            cloned.number.label("cloned_from"),
        )
        .outerjoin(parent, parent.id == Case.parent_id)
        .outerjoin(merged, merged.id == Case.merged_into_id)
        .outerjoin(cloned, cloned.id == Case.cloned_from_id)
        .where(Case.number.in_({number.strip(), number.strip().upper()}))
    )
    r = (await session.execute(stmt)).first()
    if r is None:
        return None
    identities = await session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.value)
        .where(CustomerIdentity.customer_id == r.customer_id)
        .order_by(CustomerIdentity.id)
    )
    children = await session.scalars(
        select(Case.number).where(Case.parent_id == r.id).order_by(Case.id)
    )
    return _from_row(
        CaseDetail,
        r,
        row=_from_row(CaseRow, r),
        children=tuple(children),
        tags=list(r.tags or []),
        cc=list(r.cc or []),
        identities=tuple(Identity(i.kind, i.value) for i in identities),
        timeline=await case_timeline(session, r.id),
    )


async def case_timeline(session: AsyncSession, case_id: int) -> tuple[TimelineEntry, ...]:
    """Messages and events of a case in time order; at the same instant a message comes
    before the events it caused (a new case's message and its created/routed events share
    the batch's timestamp)."""
    stmt = select(*_columns(Message, TimelineMessage, "attachments"))
    messages = (await session.execute(stmt.where(Message.case_id == case_id))).all()
    files: dict[int, list[AttachmentInfo]] = {}
    if messages:
        rows = await session.execute(
            select(Attachment.message_id, *_columns(Attachment, AttachmentInfo))
            .where(Attachment.message_id.in_([m.id for m in messages]))
            .order_by(Attachment.id)
        )
        for a in rows:
            files.setdefault(a.message_id, []).append(_from_row(AttachmentInfo, a))
    events = await session.execute(
        select(*_columns(CaseEvent, TimelineEvent)).where(CaseEvent.case_id == case_id)
    )
    timeline: list[TimelineEntry] = [
        _from_row(TimelineMessage, m, attachments=tuple(files.get(m.id, ()))) for m in messages
    ]
    timeline += [_from_row(TimelineEvent, e, detail=dict(e.detail or {})) for e in events]
    timeline.sort(key=lambda e: (e.created_at, isinstance(e, TimelineEvent), e.id))
    return tuple(timeline)


# --- inbound -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboundRow:
    id: int
    received_at: datetime
    channel: str
    external_id: str
    status: str
    error: str | None
    case_number: str | None
    retries: int


async def list_inbound(
    session: AsyncSession,
    status: str | None = None,
    channel: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[InboundRow]:
    """The inbound log, newest first (raw bytes are not loaded)."""
    stmt = select(
        *_columns(Inbound, InboundRow, "case_number"), Case.number.label("case_number")
    ).outerjoin(Case, Case.id == Inbound.case_id)
    if status:
        stmt = stmt.where(Inbound.status == status)
    if channel:
        stmt = stmt.where(Inbound.channel == channel.strip().lower())
    rows, next_cursor = await _page(session, stmt, Inbound.id, limit, cursor)
    return Page([_from_row(InboundRow, r) for r in rows], next_cursor)


async def failed_inbound_ids(session: AsyncSession) -> list[int]:
    """Every failed inbound row, oldest first (replayed in arrival order)."""
    rows = await session.scalars(
        select(Inbound.id).where(Inbound.status == "failed").order_by(Inbound.id)
    )
    return list(rows)
