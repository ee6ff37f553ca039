"""Outbound log benchmark: the log's list under every filter, a page deep and the first, on a
year of 1,000,000 notifications, and a bulk resend of 10,000 rows, on SQLite and PostgreSQL.

    .venv/bin/python bench/log.py [--rows 1000000] [--database sqlite|postgresql|both]
        [--repeat 40] [--resend 10000] [--keep] [--reuse] [--strict]

For each engine: a fresh database migrated by ``storage.migrate.upgrade`` and seeded by
``open_services`` as the daemon does it, then ``--rows`` notifications with their delivery
attempts, customers and cases (``bench/log_data.py``), inserted in transactions of 100,000
notifications. On SQLite the full-text index's insert trigger is dropped for the load and
the index rebuilt once after it (row by row the load took three times as long); SQLite gets
no ANALYZE, as the daemon runs none. PostgreSQL gets VACUUM ANALYZE, as autovacuum would
(statistics, and the GIN index's pending list merged). Then, for each filter alone, three
common combinations, a common word and a rare word searched:

1. the plan of the list's statement (``storage.log_queries.list_statement``) for the first
   page and for a page 10,000 rows deep, printed; a full scan of ``notifications`` (SQLite
   ``SCAN notifications`` without an index, PostgreSQL ``Seq Scan on notifications``, the
   latter judged from 100,000 rows) fails the run;
2. the first page (50 rows) and the page 10,000 rows deep (its cursor found once by walking
   the pages, untimed; where fewer rows match, the deepest full page), each fetched
   ``--repeat`` times through ``Database.read(list_notifications, …)``, the API's own path:
   p50 and p95.

Last, a bulk resend through the write path (on SQLite in the writer process, as the daemon
runs it): a job of 10,000 ids, then a job by a filter that selects 10,000 rows, each worked
through by ``ResendJobRunner`` to its end; the seconds from the job's start to its last row
queued. Goals: p95 < 50 ms for every page, no full scan, each resend < 10 s. Results go to
``bench/results/log.json``; see bench/README.md for the method and the figures.

``--keep`` keeps the generated databases (the SQLite file in the temp folder's
``ventanilla-bench-log/``, the PostgreSQL database ``ventanilla_bench_log_<rows>_<seed>``);
``--reuse`` measures a kept one again when its rows and seed match (migrating it first),
and keeps it. Either way the rows the resends added are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from intake_http import daemon_env
from log_data import COMMON_WORD, RARE_WORD, VERSION, Generator, Picks, Technician
from sqlalchemy import Engine, create_engine, delete, insert, select, text, update
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from config.app import Services, open_services
from config.settings import DEFAULT_CONFIG, load_settings
from notifiers.resend_jobs import JobStarted, ResendJobRunner, StartResendJob
from storage import migrate
from storage.bulk import core_insert
from storage.log_filters import LogFilters, parse_filters
from storage.log_queries import encode_cursor, get_job, list_notifications, list_statement
from storage.models import (
    AppState,
    Area,
    Case,
    Category,
    Customer,
    DeliveryAttempt,
    Notification,
    Priority,
    ResendJob,
    Severity,
    Status,
    TechnicianChannel,
)
from storage.models import Technician as TechnicianRow
from storage.paging import MAX_LIMIT

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "bench" / "results" / "log.json"
DEFAULT_CACHE = Path(tempfile.gettempdir()) / "ventanilla-bench-log"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_P95_MS = 50.0  # first page and deep page, every query
GOAL_RESEND_S = 10.0  # 10,000 resends queued
# PostgreSQL rightly reads a small table whole: its plans are judged from this size.
PG_PLANS_FROM_ROWS = 100_000
PAGE = 50
DEEP = 10_000
RESEND_ROWS = 10_000
COMMIT_EVERY = 100_000  # rows per load transaction
DATASET_KEY = "bench.log.dataset"
FTS_INSERT_TRIGGER = "notifications_fts_ai"  # migration 0010
SQLITE_SCAN = re.compile(r"^SCAN notifications\b(?! USING (?:COVERING )?INDEX)")
PG_SCAN = re.compile(r"Seq Scan on notifications\b")
SQLITE_INDEX = re.compile(r"(?:SCAN|SEARCH) notifications USING (?:COVERING )?INDEX (\w+)")
PG_INDEX = re.compile(
    r"(?:Index(?: Only)? Scan(?: Backward)? using (\w+) on notifications"
    r"|Bitmap Index Scan on (ix_notifications\w*))"
)


@dataclass(frozen=True, slots=True)
class Query:
    name: str
    kind: str  # "none", "single", "combination" or "search"
    params: dict[str, str]


def queries(end: datetime, picks: Picks) -> list[Query]:
    """The measured queries: the unfiltered log, each filter alone (``q`` with a word in
    about 15 % of the rows), three combinations an operator uses every day, and a search
    for a rare word (about 0.5 %)."""

    def ago(days: int) -> str:
        return (end - timedelta(days=days)).isoformat()

    window = {"since": ago(200), "until": ago(170)}  # a month, half a year back
    return [
        Query("(no filter)", "none", {}),
        Query("channel=sms", "single", {"channel": "sms"}),
        Query("status=failed", "single", {"status": "failed"}),
        Query("sent=false", "single", {"sent": "false"}),
        Query("trigger=manual", "single", {"trigger": "manual"}),
        Query("template=status_sms", "single", {"template": "status_sms"}),
        Query("since/until (30 days)", "single", window),
        Query("case", "single", {"case": picks.busiest_case}),
        Query("customer", "single", {"customer": str(picks.busiest_customer)}),
        Query("recipient", "single", {"recipient": picks.busiest_technician_email}),
        Query("provider=vonage", "single", {"provider": "vonage"}),
        Query("time=sent (30 days)", "single", {"time": "sent", **window}),
        Query(f"q={COMMON_WORD}", "single", {"q": COMMON_WORD}),
        Query("status=failed&channel=sms", "combination", {"status": "failed", "channel": "sms"}),
        Query("sent=false&since=30d", "combination", {"sent": "false", "since": ago(30)}),
        Query(
            "trigger=manual&channel=email&since=90d",
            "combination",
            {"trigger": "manual", "channel": "email", "since": ago(90)},
        ),
        Query(f"q={RARE_WORD}", "search", {"q": RARE_WORD}),
    ]


# --- databases ------------------------------------------------------------------------------


@dataclass
class Target:
    """One engine's database: its URL and how it was made."""

    engine: str
    url: str
    scratch: str | None = None  # a PostgreSQL database to drop at the end
    path: Path | None = None  # the SQLite file


