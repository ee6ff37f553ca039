"""``ventanilla log list|show|resend|filters`` against the running write path (the writer
process on SQLite) and both databases: every filter as an option, the table, ``--json``
in the API's shapes, ``--csv`` with every matching row, counting, one message with its
attempts and resend chain, resends as a job the command finishes itself, confirmation,
saved filters and usage errors naming the option."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import pytest
from sqlalchemy import func, insert, select, update

from config import cli_log_resend
from config.app import Services
from console.log_csv import CSV_COLUMNS
from console.log_schemas import log_detail
from notifiers.resend_jobs import STEP_ROWS, JobStarted, ResendJobRunner, StartResendJob
from storage.log_queries import get_job, get_notification
from storage.models import Case, DeliveryAttempt, Notification, ResendJob
from tests.console.log_support import Seeded, seed_log
from tests.console.test_case_operations import new_case
from tests.test_cli_ops import parse, run


class Terminal(io.StringIO):
    """An output or input stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


async def run_on(services: Services, out: io.StringIO, *argv: str) -> int:
    args = parse(*argv)
    code: int = await args.handler(services, args, out)
    return code


def table_ids(output: str) -> list[int]:
    """The first column of a table (below its header and rule), up to the first blank line."""
    ids = []
    for line in output.splitlines()[2:]:
        if not line.strip():
            break
        ids.append(int(line.split()[0]))
    return ids


async def user(services: Services, name: str) -> None:
    code, output = await run(services, "token", "create", "--name", name, "--role", "ops")
    assert code == 0, output


async def resends_of(services: Services, ids: list[int]) -> list[Notification]:
    async with services.db.session() as session:
        found = await session.scalars(
            select(Notification).where(Notification.resend_of.in_(ids)).order_by(Notification.id)
        )
        return list(found.all())


async def job_count(services: Services) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(ResendJob)) or 0)


def sms_failed(r: dict[str, Any]) -> bool:
    return bool(r["channel"] == "sms" and r["status"] == "failed")


# --- list ----------------------------------------------------------------------------------


async def test_list_filters_table_json_and_paging(services: Services) -> None:
    seeded = await seed_log(services, count=120)
    expected = seeded.ids(lambda r: r["channel"] == "sms" and r["status"] in ("failed", "dead"))
    code, output = await run(services, "log", "list", "--channel", "sms", "--status", "failed",
                             "--status", "dead", "--limit", "200")  # fmt: skip
    assert code == 0, output
    assert output.splitlines()[0].split() == ["id", "created", "channel", "recipient",
                                              "customer", "case", "subject", "status",
                                              "trigger"]  # fmt: skip
    assert table_ids(output) == expected
    assert "+54911555" in output  # phone numbers as written
    # A comma list is the same as the repeated option.
    code, same = await run(services, "log", "list", "--channel", "sms", "--status", "failed,dead",
                           "--limit", "200")  # fmt: skip
    assert table_ids(same) == expected

    # JSON in the API's shape, a page at a time.
    code, output = await run(services, "log", "list", "--channel", "sms", "--status",
                             "failed,dead", "--json", "--limit", "3")  # fmt: skip
    body = json.loads(output)
    assert set(body) == {"items", "next_cursor"}
    assert [i["id"] for i in body["items"]] == expected[:3]
    assert set(body["items"][0]) >= {"id", "channel", "recipient", "customer", "case",
                                     "subject", "status", "trigger", "created_at"}  # fmt: skip
    code, output = await run(services, "log", "list", "--channel", "sms", "--status",
                             "failed,dead", "--json", "--limit", "3", "--cursor",
                             body["next_cursor"])  # fmt: skip
    assert [i["id"] for i in json.loads(output)["items"]] == expected[3:6]
    # The table says how to get the next page.
    code, output = await run(services, "log", "list", "--limit", "2")
    assert len(table_ids(output)) == 2 and "more: --cursor " in output

    # More filters: a case, a customer, words, the time window, oldest first.
    number, case_id = next(iter(seeded.cases.items()))
    code, output = await run(services, "log", "list", "--case", number, "--oldest", "--json",
                             "--limit", "200")  # fmt: skip
    assert [i["id"] for i in json.loads(output)["items"]] == seeded.ids(
        lambda r: r["case_id"] == case_id, oldest=True
    )
    customer = seeded.customers[0]
    code, output = await run(services, "log", "list", "--customer", str(customer),
                             "--sent", "--trigger", "auto", "--json", "--limit", "200")  # fmt: skip
    assert [i["id"] for i in json.loads(output)["items"]] == seeded.ids(
        lambda r: r["customer_id"] == customer and r["status"] == "sent" and r["trigger"] == "auto"
    )
    code, output = await run(services, "log", "list", "-q", "factura", "--since", "2026-03-01",
                             "--until", "2026-06-30", "--json", "--limit", "200")  # fmt: skip
    got = [i["id"] for i in json.loads(output)["items"]]
    assert got and got == seeded.ids(
        lambda r: "factura" in r["body"] and "2026-03-01" <= r["created_at"].isoformat()[:10]
        <= "2026-06-30"
    )  # fmt: skip


