"""The outbound log's retention at scale: the plan of a batch's query, how long one batch
holds the write path, and how long a small write waits while a backlog is pruned.

    .venv/bin/python bench/log_retention.py [--rows 100000] [--batch 500] \
        [--database postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Fills a fresh database (a temp SQLite file, or a scratch PostgreSQL database created on the
``--database`` server and dropped afterwards) with ``--rows`` notifications of ~600
characters, two delivery attempts each, created one after another over 1,200 days (so about
seven in ten are older than ``keep_days = 365``); every 20th row is ``pending`` and every
50th a resend of the row ten before it. PostgreSQL is ANALYZEd (as autovacuum would);
SQLite is not (the daemon never runs ANALYZE). Then the write path runs as in the daemon
(on SQLite in the writer process) and ``LogRetention`` drains the backlog while a probe
submits a small write (``SaveCheckpoint``) every 10 ms.

Prints the candidate query's plan, the batches and their time (median, p95, max: the time
from submit to answer, i.e. how long the batch held the write path), rows deleted per
second, and the probe's latency idle and during the prune (median, p99, max). Writes
``bench/results/log_retention[_pg].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from config import event_loop
from config.app import Services, open_services
from config.settings import DEFAULT_CONFIG, load_settings
from notifiers.retention import LogRetention, RetentionMetrics
from notifiers.retention_ops import PruneLog, ResendHolds, prunable
from storage import migrate
from storage.checkpoints import SaveCheckpoint
from storage.explain import query_plan
from storage.models import DeliveryAttempt, Notification, utcnow

KEEP_DAYS = 365
SPAN_DAYS = 1200
CHUNK = 2000
PROBE_SECONDS = 0.01
BODY = "Hemos recibido su mensaje y un técnico lo revisará en breve. " * 10
RESULTS = Path(__file__).resolve().parent / "results"


def fill(conn: Connection, rows: int) -> None:
    """``rows`` notifications (ids 1…rows, oldest first) and two attempts each."""
    start = utcnow() - timedelta(days=SPAN_DAYS)
    step = timedelta(days=SPAN_DAYS) / rows
    for first in range(1, rows + 1, CHUNK):
        ids = range(first, min(first + CHUNK, rows + 1))
        conn.execute(
            insert(Notification),
            [
                {
                    "id": n,
                    "channel": "email",
                    "trigger": "manual" if n % 50 == 0 else "auto",
                    "template": "ack",
                    "recipient": f"cliente{n}@example.com",
                    "subject": f"[CAS-{n:06d}] Hemos recibido su mensaje",
                    "body": BODY,
                    "provider": "email",
                    "status": "pending" if n % 20 == 0 else "sent",
                    "created_at": start + step * n,
                    "next_attempt_at": start + step * n,
                    "resend_of": n - 10 if n % 50 == 0 else None,
                }
                for n in ids
            ],
        )
        conn.execute(
            insert(DeliveryAttempt),
            [
                {
                    "notification_id": n,
                    "started_at": start + step * n,
                    "outcome": "sent",
                    "provider": "email",
                    "provider_response": "250 2.0.0 Ok",
                }
                for n in ids
                for _ in range(2)
            ],
        )


def plan(conn: Connection) -> str:
    op = PruneLog(utcnow() - timedelta(days=KEEP_DAYS), 500)
    return query_plan(conn, prunable(conn.dialect.name, op, ResendHolds()))


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values) or [0.0]
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
        "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "count": len(values),
    }


class TimedWrites:
    """The write path with the time of each submit kept (what the runner's batches take)."""

    def __init__(self, services: Services) -> None:
        self.writes = services.writes
        self.times: list[float] = []

    async def submit(self, op: Any) -> Any:
        started = time.perf_counter()
        try:
            return await self.writes.submit(op)
        finally:
            self.times.append(time.perf_counter() - started)


async def probe(services: Services, stop: asyncio.Event) -> list[float]:
    """Latencies of a small write every ``PROBE_SECONDS`` until ``stop``."""
    latencies: list[float] = []
    n = 0
    while not stop.is_set():
        n += 1
        started = time.perf_counter()
        await services.writes.submit(SaveCheckpoint("bench", "INBOX", 1, n))
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(PROBE_SECONDS)
    return latencies


async def measure(url: str, rows: int, batch: int, workdir: Path) -> dict[str, Any]:
    settings = load_settings(
        DEFAULT_CONFIG,
        {"VENTANILLA_DATABASE__URL": url, "VENTANILLA_INTAKE__ATTACHMENTS_DIR": str(workdir)},
    )
    if not settings.database.is_sqlite:
        await migrate.upgrade(url)
    services = await open_services(settings)
    try:
        started = time.perf_counter()
        await services.db.write(fill, rows)
        filled = time.perf_counter() - started
        if not services.db.is_sqlite:
            async with services.db.engine.connect() as conn:
                await conn.exec_driver_sql("ANALYZE notifications")
                await conn.exec_driver_sql("ANALYZE delivery_attempts")
        query = await services.db.read(plan)
        await services.start_writer_process()
        writer = asyncio.create_task(services.writes.run())
        await services.writes.wait_started()
        stop = asyncio.Event()
        idle = asyncio.create_task(probe(services, stop))
        await asyncio.sleep(1.0)
        stop.set()
        idle_latencies = await idle

        timed = TimedWrites(services)
        registry = CollectorRegistry()
        runner = LogRetention(timed, RetentionMetrics(registry),  # type: ignore[arg-type]
                              keep_days=KEEP_DAYS, batch=batch)  # fmt: skip
        running = asyncio.create_task(runner.run())
        stop = asyncio.Event()
        busy = asyncio.create_task(probe(services, stop))
        started = time.perf_counter()
        runner.poke()
        await runner.idle()
        pruned_seconds = time.perf_counter() - started
        stop.set()
        busy_latencies = await busy
        await runner.stop()
        await running
        await services.writes.close()
        await writer
    finally:
        await services.close()
    deleted = registry.get_sample_value("ventanilla_log_pruned_total") or 0.0
    return {
        "engine": services.db.dialect,
        "rows": rows,
        "batch": batch,
        "fill_seconds": round(filled, 1),
        "plan": query,
        "deleted": int(deleted),
        "prune_seconds": round(pruned_seconds, 2),
        "rows_per_second": round(deleted / pruned_seconds),
        "batch_time": summary(timed.times),
        "probe_idle": summary(idle_latencies),
        "probe_during_prune": summary(busy_latencies),
    }


async def scratch_pg(server: str, rows: int, batch: int, workdir: Path) -> dict[str, Any]:
    admin = server.replace("postgresql+asyncpg://", "postgresql://", 1)
    name = f"ventanilla_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        return await measure(server.rsplit("/", 1)[0] + "/" + name, rows, batch, workdir)
    finally:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database", help="a PostgreSQL server URL (default: SQLite)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.database:
            run = scratch_pg(args.database, args.rows, args.batch, workdir)
        else:
            run = measure(f"sqlite+aiosqlite:///{workdir / 'log.db'}", args.rows, args.batch,
                          workdir)  # fmt: skip
        result = event_loop.run(run)
    print(result.pop("plan"))
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    name = "log_retention_pg.json" if args.database else "log_retention.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