async def pg_admin(args: argparse.Namespace, sql: str) -> None:
    conn = await asyncpg.connect(args.pg_admin, timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def pg_reachable(args: argparse.Namespace) -> str | None:
    try:
        await pg_admin(args, "SELECT 1")
    except Exception as exc:  # any failure means "not here"
        return str(exc) or type(exc).__name__
    return None


def signature(args: argparse.Namespace) -> dict[str, Any]:
    return {"version": VERSION, "rows": args.rows, "seed": args.seed}


async def stored_dataset(url: str) -> dict[str, Any] | None:
    """The description a kept database carries of its data, or None."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            value = await conn.scalar(select(AppState.value).where(AppState.key == DATASET_KEY))
    except Exception:
        return None
    finally:
        await engine.dispose()
    return None if value is None else dict(json.loads(value))


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def database_bytes(conn: Connection, path: Path | None) -> int:
    """The database's size on disk (SQLite: its write-ahead log included)."""
    if path is None:
        return int(conn.scalar(text("SELECT pg_database_size(current_database())")) or 0)
    files = (Path(f"{path}{suffix}") for suffix in ("", "-wal"))
    return sum(f.stat().st_size for f in files if f.exists())


async def target_for(engine: str, args: argparse.Namespace) -> tuple[Target, bool]:
    """The engine's database, and whether it already holds the wanted data (``--reuse``)."""
    name = f"{args.rows}_{args.seed}"
    if engine == "sqlite":
        folder = DEFAULT_CACHE if (args.keep or args.reuse) else Path(args.workdir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"log_{name}.db"
        target = Target(engine, f"sqlite+aiosqlite:///{path}", path=path)
        if args.reuse and path.exists():
            found = await stored_dataset(target.url)
            if found is not None and found.get("signature") == signature(args):
                return target, True
        remove_sqlite(path)
        return target, False
    kept = args.keep or args.reuse
    db = f"ventanilla_bench_log_{name}" if kept else f"ventanilla_bench_log_{os.getpid()}"
    url = make_url(args.pg_admin).set(drivername="postgresql+asyncpg", database=db)
    target = Target(engine, url.render_as_string(hide_password=False), None if kept else db)
    if args.reuse:
        found = await stored_dataset(target.url)
        if found is not None and found.get("signature") == signature(args):
            return target, True
    await pg_admin(args, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    await pg_admin(args, f'CREATE DATABASE "{db}"')
    return target, False


# --- the data -------------------------------------------------------------------------------


async def catalog_ids(services: Services) -> dict[str, Any]:
    """The seeded catalog's ids the cases point at."""

    def read(conn: Connection) -> dict[str, Any]:
        statuses = {r.name: (r.id, r.kind) for r in conn.execute(select(Status))}
        return {
            "open_statuses": [i for i, kind in statuses.values() if kind != "closed"],
            "closed_status": statuses["Cerrada"][0],
            "priority": conn.scalar(select(Priority.id).where(Priority.is_default.is_(True))),
            "severity": conn.scalar(select(Severity.id).where(Severity.is_default.is_(True))),
            "area": conn.scalar(select(Area.id).where(Area.is_default.is_(True))),
            "categories": {r.name: r.id for r in conn.execute(select(Category.id, Category.name))},
        }

    return await services.db.read(read)


def add_technicians(conn: Connection) -> list[Technician]:
    """The technicians whose notices fill the log: the seeded ones and ten more, each with
    an email and a push subscription (so that their push rows can be resent)."""
    from log_data import TECHNICIANS, ascii_slug

    for n, name in enumerate(TECHNICIANS):
        conn.execute(
            insert(TechnicianRow).values(
                name=name, email=f"{ascii_slug(name)}@mesa.example.com",
                phone=f"+5491150{n:06d}", language="es", available=True,
            )
        )  # fmt: skip
    out = []
    for row in conn.execute(select(TechnicianRow).order_by(TechnicianRow.id)):
        push = f"https://fcm.googleapis.com/fcm/send/tecnico-{row.id}"
        phone = row.phone or f"+5491160{row.id:06d}"  # the seeded ones have none
        conn.execute(update(TechnicianRow).where(TechnicianRow.id == row.id).values(phone=phone))
        out.append(Technician(row.id, row.name, row.email or "", phone, push))
        conn.execute(
            insert(TechnicianChannel).values(
                technician_id=row.id, position=0, channel="push", provider="fcm", address=push
            )
        )
    return out


def load(conn: Connection, gen: Generator) -> dict[str, float]:
    """Every generated row, committed every ``COMMIT_EVERY`` notifications; the seconds
    each part took (generation and insertion together)."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    for chunk in gen.customer_rows():
        core_insert(conn, Customer.__table__, chunk)
    for chunk in gen.case_rows():
        core_insert(conn, Case.__table__, chunk)
    conn.commit()
    seconds["customers_and_cases"] = time.perf_counter() - started
    started = time.perf_counter()
    pending = 0
    for notes, attempts in gen.notification_chunks():
        core_insert(conn, Notification.__table__, notes)
        core_insert(conn, DeliveryAttempt.__table__, attempts)
        pending += len(notes)
        if pending >= COMMIT_EVERY:
            conn.commit()
            pending = 0
            print(f"    {notes[-1]['id']:>9,} notifications", flush=True)
    conn.commit()
    seconds["notifications"] = time.perf_counter() - started
    return seconds


def sqlite_loader(path: Path) -> Engine:
    """A connection for the load only: a large page cache and no fsync (the daemon's own
    connections keep their settings; the file stays in WAL mode)."""
    engine = create_engine(f"sqlite+pysqlite:///{path}")

    def pragmas(dbapi: Any, _record: Any) -> None:
        for pragma in ("cache_size=-1000000", "synchronous=OFF", "foreign_keys=OFF"):
            dbapi.execute(f"PRAGMA {pragma}")

    from sqlalchemy import event

    event.listen(engine, "connect", pragmas)
    return engine


async def generate(target: Target, services: Services, args: argparse.Namespace) -> dict[str, Any]:
    """Fill the migrated, seeded database; the dataset's description (also stored in it)."""
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    catalog = await catalog_ids(services)
    started = time.perf_counter()
    if target.path is not None:
        engine = sqlite_loader(target.path)
        try:
            with engine.connect() as conn:
                technicians = add_technicians(conn)
                # The full-text index is built once after the load: through its insert
                # trigger, row by row, it tripled the load's time.
                trigger = conn.exec_driver_sql(
                    "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?",
                    (FTS_INSERT_TRIGGER,),
                ).scalar_one()
                conn.exec_driver_sql(f"DROP TRIGGER {FTS_INSERT_TRIGGER}")
                conn.commit()
                gen = Generator(args.rows, args.seed, end, technicians, catalog)
                parts = load(conn, gen)  # blocking: nothing else runs meanwhile
                started_fts = time.perf_counter()
                conn.exec_driver_sql(trigger)
                conn.exec_driver_sql(
                    "INSERT INTO notifications_fts(notifications_fts) VALUES ('rebuild')"
                )
                conn.commit()
                parts["fts_rebuild"] = time.perf_counter() - started_fts
                # Start the measurements with the load written back into the database.
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            engine.dispose()
    else:
        async_engine = create_async_engine(target.url)
        try:
            async with async_engine.connect() as aconn:
                technicians = await aconn.run_sync(add_technicians)
                await aconn.commit()
                gen = Generator(args.rows, args.seed, end, technicians, catalog)
                parts = await aconn.run_sync(load, gen)
                for table in ("customers", "cases", "notifications"):
                    await aconn.execute(
                        text(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))"
                        )
                    )
                await aconn.commit()
            started_analyze = time.perf_counter()
            async with async_engine.connect() as aconn:
                await aconn.execution_options(isolation_level="AUTOCOMMIT")
                await aconn.execute(text("VACUUM ANALYZE"))
            parts["analyze"] = time.perf_counter() - started_analyze
        finally:
            await async_engine.dispose()
    dataset = {
        "signature": signature(args),
        "end": end.isoformat(),
        "picks": asdict(gen.picks),
        "generation_seconds": round(time.perf_counter() - started, 1),
        "parts_seconds": {k: round(v, 1) for k, v in parts.items()},
    }
    async with services.db.engine.begin() as aconn:
        await aconn.execute(insert(AppState).values(key=DATASET_KEY, value=json.dumps(dataset)))
    return dataset


# --- plans ----------------------------------------------------------------------------------


def explain(conn: Connection, filters: LogFilters, cursor: str | None) -> list[str]:
    """The plan of one page's statement, as the engine prints it (SQLite: the tree of
    EXPLAIN QUERY PLAN, indented)."""
    stmt = list_statement(conn, filters, PAGE, cursor)
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    if conn.dialect.name == "sqlite":
        rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
        depth: dict[int, int] = {0: -1}
        lines = []
        for node, parent, _, detail in rows:
            depth[node] = depth.get(parent, -1) + 1
            lines.append("  " * depth[node] + str(detail))
        return lines
    return [str(r[0]) for r in conn.exec_driver_sql("EXPLAIN " + sql)]


def plan_verdict(engine: str, lines: list[str]) -> tuple[bool, list[str], bool]:
    """(a full scan of notifications, the indexes of notifications used, a sort step)."""
    if engine == "sqlite":
        scan = any(SQLITE_SCAN.match(line.strip()) for line in lines)
        used = [m for line in lines for m in SQLITE_INDEX.findall(line)]
        if any(re.search(r"(?:SCAN|SEARCH) notifications USING INTEGER PRIMARY KEY", ln)
               for ln in lines):  # fmt: skip
            used.append("rowid")
        sort = any("TEMP B-TREE FOR ORDER BY" in line for line in lines)
    else:
        scan = any(PG_SCAN.search(line) for line in lines)
        used = [a or b for line in lines for a, b in PG_INDEX.findall(line)]
        sort = any(re.search(r"(?<!Incremental )Sort\b", line) for line in lines)
    return scan, list(dict.fromkeys(used)), sort


# --- timings --------------------------------------------------------------------------------


def key_cursor(filters: LogFilters, item: Any) -> str:
    at = item.sent_at if filters.time == "sent" else item.created_at
    return encode_cursor(at, item.id)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


async def measure(services: Services, query: Query, args: argparse.Namespace) -> dict[str, Any]:
    db, engine = services.db, services.db.dialect
    filters = parse_filters(query.params)
    # The cursor 10,000 rows deep, by walking the pages (untimed).
    seen: list[Any] = []
    cursor: str | None = None
    while len(seen) < DEEP + PAGE:
        page = await db.read(list_notifications, filters, MAX_LIMIT, cursor)
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    depth = DEEP if len(seen) >= DEEP + PAGE else max(0, len(seen) - PAGE)
    deep_cursor = key_cursor(filters, seen[depth - 1]) if depth else None
    expected = [i.id for i in seen[depth : depth + PAGE]]
    plans = {
        "first": await db.read(explain, filters, None),
        "deep": await db.read(explain, filters, deep_cursor),
    }
    verdicts = {k: plan_verdict(engine, v) for k, v in plans.items()}
    timings: dict[str, list[float]] = {"first": [], "deep": []}
    for n in range(args.repeat + 1):  # the first round warms up, untimed
        for which, at in (("first", None), ("deep", deep_cursor)):
            started = time.perf_counter()
            page = await db.read(list_notifications, filters, PAGE, at)
            spent = (time.perf_counter() - started) * 1000
            if n:
                timings[which].append(spent)
            if which == "deep" and [i.id for i in page.items] != expected:
                raise RuntimeError(f"{query.name}: the deep page changed between fetches")
    result = {
        "query": query.name,
        "kind": query.kind,
        "params": query.params,
        # Counted by walking the pages, up to one past the deep page's end.
        "matched": len(seen),
        "matched_all": len(seen) < DEEP + PAGE,
        "deep_depth": depth,
        "full_scan": any(v[0] for v in verdicts.values()),
        "indexes": list(dict.fromkeys(i for v in verdicts.values() for i in v[1])),
        "sort": any(v[2] for v in verdicts.values()),
        "plans": plans,
    }
    for which, values in timings.items():
        result[f"{which}_p50_ms"] = round(statistics.median(values), 2)
        result[f"{which}_p95_ms"] = round(percentile(values, 0.95), 2)
        result[f"{which}_max_ms"] = round(max(values), 2)
    return result


# --- bulk resend ----------------------------------------------------------------------------


def resend_selection(conn: Connection, count: int) -> dict[str, Any]:
    """10,000 failed rows to resend by id, and a filter that selects 10,000 dead ones (the
    newest: ``since`` set at the 10,000th), none of them push (no subscription to renew)."""
    channels = ("email", "sms", "telegram")
    ids = list(
        conn.scalars(
            select(Notification.id)
            .where(Notification.status == "failed", Notification.channel.in_(channels))
            .order_by(Notification.id.desc())
            .limit(count)
        )
    )
    times = list(
        conn.scalars(
            select(Notification.created_at)
            .where(Notification.status == "dead", Notification.channel.in_(channels))
            .order_by(Notification.created_at.desc())
            .limit(count)
        )
    )
    params = {"status": "dead", "channel": ",".join(channels)}
    if times:
        params["since"] = times[-1].isoformat()
    return {"ids": ids, "params": params, "max_id": conn.scalar(select(Notification.id).order_by(
        Notification.id.desc()).limit(1))}  # fmt: skip


async def resend(services: Services, args: argparse.Namespace) -> dict[str, Any]:
    """Both jobs through the write path, each timed from its start to its last step."""
    chosen = await services.db.read(resend_selection, args.resend)
    await services.start_writer_process()
    writing = asyncio.create_task(services.writes.run())
    await services.writes.wait_started()
    runner = ResendJobRunner(services.db, services.writes)
    out: dict[str, Any] = {}
    try:
        for kind, selection in (("ids", {"ids": chosen["ids"]}),
                                ("filter", {"params": chosen["params"]})):  # fmt: skip
            started = time.perf_counter()
            job: JobStarted = await services.writes.submit(
                StartResendJob(selection, "bench", "benchmark del registro")
            )
            await runner.process(job.job_id)
            seconds = time.perf_counter() - started
            row = await services.db.read(get_job, job.job_id)
            assert row is not None
            out[kind] = {
                "selected": job.total,
                "queued": row.queued,
                "skipped": row.skipped,
                "status": row.status,
                "seconds": round(seconds, 2),
                "params": chosen["params"] if kind == "filter" else None,
            }
    finally:
        await services.writes.close()
        await writing
    out["max_id_before"] = chosen["max_id"]
    return out


async def forget_resends(url: str, max_id: int) -> None:
    """Remove what the resend jobs added, so that a kept database stays as generated."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(delete(Notification).where(Notification.id > max_id))
            await conn.execute(delete(ResendJob))
    finally:
        await engine.dispose()


# --- one engine -----------------------------------------------------------------------------


async def run_engine(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    target, reused = await target_for(engine, args)
    print(f"\n{engine}: {'reusing' if reused else 'building'} {target.url}", flush=True)
    workdir = Path(args.workdir) / engine
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        await migrate.upgrade(target.url)
        settings = load_settings(DEFAULT_CONFIG, daemon_env(8080, target.url, workdir))
        services = await open_services(settings)
        try:
            if reused:
                dataset = await stored_dataset(target.url)
                assert dataset is not None
            else:
                print(f"  generating {args.rows:,} notifications …", flush=True)
                dataset = await generate(target, services, args)
                print(f"  generated in {dataset['generation_seconds']} s", flush=True)
            picks = Picks(**dataset["picks"])
            end = datetime.fromisoformat(dataset["end"])
            # The machine is shared: what else ran is part of the figures.
            load = {"queries": os.getloadavg()[0]}
            results = []
            for query in queries(end, picks):
                measured = await measure(services, query, args)
                print_query(measured)
                results.append(measured)
            load["resend"] = os.getloadavg()[0]
            resent = await resend(services, args)
            size = await services.db.read(database_bytes, target.path)
        finally:
            await services.close()
        if args.keep or args.reuse:
            await forget_resends(target.url, resent["max_id_before"])
        return {
            "engine": engine,
            "database": target.url if target.path is None else str(target.path),
            "reused": reused,
            "database_bytes": size,
            "load_average": load,
            "dataset": dataset,
            "queries": results,
            "resend": resent,
        }
    finally:
        if target.scratch is not None:
            await pg_admin(args, f'DROP DATABASE IF EXISTS "{target.scratch}" WITH (FORCE)')


# --- report ---------------------------------------------------------------------------------


def print_query(r: dict[str, Any]) -> None:
    matched = f"{r['matched']:,}" if r["matched_all"] else f"more than {r['matched'] - 1:,}"
    print(f"\n  {r['query']}: {matched} rows match, the deep page starts at {r['deep_depth']:,}")
    for which in ("first", "deep"):
        if which == "deep" and r["plans"]["deep"] == r["plans"]["first"]:
            continue
        print(f"    plan, {which} page:")
        for line in r["plans"][which]:
            print(f"      {line}")


def goal(name: str, value: Any, passed: bool, shown: str) -> dict[str, Any]:
    return {"goal": name, "value": value, "pass": passed, "shown": shown}


def plans_judged(result: dict[str, Any]) -> bool:
    rows = int(result["dataset"]["signature"]["rows"])
    return result["engine"] == "sqlite" or rows >= PG_PLANS_FROM_ROWS


def engine_goals(result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = result["queries"]
    goals = []
    for which, label in (("first", "first page"), ("deep", f"page {DEEP:,} deep")):
        worst = max(rows, key=lambda r: r[f"{which}_p95_ms"])
        value = worst[f"{which}_p95_ms"]
        goals.append(
            goal(
                f"{label} p95 < {GOAL_P95_MS:g} ms, every query",
                value,
                value < GOAL_P95_MS,
                f"worst {value:.1f} ms ({worst['query']})",
            )
        )
    if plans_judged(result):
        scans = [r["query"] for r in rows if r["full_scan"]]
        goals.append(
            goal(
                "every list query uses an index (no full scan)",
                scans,
                not scans,
                "none" if not scans else ", ".join(scans),
            )
        )
    for kind in ("ids", "filter"):
        job = result["resend"][kind]
        ok = job["seconds"] < GOAL_RESEND_S and job["queued"] == job["selected"]
        goals.append(
            goal(
                f"bulk resend by {kind} queued < {GOAL_RESEND_S:g} s",
                job["seconds"],
                ok,
                f"{job['queued']:,} of {job['selected']:,} in {job['seconds']:.2f} s",
            )
        )
    return goals


def print_table(result: dict[str, Any]) -> None:
    d = result["dataset"]
    how = "reused" if result["reused"] else f"generated in {d['generation_seconds']} s"
    print(
        f"\n{result['engine']}: {d['signature']['rows']:,} notifications ({how}, "
        f"{result['database_bytes'] / 1e6:,.0f} MB), p50/p95 in ms over the repeats; load "
        f"average {result['load_average']['queries']:.2f} at the start"
    )
    header = f"  {'query':<40}{'first p50':>10}{'p95':>8}{'deep p50':>10}{'p95':>8}  index used"
    print(header)
    for r in result["queries"]:
        depth = "" if r["deep_depth"] == DEEP else f" (deep = {r['deep_depth']:,})"
        indexes = ", ".join(r["indexes"]) + (" + sort" if r["sort"] else "")
        if r["full_scan"]:
            indexes += "  FULL SCAN"
        print(
            f"  {r['query'] + depth:<40}{r['first_p50_ms']:>10.1f}{r['first_p95_ms']:>8.1f}"
            f"{r['deep_p50_ms']:>10.1f}{r['deep_p95_ms']:>8.1f}  {indexes}"
        )
    for kind in ("ids", "filter"):
        job = result["resend"][kind]
        print(
            f"  bulk resend by {kind}: {job['queued']:,} queued of {job['selected']:,} in "
            f"{job['seconds']:.2f} s (skipped: {job['skipped'] or 'none'})"
        )


# --- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="notifications generated")
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql", "both"), default="both", help="engines"
    )
    parser.add_argument("--repeat", type=int, default=40, help="timed fetches of each page")
    parser.add_argument("--resend", type=int, default=RESEND_ROWS, help="rows per resend job")
    parser.add_argument("--seed", type=int, default=1, help="the generator's seed")
    parser.add_argument("--pg-admin", default=PG_ADMIN, help="PostgreSQL server (admin DSN)")
    parser.add_argument(
        "--keep", action="store_true", help=f"keep the generated databases ({DEFAULT_CACHE})"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="use a kept database with the same rows and seed"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results JSON file")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.repeat < 1 or args.resend < 1:
        parser.error("--rows, --repeat and --resend must be ≥ 1")
    return args


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    engines = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    if "postgresql" in engines:
        problem = await pg_reachable(args)
        if problem is not None:
            if args.database == "postgresql":
                raise SystemExit(f"PostgreSQL not reachable at {args.pg_admin}: {problem}")
            print(f"PostgreSQL not reachable at {args.pg_admin} ({problem}): SQLite only")
            engines.remove("postgresql")
    return [await run_engine(engine, args) for engine in engines]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.workdir = tempfile.mkdtemp(prefix="ventanilla-bench-log-")
    try:
        results = asyncio.run(run(args))
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)
    print(f"\noutbound log, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    everything = []
    for result in results:
        print_table(result)
        result["goals"] = engine_goals(result)
        print()
        for g in result["goals"]:
            print(f"  {'PASS' if g['pass'] else 'MISS'}  {g['goal']:<48}{g['shown']}")
        if not plans_judged(result):
            print(f"  (plans not judged under {PG_PLANS_FROM_ROWS:,} rows on PostgreSQL)")
        everything.extend(result["goals"])
    out = {
        "benchmark": "log",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "parameters": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("out", "strict", "workdir")
        },
        "engines": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, ensure_ascii=False, default=str) + "\n")
    shown = args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out
    print(f"\nwrote {shown}")
    # A full scan is a broken index, not a slow machine: it fails the run either way.
    if any(r["full_scan"] for res in results if plans_judged(res) for r in res["queries"]):
        return 1
    if args.strict and not all(g["pass"] for g in everything):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