async def test_list_count_and_csv_of_every_matching_row(services: Services) -> None:
    seeded = await seed_log(services, count=120)
    failed = seeded.ids(lambda r: r["status"] == "failed")
    code, output = await run(services, "log", "list", "--status", "failed", "--count")
    assert code == 0
    assert f"{len(failed)} messages match" in output
    code, output = await run(services, "log", "list", "--status", "failed", "--count", "--json")
    assert json.loads(output)["count"] == len(failed)
    code, output = await run(services, "log", "list", "--status", "sending", "--channel", "email",
                             "--recipient", "nadie@example.com", "--count")  # fmt: skip
    assert output.splitlines() == ["no messages match", "0 messages match"]

    # Every row, not a page: the same columns as the API's export.
    code, output = await run(services, "log", "list", "--csv")
    assert code == 0
    header, *rows = list(csv.reader(io.StringIO(output)))
    assert header == list(CSV_COLUMNS)
    assert [int(r[0]) for r in rows] == seeded.ids(lambda r: True)
    assert len(rows) > 50
    code, output = await run(services, "log", "list", "--csv", "--channel", "sms", "--oldest")
    _, *rows = list(csv.reader(io.StringIO(output)))
    assert [int(r[0]) for r in rows] == seeded.ids(lambda r: r["channel"] == "sms", oldest=True)
    sms = rows[0]
    assert sms[CSV_COLUMNS.index("recipient")].startswith("+54911555")


