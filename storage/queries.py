"""Typed read queries for operators: case lists and details, events, the inbound log.

Lists are keyset-paginated (``storage.paging``). Callers get plain frozen dataclasses with
every catalog name already resolved, so nothing is lazily loaded after the session closes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, bindparam, exists, or_, select
from sqlalchemy.engine import Connection
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
from storage.paging import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    Page,
    QueryError,
    columns_of,
    from_row,
    keyset_page,
    like_pattern,
)

if TYPE_CHECKING:
    from storage.paging import AnySelect

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "QueryError"]

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
    watchers: list[Any]
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


def _catalog_id(conn: Connection, model: Any, param: str, name: str) -> int:
    """Resolve a catalog name case-insensitively in Python: SQLite's lower() is ASCII-only
    and the names are Spanish ("Técnica"), and catalog tables are small."""
    rows = (conn.execute(select(model.id, model.name))).all()
    wanted = name.strip().casefold()
    for row in rows:
        if row.name.casefold() == wanted:
            return int(row.id)
    raise QueryError(param, f"unknown {param} {name!r}")


def _case_conditions(conn: Connection, f: CaseFilters) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if f.status:
        conds.append(Case.status_id == _catalog_id(conn, Status, "status", f.status))
    if f.area:
        conds.append(Case.area_id == _catalog_id(conn, Area, "area", f.area))
    if f.assignee:
        tech = _catalog_id(conn, Technician, "assignee", f.assignee)
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


def list_cases(
    conn: Connection,
    filters: CaseFilters | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[CaseRow]:
    """Cases matching every given filter, newest first. Unknown catalog names raise
    QueryError (a typo should not look like "no cases")."""
    conds = _case_conditions(conn, filters or CaseFilters())
    stmt = _case_select().where(and_(*conds)) if conds else _case_select()
    rows, next_cursor = keyset_page(conn, stmt, Case.id, limit, cursor)
    return Page([from_row(CaseRow, r) for r in rows], next_cursor)


# Built once: a statement with aliased tables costs more to build (column adaptation) than
# to run, and a case is read on every GET and PATCH.
_PARENT, _MERGED, _CLONED = aliased(Case), aliased(Case), aliased(Case)
_CASE_DETAIL = (
    _case_select(
        *columns_of(Case, CaseDetail, *_DETAIL_DERIVED),
        Status.kind.label("status_kind"),
        _PARENT.number.label("parent"),
        _MERGED.number.label("merged_into"),
        _CLONED.number.label("cloned_from"),
    )
    .outerjoin(_PARENT, _PARENT.id == Case.parent_id)
    .outerjoin(_MERGED, _MERGED.id == Case.merged_into_id)
    .outerjoin(_CLONED, _CLONED.id == Case.cloned_from_id)
    .where(Case.number.in_(bindparam("numbers", expanding=True)))
)
_IDENTITIES_OF = (
    select(CustomerIdentity.kind, CustomerIdentity.value)
    .where(CustomerIdentity.customer_id == bindparam("customer"))
    .order_by(CustomerIdentity.id)
)
_CHILDREN_OF = select(Case.number).where(Case.parent_id == bindparam("case")).order_by(Case.id)
_MESSAGES_OF = select(*columns_of(Message, TimelineMessage, "attachments")).where(
    Message.case_id == bindparam("case")
)
_ATTACHMENTS_OF = (
    select(Attachment.message_id, *columns_of(Attachment, AttachmentInfo))
    .where(Attachment.message_id.in_(bindparam("ids", expanding=True)))
    .order_by(Attachment.id)
)
_EVENTS_OF = select(*columns_of(CaseEvent, TimelineEvent)).where(
    CaseEvent.case_id == bindparam("case")
)
_EVENT = select(*columns_of(CaseEvent, TimelineEvent)).where(CaseEvent.id == bindparam("id"))


def get_case(conn: Connection, number: str, *, timeline: bool = True) -> CaseDetail | None:
    """One case by number with names resolved and (unless ``timeline`` is false) its
    merged timeline, or None."""
    wanted = number.strip()
    r = (conn.execute(_CASE_DETAIL, {"numbers": [wanted, wanted.upper()]})).first()
    if r is None:
        return None
    identities = conn.execute(_IDENTITIES_OF, {"customer": r.customer_id})
    children = conn.scalars(_CHILDREN_OF, {"case": r.id})
    return from_row(
        CaseDetail,
        r,
        row=from_row(CaseRow, r),
        children=tuple(children),
        tags=list(r.tags or []),
        cc=list(r.cc or []),
        watchers=list(r.watchers or []),
        identities=tuple(Identity(i.kind, i.value) for i in identities),
        timeline=case_timeline(conn, r.id) if timeline else (),
    )


def case_timeline(conn: Connection, case_id: int) -> tuple[TimelineEntry, ...]:
    """Messages and events of a case in time order; at the same instant a message comes
    before the events it caused (a new case's message and its created/routed events share
    the batch's timestamp)."""
    messages = (conn.execute(_MESSAGES_OF, {"case": case_id})).all()
    files: dict[int, list[AttachmentInfo]] = {}
    if messages:
        rows = conn.execute(_ATTACHMENTS_OF, {"ids": [m.id for m in messages]})
        for a in rows:
            files.setdefault(a.message_id, []).append(from_row(AttachmentInfo, a))
    events = conn.execute(_EVENTS_OF, {"case": case_id})
    timeline: list[TimelineEntry] = [
        from_row(TimelineMessage, m, attachments=tuple(files.get(m.id, ()))) for m in messages
    ]
    timeline += [from_row(TimelineEvent, e, detail=dict(e.detail or {})) for e in events]
    timeline.sort(key=lambda e: (e.created_at, isinstance(e, TimelineEvent), e.id))
    return tuple(timeline)


def get_event(conn: Connection, event_id: int) -> TimelineEvent | None:
    row = (conn.execute(_EVENT, {"id": event_id})).first()
    return from_row(TimelineEvent, row, detail=dict(row.detail or {})) if row else None


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


def list_inbound(
    conn: Connection,
    status: str | None = None,
    channel: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> Page[InboundRow]:
    """The inbound log, newest first (raw bytes are not loaded)."""
    stmt = select(
        *columns_of(Inbound, InboundRow, "case_number"), Case.number.label("case_number")
    ).outerjoin(Case, Case.id == Inbound.case_id)
    if status:
        stmt = stmt.where(Inbound.status == status)
    if channel:
        stmt = stmt.where(Inbound.channel == channel.strip().lower())
    rows, next_cursor = keyset_page(conn, stmt, Inbound.id, limit, cursor)
    return Page([from_row(InboundRow, r) for r in rows], next_cursor)


def failed_inbound_ids(conn: Connection) -> list[int]:
    """Every failed inbound row, oldest first (replayed in arrival order)."""
    rows = conn.scalars(select(Inbound.id).where(Inbound.status == "failed").order_by(Inbound.id))
    return list(rows)
