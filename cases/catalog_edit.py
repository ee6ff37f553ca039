"""Executor of catalog edits: create, change and delete areas, statuses, priorities,
severities, categories and technicians.

Every edit keeps the catalog whole: exactly one default per kind (choosing a new default
clears the old; the default cannot be unset or deleted without a successor), unique names,
the default status open or pending (new cases are born in it), and no item deleted while
something uses it unless a replacement is named, which then takes its place everywhere,
with an event on each case changed. Every edit bumps the catalog version, so the next
message is routed with it (``cases.catalog_state``, ``routing.catalog.CatalogCache``).

The rules are plain functions (``save_item``, ``delete_item``, ``item_uses``,
``check_default_status``) so that a whole-catalog import (``cases.catalog_import``) applies
them too, many edits in one operation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import JSON, delete, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from cases.catalog_fields import MODELS, SINGULAR, WITH_DEFAULT, column_values
from cases.catalog_state import CatalogInTransaction
from cases.operations import CatalogSaved, DeleteCatalogItem, SaveCatalogItem
from routing.catalog import CatalogSnapshot
from storage.models import Case, CaseEvent, Category, Counter, Notification, TechnicianArea, User
from storage.operations import Executor, OperationRefused, WriteContext

# Where cases refer to each kind: (case column, the field name in case events).
CASE_COLUMNS = {
    "areas": (Case.area_id, "area"),
    "statuses": (Case.status_id, "status"),
    "priorities": (Case.priority_id, "priority"),
    "severities": (Case.severity_id, "severity"),
    "categories": (Case.category_id, "category"),
    "technicians": (Case.assignee_id, "assignee"),
}
BUMP_VERSION = update(Counter).where(Counter.name == "catalog").values(value=Counter.value + 1)


class CatalogEditor(Executor):
    """Runs ``SaveCatalogItem`` and ``DeleteCatalogItem``, one item per operation."""

    def __init__(self, catalogs: CatalogInTransaction) -> None:
        self.catalogs = catalogs

    def run_one(
        self, conn: Connection, op: SaveCatalogItem | DeleteCatalogItem, ctx: WriteContext
    ) -> CatalogSaved:
        if op.kind not in MODELS:
            raise OperationRefused("not_found", f"no catalog kind {op.kind!r}", "kind")
        catalog = self.catalogs.get(conn, ctx)
        if isinstance(op, DeleteCatalogItem):
            saved = delete_item(conn, op.kind, op.item_id, op.replace_with, op.actor, catalog, ctx)
        else:
            saved = save_item(conn, op.kind, op.values, catalog, op.item_id)
        conn.execute(BUMP_VERSION)
        self.catalogs.changed(ctx)
        return saved


# The rules below are shared by every catalog writer (one edit here, a whole file in
# ``cases.catalog_import``); the caller bumps the version once its edits are done.

# --- create / change -------------------------------------------------------------------


def save_item(
    conn: Connection,
    kind: str,
    values: Mapping[str, Any],
    catalog: CatalogSnapshot,
    item_id: int | None = None,
) -> CatalogSaved:
    """Create (``item_id`` None) or change an item; ``values`` by API field name, checked
    against ``catalog`` (references by name, unique names, one default)."""
    model = MODELS[kind]
    columns, area_ids = column_values(kind, values, catalog)
    current = catalog.get(kind, item_id) if item_id is not None else None
    if item_id is not None and current is None:
        raise OperationRefused("not_found", f"no {SINGULAR[kind]} {item_id}")
    name = columns.get("name")
    if current is None and name is None:
        raise OperationRefused("invalid", "name is required", "name")
    if name is not None:
        clash = catalog.find(kind, name)
        if clash is not None and (current is None or clash.id != current.id):
            raise OperationRefused(
                "conflict", f"there is already a {SINGULAR[kind]} named {clash.name!r}", "name"
            )
    if kind in WITH_DEFAULT:
        _check_default(conn, kind, columns, current, catalog)
    if current is None:
        new_id = conn.scalar(insert(model).values(**columns).returning(model.id))
        assert new_id is not None
        item_id = int(new_id)
    else:
        item_id = int(current.id)
        if columns:
            conn.execute(update(model).where(model.id == item_id).values(**columns))
    if area_ids is not None:
        conn.execute(delete(TechnicianArea).where(TechnicianArea.technician_id == item_id))
        if area_ids:
            conn.execute(
                insert(TechnicianArea),
                [{"technician_id": item_id, "area_id": a} for a in area_ids],
            )
    return CatalogSaved(kind, item_id, created=current is None)


def check_default_status(status_kind: str, field: str) -> None:
    """New cases start in the default status, so it cannot be a closed one."""
    if status_kind == "closed":
        raise OperationRefused(
            "invalid", "the default status cannot be closed: new cases start in it", field
        )


def _check_default(
    conn: Connection,
    kind: str,
    columns: dict[str, Any],
    current: Any,
    catalog: CatalogSnapshot,
) -> None:
    model = MODELS[kind]
    existing = catalog.default(kind)
    is_default = columns.get("is_default")
    if is_default is False and current is not None and current.is_default:
        raise OperationRefused(
            "invalid",
            f"{current.name} is the default {SINGULAR[kind]}; make another one the default instead",
            "is_default",
        )
    if current is None and existing is None:
        columns["is_default"] = is_default = True  # the first of its kind
    becomes_default = bool(is_default) or (current is not None and current.is_default)
    if kind == "statuses" and becomes_default:
        status_kind = columns.get("kind", current.kind if current is not None else "open")
        check_default_status(status_kind, "kind" if "kind" in columns else "is_default")
    if is_default:
        conn.execute(update(model).where(model.is_default.is_(True)).values(is_default=False))


# --- delete ----------------------------------------------------------------------------


def delete_item(
    conn: Connection,
    kind: str,
    item_id: int,
    replace_with: int | None,
    actor: str,
    catalog: CatalogSnapshot,
    ctx: WriteContext,
) -> CatalogSaved:
    """Delete an item; one in use (or the default) only with a replacement, which takes
    its place everywhere."""
    model = MODELS[kind]
    item = catalog.get(kind, item_id)
    if item is None:
        raise OperationRefused("not_found", f"no {SINGULAR[kind]} {item_id}")
    replacement = None
    if replace_with is not None:
        replacement = catalog.get(kind, replace_with)
        if replacement is None or replacement.id == item.id:
            raise OperationRefused(
                "invalid",
                f"replace_with must name another {SINGULAR[kind]} (an id)",
                "replace_with",
            )
    in_use = {what: n for what, n in item_uses(conn, kind, item.id).items() if n}
    is_default = bool(getattr(item, "is_default", False))
    if replacement is None and (in_use or is_default):
        why = [f"{n} {what}" for what, n in in_use.items()]
        if is_default:
            why.append(f"it is the default {SINGULAR[kind]}")
        raise OperationRefused(
            "conflict",
            f"{SINGULAR[kind]} {item.name!r} is in use ({', '.join(why)}); name a replacement "
            "with replace_with",
            "replace_with",
        )
    changed = 0
    if replacement is not None:
        changed = _replace(conn, kind, item, replacement, actor, ctx)
        if is_default:
            conn.execute(update(model).where(model.id == replacement.id).values(is_default=True))
    if kind == "technicians":
        # The outbound log keeps what was sent to them (the address is on each row); it
        # only stops naming a technician who no longer exists.
        conn.execute(
            update(Notification)
            .where(Notification.technician_id == item.id)
            .values(technician_id=None)
        )
    conn.execute(delete(model).where(model.id == item.id))
    return CatalogSaved(kind, item.id, deleted=True, cases_changed=changed)


def item_uses(conn: Connection, kind: str, item_id: int) -> dict[str, int]:
    """What refers to an item, counted: cases, and categories, technicians or users."""
    column, _ = CASE_COLUMNS[kind]

    def count(stmt: Any) -> int:
        return int(conn.scalar(stmt) or 0)

    uses = {"cases": count(select(func.count()).where(column == item_id))}
    if kind == "areas":
        uses["categories"] = count(select(func.count()).where(Category.area_id == item_id))
        uses["technicians"] = count(select(func.count()).where(TechnicianArea.area_id == item_id))
    if kind == "technicians":
        uses["categories"] = count(select(func.count()).where(Category.technician_id == item_id))
        uses["users"] = count(select(func.count()).where(User.technician_id == item_id))
    return uses


def _replace(
    conn: Connection, kind: str, item: Any, replacement: Any, actor: str, ctx: WriteContext
) -> int:
    """Put ``replacement`` wherever ``item`` is used, with an event on every case."""
    column, field = CASE_COLUMNS[kind]
    detail = {
        "changes": {field: {"before": item.name, "after": replacement.name}},
        "reason": f"{SINGULAR[kind]} {item.name!r} deleted",
    }
    using = select(
        Case.id,
        literal("updated"),
        literal(detail, JSON),
        literal(actor),
        literal(ctx.now, CaseEvent.created_at.type),
    ).where(column == item.id)
    conn.execute(
        insert(CaseEvent).from_select(["case_id", "kind", "detail", "actor", "created_at"], using)
    )
    done = conn.execute(
        update(Case)
        .where(column == item.id)
        .values({column.key: replacement.id, "version": Case.version + 1, "updated_at": ctx.now})
    )
    if kind == "areas":
        conn.execute(
            update(Category).where(Category.area_id == item.id).values(area_id=replacement.id)
        )
        already = select(TechnicianArea.technician_id).where(
            TechnicianArea.area_id == replacement.id
        )
        conn.execute(
            update(TechnicianArea)
            .where(TechnicianArea.area_id == item.id, TechnicianArea.technician_id.not_in(already))
            .values(area_id=replacement.id)
        )
    if kind == "technicians":
        conn.execute(
            update(Category)
            .where(Category.technician_id == item.id)
            .values(technician_id=replacement.id)
        )
        conn.execute(
            update(User).where(User.technician_id == item.id).values(technician_id=replacement.id)
        )
    return int(done.rowcount)
