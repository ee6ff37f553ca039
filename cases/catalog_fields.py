"""The catalog's fields (seed 004): how each kind is shown and how given values are checked.

One table per kind names its fields; ``item_view`` is the shape the API answers and the
TOML export writes (references by name), and ``column_values`` turns given values into
column values, refusing impossible ones with the field named (``view_value`` does the same
for one field and answers in ``item_view``'s shape, for comparing a file with the
database). ``DEFAULTS`` are the values of fields not given. Areas, statuses, priorities,
severities and categories each have exactly one default; technicians have none.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from email_validator import EmailNotValidError, validate_email

from routing.catalog import CatalogSnapshot
from storage.models import Area, Category, Priority, Severity, Status, Technician
from storage.operations import OperationRefused

KINDS = ("areas", "statuses", "priorities", "severities", "categories", "technicians")
MODELS: dict[str, Any] = {
    "areas": Area,
    "statuses": Status,
    "priorities": Priority,
    "severities": Severity,
    "categories": Category,
    "technicians": Technician,
}
WITH_DEFAULT = frozenset(KINDS) - {"technicians"}
SINGULAR = {
    "areas": "area",
    "statuses": "status",
    "priorities": "priority",
    "severities": "severity",
    "categories": "category",
    "technicians": "technician",
}
# The fields of each kind beyond ``id``, in the order they are shown.
FIELDS: dict[str, tuple[str, ...]] = {
    "areas": ("name", "is_default"),
    "statuses": ("name", "kind", "rank", "is_default"),
    "priorities": ("name", "colour", "rank", "is_default"),
    "severities": ("name", "rank", "is_default"),
    "categories": (
        "name",
        "comment",
        "price",
        "area",
        "technician",
        "in_use",
        "available_technician_app",
        "available_customer_app",
        "available_web_portal",
        "customer_description",
        "colour",
        "subreasons",
        "is_default",
    ),
    "technicians": ("name", "email", "phone", "language", "areas", "available"),
}
# What an item has for a field that is not given (the product's defaults, as in the API's
# create bodies and the config's seed); a status's rank defaults to its position instead.
DEFAULTS: dict[str, Any] = {
    "is_default": False,
    "kind": "open",
    "rank": 0,
    "colour": "#808080",
    "comment": "",
    "price": None,
    "area": None,
    "technician": None,
    "in_use": True,
    "available_technician_app": True,
    "available_customer_app": True,
    "available_web_portal": True,
    "customer_description": "",
    "subreasons": [],
    "email": None,
    "phone": None,
    "language": "es",
    "areas": [],
    "available": True,
}
REFERENCES = {"area": "areas", "technician": "technicians", "areas": "areas"}
STATUS_KINDS = ("open", "pending", "closed")
LANGUAGES = ("es", "en")
COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
PHONE = re.compile(r"\+?[0-9][0-9 ().-]{3,30}")
BOOLEANS = frozenset(
    {
        "is_default",
        "in_use",
        "available_technician_app",
        "available_customer_app",
        "available_web_portal",
        "available",
    }
)


def item_view(kind: str, item: Any, catalog: CatalogSnapshot) -> dict[str, Any]:
    """An item as the API shows it: every field, references by name."""
    view: dict[str, Any] = {"id": item.id}
    for name in FIELDS[kind]:
        if name == "area":
            area = catalog.get("areas", item.area_id)
            view[name] = area.name if area else None
        elif name == "technician":
            tech = catalog.get("technicians", item.technician_id)
            view[name] = tech.name if tech else None
        elif name == "areas":
            view[name] = [a.name for i in item.area_ids if (a := catalog.get("areas", i))]
        elif name == "price":
            view[name] = float(item.price) if item.price is not None else None
        elif name == "subreasons":
            view[name] = list(item.subreasons)
        else:
            view[name] = getattr(item, name)
    return view


def view_value(kind: str, name: str, value: Any) -> Any:
    """``value`` of field ``name`` checked and normalized as it would be stored, in the
    shape ``item_view`` shows it. References (``area``, ``technician``, ``areas``) are
    checked for their type only: which items exist is the caller's business."""
    if name in ("area", "technician"):
        if value is not None and not isinstance(value, str):
            raise refuse(name, f"{name} must name {SINGULAR[REFERENCES[name]]} by name")
        return (value.strip() or None) if value is not None else None
    if name == "areas":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise refuse(name, "areas must be a list of area names")
        names: dict[str, str] = {}  # the first spelling of each, in the given order
        for area in value:
            names.setdefault(area.strip().casefold(), area.strip())
        return [n for n in names.values() if n]
    columns, _ = column_values(kind, {name: value}, CatalogSnapshot())
    stored = columns[name]
    return float(stored) if name == "price" and stored is not None else stored


