"""``ventanilla catalog export|import``: the TOML round trip, the dry run's plan, --apply in
one operation (routing sees it at once), file problems with key paths, and --prune."""

from __future__ import annotations

import argparse
import io
import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from cases.operations import ImportCatalog
from config.app import Services
from config.cli_catalog import add_catalog_parsers
from config.settings import DEFAULT_CONFIG, CatalogSettings
from intake.message import Address, Channel, InboundMessage
from storage.operations import OperationRefused
from storage.queries import get_case


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ventanilla")
    add_catalog_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run(services: Services, *argv: str) -> tuple[int, str]:
    """Call the handler the way ``config.cli`` does; returns (exit code, output)."""
    args = parse(*argv)
    out = io.StringIO()
    code: int = await args.handler(services, args, out)
    return code, out.getvalue()


async def export(services: Services, path: Path) -> dict[str, Any]:
    code, output = await run(services, "catalog", "export", str(path))
    assert code == 0, output
    return read(path)


def read(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


async def plan(services: Services, path: Path, *flags: str) -> tuple[int, dict[str, Any]]:
    code, output = await run(services, "catalog", "import", str(path), "--json", *flags)
    body: dict[str, Any] = json.loads(output)
    return code, body


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(tomli_w.dumps(document), encoding="utf-8")
    return path


def named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    [item] = [i for i in items if i["name"] == name]
    return item


async def accept(services: Services, category: str = "Problema Grave") -> str:
    result = await services.writer.accept(
        InboundMessage(
            channel=Channel.API,
            external_id=uuid.uuid4().hex,
            sender=Address(name="Ana Pérez", email="ana@example.com"),
            raw=b"raw",
            subject="No tengo Internet",
            text="Desde ayer no tengo conexión.",
            category=category,
        )
    )
    assert result.outcome == "created" and result.case_number, result
    return result.case_number


async def area_of(services: Services, number: str) -> str | None:
    case = await services.db.read(get_case, number)
    assert case is not None
    return case.row.area


def edited(document: dict[str, Any]) -> dict[str, Any]:
    """The export with a category's area changed, a priority added and a colour changed."""
    section = document["catalog"]
    named(section["categories"], "Problema Grave")["area"] = "Administración"
    section["priorities"].append({"name": "Crítico", "colour": "#b71c1c", "rank": 5})
    named(section["priorities"], "Alta")["colour"] = "#00ff00"
    return document


# --- the round trip ------------------------------------------------------------------------


async def test_an_export_imports_as_no_changes_and_is_a_config_catalog(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.toml"
    document = await export(services, path)
    section = document["catalog"]
    assert [a["name"] for a in section["areas"]][:2] == ["Mesa de ayuda", "Técnica"]
    assert named(section["areas"], "Mesa de ayuda")["default"] is True
    grave = named(section["categories"], "Problema Grave")
    assert grave["area"] == "Técnica" and grave["technician"] == "Técnico de guardia"
    assert "price" not in grave  # none: TOML has no null
    # Pasted into a config file, the section is a valid [catalog].
    CatalogSettings.model_validate(section)

    code, output = await run(services, "catalog", "import", str(path))
    assert (code, output.strip()) == (0, f"no changes: the catalog already matches {path}")
    code, body = await plan(services, path, "--prune")
    assert code == 0 and body["has_changes"] is False
    assert body["create"] == body["change"] == body["delete"] == body["kept"] == []

    # `-` writes to standard output and reads standard input.
    code, text = await run(services, "catalog", "export", "-")
    assert code == 0 and tomllib.loads(text) == document
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, output = await run(services, "catalog", "import", "-")
    assert code == 0 and output.startswith("no changes")


async def test_a_config_files_catalog_section_imports(services: Services) -> None:
    # The database was seeded from this very file; its other sections are ignored.
    code, output = await run(services, "catalog", "import", str(DEFAULT_CONFIG))
    assert code == 0, output
    assert output.startswith("no changes")


# --- dry run and apply ---------------------------------------------------------------------


async def test_the_dry_run_lists_exactly_the_edits_and_changes_nothing(
    services: Services, tmp_path: Path
) -> None:
    original = await export(services, tmp_path / "before.toml")
    path = write(tmp_path / "edited.toml", edited(await export(services, tmp_path / "x.toml")))

    code, body = await plan(services, path)
    assert code == 0 and body["applied"] is False
    assert [(c["kind"], c["name"], c["values"]["colour"], c["values"]["rank"])
            for c in body["create"]] == [("priorities", "Crítico", "#B71C1C", 5)]  # fmt: skip
    assert {(c["kind"], c["name"]): c["fields"] for c in body["change"]} == {
        ("priorities", "Alta"): {"colour": {"old": "#ff9800", "new": "#00FF00"}},
        ("categories", "Problema Grave"): {"area": {"old": "Técnica", "new": "Administración"}},
    }
    assert body["delete"] == body["kept"] == body["refused"] == body["problems"] == []

    code, output = await run(services, "catalog", "import", str(path))
    assert code == 0
    lines = output.splitlines()
    assert lines[0].split() == ["kind", "action", "item", "field", "old", "new"]
    rows = [line.split() for line in lines[2:] if line.strip()][:-1]
    assert rows == [
        ["priorities", "create", "Crítico", "colour", "#B71C1C"],
        ["priorities", "create", "Crítico", "rank", "5"],
        ["priorities", "change", "Alta", "colour", "#ff9800", "#00FF00"],
        ["categories", "change", "Problema", "Grave", "area", "Técnica", "Administración"],
    ]
    assert lines[-1] == (
        "dry run, nothing changed: 1 to create, 2 to change, 0 to delete; --apply applies them"
    )
    assert await export(services, tmp_path / "after.toml") == original
    assert await area_of(services, await accept(services)) == "Técnica"


async def test_apply_changes_the_catalog_and_the_next_message_is_routed_with_it(
    services: Services, tmp_path: Path
) -> None:
    path = write(tmp_path / "edited.toml", edited(await export(services, tmp_path / "x.toml")))
    _, dry = await plan(services, path)

    code, applied = await plan(services, path, "--apply")
    assert code == 0 and applied["applied"] is True
    assert {**applied, "applied": False} == dry  # the plan applied is the one shown

    # No restart: the writer (its own process on SQLite) routes with the new catalog.
    assert await area_of(services, await accept(services)) == "Administración"
    assert services.catalog.current.find("priorities", "Crítico") is not None
    after = (await export(services, tmp_path / "after.toml"))["catalog"]
    assert named(after["priorities"], "Alta")["colour"] == "#00FF00"
    assert named(after["priorities"], "Crítico") == {"name": "Crítico", "colour": "#B71C1C",
                                                     "rank": 5}  # fmt: skip
    code, output = await run(services, "catalog", "import", str(path), "--apply")
    assert code == 0 and output.startswith("no changes")


async def test_a_new_default_takes_over_and_the_old_one_may_then_close(
    services: Services, tmp_path: Path
) -> None:
    document = await export(services, tmp_path / "x.toml")
    statuses = document["catalog"]["statuses"]
    old = named(statuses, "Abierta")
    old.pop("default")
    old["kind"] = "closed"  # allowed: it is no longer the default
    statuses.insert(0, {"name": "Nueva", "kind": "open", "default": True})
    code, body = await plan(services, write(tmp_path / "s.toml", document), "--apply")
    assert code == 0, body
    change = {c["name"]: c["fields"] for c in body["change"]}
    assert change["Abierta"]["is_default"] == {"old": True, "new": False}
    assert change["Abierta"]["kind"] == {"old": "open", "new": "closed"}
    assert change["Autorizada"]["rank"] == {"old": 1, "new": 2}  # its new position
    case = await get_case_of(services, await accept(services))
    assert case == "Nueva"


async def get_case_of(services: Services, number: str) -> str:
    case = await services.db.read(get_case, number)
    assert case is not None
    return str(case.row.status)


# --- bad files -----------------------------------------------------------------------------


async def test_a_bad_file_prints_every_problem_with_its_key_path(
    services: Services, tmp_path: Path
) -> None:
    original = await export(services, tmp_path / "before.toml")
    document = await export(services, tmp_path / "bad.toml")
    section = document["catalog"]
    section["areas"].append({"name": "técnica"})  # a duplicate, however spelled
    section["areas"][1]["colour"] = "#000000"  # areas have no colour
    section["priorities"][0]["default"] = True  # a second default
    named(section["categories"], "Problema menor")["area"] = "Ventas"
    named(section["technicians"], "Técnico de guardia")["areas"] = ["Depósito"]
    named(section["categories"], "Problema Grave")["price"] = "caro"
    section["etiquetas"] = []
    path = write(tmp_path / "bad.toml", document)

    code, output = await run(services, "catalog", "import", str(path), "--apply")
    assert code == 2
    assert output.splitlines()[0] == f"{path} has 7 problem(s):"
    for key_path in (
        "catalog.areas[4].name: duplicate area name 'técnica' (also at catalog.areas[1])",
        "catalog.areas[1].colour: unknown key for area",
        "catalog.priorities: exactly one priority must have default = true (found 2",
        "catalog.categories[1].area: unknown area 'Ventas'",
        "catalog.technicians[0].areas: unknown area 'Depósito'",
        "catalog.categories[0].price: price must be a number",
        "catalog.etiquetas: unknown key",
    ):
        assert f"  {key_path}" in output, key_path
    code, body = await plan(services, path)
    assert code == 2 and len(body["problems"]) == 7
    assert await export(services, tmp_path / "after.toml") == original

    (tmp_path / "broken.toml").write_text("areas = [", encoding="utf-8")
    code, output = await run(services, "catalog", "import", str(tmp_path / "broken.toml"))
    assert code == 2 and "is not valid TOML" in output
    code, output = await run(services, "catalog", "import", str(tmp_path / "absent.toml"))
    assert code == 2 and "cannot read" in output
    empty = write(tmp_path / "empty.toml", {"database": {"url": "sqlite+aiosqlite:///x.db"}})
    code, output = await run(services, "catalog", "import", str(empty))
    assert code == 2 and "catalog: no catalog in the file" in output


# --- prune ---------------------------------------------------------------------------------


async def test_prune_refuses_items_in_use_and_applies_nothing(
    services: Services, tmp_path: Path
) -> None:
    await accept(services)  # a case in "Problema Grave"
    original = await export(services, tmp_path / "before.toml")
    document = await export(services, tmp_path / "x.toml")
    section = document["catalog"]
    section["categories"] = [c for c in section["categories"] if c["name"] != "Problema Grave"]
    section["areas"] = [a for a in section["areas"] if a["name"] != "Gerencia"]
    named(section["priorities"], "Alta")["colour"] = "#00ff00"
    path = write(tmp_path / "pruned.toml", document)

    # Without --prune both are only kept.
    code, body = await plan(services, path)
    assert code == 0
    assert {(k["kind"], k["name"]) for k in body["kept"]} == {
        ("categories", "Problema Grave"),
        ("areas", "Gerencia"),
    }
    code, output = await run(services, "catalog", "import", str(path), "--prune", "--apply")
    assert code == 1
    assert "refused, nothing applied:" in output
    assert "category 'Problema Grave' is not in the file but is in use (1 cases)" in output
    assert "Gerencia" in output  # listed with the rest of the plan
    assert await export(services, tmp_path / "after.toml") == original

    # The executor plans again itself: submitted directly, it refuses all the same.
    with pytest.raises(OperationRefused) as refused:
        await services.writes.submit(ImportCatalog(document, "test", prune=True))
    assert refused.value.kind == "conflict" and "Problema Grave" in refused.value.message
    assert await export(services, tmp_path / "after.toml") == original

    # With the category back, the unused area goes and the rest applies.
    section["categories"] = original["catalog"]["categories"]
    code, body = await plan(services, write(tmp_path / "ok.toml", document), "--prune", "--apply")
    assert code == 0, body
    assert [(d["kind"], d["name"]) for d in body["delete"]] == [("areas", "Gerencia")]
    after = (await export(services, tmp_path / "after.toml"))["catalog"]
    assert "Gerencia" not in [a["name"] for a in after["areas"]]
    assert named(after["priorities"], "Alta")["colour"] == "#00FF00"


async def test_prune_never_empties_a_kind_that_needs_a_default(
    services: Services, tmp_path: Path
) -> None:
    document = await export(services, tmp_path / "x.toml")
    document["catalog"]["severities"] = []
    code, output = await run(
        services, "catalog", "import", str(write(tmp_path / "e.toml", document)), "--prune"
    )
    assert code == 1
    assert "catalog.severities: the file lists no severities" in output


# --- kinds left out ------------------------------------------------------------------------


async def test_kinds_left_out_of_the_file_are_left_alone(
    services: Services, tmp_path: Path
) -> None:
    original = (await export(services, tmp_path / "before.toml"))["catalog"]
    document = {
        "priorities": [{"name": "Única", "colour": "#123456", "rank": 1, "default": True}],
        "categories": [
            {**c, "area": "gerencia"} if c["name"] == "Problema Grave" else c
            for c in original["categories"]
        ],
    }
    code, body = await plan(services, write(tmp_path / "some.toml", document), "--apply")
    assert code == 0, body
    # The old default, not in the file and kept, hands the default over.
    assert [(c["name"], c["fields"]) for c in body["change"]] == [
        ("Normal", {"is_default": {"old": True, "new": False}}),
        ("Problema Grave", {"area": {"old": "Técnica", "new": "Gerencia"}}),
    ]
    assert {k["name"] for k in body["kept"]} == {"Bajo", "Normal", "Alta", "Urgente"}
    after = (await export(services, tmp_path / "after.toml"))["catalog"]
    for kind in ("areas", "statuses", "severities", "technicians"):
        assert after[kind] == original[kind], kind
    assert [p["name"] for p in after["priorities"] if p.get("default")] == ["Única"]

    # References to a kind left out name what the database has.
    document["categories"][0]["area"] = "Ventas"
    code, output = await run(
        services, "catalog", "import", str(write(tmp_path / "v.toml", document))
    )
    assert code == 2
    assert "  categories[0].area: unknown area 'Ventas'; the catalog has: Mesa de ayuda" in output


def test_the_ventanilla_command_has_catalog_export_and_import() -> None:
    from config.cli import build_parser
    from config.cli_catalog import cmd_catalog_export, cmd_catalog_import

    args = build_parser().parse_args(["catalog", "import", "c.toml", "--apply", "--prune"])
    assert (args.handler, args.file, args.apply, args.prune) == (
        cmd_catalog_import,
        "c.toml",
        True,
        True,
    )
    assert build_parser().parse_args(["catalog", "export", "-"]).handler is cmd_catalog_export
