"""What a change to a case's fields means: validated against the catalog, turned into column
values, and described as (before, after) pairs for the case's history.

Shared by every front end (API PATCH, CLI, clone overrides): the shape of the input (types,
unknown keys) is the front end's to check; names, references and impossible values are
checked here, inside the transaction, against what the database holds now. Every refusal
names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection, Row

from routing.catalog import CatalogSnapshot
from storage.models import Case
from storage.operations import OperationRefused

# The fields a case change may name, in the order they are applied and reported.
EDITABLE = (
    "title",
    "status",
    "priority",
    "severity",
    "category",
    "subreason",
    "area",
    "assignee",
    "tags",
    "cc",
    "watchers",
    "is_public",
    "solution",
    "reopen_at",
    "parent",
)
CATALOG_FIELDS = {
    "status": ("statuses", "status_id"),
    "priority": ("priorities", "priority_id"),
    "severity": ("severities", "severity_id"),
    "category": ("categories", "category_id"),
    "area": ("areas", "area_id"),
    "assignee": ("technicians", "assignee_id"),
}
NULLABLE = frozenset({"category", "subreason", "area", "assignee", "reopen_at", "parent"})
ADDRESS_LISTS = frozenset({"cc", "watchers"})
MAX_TAGS = 50
MAX_TAG_LENGTH = 60
MAX_CC = 50
MAX_PARENT_DEPTH = 100


# Built once (statement construction and its cache key cost more than the lookup).
CASE_BY_NUMBER = select(Case.__table__).where(Case.number.in_(bindparam("numbers", expanding=True)))


def find_case(conn: Connection, number: str, param: str = "number") -> Row[Any]:
    """The case row by number (any case), or a not-found refusal naming ``param``."""
    wanted = number.strip()
    row = conn.execute(CASE_BY_NUMBER, {"numbers": [wanted, wanted.upper()]}).first()
    if row is None:
        raise OperationRefused("not_found", f"no case {wanted}", param)
    return row


@dataclass
class Plan:
    """Column values to write and the (before, after) of each field that changes."""

    values: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)


def plan_changes(
    conn: Connection,
    case: Row[Any],
    requested: Mapping[str, Any],
    catalog: CatalogSnapshot,
    now: datetime,
) -> Plan:
    """Validate ``requested`` against ``case`` and the catalog; what it would change."""
    unknown = sorted(set(requested) - set(EDITABLE))
    if unknown:
        raise OperationRefused(
            "invalid",
            f"unknown field(s) {', '.join(unknown)}; known: {', '.join(EDITABLE)}",
            unknown[0],
        )
    plan = Plan()
    for name in EDITABLE:
        if name not in requested:
            continue
        value = requested[name]
        if value is None and name not in NULLABLE:
            raise OperationRefused("invalid", f"{name} cannot be empty", name)
        if name in CATALOG_FIELDS:
            _catalog_field(plan, case, name, value, catalog, now)
        elif name == "parent":
            _parent(conn, plan, case, value)
        else:
            _plain_field(plan, case, name, value, catalog, now)
    return plan


def _catalog_field(
    plan: Plan, case: Row[Any], name: str, value: Any, catalog: CatalogSnapshot, now: datetime
) -> None:
    kind, column = CATALOG_FIELDS[name]
    before = catalog.get(kind, getattr(case, column))
    if value is None:
        item = None
    else:
        if not isinstance(value, str) or not value.strip():
            raise OperationRefused("invalid", f"{name} must be a name from the catalog", name)
        item = catalog.find(kind, value.strip())
        if item is None:
            known = ", ".join(i.name for i in getattr(catalog, kind))
            raise OperationRefused("invalid", f"unknown {name} {value!r}; known: {known}", name)
        if kind == "categories" and not item.in_use and (before is None or before.id != item.id):
            raise OperationRefused("invalid", f"category {item.name!r} is not in use", name)
    if (before.id if before else None) == (item.id if item else None):
        return
    plan.values[column] = item.id if item else None
    plan.changes[name] = (before.name if before else None, item.name if item else None)
    if name == "status":
        was_closed = before is not None and before.kind == "closed"
        if item is not None and item.kind == "closed" and not was_closed:
            plan.values["closed_at"] = now
        elif item is not None and item.kind != "closed" and case.closed_at is not None:
            plan.values["closed_at"] = None  # reopened


def _plain_field(
    plan: Plan, case: Row[Any], name: str, value: Any, catalog: CatalogSnapshot, now: datetime
) -> None:
    before = getattr(case, name)
    if name == "title":
        after: Any = _text(name, value, 500)
        if not after.strip():
            raise OperationRefused("invalid", "title cannot be empty", name)
    elif name == "solution":
        after = _text(name, value, 100_000)
    elif name == "subreason":
        after = _subreason(case, value, catalog, plan)
    elif name == "is_public":
        if not isinstance(value, bool):
            raise OperationRefused("invalid", "is_public must be true or false", name)
        after = value
    elif name == "tags":
        after = _tags(value)
        before = list(before or [])
    elif name in ADDRESS_LISTS:
        after = _addresses(name, value)
        before = list(before or [])
    elif name == "reopen_at":
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise OperationRefused("invalid", "reopen_at must be a date-time with a zone", name)
        if value is not None and value <= now:
            raise OperationRefused("invalid", "reopen_at must be in the future", name)
        after = value
    else:  # pragma: no cover - EDITABLE and the branches above list the same names
        raise OperationRefused("invalid", f"{name} cannot be changed", name)
    if after == before:
        return
    plan.values[name] = after
    plan.changes[name] = (
        before.isoformat() if isinstance(before, datetime) else before,
        after.isoformat() if isinstance(after, datetime) else after,
    )


def _text(name: str, value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise OperationRefused("invalid", f"{name} must be text", name)
    if len(value) > limit:
        raise OperationRefused("invalid", f"{name} is longer than {limit} characters", name)
    return value


def _subreason(case: Row[Any], value: Any, catalog: CatalogSnapshot, plan: Plan) -> str | None:
    if value is None or value == "":
        return None
    text = _text("subreason", value, 300).strip()
    category_id = plan.values.get("category_id", case.category_id)
    category = catalog.get("categories", category_id)
    if category is not None and category.subreasons:
        known = {s.casefold(): s for s in category.subreasons}
        if text.casefold() not in known:
            raise OperationRefused(
                "invalid",
                f"unknown subreason {text!r} for category {category.name}; known: "
                + "; ".join(category.subreasons),
                "subreason",
            )
        return str(known[text.casefold()])
    return text


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise OperationRefused("invalid", "tags must be a list of text", "tags")
    tags: list[str] = []
    for tag in value:
        tag = " ".join(tag.split())
        if not tag:
            continue
        if len(tag) > MAX_TAG_LENGTH:
            raise OperationRefused(
                "invalid", f"tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH}", "tags"
            )
        if tag.casefold() not in {t.casefold() for t in tags}:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise OperationRefused("invalid", f"at most {MAX_TAGS} tags", "tags")
    return tags


def _addresses(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise OperationRefused("invalid", f"{name} must be a list of email addresses", name)
    addresses: list[str] = []
    for raw in value:
        try:
            address = validate_email(raw.strip(), check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise OperationRefused("invalid", f"{name} {raw!r}: {exc}", name) from None
        address = address.lower()
        if address not in addresses:
            addresses.append(address)
    if len(addresses) > MAX_CC:
        raise OperationRefused("invalid", f"at most {MAX_CC} {name} addresses", name)
    return addresses


def _parent(conn: Connection, plan: Plan, case: Row[Any], value: Any) -> None:
    before = _number_of(conn, case.parent_id)
    if value is None or value == "":
        if case.parent_id is not None:
            plan.values["parent_id"] = None
            plan.changes["parent"] = (before, None)
        return
    if not isinstance(value, str):
        raise OperationRefused("invalid", "parent must be a case number", "parent")
    parent = find_case(conn, value, "parent")
    if parent.id == case.id:
        raise OperationRefused("invalid", "a case cannot be its own parent", "parent")
    if parent.merged_into_id is not None:
        raise OperationRefused("invalid", f"{parent.number} was merged into another case", "parent")
    # Walk up from the new parent: meeting this case would close a cycle.
    ancestor = parent.parent_id
    for _depth in range(MAX_PARENT_DEPTH):
        if ancestor is None:
            break
        if ancestor == case.id:
            raise OperationRefused(
                "invalid",
                f"{parent.number} is a descendant of {case.number}: that would be a cycle",
                "parent",
            )
        ancestor = conn.scalar(select(Case.parent_id).where(Case.id == ancestor))
    else:
        raise OperationRefused("invalid", "the parent chain is too deep", "parent")
    if parent.id == case.parent_id:
        return
    plan.values["parent_id"] = parent.id
    plan.changes["parent"] = (before, parent.number)


def _number_of(conn: Connection, case_id: int | None) -> str | None:
    if case_id is None:
        return None
    return conn.scalar(select(Case.number).where(Case.id == case_id))