def refuse(field: str, message: str) -> OperationRefused:
    return OperationRefused("invalid", message, field)


def column_values(
    kind: str, given: Mapping[str, Any], catalog: CatalogSnapshot
) -> tuple[dict[str, Any], list[int] | None]:
    """Column values for ``given`` (API field names), and a technician's area ids when
    given. Unknown fields and impossible values are refused with the field named."""
    unknown = sorted(set(given) - set(FIELDS[kind]))
    if unknown:
        raise refuse(
            unknown[0],
            f"unknown field(s) {', '.join(unknown)} for {kind}; known: {', '.join(FIELDS[kind])}",
        )
    columns: dict[str, Any] = {}
    area_ids: list[int] | None = None
    for name, value in given.items():
        if name == "name":
            columns[name] = _name(value)
        elif name in BOOLEANS:
            if not isinstance(value, bool):
                raise refuse(name, f"{name} must be true or false")
            columns[name] = value
        elif name == "rank":
            if not isinstance(value, int) or isinstance(value, bool):
                raise refuse(name, "rank must be a whole number")
            columns[name] = value
        elif name == "kind":
            if value not in STATUS_KINDS:
                raise refuse(name, f"kind must be one of {', '.join(STATUS_KINDS)}")
            columns[name] = value
        elif name == "colour":
            if not isinstance(value, str) or not COLOUR.fullmatch(value):
                raise refuse(name, "colour must look like #RRGGBB")
            columns[name] = value.upper()
        elif name in ("comment", "customer_description"):
            columns[name] = _text(name, value, 10_000)
        elif name == "price":
            columns[name] = _price(value)
        elif name == "subreasons":
            columns[name] = _subreasons(value)
        elif name == "area":
            columns["area_id"] = _reference(catalog, "areas", name, value)
        elif name == "technician":
            columns["technician_id"] = _reference(catalog, "technicians", name, value)
        elif name == "areas":
            if not isinstance(value, list):
                raise refuse(name, "areas must be a list of area names")
            area_ids = []
            for area in value:
                area_id = _reference(catalog, "areas", name, area)
                if area_id is not None and area_id not in area_ids:
                    area_ids.append(area_id)
        elif name == "email":
            columns[name] = _email(value)
        elif name == "phone":
            if value is not None and (not isinstance(value, str) or not PHONE.fullmatch(value)):
                raise refuse(name, "phone must be a phone number, e.g. +54 11 5555 0101")
            columns[name] = value.strip() if value else None
        elif name == "language":
            if value not in LANGUAGES:
                raise refuse(name, f"language must be one of {', '.join(LANGUAGES)}")
            columns[name] = value
    return columns, area_ids


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise refuse("name", "name cannot be empty")
    name = " ".join(value.split())
    if len(name) > 200:
        raise refuse("name", "name is longer than 200 characters")
    return name


def _text(name: str, value: Any, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise refuse(name, f"{name} must be text of at most {limit} characters")
    return value


def _price(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise refuse("price", "price must be a number")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise refuse("price", "price must be a number") from None
    if not price.is_finite() or price < 0 or price >= Decimal("1e10"):
        raise refuse("price", "price must be zero or more, below 10,000,000,000")
    return price.quantize(Decimal("0.01"))


def _subreasons(value: Any) -> list[str]:
    # Seed 004 types them in one field separated by semicolons; a list is accepted too.
    items = value.split(";") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise refuse("subreasons", "subreasons must be a list of text (or one text split by ;)")
    cleaned: list[str] = []
    for item in items:
        item = " ".join(item.split())
        if item and item.casefold() not in {c.casefold() for c in cleaned}:
            if len(item) > 300:
                raise refuse("subreasons", "a subreason is at most 300 characters")
            cleaned.append(item)
    return cleaned


def _reference(catalog: CatalogSnapshot, kind: str, field: str, value: Any) -> int | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise refuse(field, f"{field} must name {SINGULAR[kind]} by name")
    item = catalog.find(kind, value.strip())
    if item is None:
        known = ", ".join(i.name for i in getattr(catalog, kind)) or "none yet"
        raise refuse(field, f"unknown {SINGULAR[kind]} {value!r}; known: {known}")
    return int(item.id)


def _email(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise refuse("email", "email must be an email address")
    try:
        return str(validate_email(value.strip(), check_deliverability=False).normalized).lower()
    except EmailNotValidError as exc:
        raise refuse("email", f"email {value!r}: {exc}") from None
