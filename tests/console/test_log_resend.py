"""Resending from the log and saved filters, through the API, on SQLite (writer process)
and PostgreSQL: a resend is a new linked row and never changes the original; rendered
again from the case as it is now, or as sent; an Idempotency-Key sent twice at once queues
one row; bulk resends are jobs that skip with reasons, can be cancelled and answer a
repeated key with the first job; saved filters belong to their user."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select, update

from config.app import Services
from notifiers.resend_jobs import ResendJobRunner
from storage.models import Case, Notification, OptOut
from tests.conftest import TokenFactory
from tests.console.log_support import seed_log
from tests.console.test_case_operations import api_for, new_case

Client = TestClient[Any, Any]
LIST = "/api/v1/notifications"


async def ack_of(services: Services, number: str) -> dict[str, Any]:
    async with services.db.session() as session, session.begin():
        case_id = await session.scalar(select(Case.id).where(Case.number == number))
        row = (
            await session.execute(
                select(Notification).where(
                    Notification.case_id == case_id, Notification.template.like("ack_%")
                )
            )
        ).scalar_one()
        # As the dispatcher would leave it once sent.
        await session.execute(
            update(Notification).where(Notification.id == row.id).values(status="sent")
        )
        return {c.name: getattr(row, c.name) for c in Notification.__table__.columns}


async def resends_of(services: Services, original: int) -> list[Notification]:
    async with services.db.session() as session:
        found = await session.scalars(
            select(Notification).where(Notification.resend_of == original).order_by(Notification.id)
        )
        return list(found.all())


async def test_one_resend_is_a_new_row_rendered_from_the_case_as_it_is_now(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    number = await new_case(services)
    original = await ack_of(services, number)
    ops = await api_for(client, make_token, "ops")
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Case).where(Case.number == number).values(title="Título corregido")
        )
    status, body, _ = await ops.call(
        "POST", f"{LIST}/{original['id']}/resend", {"reason": "el cliente no lo recibió"}
    )
    assert status == 201, body
    [again] = await resends_of(services, original["id"])
    assert body == {"original": original["id"], "notification": again.id, "skipped": None,
                    "repeated": False}  # fmt: skip
    assert (again.trigger, again.status, again.recipient) == ("manual", "pending",
                                                              original["recipient"])  # fmt: skip
    assert again.requested_by.startswith("test-ops-") and again.reason == "el cliente no lo recibió"
    assert "Título corregido" in again.body + again.subject  # rendered again
    assert again.message_id != original["message_id"]  # a new message
    status, detail, _ = await ops.call("GET", f"{LIST}/{original['id']}")
    assert detail["status"] == "sent" and detail["body" if False else "subject"] == original[
        "subject"]  # fmt: skip
    assert [c["id"] for c in detail["chain"]] == [original["id"], again.id]
    # As sent: the original text, not the case's new title.
    status, body, _ = await ops.call("POST", f"{LIST}/{original['id']}/resend", {"as_sent": True})
    assert status == 201
    as_sent = (await resends_of(services, original["id"]))[-1]
    assert (as_sent.subject, as_sent.body) == (original["subject"], original["body"])


async def test_the_same_key_twice_at_once_queues_one_row(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    original = await ack_of(services, await new_case(services))
    ops = await api_for(client, make_token, "ops")
    key = uuid.uuid4().hex
    answers = await asyncio.gather(
        *(ops.call("POST", f"{LIST}/{original['id']}/resend", {}, **{"Idempotency-Key": key})
          for _ in range(2))
    )  # fmt: skip
    assert sorted(a[0] for a in answers) == [200, 201], answers
    rows = await resends_of(services, original["id"])
    assert len(rows) == 1
    assert {a[1]["notification"] for a in answers} == {rows[0].id}
    # Later, the same key again: still that row.
    status, body, _ = await ops.call(
        "POST", f"{LIST}/{original['id']}/resend", {}, **{"Idempotency-Key": key}
    )
    assert (status, body["notification"], body["repeated"]) == (200, rows[0].id, True)
    assert len(await resends_of(services, original["id"])) == 1


async def test_a_resend_is_skipped_with_its_reason(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    ops = await api_for(client, make_token, "ops")
    queued = await ack_of(services, await new_case(services))
    async with services.db.session() as session, session.begin():
        await session.execute(
            update(Notification).where(Notification.id == queued["id"]).values(status="pending")
        )
    status, body, _ = await ops.call("POST", f"{LIST}/{queued['id']}/resend", {})
    assert (status, body["skipped"], body["notification"]) == (200, "still queued", None)
    opted = await ack_of(services, await new_case(services, "baja@example.com"))
    async with services.db.session() as session, session.begin():
        await session.execute(
            insert(OptOut).values(channel=opted["channel"], address=opted["recipient"])
        )
    status, body, _ = await ops.call("POST", f"{LIST}/{opted['id']}/resend", {})
    assert (status, body["skipped"]) == (200, "opted out")
    assert (await ops.call("POST", f"{LIST}/999999999/resend", {}))[0] == 404


@contextlib.asynccontextmanager
async def job_runner(services: Services) -> AsyncIterator[ResendJobRunner]:
    runner = ResendJobRunner(services.db, services.writes, poll_seconds=0.05)
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        await runner.stop()
        await task


async def until_finished(ops: Any, job_id: int) -> dict[str, Any]:
    for _ in range(400):
        status, job, _ = await ops.call("GET", f"/api/v1/jobs/{job_id}")
        assert status == 200
        if job["status"] != "running":
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


async def test_bulk_resend_by_filter_and_by_ids_as_jobs(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=80)
    ops = await api_for(client, make_token, "ops")
    failed = seeded.ids(lambda r: r["status"] == "failed" and r["channel"] == "sms")
    async with job_runner(services):
        status, body, headers = await ops.call(
            "POST", f"{LIST}/resend",
            {"filter": {"status": "failed", "channel": ["sms"]}, "reason": "corte del proveedor"},
        )  # fmt: skip
        assert status == 202, body
        assert headers["Location"] == f"/api/v1/jobs/{body['job']['id']}"
        assert body["job"]["total"] == len(failed)
        job = await until_finished(ops, body["job"]["id"])
        assert (job["status"], job["done"], job["queued"]) == ("done", len(failed), len(failed))
        for original in failed:
            [again] = await resends_of(services, original)
            assert again.reason == "corte del proveedor" and again.trigger == "manual"
        # By ids, with one still queued and one that does not exist.
        pending = seeded.ids(lambda r: r["status"] == "pending")[0]
        sent = seeded.ids(lambda r: r["status"] == "sent")[:3]
        status, body, _ = await ops.call(
            "POST", f"{LIST}/resend", {"ids": [*sent, pending, 987654321]},
            **{"Idempotency-Key": "lote-1"},
        )  # fmt: skip
        assert status == 202
        job = await until_finished(ops, body["job"]["id"])
        assert (job["total"], job["queued"]) == (5, 3)
        assert job["skipped"] == {"still queued": 1, "not found": 1}
        # The same key again: the first job, nothing new queued.
        status, again, _ = await ops.call(
            "POST", f"{LIST}/resend", {"ids": sent}, **{"Idempotency-Key": "lote-1"}
        )
        assert (status, again["job"]["id"], again["repeated"]) == (200, body["job"]["id"], True)
    async with services.db.session() as session:
        assert await session.scalar(
            select(func.count()).select_from(Notification).where(
                Notification.resend_of.in_(sent)
            )
        ) == 3  # fmt: skip


async def test_a_job_can_be_cancelled_and_stops(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=30)
    ops = await api_for(client, make_token, "ops")
    status, body, _ = await ops.call("POST", f"{LIST}/resend", {"filter": {"sent": True}})
    assert status == 202 and body["job"]["status"] == "running"
    job_id = body["job"]["id"]
    status, job, _ = await ops.call("POST", f"/api/v1/jobs/{job_id}/cancel")
    assert (status, job["status"]) == (200, "cancelled")
    async with job_runner(services):
        await asyncio.sleep(0.2)
    status, job, _ = await ops.call("GET", f"/api/v1/jobs/{job_id}")
    assert (job["status"], job["queued"]) == ("cancelled", 0)
    assert (await ops.call("POST", f"/api/v1/jobs/{job_id}/cancel"))[0] == 409
    assert seeded.rows  # the rows were there to resend


async def test_saved_filters_belong_to_their_user(
    services: Services, client: Client, make_token: TokenFactory
) -> None:
    seeded = await seed_log(services, count=40)
    ana = await api_for(client, make_token, "ops")
    beto = await api_for(client, make_token, "ops")
    admin = await api_for(client, make_token, "admin")
    status, saved, headers = await ana.call(
        "POST", "/api/v1/filters", {"name": "SMS fallidos", "params": {"channel": "sms",
                                                                       "status": ["failed"]}},
    )  # fmt: skip
    assert status == 201, saved
    assert saved["params"] == {"channel": "sms", "status": "failed"}
    assert headers["Location"] == f"/api/v1/filters/{saved['id']}"
    expected = seeded.ids(lambda r: r["channel"] == "sms" and r["status"] == "failed")
    status, page, _ = await ana.call("GET", f"{LIST}?filter=SMS%20fallidos&limit=200")
    assert [i["id"] for i in page["items"]] == expected
    # A parameter beside the filter overrides its value.
    status, page, _ = await ana.call("GET", f"{LIST}?filter=SMS%20fallidos&status=sent&limit=200")
    assert [i["id"] for i in page["items"]] == seeded.ids(
        lambda r: r["channel"] == "sms" and r["status"] == "sent"
    )
    # Beto neither sees nor uses nor changes Ana's.
    assert (await beto.call("GET", "/api/v1/filters"))[1]["items"] == []
    assert (await beto.call("GET", f"{LIST}?filter=SMS%20fallidos"))[0] == 400
    assert (await beto.call("PATCH", f"/api/v1/filters/{saved['id']}", {"name": "x"}))[0] == 404
    assert (await beto.call("DELETE", f"/api/v1/filters/{saved['id']}"))[0] == 404
    # The admin sees everyone's.
    names = [f["name"] for f in (await admin.call("GET", "/api/v1/filters"))[1]["items"]]
    assert names == ["SMS fallidos"]
    # Names are unique per user; params are checked like the list's.
    assert (await ana.call("POST", "/api/v1/filters", {"name": "SMS fallidos"}))[0] == 409
    status, body, _ = await ana.call(
        "POST", "/api/v1/filters", {"name": "malo", "params": {"status": "perdido"}}
    )
    assert status == 422 and "params.status" in body["error"]["fields"]
    status, changed, _ = await ana.call(
        "PATCH", f"/api/v1/filters/{saved['id']}", {"name": "Fallidos", "params": {}}
    )
    assert (status, changed["name"], changed["params"]) == (200, "Fallidos", {})
    assert (await ana.call("DELETE", f"/api/v1/filters/{saved['id']}"))[0] == 200
    assert (await ana.call("GET", "/api/v1/filters"))[1]["items"] == []
    # A bulk resend by a saved filter's name.
    await ana.call("POST", "/api/v1/filters", {"name": "muertos", "params": {"status": "dead"}})
    status, body, _ = await ana.call("POST", f"{LIST}/resend", {"filter": "muertos"})
    assert status == 202 and body["job"]["total"] == len(
        seeded.ids(lambda r: r["status"] == "dead")
    )
