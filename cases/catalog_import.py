"""Import of a whole catalog file: check it, plan what would change, apply it in one go.

The file has the shape of the config's ``[catalog]`` section (``cases.catalog_file`` reads
and writes it). ``plan_import`` is the one planning function: the CLI's dry run calls it on
a read connection and ``CatalogImporter`` (the write path's executor of ``ImportCatalog``)
calls it again inside the transaction, so what is applied is exactly what a dry run at
that moment shows. Items are matched by name (without regard to case); a kind the file
leaves out is left alone; items of a listed kind that the file does not name stay unless
``prune``, and one of them still in use refuses the whole import. The changes are applied
with the rules of single edits (``cases.catalog_edit``), all in one operation: any refusal
rolls every change back.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from cases.catalog_edit import BUMP_VERSION, delete_item, item_uses, save_item
from cases.catalog_fields import SINGULAR, WITH_DEFAULT, item_view, view_value
from cases.catalog_file import FILE_ORDER, Problem, Wanted, check_document
from cases.catalog_state import CatalogInTransaction
from cases.operations import ImportCatalog
from routing.catalog import CatalogSnapshot, load_catalog_sync
from storage.operations import Executor, OperationRefused, WriteContext

# Deleted in this order: what refers to other items goes before what it refers to.
DELETE_ORDER = ("categories", "technicians", "areas", "statuses", "priorities", "severities")


@dataclass(frozen=True, slots=True)
class ItemPlan:
    """One item's part of a plan: ``new`` holds every field of an item to create, or the
    new value of each changed field (``old`` the value it replaces); ``item_id`` is None
    for an item to create."""

    kind: str
    name: str
    item_id: int | None = None
    new: dict[str, Any] = field(default_factory=dict)
    old: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What an import changes. ``problems`` (the file is wrong, with key paths) or
    ``refused`` (items to prune that are in use) mean nothing can be applied; ``kept`` are
    items of the listed kinds that the file does not name, left as they are."""

    create: tuple[ItemPlan, ...] = ()
    change: tuple[ItemPlan, ...] = ()
    delete: tuple[ItemPlan, ...] = ()
    kept: tuple[ItemPlan, ...] = ()
    refused: tuple[Problem, ...] = ()
    problems: tuple[Problem, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.create or self.change or self.delete)


def plan_from_database(conn: Connection, document: Mapping[str, Any], prune: bool) -> ImportPlan:
    """The plan against the catalog ``conn`` sees (the dry run's entry)."""
    return plan_import(conn, load_catalog_sync(conn), document, prune)


def plan_import(
    conn: Connection, catalog: CatalogSnapshot, document: Mapping[str, Any], prune: bool
) -> ImportPlan:
    """Compare the file with ``catalog``: every item to create, change, delete or keep."""
    prefix, wanted, problems = check_document(document, catalog)
    if problems:
        return ImportPlan(problems=tuple(problems))
    create: list[ItemPlan] = []
    change: list[ItemPlan] = []
    delete: list[ItemPlan] = []
    kept: list[ItemPlan] = []
    refused: list[Problem] = []
    for kind in FILE_ORDER:
        if kind not in wanted:
            continue  # left out of the file: left alone
        named: set[int] = set()
        for want in wanted[kind]:
            current = catalog.find(kind, want.values["name"])
            if current is None:
                create.append(ItemPlan(kind, want.values["name"], new=dict(want.values)))
                continue
            named.add(current.id)
            diff = _diff(kind, item_view(kind, current, catalog), want)
            if diff:
                old, new = diff
                change.append(ItemPlan(kind, want.values["name"], current.id, new, old))
        others = [item for item in getattr(catalog, kind) if item.id not in named]
        if prune and others and not wanted[kind] and kind in WITH_DEFAULT:
            refused.append(
                Problem(
                    f"{prefix}{kind}",
                    f"the file lists no {kind}: deleting them all would leave no default "
                    f"{SINGULAR[kind]}",
                )
            )
            continue
        for item in others:
            if prune:
                in_use = _uses_after_import(conn, kind, item.id, wanted)
                if in_use:
                    uses = ", ".join(f"{n} {what}" for what, n in in_use.items())
                    refused.append(
                        Problem(
                            f"{prefix}{kind}",
                            f"{SINGULAR[kind]} {item.name!r} is not in the file but is in use "
                            f"({uses}): keep it in the file, or delete it through the API "
                            "naming a replacement",
                        )
                    )
                delete.append(ItemPlan(kind, item.name, item.id))
                continue
            kept.append(ItemPlan(kind, item.name, item.id))
            if getattr(item, "is_default", False) and wanted[kind]:
                # The file's default takes over from this one.
                change.append(
                    ItemPlan(kind, item.name, item.id, {"is_default": False}, {"is_default": True})
                )
    return ImportPlan(tuple(create), tuple(change), tuple(delete), tuple(kept), tuple(refused), ())


