"""Two daemons, one outbox (PostgreSQL only): ``ventanilla serve`` twice on one database,
each with its own HTTP port, drains 2,000 pending email notifications to one loopback SMTP
sink. Every row ends ``sent`` with exactly one attempt, the sink gets every Message-ID
exactly once, and each daemon's ``/metrics`` shows it sent a share of them. Then 50 more
are queued while another transaction keeps the first 10 of them locked: the daemons send
the other 40 without waiting, and the 10 once they are released.

This is what ``FOR UPDATE SKIP LOCKED`` in ``ClaimDue`` buys, and the test fails without
either half. Without the row lock, both daemons' claims read the same due rows at the same
time and both mark them ``sending`` (the claim's UPDATE matches by id only), so both send
them: the sink sees duplicate Message-IDs (about 200 of 2,000 when tried). With a plain
``FOR UPDATE``, PostgreSQL's recheck after the wait keeps claims exclusive, but every claim
waits behind the locked rows at the head of the outbox, so nothing is sent while they are
held and the second part fails as stuck.

On SQLite there is one writer per database, so the test needs PostgreSQL: it is skipped
with the reason where the server is not running, and fails then under
``VENTANILLA_REQUIRE_POSTGRES=1`` (the ``pg_url`` fixture).
"""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from email.message import Message
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Notification, utcnow
from tests.e2e.test_daemon import DaemonProcess, free_port
from tests.notifiers.smtp_sink import smtp_sink

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ROWS = 2_000
HELD, MORE = 10, 40  # the second part: rows locked elsewhere, rows free to go
TOTAL = ROWS + HELD + MORE
DUE_IN_SECONDS = 2.0
STALL_SECONDS = 20.0
SENT = "SELECT count(*) FROM notifications WHERE status = 'sent'"
STATUSES = "SELECT status, count(*) FROM notifications GROUP BY status ORDER BY status"


def daemon_env(pg_url: str, port: int, workdir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "VENTANILLA_DATABASE__URL": pg_url,
        "VENTANILLA_HTTP__PORT": str(port),
        "VENTANILLA_HTTP__PUBLIC_URL": f"http://127.0.0.1:{port}",
        "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(workdir / "attachments"),
        "VENTANILLA_DAEMON__LOG_FORMAT": "json",
        # Short polls: directly inserted rows poke nobody, so both daemons find them by
        # polling and race for them from the start. Wide claims make the race sharper.
        "VENTANILLA_DISPATCH__POLL_SECONDS": "0.2",
        "VENTANILLA_DISPATCH__CONCURRENCY": "64",
        "VENTANILLA_NOTIFIERS__EMAIL__CONNECTIONS": "16",
    }
    env.pop("VENTANILLA_CONFIG", None)
    return env


