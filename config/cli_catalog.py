"""``ventanilla catalog export|import FILE``: the whole catalog as TOML, in the shape of the
config's ``[catalog]`` section (``cases.catalog_file``).

``export FILE`` writes the catalog (``-``: standard output). ``import FILE`` reads an export
or a config file (``-``: standard input) and prints what would change, per kind: items to
create, fields to change (old → new), items to delete; ``--apply`` applies all of it in one
operation on the write path (``cases.catalog_import``), ``--prune`` also deletes the items
of the listed kinds that the file does not name, ``--json`` prints the plan as JSON.

Exit codes: 0 done (a dry run, an import applied, nothing to change); 1 refused (an item to
prune is in use, or the catalog changed meanwhile so that the file no longer applies);
2 a file that cannot be read or has problems (each printed with its key path).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import tomli_w
from tabulate import tabulate

from cases.catalog_fields import DEFAULTS, SINGULAR
from cases.catalog_file import FILE_ORDER, Problem, export_document
from cases.catalog_import import ImportPlan, ItemPlan, plan_from_database
from cases.operations import ImportCatalog
from config.app import Services
from routing.catalog import load_catalog
from storage.operations import OperationRefused

HEADER = """\
# The Ventanilla catalog, exported {when}.
# `ventanilla catalog import FILE` shows what importing it would change and `--apply`
# applies it; the [catalog] table can also be pasted into a config file (seeded on first
# start only). References between items are by name; `default = true` marks the default.