def _diff(
    kind: str, current: dict[str, Any], want: Wanted
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The fields whose value the file changes: (old values, new values), or None."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for name, value in want.values.items():
        if not _same(kind, name, current[name], value):
            old[name], new[name] = current[name], value
    return (old, new) if new else None


def _same(kind: str, name: str, stored: Any, given: Any) -> bool:
    if name in ("area", "technician"):  # a reference: the same item, however spelled
        return (stored or "").casefold() == (given or "").casefold()
    if name == "areas":
        return {a.casefold() for a in stored} == {a.casefold() for a in given}
    # Compared as they would be stored, so that a value kept from before a normalization
    # (e.g. a colour seeded in lower case) is not a change.
    with contextlib.suppress(OperationRefused):
        stored = view_value(kind, name, stored)
    return bool(stored == given)


def _uses_after_import(
    conn: Connection, kind: str, item_id: int, wanted: Mapping[str, list[Wanted]]
) -> dict[str, int]:
    """What would still use an item once the file is applied: cases and users, and the
    catalog items of the kinds that the file leaves alone (those it lists are rewritten,
    and the file's own references were checked against its own names)."""
    uses = item_uses(conn, kind, item_id)
    rewritten = {what for what in ("categories", "technicians") if what in wanted}
    return {what: n for what, n in uses.items() if n and what not in rewritten}


class CatalogImporter(Executor):
    """Runs ``ImportCatalog``: plans again inside the transaction and applies the plan,
    every change in one operation."""

    def __init__(self, catalogs: CatalogInTransaction) -> None:
        self.catalogs = catalogs

    def run_one(self, conn: Connection, op: ImportCatalog, ctx: WriteContext) -> ImportPlan:
        plan = plan_import(conn, self.catalogs.get(conn, ctx), op.document, op.prune)
        if plan.problems:
            raise OperationRefused(
                "invalid", _listing("the file has problems", plan.problems), plan.problems[0].path
            )
        if plan.refused:
            raise OperationRefused(
                "conflict", _listing("the import is refused", plan.refused), "prune"
            )
        if not plan.has_changes:
            return plan
        # References first (areas before the technicians and categories naming them), and
        # the catalog read again after each edit, so that new names resolve and each
        # rule sees the edits before it.
        for kind in FILE_ORDER:
            saves = [p for p in (*plan.create, *plan.change) if p.kind == kind]
            # The new default first: choosing it clears the old one, which may then change
            # (e.g. a status that was the default becomes a closed one).
            saves.sort(key=lambda p: p.new.get("is_default") is not True)
            for item in saves:
                values = {f: v for f, v in item.new.items() if f != "is_default" or v}
                if values:
                    catalog = self.catalogs.get(conn, ctx)
                    save_item(conn, kind, values, catalog, item.item_id)
                    self.catalogs.changed(ctx)
        for kind in DELETE_ORDER:
            for item in plan.delete:
                if item.kind == kind and item.item_id is not None:
                    catalog = self.catalogs.get(conn, ctx)
                    delete_item(conn, kind, item.item_id, None, op.actor, catalog, ctx)
                    self.catalogs.changed(ctx)
        conn.execute(BUMP_VERSION)
        self.catalogs.changed(ctx)
        return plan


def _listing(head: str, problems: tuple[Problem, ...]) -> str:
    lines = [f"{p.path}: {p.message}" for p in problems]
    return f"{head} ({len(problems)}): " + "; ".join(lines)
