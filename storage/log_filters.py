"""The outbound log's filters: one typed value, parsed from query parameters (or a saved
filter's params) and turned into SQL conditions on ``notifications``.

The same conditions serve the list, the count, the CSV export and a bulk resend's
selection, so "what you see is what you resend". Every filter has an index that ends in
the list's key (migration 0010), and ``q`` uses the database's full-text index
(``storage.search_sql``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, literal_column, select
from sqlalchemy.engine import Connection

from storage.models import Case, Notification
from storage.paging import QueryError
from storage.search_sql import matches

CHANNELS = ("email", "sms", "push", "telegram")
STATUSES = ("pending", "sending", "sent", "failed", "dead", "suppressed")
TRIGGERS = ("auto", "manual")
TIMES = ("created", "sent")
# The parameters a list, an export, a saved filter and a bulk resend share.
FILTER_PARAMS = (
    "channel", "status", "sent", "trigger", "template", "since", "until", "time", "case",
    "customer", "recipient", "provider", "resend_of", "q",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LogFilters:
    channel: tuple[str, ...] = ()  # any of these
    status: tuple[str, ...] = ()
    sent: bool | None = None
    trigger: str | None = None
    template: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    time: Literal["created", "sent"] = "created"  # which time since/until and the order use
    case: str | None = None  # a case number
    customer: int | None = None
    recipient: str | None = None
    provider: str | None = None
    resend_of: int | None = None
    q: str | None = None
    # Not a parameter: set from the caller (an agent sees their own cases' rows only).
    technician_id: int | None = None

    def params(self) -> dict[str, str]:
        """The filters as query parameters (what a saved filter stores); empty ones left out."""
        out: dict[str, str] = {}
        for name, value in asdict(self).items():
            if name == "technician_id" or value in (None, (), ""):
                continue
            if name == "time" and value == "created":
                continue
            if isinstance(value, tuple):
                out[name] = ",".join(value)
            elif isinstance(value, bool):
                out[name] = "true" if value else "false"
            elif isinstance(value, datetime):
                out[name] = value.isoformat()
            else:
                out[name] = str(value)
        return out

    def scoped(self, technician_id: int | None) -> LogFilters:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["technician_id"] = technician_id
        return LogFilters(**values)


def _choices(param: str, raw: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(v.strip().lower() for v in raw.split(",") if v.strip()))
    for value in values:
        if value not in allowed:
            raise QueryError(param, f"{param} must be among {', '.join(allowed)}; got {value!r}")
    return values


def _when(param: str, raw: str, *, end_of_day: bool) -> datetime:
    """An ISO date or date-time; a bare date is that day (until: the whole day) in UTC."""
    text = raw.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day, time(), UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(param, f"{param} must be an ISO date or date-time; got {raw!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _number(param: str, raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or len(text) > 18:
        raise QueryError(param, f"{param} must be a whole number; got {raw!r}")
    return int(text)


def _text(param: str, raw: str, longest: int = 320) -> str | None:
    text = raw.strip()
    if len(text) > longest:
        raise QueryError(param, f"{param} is at most {longest} characters")
    return text or None


def parse_filters(params: Mapping[str, Any]) -> LogFilters:
    """The filters among ``params`` (other keys are the caller's business). Each bad value
    raises QueryError naming its parameter."""
    got = {k: str(v) for k, v in params.items() if k in FILTER_PARAMS and v is not None}
    values: dict[str, Any] = {}
    if "channel" in got:
        values["channel"] = _choices("channel", got["channel"], CHANNELS)
    if "status" in got:
        values["status"] = _choices("status", got["status"], STATUSES)
    if got.get("sent", "").strip():
        sent = got["sent"].strip().lower()
        if sent not in ("true", "false", "1", "0", "yes", "no"):
            raise QueryError("sent", f"sent must be true or false; got {got['sent']!r}")
        values["sent"] = sent in ("true", "1", "yes")
    if got.get("trigger", "").strip():
        values["trigger"] = _choices("trigger", got["trigger"], TRIGGERS)[0]
    if got.get("time", "").strip():
        values["time"] = _choices("time", got["time"], TIMES)[0]
    for name in ("since", "until"):
        if got.get(name, "").strip():
            values[name] = _when(name, got[name], end_of_day=name == "until")
    for name in ("customer", "resend_of"):
        if got.get(name, "").strip():
            values[name] = _number(name, got[name])
    for name in ("template", "case", "provider"):
        if name in got:
            values[name] = _text(name, got[name], 100)
    if "recipient" in got:
        values["recipient"] = _text("recipient", got["recipient"])
    if "q" in got:
        values["q"] = _text("q", got["q"], 200)
    filters = LogFilters(**values)
    if filters.since and filters.until and filters.since >= filters.until:
        raise QueryError("until", "until must be later than since")
    return filters


def merged_params(saved: Mapping[str, Any] | None, given: Mapping[str, Any]) -> dict[str, str]:
    """A saved filter's params overridden by the filter parameters given beside it (what
    ``filter=NAME`` with more parameters means, in the API and the CLI alike)."""
    merged = {k: str(v) for k, v in (saved or {}).items()}
    merged.update({k: str(v) for k, v in given.items() if k in FILTER_PARAMS and v is not None})
    return merged


def time_column(filters: LogFilters) -> Any:
    return Notification.sent_at if filters.time == "sent" else Notification.created_at


def conditions(
    conn: Connection, f: LogFilters, search_below: int | None = None
) -> list[ColumnElement[bool]]:
    """The SQL conditions of ``f`` (ANDed by the caller). An unknown case number raises
    QueryError: a typo should not look like an empty log. ``search_below``: for a page of
    the list newest first, the id of the row it starts after, where a search's matches
    are looked for first (``storage.search_sql``)."""
    n = Notification
    conds: list[ColumnElement[bool]] = []
    if f.channel:
        conds.append(n.channel == f.channel[0] if len(f.channel) == 1 else n.channel.in_(f.channel))
    if f.status:
        conds.append(n.status == f.status[0] if len(f.status) == 1 else n.status.in_(f.status))
    if f.sent is not None:
        conds.append(n.status == "sent" if f.sent else n.status != "sent")
    if f.trigger == "manual":
        # A literal: the partial index of manual rows applies only to a known value.
        conds.append(n.trigger == literal_column("'manual'"))
    elif f.trigger:
        conds.append(n.trigger == f.trigger)
    if f.template:
        conds.append(n.template == f.template)
    if f.provider:
        conds.append(n.provider == f.provider)
    if f.recipient:
        conds.append(n.recipient == f.recipient)
    if f.customer is not None:
        conds.append(n.customer_id == f.customer)
    if f.resend_of is not None:
        conds.append(n.resend_of == f.resend_of)
    if f.case:
        wanted = f.case.strip()
        case_id = conn.scalar(select(Case.id).where(Case.number.in_((wanted, wanted.upper()))))
        if case_id is None:
            raise QueryError("case", f"no case {wanted}")
        conds.append(n.case_id == case_id)
    column = time_column(f)
    if f.time == "sent":
        conds.append(column.is_not(None))
    if f.since is not None:
        conds.append(column >= f.since)
    if f.until is not None:
        conds.append(column < f.until)
    if f.q:
        conds.append(matches(conn, f.q, n.id, search_below))
    if f.technician_id is not None:
        conds.append(n.case_id.in_(select(Case.id).where(Case.assignee_id == f.technician_id)))
    return conds
