"""The operator commands (token, cases, inbound), called directly with parsed arguments."""

from __future__ import annotations

import argparse
import io
import json
import uuid
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from config.app import Services
from config.cli_ops import add_ops_parsers
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.queries import get_case
from tests.conftest import broken_routing


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ventanilla")
    add_ops_parsers(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


async def run(services: Services, *argv: str) -> tuple[int, str]:
    """Call the handler the way ``config.cli`` does; returns (exit code, output)."""
    args = parse(*argv)
    out = io.StringIO()
    code: int = await args.handler(services, args, out)
    return code, out.getvalue()


async def accept(services: Services, email: str = "ana@example.com", **extra: Any) -> AcceptResult:
    fields: dict[str, Any] = {
        "subject": "No tengo Internet",
        "text": "Desde ayer no tengo conexión.",
        "category": "Problema Grave",
        **extra,
    }
    return await services.writer.accept(
        InboundMessage(
            channel=Channel.API,
            external_id=uuid.uuid4().hex,
            sender=Address(name="Ana Pérez", email=email),
            raw=b"raw",
            **fields,
        )
    )


# --- token ---------------------------------------------------------------------------------


async def test_token_create_prints_a_working_token_once(
    services: Services, client: TestClient[Any, Any]
) -> None:
    code, output = await run(services, "token", "create", "--name", "ops-ana", "--role", "ops")
    assert code == 0
    assert "will not be shown again" in output
    [token] = [line for line in output.splitlines() if line.startswith("vt_")]
    response = await client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    bogus = await client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}x"})
    assert bogus.status == 401


async def test_token_create_refuses_an_unknown_role(services: Services) -> None:
    code, output = await run(services, "token", "create", "--name", "x", "--role", "root")
    assert code == 2
    assert "invalid role" in output and "admin" in output
    assert "vt_" not in output


# --- cases ---------------------------------------------------------------------------------


async def test_cases_list_table_filters_and_json(services: Services) -> None:
    grave = await accept(services, "ana@example.com", subject="Sin señal desde el lunes")
    menor = await accept(services, "beto@example.com", category="Problema menor")
    code, output = await run(services, "cases", "list")
    assert code == 0
    header, *_ = output.splitlines()
    assert header.split()[:4] == ["number", "created", "status", "priority"]
    assert str(grave.case_number) in output and str(menor.case_number) in output
    assert "Técnico de guardia" in output and "Sin señal desde el lunes" in output

    code, output = await run(services, "cases", "list", "--area", "Técnica")
    assert code == 0
    assert str(grave.case_number) in output and str(menor.case_number) not in output

    code, output = await run(services, "cases", "list", "--json", "--limit", "1")
    body = json.loads(output)
    assert [i["number"] for i in body["items"]] == [menor.case_number]
    assert body["next_cursor"]
    code, output = await run(services, "cases", "list", "--json", "--cursor", body["next_cursor"])
    assert [i["number"] for i in json.loads(output)["items"]] == [grave.case_number]


async def test_cases_list_long_titles_are_truncated(services: Services) -> None:
    await accept(services, subject="x" * 80)
    _code, output = await run(services, "cases", "list")
    assert "x" * 49 + "…" in output
    assert "x" * 51 not in output


async def test_cases_list_unknown_status_is_a_usage_error(services: Services) -> None:
    code, output = await run(services, "cases", "list", "--status", "Inexistente")
    assert code == 2
    assert "Inexistente" in output


async def test_cases_list_says_so_when_nothing_matches(services: Services) -> None:
    code, output = await run(services, "cases", "list", "--q", "nada")
    assert (code, output.strip()) == (0, "no cases match")


async def test_cases_show_prints_fields_and_timeline(services: Services) -> None:
    created = await accept(services, text="El módem no enciende")
    code, output = await run(services, "cases", "show", str(created.case_number))
    assert code == 0
    assert str(created.case_number) in output
    assert "Técnica" in output and "Abierta (open)" in output
    timeline = output.split("timeline:")[1]
    assert "El módem no enciende" in timeline
    assert timeline.index("El módem") < timeline.index("* created") < timeline.index("* routed")

    code, output = await run(services, "cases", "show", str(created.case_number), "--json")
    body = json.loads(output)
    assert body["number"] == created.case_number
    assert [e.get("kind") for e in body["timeline"]] == [None, "created", "routed"]


async def test_cases_show_unknown_number_exits_1(services: Services) -> None:
    code, output = await run(services, "cases", "show", "CAS-999999")
    assert code == 1
    assert "no case CAS-999999" in output


# --- inbound -------------------------------------------------------------------------------


async def failing(services: Services) -> AcceptResult:
    """Accept a message while the catalog has no defaults, so routing fails."""
    async with broken_routing(services):
        result = await accept(services, "falla@example.com")
    assert result.outcome == "failed"
    return result


async def test_inbound_list_shows_the_failed_row(services: Services) -> None:
    ok = await accept(services)
    failed = await failing(services)
    code, output = await run(services, "inbound", "list", "--status", "failed")
    assert code == 0
    rows = output.splitlines()[2:]
    assert len(rows) == 1
    assert rows[0].split()[0] == str(failed.inbound_id)
    assert "failed" in rows[0] and "routing" in rows[0]

    code, output = await run(services, "inbound", "list", "--json")
    items = json.loads(output)["items"]
    assert [(i["id"], i["status"], i["case"]) for i in items] == [
        (failed.inbound_id, "failed", None),
        (ok.inbound_id, "processed", ok.case_number),
    ]


async def test_inbound_retry_replays_a_failed_row_into_a_case(services: Services) -> None:
    failed = await failing(services)
    code, output = await run(services, "inbound", "retry", str(failed.inbound_id))
    assert code == 0, output
    assert f"inbound {failed.inbound_id}: created CAS-" in output
    number = output.split("created ")[1].split()[0]
    case = await services.db.read(get_case, number)
    assert case is not None and case.row.contact == "falla@example.com"
    # Now processed: retrying it again is refused and reported.
    code, output = await run(services, "inbound", "retry", str(failed.inbound_id))
    assert code == 1
    assert "not failed" in output


async def test_inbound_retry_all_failed_and_still_failing(services: Services) -> None:
    first = await failing(services)
    second = await failing(services)
    async with broken_routing(services):
        code, output = await run(services, "inbound", "retry", "--all-failed")
    assert code == 1
    assert output.count("still failed") == 2

    code, output = await run(services, "inbound", "retry", "--all-failed")
    assert code == 0, output
    assert f"inbound {first.inbound_id}: created" in output
    assert f"inbound {second.inbound_id}: created" in output
    code, output = await run(services, "inbound", "retry", "--all-failed")
    assert (code, output.strip()) == (0, "no failed inbound messages")


@pytest.mark.parametrize("argv", [(), ("1", "--all-failed")])
async def test_inbound_retry_needs_ids_or_all_failed(
    services: Services, argv: tuple[str, ...]
) -> None:
    code, output = await run(services, "inbound", "retry", *argv)
    assert code == 2
    assert "--all-failed" in output


async def test_inbound_retry_unknown_id_exits_1(services: Services) -> None:
    code, output = await run(services, "inbound", "retry", "9999")
    assert code == 1
    assert "inbound 9999: not retried" in output