@pytest.fixture
def two_daemons(tmp_path: Path, pg_url: str) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    """Two daemons on one fresh PostgreSQL database, not started (the test points them at
    its sink first); the database is migrated once."""
    daemons = []
    for name in ("a", "b"):
        port = free_port()
        workdir = tmp_path / name
        workdir.mkdir()
        daemons.append(
            DaemonProcess(env=daemon_env(pg_url, port, workdir), port=port, log=workdir / "log")
        )
    upgrade = daemons[0].cli("db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    try:
        yield daemons[0], daemons[1]
    finally:
        for daemon in daemons:
            if daemon.proc is not None and daemon.proc.poll() is None:
                daemon.kill(signal.SIGKILL)


async def query(pg_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as conn:
            return [tuple(r) for r in await conn.execute(text(sql))]
    finally:
        await engine.dispose()


async def enqueue(pg_url: str, run: str, numbers: range, due_at: datetime) -> dict[str, str]:
    """Pending email rows, each with its own recipient and Message-ID, in one transaction
    (so neither daemon sees a partial outbox); Message-ID → recipient."""
    rows = [
        {
            "channel": "email",
            "provider": "email",
            "trigger": "auto",
            "template": "test_two_daemons",
            "language": "es",
            "audience": "customer",
            "recipient": f"cliente-{i}@clientes.test",
            "subject": f"Aviso {i}",
            "body": f"Mensaje {i} de la prueba {run}.",
            "message_id": f"{run}-{i}@ventanilla.test",
            "headers": {"Auto-Submitted": "auto-generated"},
            "status": "pending",
            "next_attempt_at": due_at,
        }
        for i in numbers
    ]
    engine = create_async_engine(pg_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(Notification), rows)
    finally:
        await engine.dispose()
    return {str(r["message_id"]): str(r["recipient"]) for r in rows}


@asynccontextmanager
async def first_pending_locked(pg_url: str, count: int) -> AsyncIterator[list[int]]:
    """Another transaction holds the first ``count`` pending rows (in claim order) locked
    until the block ends; their ids."""
    engine = create_async_engine(pg_url)
    try:
        async with engine.connect() as conn:
            lock = await conn.begin()
            picked = await conn.execute(
                text(
                    "SELECT id FROM notifications WHERE status = 'pending' "
                    "ORDER BY next_attempt_at, id LIMIT :n FOR UPDATE"
                ),
                {"n": count},
            )
            yield [int(r[0]) for r in picked]
            await lock.rollback()
    finally:
        await engine.dispose()


async def wait_for_sent(pg_url: str, target: int) -> None:
    """Until ``target`` rows are sent; fails once the count stops moving for a while (a
    loaded machine is slow, a blocked claim is stuck)."""
    engine = create_async_engine(pg_url)
    try:
        last, moved = -1, time.monotonic()
        while True:
            async with engine.connect() as conn:
                sent = (await conn.execute(text(SENT))).scalar_one()
            if sent >= target:
                return
            if sent != last:
                last, moved = sent, time.monotonic()
            elif time.monotonic() - moved > STALL_SECONDS:
                async with engine.connect() as conn:
                    statuses = (await conn.execute(text(STATUSES))).all()
                pytest.fail(f"stuck at {sent} of {target} sent for {STALL_SECONDS:.0f} s: "
                            f"{statuses}")  # fmt: skip
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


def message_ids(received: Sequence[Message]) -> collections.Counter[str]:
    return collections.Counter(str(m["Message-ID"]).strip("<>") for m in received)


def assert_none_twice(received: Sequence[Message]) -> None:
    twice = {m: n for m, n in message_ids(received).items() if n > 1}
    assert not twice, f"{len(twice)} Message-IDs arrived more than once, e.g. {list(twice)[:5]}"


async def sent_by(session: aiohttp.ClientSession, daemon: DaemonProcess) -> int:
    """Emails this daemon recorded as sent, from its own ``/metrics``."""
    async with session.get(f"{daemon.base}/metrics") as resp:
        assert resp.status == 200
        exposition = await resp.text()
    total = 0.0
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if (
                sample.name == "ventanilla_notifications_total"
                and sample.labels.get("channel") == "email"
                and sample.labels.get("outcome") == "sent"
            ):
                total += sample.value
    return int(total)


async def test_two_daemons_drain_one_outbox_each_message_once(
    two_daemons: tuple[DaemonProcess, DaemonProcess], pg_url: str
) -> None:
    a, b = two_daemons
    run = uuid.uuid4().hex[:12]
    async with smtp_sink() as sink:
        for daemon in (a, b):
            daemon.env["VENTANILLA_NOTIFIERS__EMAIL__ENABLED"] = "true"
            daemon.env["VENTANILLA_NOTIFIERS__EMAIL__PORT"] = str(sink.port)
            # One after the other: each seeds the catalog at start.
            await asyncio.to_thread(daemon.start)

        # Both daemons are polling when the whole outbox appears at once.
        started = time.monotonic()
        expected = await enqueue(pg_url, run, range(ROWS), utcnow())
        await wait_for_sent(pg_url, ROWS)
        drained = time.monotonic() - started
        async with aiohttp.ClientSession() as session:
            shares = [await sent_by(session, daemon) for daemon in (a, b)]
        assert_none_twice(sink.handler.received)  # before the second part can get stuck

        # Due a moment from now, so that the first rows are locked before a claim sees them.
        due_at = utcnow() + timedelta(seconds=DUE_IN_SECONDS)
        expected |= await enqueue(pg_url, run, range(ROWS, TOTAL), due_at)
        async with first_pending_locked(pg_url, HELD) as held:
            assert utcnow() < due_at, "too slow a machine: the rows were due before locked"
            await wait_for_sent(pg_url, TOTAL - HELD)
            untouched = await query(
                pg_url,
                "SELECT count(*) FROM notifications WHERE status = 'pending' "
                f"AND attempts = 0 AND id IN ({','.join(map(str, held))})",
            )
            assert untouched == [(HELD,)]  # passed over, neither claimed nor waited for
        await wait_for_sent(pg_url, TOTAL)

        for daemon in (a, b):
            assert await asyncio.to_thread(daemon.kill, signal.SIGTERM) == 0
        await asyncio.sleep(0.2)  # a duplicate still in flight would land by now
        received = list(sink.handler.received)

    # Every row: sent, with exactly one attempt, and that one sent and not a resend.
    assert await query(pg_url, STATUSES) == [("sent", TOTAL)]
    attempts = await query(
        pg_url,
        "SELECT n.id, count(a.id), count(*) FILTER (WHERE a.outcome = 'sent'), "
        "bool_or(a.possible_duplicate) FROM notifications n "
        "LEFT JOIN delivery_attempts a ON a.notification_id = n.id GROUP BY n.id",
    )
    assert len(attempts) == TOTAL
    wrong = [row for row in attempts if row[1:] != (1, 1, False)]
    assert not wrong, f"{len(wrong)} rows without exactly one sent attempt, e.g. {wrong[:5]}"

    # The sink: each Message-ID exactly once, to the row's own recipient.
    assert_none_twice(received)
    assert set(message_ids(received)) == set(expected)
    assert {str(m["Message-ID"]).strip("<>"): str(m["To"]) for m in received} == expected

    # Both daemons sent part of the 2,000, and between them each message once.
    print(f"\n{ROWS} sent in {drained:.1f} s; by daemon a/b: {shares[0]}/{shares[1]}")
    assert sum(shares) == ROWS
    assert all(share > 0 for share in shares), f"one daemon did all the work: {shares}"
    # The log says the same: each attempt names the dispatcher that made it.
    by_dispatcher = await query(
        pg_url, "SELECT dispatcher, count(*) FROM delivery_attempts GROUP BY dispatcher"
    )
    assert len(by_dispatcher) == 2 and all(d for d, _ in by_dispatcher)
    assert sum(int(str(n)) for _, n in by_dispatcher) == TOTAL