async def test_status_is_coloured_only_on_a_terminal(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_log(services, count=40)
    monkeypatch.delenv("NO_COLOR", raising=False)
    terminal = Terminal()
    assert await run_on(services, terminal, "log", "list", "--status", "sent,failed") == 0
    assert "\x1b[32msent\x1b[0m" in terminal.getvalue()
    assert "\x1b[31mfailed\x1b[0m" in terminal.getvalue()
    _, piped = await run(services, "log", "list", "--status", "sent,failed")
    assert "\x1b[" not in piped and " sent " in piped
    monkeypatch.setenv("NO_COLOR", "1")
    terminal = Terminal()
    await run_on(services, terminal, "log", "list", "--status", "sent,failed")
    assert "\x1b[" not in terminal.getvalue()


async def test_bad_values_are_usage_errors_naming_the_option(services: Services) -> None:
    await seed_log(services, count=10)
    for argv, option in [
        (("--status", "perdido"), "--status"),
        (("--channel", "fax"), "--channel"),
        (("--since", "ayer"), "--since"),
        (("--since", "2026-05-01", "--until", "2026-04-01"), "--until"),
        (("--customer", "ana"), "--customer"),
        (("--resend-of", "x"), "--resend-of"),
        (("--time", "nunca"), "--time"),
        (("--trigger", "robot"), "--trigger"),
        (("--sent", "--case", "CAS-999999"), "--case"),
        (("-q", "x" * 300), "--search"),
        (("--cursor", "no-es-un-cursor"), "--cursor"),
        (("--filter", "inexistente", "--user", "nadie"), "--user"),
    ]:
        code, output = await run(services, "log", "list", *argv)
        assert code == 2, (argv, output)
        assert output.startswith(f"{option}: "), (argv, output)
    with pytest.raises(SystemExit) as exited:
        parse("log", "list", "--limit", "0")
    assert exited.value.code == 2
    # A resend with a bad value starts nothing.
    await user(services, "ops-ana")
    code, output = await run(services, "log", "resend", "--status", "perdido", "--yes",
                             "--user", "ops-ana")  # fmt: skip
    assert code == 2 and output.startswith("--status: ")
    assert await job_count(services) == 0


# --- show ----------------------------------------------------------------------------------


async def ack_of(services: Services, number: str) -> int:
    """The acknowledgement intake queued for a case, marked sent with two attempts and an
    HTML part, as the dispatcher would leave it."""
    async with services.db.session() as session, session.begin():
        case_id = await session.scalar(select(Case.id).where(Case.number == number))
        ack = await session.scalar(
            select(Notification.id).where(
                Notification.case_id == case_id, Notification.template.like("ack_%")
            )
        )
        assert ack is not None
        await session.execute(
            update(Notification).where(Notification.id == ack).values(
                status="sent", html="<p>Hola <b>Ana</b></p>", attempts=2
            )
        )  # fmt: skip
        await session.execute(
            insert(DeliveryAttempt),
            [
                {"notification_id": ack, "outcome": "transient", "provider": "email",
                 "provider_code": "451", "provider_response": "4.7.1 Try again later",
                 "error": "greylisted", "duration_ms": 80},
                {"notification_id": ack, "outcome": "sent", "provider": "email",
                 "provider_code": "250", "provider_response": "2.0.0 Ok: queued as 4F2A",
                 "possible_duplicate": True, "duration_ms": 120},
            ],
        )  # fmt: skip
        return ack


async def test_show_prints_the_message_attempts_chain_case_and_customer(
    services: Services,
) -> None:
    number = await new_case(services, "ana@example.com", subject="Sin conexión en el local")
    ack = await ack_of(services, number)
    await user(services, "ops-ana")
    code, output = await run(services, "log", "resend", str(ack), "--yes", "--user", "ops-ana",
                             "--reason", "no le llegó")  # fmt: skip
    assert code == 0, output
    [again] = await resends_of(services, [ack])

    code, output = await run(services, "log", "show", str(ack))
    assert code == 0, output
    assert output.startswith(f"notification {ack}\n")
    assert "To: ana@example.com" in output and "Subject: " in output and number in output
    assert "Sin conexión en el local" in output  # the case's title
    assert "Ana (#" in output  # the customer
    assert "<b>Ana</b>" not in output and "--html" in output
    assert "451" in output and "4.7.1 Try again later" in output and "greylisted" in output
    assert "250" in output and "queued as 4F2A" in output and "possible duplicate" in output
    chain = output.split("resend chain (original first):")[1]
    assert str(ack) in chain and str(again.id) in chain and "no le llegó" in chain
    assert "ops-ana" in chain

    code, output = await run(services, "log", "show", str(ack), "--html")
    assert "<p>Hola <b>Ana</b></p>" in output
    code, output = await run(services, "log", "show", str(again.id))
    assert "resend of" in output and "requested by" in output and "ops-ana" in output

    code, output = await run(services, "log", "show", str(ack), "--json")
    detail = await services.db.read(get_notification, ack)
    assert detail is not None
    assert json.loads(output) == log_detail(detail)

    code, output = await run(services, "log", "show", "987654321")
    assert (code, output.strip()) == (1, "no notification 987654321")


# --- resend --------------------------------------------------------------------------------


async def test_resend_of_ids_queues_linked_rows_and_prints_the_job(services: Services) -> None:
    seeded = await seed_log(services, count=40)
    sent = seeded.ids(lambda r: r["status"] == "sent")[:3]
    pending = seeded.ids(lambda r: r["status"] == "pending")[0]
    await user(services, "ops-ana")
    code, output = await run(services, "log", "resend", *map(str, [*sent, pending, 987654321]),
                             "--yes", "--user", "ops-ana", "--reason", "corte del proveedor",
                             "--key", "lote-1")  # fmt: skip
    assert code == 0, output
    assert "5 messages will be resent." in output
    assert "done: 3 queued, 2 skipped" in output
    assert "skipped, still queued: 1" in output and "skipped, not found: 1" in output
    again = await resends_of(services, [*sent, pending])
    assert sorted(r.resend_of for r in again) == sorted(sent)
    assert {(r.requested_by, r.reason, r.trigger, r.status) for r in again} == {
        ("ops-ana", "corte del proveedor", "manual", "pending")
    }
    # The same key again: the first job, nothing new.
    code, output = await run(services, "log", "resend", str(sent[0]), "--yes", "--user",
                             "ops-ana", "--key", "lote-1")  # fmt: skip
    assert "was used before" in output and "done: 3 queued" in output
    assert len(await resends_of(services, sent)) == 3
    # Every one skipped: nothing resent is a failure.
    code, output = await run(services, "log", "resend", str(pending), "--yes", "--user", "ops-ana")
    assert code == 1 and "done: 0 queued, 1 skipped" in output


async def test_resend_asks_first_and_refuses_without_a_terminal(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed_log(services, count=30)
    [one, two] = seeded.ids(lambda r: r["status"] == "sent")[:2]
    await user(services, "ops-ana")
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped: no one to ask
    code, output = await run(services, "log", "resend", str(one), "--user", "ops-ana")
    assert code == 2
    assert "1 message will be resent." in output and "pass --yes" in output
    assert await job_count(services) == 0 and await resends_of(services, [one]) == []

    monkeypatch.setattr("sys.stdin", Terminal("n\n"))
    code, output = await run(services, "log", "resend", str(one), "--user", "ops-ana")
    assert code == 1 and "Continue? [y/N]" in output and "Nothing resent." in output
    assert await job_count(services) == 0

    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    code, output = await run(services, "log", "resend", str(one), str(two), "--user", "ops-ana")
    assert code == 0 and "done: 2 queued, 0 skipped" in output
    assert len(await resends_of(services, [one, two])) == 2

    # Neither ids nor filters, or both: refused before anything is counted.
    code, output = await run(services, "log", "resend", "--yes", "--user", "ops-ana")
    assert code == 2 and "say what to resend" in output
    code, output = await run(services, "log", "resend", str(one), "--status", "failed", "--yes",
                             "--user", "ops-ana")  # fmt: skip
    assert code == 2 and "not both" in output
    code, output = await run(services, "log", "resend", str(one), "--yes", "--user", "nadie")
    assert code == 2 and "token create --name nadie --role ops" in output


async def test_interrupted_resend_leaves_the_job_running(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = await seed_log(services, count=20)
    sent = seeded.ids(lambda r: r["status"] == "sent")
    assert sent
    await user(services, "ops-ana")

    class Idle(cli_log_resend.ResendJobRunner):
        """A runner that never gets to the job, as while a daemon is busy elsewhere."""

        async def claim(self, capacity: int) -> list[int]:
            return []

    monkeypatch.setattr(cli_log_resend, "ResendJobRunner", Idle)
    out = io.StringIO()
    args = parse("log", "resend", "--sent", "--yes", "--user", "ops-ana")
    command = asyncio.create_task(args.handler(services, args, out))
    for _ in range(500):  # until the job is started and followed
        if await job_count(services):
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    command.cancel()  # what Ctrl-C does to the command
    assert await command == 130
    assert "keeps running in the daemon" in out.getvalue()
    async with services.db.session() as session:
        job = (await session.execute(select(ResendJob))).scalar_one()
    assert (job.status, job.total) == ("running", len(sent))


async def test_a_stopping_runner_ends_the_job_between_steps(services: Services) -> None:
    """What lets Ctrl-C end the command at once: its runner stops after the current step
    instead of running the job out, and the job stays running for the daemon."""
    started: JobStarted = await services.writes.submit(
        StartResendJob({"ids": [10**9 + n for n in range(STEP_ROWS * 2 + 1)]}, "ops-ana")
    )
    runner = ResendJobRunner(services.db, services.writes)
    await runner.stop()
    await runner.process(started.job_id)
    job = await services.db.read(get_job, started.job_id)
    assert job is not None
    assert (job.status, job.done, job.skipped) == ("running", STEP_ROWS, {"not found": STEP_ROWS})


# --- saved filters -------------------------------------------------------------------------


async def test_filters_save_list_use_and_delete(services: Services) -> None:
    seeded: Seeded = await seed_log(services, count=80)
    await user(services, "ops-ana")
    await user(services, "ops-beto")
    ana = ("--user", "ops-ana")
    code, output = await run(services, "log", "filters", "save", "SMS fallidos", "--channel",
                             "sms", "--status", "failed", *ana)  # fmt: skip
    assert code == 0, output
    assert output.strip() == "saved filter 'SMS fallidos' of ops-ana: --channel sms --status failed"
    code, output = await run(services, "log", "filters", "save", "muertos", "--status", "dead",
                             "--user", "ops-beto")  # fmt: skip
    assert code == 0

    code, output = await run(services, "log", "filters", *ana)
    assert "SMS fallidos" in output and "muertos" not in output
    code, output = await run(services, "log", "filters", "--json", *ana)
    [item] = json.loads(output)["items"]
    assert (item["name"], item["user"], item["params"]) == (
        "SMS fallidos",
        "ops-ana",
        {"channel": "sms", "status": "failed"},
    )
    code, output = await run(services, "log", "filters", "--all", "--json")
    assert sorted(i["name"] for i in json.loads(output)["items"]) == ["SMS fallidos", "muertos"]
    code, output = await run(services, "log", "filters", "--user", "ops-beto")
    assert "muertos" in output and "SMS fallidos" not in output

    # In the list, with options beside it overriding its values.
    code, output = await run(services, "log", "list", "--filter", "SMS fallidos", *ana,
                             "--json", "--limit", "200")  # fmt: skip
    assert [i["id"] for i in json.loads(output)["items"]] == seeded.ids(sms_failed)
    code, output = await run(services, "log", "list", "--filter", "SMS fallidos", "--status",
                             "sent", *ana, "--json", "--limit", "200")  # fmt: skip
    assert [i["id"] for i in json.loads(output)["items"]] == seeded.ids(
        lambda r: r["channel"] == "sms" and r["status"] == "sent"
    )
    # Another user's filter is not theirs to use.
    code, output = await run(services, "log", "list", "--filter", "muertos", *ana)
    assert code == 2 and output.startswith("--filter: ops-ana has no saved filter")

    # In a resend: counted, then worked through as a job.
    failed = seeded.ids(sms_failed)
    code, output = await run(services, "log", "resend", "--filter", "SMS fallidos", "--yes", *ana)
    assert code == 0, output
    assert f"{len(failed)} messages will be resent." in output
    assert f"done: {len(failed)} queued, 0 skipped" in output
    again = await resends_of(services, failed)
    assert sorted(r.resend_of for r in again) == sorted(failed)
    assert {r.requested_by for r in again} == {"ops-ana"}

    # A name is taken until replaced; a bad value is refused naming the option.
    code, output = await run(services, "log", "filters", "save", "SMS fallidos", *ana)
    assert code == 1 and "--replace" in output
    code, output = await run(services, "log", "filters", "save", "SMS fallidos", "--sent",
                             "--replace", *ana)  # fmt: skip
    assert code == 0 and output.strip() == "replaced filter 'SMS fallidos' of ops-ana: --sent"
    code, output = await run(services, "log", "filters", "save", "malo", "--since", "ayer", *ana)
    assert code == 2 and output.startswith("--since: ")

    code, output = await run(services, "log", "filters", "delete", "SMS fallidos", *ana)
    assert code == 0 and "deleted filter 'SMS fallidos' of ops-ana" in output
    code, output = await run(services, "log", "filters", "delete", "SMS fallidos", *ana)
    assert code == 1 and "has no saved filter" in output
    code, output = await run(services, "log", "filters", *ana)
    assert output.strip() == "ops-ana has no saved filters"
    # --user given before the subcommand counts too.
    code, output = await run(services, "log", "filters", "--user", "ops-beto", "delete", "muertos")
    assert code == 0, output
