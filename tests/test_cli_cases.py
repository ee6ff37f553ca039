"""``ventanilla cases update|note|merge|clone`` and ``token list|revoke``, against the
running write path (the writer process on SQLite), with readable output and ``--json``."""

from __future__ import annotations

import json

from config.app import Services
from storage.queries import get_case
from tests.test_cli_ops import accept, run


async def test_update_prints_before_and_after_and_records_the_actor(services: Services) -> None:
    number = (await accept(services)).case_number
    assert number
    code, output = await run(
        services, "cases", "update", number, "--status", "En Progreso", "--tags", "vip, fibra",
        "--as", "maria",
    )  # fmt: skip
    assert code == 0, output
    assert f"{number} updated (version 2):" in output
    assert "status: Abierta → En Progreso" in output and "tags: (none) → vip, fibra" in output
    case = await services.db.read(get_case, number)
    assert case is not None and case.row.status == "En Progreso" and case.tags == ["vip", "fibra"]
    [event] = [e for e in case.timeline if getattr(e, "kind", "") == "updated"]
    assert event.actor == "maria"

    code, output = await run(services, "cases", "update", number, "--clear", "tags", "--json")
    assert code == 0
    assert json.loads(output)["changes"]["tags"] == {"before": ["vip", "fibra"], "after": []}


async def test_update_refusals_name_the_field(services: Services) -> None:
    number = (await accept(services)).case_number
    assert number
    code, output = await run(services, "cases", "update", number, "--priority", "Altísima")
    assert code == 2 and "refused: priority: unknown priority" in output
    code, output = await run(services, "cases", "update", number, "--if-version", "7",
                             "--priority", "Alta")  # fmt: skip
    assert code == 1 and "changed since it was read" in output
    code, output = await run(services, "cases", "update", "CAS-999999", "--priority", "Alta")
    assert code == 1 and "no case CAS-999999" in output
    code, output = await run(services, "cases", "update", number)
    assert code == 2 and "nothing to change" in output
    code, output = await run(services, "cases", "update", number, "--reopen-at", "mañana")
    assert code == 2 and "--reopen-at" in output


async def test_note_merge_and_clone(services: Services) -> None:
    first = (await accept(services, "uno@example.com")).case_number
    second = (await accept(services, "dos@example.com")).case_number
    assert first and second
    code, output = await run(services, "cases", "note", first, "Cliente avisado por teléfono")
    assert code == 0 and f"note added to {first}" in output
    code, output = await run(services, "cases", "clone", second, "--area", "Administración")
    assert code == 0 and "created (a clone of" in output
    clone = output.split()[0]
    code, output = await run(services, "cases", "merge", first, "--into", second, "--json")
    assert code == 0, output
    assert json.loads(output)["event"]["detail"]["case"] == first
    merged = await services.db.read(get_case, first)
    copy = await services.db.read(get_case, clone)
    assert merged is not None and merged.merged_into == second
    assert copy is not None and copy.cloned_from == second and copy.row.area == "Administración"
    code, output = await run(services, "cases", "merge", first, "--into", second)
    assert code == 1 and "merged into" in output


async def test_token_list_and_revoke(services: Services) -> None:
    code, output = await run(services, "token", "create", "--name", "ana", "--role", "ops")
    assert code == 0
    code, output = await run(services, "token", "list")
    assert code == 0 and "ana" in output and "ops" in output
    token_id = int(output.splitlines()[2].split()[0])
    code, output = await run(services, "token", "revoke", str(token_id))
    assert code == 0 and "revoked" in output
    code, output = await run(services, "token", "list", "--json")
    assert json.loads(output)["items"] == []
    code, output = await run(services, "token", "list", "--all", "--json")
    [item] = json.loads(output)["items"]
    assert item["user"] == "ana" and item["revoked_at"]
    code, output = await run(services, "token", "revoke", "9999")
    assert code == 1
