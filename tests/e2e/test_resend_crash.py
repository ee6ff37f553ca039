"""A bulk resend survives kill -9: 5,000 rows, the daemon killed mid-job, restarted; the
job resumes where its last committed step left it and every row is queued exactly once."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Notification
from tests.e2e.test_daemon import DaemonProcess
from tests.e2e.test_dispatch_crash import query
from tests.e2e.test_openapi_fuzz import token

pytestmark = pytest.mark.e2e
ROWS = 5_000


async def seed_sent(db_url: str) -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    rows = [
        {
            "channel": "sms",
            "trigger": "auto",
            "template": "ack_sms",
            "language": "es",
            "recipient": f"+5491155{n:06d}",
            "subject": "",
            "body": f"Recibimos su caso {n}.",
            "status": "sent",
            "attempts": 1,
            "created_at": start + timedelta(seconds=n),
            "next_attempt_at": None,
            "sent_at": start + timedelta(seconds=n + 1),
            "provider": "twilio",
            "audience": "customer",
            "headers": {},
            "context": {},
            "fallback": [],
            "attachments": [],
        }
        for n in range(ROWS)
    ]
    engine = create_async_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Notification), rows)
    finally:
        await engine.dispose()


async def test_a_bulk_resend_killed_mid_job_resumes_and_queues_each_row_once(
    daemon: DaemonProcess, db_url: str
) -> None:
    await seed_sent(db_url)
    ops = await asyncio.to_thread(token, daemon, "crash-ops", "ops")
    selection = {"filter": {"status": "sent", "channel": "sms"}, "as_sent": True}
    async with (
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {ops}"}) as session,
        session.post(f"{daemon.base}/api/v1/notifications/resend", json=selection) as resp,
    ):
        body = await resp.json()
        assert resp.status == 202, body
    job_id = body["job"]["id"]
    assert body["job"]["total"] == ROWS
    for _ in range(3000):  # kill once some steps have committed and others have not
        [(done,)] = await query(db_url, f"SELECT done FROM resend_jobs WHERE id = {job_id}")
        if 0 < int(str(done)) < ROWS:
            break
        await asyncio.sleep(0.01)
    await asyncio.to_thread(daemon.kill, signal.SIGKILL)
    [(done_at_kill,)] = await query(db_url, f"SELECT done FROM resend_jobs WHERE id = {job_id}")
    assert 0 < int(str(done_at_kill)) < ROWS, "the job was not caught mid-way"
    await asyncio.to_thread(daemon.start)
    for _ in range(1200):
        [(status,)] = await query(db_url, f"SELECT status FROM resend_jobs WHERE id = {job_id}")
        if status != "running":
            break
        await asyncio.sleep(0.1)
    await asyncio.to_thread(daemon.kill, signal.SIGTERM)
    [(status, done, queued)] = await query(
        db_url, f"SELECT status, done, queued FROM resend_jobs WHERE id = {job_id}"
    )
    assert (status, done, queued) == ("done", ROWS, ROWS)
    per_original = await query(
        db_url,
        "SELECT o.id, count(r.id) FROM notifications o "
        "LEFT JOIN notifications r ON r.resend_of = o.id "
        "WHERE o.resend_of IS NULL GROUP BY o.id",
    )
    assert len(per_original) == ROWS
    assert {int(str(n)) for _, n in per_original} == {1}  # each row resent exactly once
    originals = await query(db_url, "SELECT count(*) FROM notifications WHERE status = 'sent' "
                                    "AND resend_of IS NULL")  # fmt: skip
    assert originals == [(ROWS,)]  # the originals untouched