"""
ACTOR = "cli"  # who is named on what an import changes


# --- export --------------------------------------------------------------------------------


async def cmd_catalog_export(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    async with services.db.session() as session:
        catalog = await load_catalog(session)
    document = export_document(catalog)
    text = HEADER.format(when=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    text += tomli_w.dumps(document)
    if args.file == "-":
        out.write(text)
        return 0
    path = Path(args.file)
    try:
        await asyncio.to_thread(_write, path, text)
    except OSError as exc:
        print(f"cannot write {path}: {exc.strerror or exc}", file=out)
        return 2
    counts = ", ".join(f"{len(items)} {kind}" for kind, items in document["catalog"].items())
    print(f"exported the catalog to {path}: {counts}", file=out)
    return 0


def _write(path: Path, text: str) -> None:
    # Written beside and renamed: an interrupted export never leaves half a file.
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)


# --- import --------------------------------------------------------------------------------


def _read(name: str, out: TextIO) -> dict[str, Any] | None:
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {name}: {getattr(exc, 'strerror', None) or exc}", file=out)
        return None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        print(f"{name} is not valid TOML: {exc}", file=out)
        return None


async def cmd_catalog_import(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    document = await asyncio.to_thread(_read, args.file, out)
    if document is None:
        return 2
    async with services.db.engine.connect() as conn:
        plan = await conn.run_sync(plan_from_database, document, args.prune)
    if plan.problems or plan.refused or not args.apply or not plan.has_changes:
        _report(plan, args, out, applied=False)
        return 2 if plan.problems else 1 if plan.refused else 0
    try:
        # Planned again inside the transaction: what is applied is what is printed.
        applied: ImportPlan = await services.writes.submit(
            ImportCatalog(document, ACTOR, args.prune)
        )
    except OperationRefused as refused:
        # The catalog changed since it was planned above, and the file no longer applies.
        if args.json:
            error = {"code": refused.kind, "message": refused.message, "path": refused.field}
            _json(out, {"file": args.file, "applied": False, "error": error})
        else:
            print(f"not applied: {refused.message}", file=out)
        return 2 if refused.kind == "invalid" else 1
    await services.catalog.refresh()
    _report(applied, args, out, applied=True)
    return 0


def _report(plan: ImportPlan, args: argparse.Namespace, out: TextIO, *, applied: bool) -> None:
    if args.json:
        _json(out, plan_json(plan, args.file, applied))
        return
    if plan.problems:
        _problems(f"{args.file} has {len(plan.problems)} problem(s):", plan.problems, out)
        return
    if plan.has_changes:
        headers = ["kind", "action", "item", "field", "old", "new"]
        print(tabulate(_rows(plan), headers=headers) + "\n", file=out)
    if plan.kept:
        kept = "; ".join(
            f"{kind}: {', '.join(i.name for i in plan.kept if i.kind == kind)}"
            for kind in FILE_ORDER
            if any(i.kind == kind for i in plan.kept)
        )
        print(f"kept (not in the file; --prune deletes them): {kept}", file=out)
    if plan.refused:
        _problems("refused, nothing applied:", plan.refused, out)
        return
    if not plan.has_changes:
        print(f"no changes: the catalog already matches {args.file}", file=out)
        return
    counts = (
        f"{len(plan.create)} to create, {len(plan.change)} to change, {len(plan.delete)} to delete"
    )
    if applied:
        print(f"applied: {counts}", file=out)
    else:
        print(f"dry run, nothing changed: {counts}; --apply applies them", file=out)


def _json(out: TextIO, body: Any) -> None:
    print(json.dumps(body, ensure_ascii=False, indent=2), file=out)


def _problems(head: str, problems: tuple[Problem, ...], out: TextIO) -> None:
    print(head, file=out)
    for problem in problems:
        print(f"  {problem.path}: {problem.message}", file=out)


def _rows(plan: ImportPlan) -> list[list[str]]:
    rows: list[list[str]] = []
    for kind in FILE_ORDER:
        for item in plan.create:
            if item.kind == kind:
                shown = [(f, v) for f, v in item.new.items() if f != "name" and _worth(f, v)]
                for field, value in shown or [("", None)]:
                    rows.append([kind, "create", item.name, field, "", _cell(value)])
        for item in plan.change:
            if item.kind == kind:
                for field, value in item.new.items():
                    old = _cell(item.old[field], "(none)")
                    rows.append([kind, "change", item.name, field, old, _cell(value, "(none)")])
        rows += [[kind, "delete", i.name, "", "", ""] for i in plan.delete if i.kind == kind]
    return rows


def _worth(field: str, value: Any) -> bool:
    """A created item's field worth a row: one that is not the product's default."""
    return field == "rank" or value != DEFAULTS.get(field)


def _cell(value: Any, none: str = "") -> str:
    if value is None:
        return none
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        value = "; ".join(map(str, value))
    text = " ".join(str(value).split())
    return text if len(text) <= 40 else text[:39] + "…"


def plan_json(plan: ImportPlan, file: str, applied: bool) -> dict[str, Any]:
    def item(i: ItemPlan) -> dict[str, Any]:
        return {"kind": i.kind, "name": i.name, "id": i.item_id}

    return {
        "file": file,
        "applied": applied,
        "has_changes": plan.has_changes,
        "create": [{**item(i), "values": i.new} for i in plan.create],
        "change": [
            {**item(i), "fields": {f: {"old": i.old[f], "new": v} for f, v in i.new.items()}}
            for i in plan.change
        ],
        "delete": [item(i) for i in plan.delete],
        "kept": [item(i) for i in plan.kept],
        "refused": [{"path": p.path, "message": p.message} for p in plan.refused],
        "problems": [{"path": p.path, "message": p.message} for p in plan.problems],
    }


# --- argparse ------------------------------------------------------------------------------


def add_catalog_parsers(subparsers: Any) -> None:
    """Register ``catalog export|import`` on the ``ventanilla`` subparsers."""
    kinds = ", ".join(SINGULAR[k] for k in FILE_ORDER)
    catalog = subparsers.add_parser("catalog", help=f"the catalog ({kinds}) as a TOML file")
    sub = catalog.add_subparsers(dest="catalog_cmd", required=True)
    export = sub.add_parser("export", help="write the whole catalog as TOML")
    export.add_argument("file", metavar="FILE", help="where to write it; - for standard output")
    export.set_defaults(handler=cmd_catalog_export)
    load = sub.add_parser(
        "import", help="show what a TOML catalog would change; --apply applies it"
    )
    load.add_argument(
        "file", metavar="FILE", help="an export or a config file; - for standard input"
    )
    load.add_argument("--apply", action="store_true", help="apply the changes (all or nothing)")
    load.add_argument(
        "--prune", action="store_true", help="also delete the items the file does not name"
    )
    load.add_argument("--json", action="store_true", help="print the plan as JSON")
    load.set_defaults(handler=cmd_catalog_import)
