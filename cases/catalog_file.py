"""The catalog as a file: the shape of the config's ``[catalog]`` section, read and written.

``export_document`` turns the catalog into that shape (references by name, ``default =
true`` on the default of each kind, nothing for an empty value), so that an export can be
pasted into a config file; ``check_document`` reads such a document back (an export, or a
whole config file, whose other sections are ignored), checks every item with the
catalog's own field rules (``cases.catalog_fields``) and reports every problem with its
key path, e.g. ``catalog.categories[2].area``.

A status's rank is its position in the file unless given, as the config's seed does; the
export writes a rank only where it differs from the position.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cases.catalog_edit import check_default_status
from cases.catalog_fields import DEFAULTS, FIELDS, SINGULAR, WITH_DEFAULT, item_view, view_value
from routing.catalog import CatalogSnapshot
from storage.operations import OperationRefused

# The config's order: technicians before the categories that name them.
FILE_ORDER = ("areas", "statuses", "priorities", "severities", "technicians", "categories")
# Keys of an item in the file: the API's fields, with ``default`` for ``is_default`` and,
# for technicians, ``area`` as well as ``areas`` (the config takes either).
FILE_KEYS: dict[str, tuple[str, ...]] = {
    kind: tuple("default" if f == "is_default" else f for f in FIELDS[kind])
    + (("area",) if kind == "technicians" else ())
    for kind in FILE_ORDER
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with the file (or refused), and where: a key path."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class Wanted:
    """An item as the file wants it: every field (API names, normalized), and where."""

    path: str
    values: dict[str, Any]
    keys: dict[str, str]  # the file's key of each field given (technicians: area or areas)


# --- writing -------------------------------------------------------------------------------


def export_document(catalog: CatalogSnapshot) -> dict[str, Any]:
    """The whole catalog as ``{"catalog": {kind: [item, ...]}}``, ready for TOML."""
    section: dict[str, list[dict[str, Any]]] = {}
    for kind in FILE_ORDER:
        section[kind] = [
            _file_item(kind, item_view(kind, item, catalog), position)
            for position, item in enumerate(getattr(catalog, kind))
        ]
    return {"catalog": section}


def _file_item(kind: str, view: dict[str, Any], position: int) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    for name in FIELDS[kind]:
        value = view[name]
        if name == "is_default":
            if value:
                entry["default"] = True
        elif name == "rank" and kind == "statuses" and value == position:
            continue  # implied by the order (statuses come ordered by rank)
        elif value is not None:  # TOML has no null: a missing key means "none"
            entry[name] = value
    return entry


# --- reading -------------------------------------------------------------------------------


def check_document(
    document: Mapping[str, Any], catalog: CatalogSnapshot
) -> tuple[str, dict[str, list[Wanted]], list[Problem]]:
    """The key path prefix, the items wanted per kind listed in the file, and every
    problem found. References must name an item of the file, or of ``catalog`` for a
    kind that the file leaves out (which an import leaves alone)."""
    problems: list[Problem] = []
    prefix, table = _catalog_table(document, problems)
    wanted: dict[str, list[Wanted]] = {}
    for key, items in table.items():
        path = f"{prefix}{key}"
        if key not in FILE_ORDER:
            problems.append(Problem(path, f"unknown key; known: {', '.join(FILE_ORDER)}"))
        elif not isinstance(items, list):
            problems.append(Problem(path, f"must be a list of {key} (an array of tables)"))
        else:
            read = (_item(key, i, raw, f"{path}[{i}]", problems) for i, raw in enumerate(items))
            wanted[key] = [w for w in read if w is not None]
    for kind, found in wanted.items():
        _check_names(kind, found, problems)
        if kind in WITH_DEFAULT and found:
            _check_default(kind, f"{prefix}{kind}", found, problems)
    _check_references(wanted, catalog, problems)
    return prefix, wanted, problems


def _catalog_table(document: Mapping[str, Any], problems: list[Problem]) -> tuple[str, Any]:
    if "catalog" not in document:
        if any(key in FILE_ORDER for key in document):
            return "", document  # the kinds at the top (a file of the catalog alone)
        # A config file without [catalog], or the wrong file: not "no changes".
        expected = f"no catalog in the file: expected [catalog] with {', '.join(FILE_ORDER)}"
        problems.append(Problem("catalog", expected))
        return "", {}
    table = document["catalog"]
    if not isinstance(table, Mapping):
        problems.append(Problem("catalog", "must be a table"))
        return "catalog.", {}
    return "catalog.", table


def _item(kind: str, position: int, raw: Any, path: str, problems: list[Problem]) -> Wanted | None:
    if not isinstance(raw, Mapping):
        problems.append(Problem(path, f"must be a table: one {SINGULAR[kind]}"))
        return None
    values = {name: copy.copy(DEFAULTS.get(name)) for name in FIELDS[kind]}  # lists too
    if kind == "statuses":
        values["rank"] = position
    keys: dict[str, str] = {}
    if "name" not in raw:
        problems.append(Problem(f"{path}.name", "name is required"))
    for key, value in raw.items():
        if key not in FILE_KEYS[kind]:
            known = ", ".join(FILE_KEYS[kind])
            problems.append(
                Problem(f"{path}.{key}", f"unknown key for {SINGULAR[kind]}; known: {known}")
            )
            continue
        name = "is_default" if key == "default" else key
        if kind == "technicians" and key == "area":  # the config's one-area spelling
            if not isinstance(value, str):
                problems.append(Problem(f"{path}.area", "area must name one area"))
                continue
            name, value = "areas", [*(values["areas"] or ()), value]
        elif name == "areas" and isinstance(value, list):
            value = [*(values["areas"] or ()), *value]
        try:
            values[name] = view_value(kind, name, value)
        except OperationRefused as refused:
            problems.append(Problem(f"{path}.{key}", refused.message.replace(name, key)))
            continue
        # The key a problem with this field is reported at: a technician's ``area``
        # alone is ``area``; given with ``areas``, the two are ``areas``.
        keys[name] = key if keys.get(name) in (None, key) else name
    if values["name"] is None:
        return None  # reported above
    return Wanted(path, values, keys)


def _check_names(kind: str, found: list[Wanted], problems: list[Problem]) -> None:
    first: dict[str, str] = {}
    for want in found:
        name = want.values["name"]
        if name is None:
            continue
        seen = first.setdefault(name.casefold(), want.path)
        if seen != want.path:
            problems.append(
                Problem(
                    f"{want.path}.name",
                    f"duplicate {SINGULAR[kind]} name {name!r} (also at {seen})",
                )
            )


def _check_default(kind: str, path: str, found: list[Wanted], problems: list[Problem]) -> None:
    defaults = [w for w in found if w.values["is_default"]]
    if len(defaults) != 1:
        names = ", ".join(repr(w.values["name"]) for w in defaults) or "none"
        problems.append(
            Problem(
                path,
                f"exactly one {SINGULAR[kind]} must have default = true (found "
                f"{len(defaults)}: {names})",
            )
        )
    if kind == "statuses":
        for want in defaults:
            try:
                check_default_status(want.values["kind"], "kind")
            except OperationRefused as refused:
                problems.append(Problem(f"{want.path}.kind", refused.message))


def _check_references(
    wanted: Mapping[str, list[Wanted]], catalog: CatalogSnapshot, problems: list[Problem]
) -> None:
    """Every reference names a known item; it is then spelled as that item is."""
    known: dict[str, dict[str, str]] = {}
    for kind in ("areas", "technicians"):
        names = (
            [w.values["name"] for w in wanted[kind]]
            if kind in wanted
            else [i.name for i in getattr(catalog, kind)]
        )
        known[kind] = {}
        for name in names:
            known[kind].setdefault(name.casefold(), name)
    for holder, field, kind in (
        ("categories", "area", "areas"),
        ("categories", "technician", "technicians"),
        ("technicians", "areas", "areas"),
    ):
        for want in wanted.get(holder, ()):
            value = want.values[field]
            given = value if isinstance(value, list) else [value] if value else []
            resolved: list[str | None] = []
            for name in given:
                if name.casefold() in known[kind]:
                    resolved.append(known[kind][name.casefold()])
                    continue
                where = "the file" if kind in wanted else "the catalog"
                listed = ", ".join(known[kind].values()) or "none"
                key = want.keys.get(field, field)
                problems.append(
                    Problem(
                        f"{want.path}.{key}",
                        f"unknown {SINGULAR[kind]} {name!r}; {where} has: {listed}",
                    )
                )
            want.values[field] = resolved if isinstance(value, list) else (resolved or [None])[0]
