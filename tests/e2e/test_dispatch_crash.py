"""Crash semantics of outbound delivery, on the whole daemon: kill -9 while mail is being
handed to the SMTP server; after a restart every notification ends sent, none is lost, the
ones whose outcome was lost are sent again with the same Message-ID and marked as possible
duplicates, and none recorded as sent is sent again."""

from __future__ import annotations

import asyncio
import collections
import signal
import uuid

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.e2e.test_daemon import DaemonProcess, form_body
from tests.notifiers.smtp_sink import smtp_sink

pytestmark = pytest.mark.e2e


async def query(db_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def test_kill_9_mid_dispatch_loses_nothing_and_resends_only_the_unknown(
    daemon: DaemonProcess, db_url: str
) -> None:
    async with smtp_sink() as sink:
        sink.handler.delay = 0.3  # sends in flight when the daemon dies
        daemon.kill(signal.SIGKILL)  # restart it pointed at the sink
        daemon.env.update(
            VENTANILLA_NOTIFIERS__EMAIL__ENABLED="true",
            VENTANILLA_NOTIFIERS__EMAIL__PORT=str(sink.port),
            VENTANILLA_DISPATCH__LEASE_SECONDS="2",
            VENTANILLA_DISPATCH__POLL_SECONDS="0.5",
            VENTANILLA_DISPATCH__CONCURRENCY="4",
        )
        await asyncio.to_thread(daemon.start)
        async with aiohttp.ClientSession() as session:
            for _ in range(12):
                async with session.post(
                    f"{daemon.base}/form",
                    json=form_body(str(uuid.uuid4())),
                    headers={"Accept": "application/json"},
                ) as resp:
                    assert resp.status == 201
        for _ in range(600):  # a few delivered, others in flight
            if len(sink.handler.received) >= 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.to_thread(daemon.kill, signal.SIGKILL)
        sent_before = {
            r[0] for r in await query(db_url, "SELECT message_id FROM notifications "
                                              "WHERE status = 'sent'")
        }  # fmt: skip
        await asyncio.to_thread(daemon.start)
        for _ in range(600):
            rows = await query(db_url, "SELECT status FROM notifications")
            if rows and all(r[0] == "sent" for r in rows):
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail(f"not every notification was sent: {rows}")
        await asyncio.to_thread(daemon.kill, signal.SIGTERM)
    got = collections.Counter(m["Message-ID"].strip("<>") for m in sink.handler.received)
    stored = await query(db_url, "SELECT id, message_id FROM notifications")
    assert set(got) == {r[1] for r in stored}  # every one arrived
    for message_id in sent_before:
        assert got[message_id] == 1  # recorded as sent: never sent again
    twice = {m for m, n in got.items() if n > 1}
    marked = {
        r[0] for r in await query(
            db_url,
            "SELECT n.message_id FROM delivery_attempts a JOIN notifications n "
            "ON n.id = a.notification_id WHERE a.possible_duplicate",
        )
    }  # fmt: skip
    assert twice <= marked  # a copy that went twice says it may have
