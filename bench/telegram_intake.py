"""Telegram intake benchmark: ``ventanilla serve`` long-polling the loopback Bot API.

    .venv/bin/python bench/telegram_intake.py [--updates 10000] [--users 1000] [--photo-every 50]
        [--rounds 1] [--database postgresql+asyncpg://postgres@127.0.0.1:5432/postgres]

Each round migrates a fresh database (a temp SQLite file, or a new PostgreSQL database),
queues ``--updates`` text messages (every ``--photo-every``-th a photo with a caption,
fetched through getFile and the file URL) from ``--users`` customers in the fake Bot API
of the tests (``tests/telegram/bot_api.py``, on a free loopback port in this process), and
starts the daemon with ``[telegram] enabled`` pointed at it (polling, ``config/example.toml``
otherwise). The fake notes when it first hands each update over in a getUpdates answer
and when a later getUpdates confirms it (an offset above its id): the poller asks again
only once the batch is committed, so that is the time from getUpdates to commit plus one
loopback request. It reports updates per second (first answer to last confirmation), the
p50/p95/max of that time per update, and checks that the database holds every update
exactly once.

The ceiling, measured the same way in the same round: the same updates long-polled by a
bare client in a process of its own (``--ceiling-client``: httpx, ``json``, and plain
sqlite3 storing each batch's raw updates in one transaction before the next getUpdates
confirms them). Results go to ``bench/results/telegram[_pg].json``; medians over
``--rounds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from intake_http import (
    BenchError,
    daemon_env,
    free_port,
    fresh_database,
    log_tail,
    stop,
    wait_ready,
)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the tests' fake Bot API, shared rather than copied

from tests.telegram.bot_api import ANA, TOKEN, FakeBotApi, fake_bot_api  # noqa: E402

BENCH = REPO / "bench"
HOST = "127.0.0.1"


class TimedBotApi(FakeBotApi):
    """The fake, noting when each update is first handed over and when it is confirmed."""

    def __init__(self) -> None:
        super().__init__()
        self.served_at: dict[int, float] = {}
        self.confirmed_at: dict[int, float] = {}

    async def _get_updates(self, form: dict[str, str]) -> web.Response:
        now = time.perf_counter()
        offset = int(form["offset"]) if form.get("offset") else None
        if offset is not None:
            for update in self.pending:
                uid = update["update_id"]
                if uid >= offset:
                    break
                self.confirmed_at.setdefault(uid, now)
        response = await super()._get_updates(form)
        sent = time.perf_counter()
        for update in json.loads(response.text or "{}").get("result", ()):
            self.served_at.setdefault(update["update_id"], sent)
        return response


def queue_updates(api: FakeBotApi, args: argparse.Namespace) -> None:
    photo = b"\xff\xd8\xff\xe0" + os.urandom(20_000)
    users = [
        {**ANA, "id": 800_000_000 + i, "first_name": f"Cliente {i}", "username": f"c{i}"}
        for i in range(args.users)
    ]
    for n in range(args.updates):
        user = users[n % args.users]
        if args.photo_every and n % args.photo_every == args.photo_every - 1:
            api.photo(photo[:-1] + bytes([n % 256]), caption=f"Foto {n}", user=user)
        else:
            api.text(f"Consulta {n}: sin servicio desde la mañana", user=user)


async def count_inbound(db_url: str) -> tuple[int, int]:
    """(rows, distinct external ids) of the Telegram inbound table."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT count(*), count(DISTINCT external_id) FROM inbound "
                        "WHERE channel = 'telegram'"
                    )
                )
            ).one()
            return int(row[0]), int(row[1])
    finally:
        await engine.dispose()


def start_daemon(
    args: argparse.Namespace, env: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    """``ventanilla db upgrade``, then ``ventanilla serve`` logging to ``log``."""
    binary, config = str(args.ventanilla), str(args.config)
    upgrade = subprocess.run(
        [binary, "--config", config, "db", "upgrade"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if upgrade.returncode != 0:
        raise BenchError(f"db upgrade failed:\n{upgrade.stdout}{upgrade.stderr}")
    with log.open("wb") as handle:
        return subprocess.Popen(
            [binary, "serve", "--config", config], env=env, stdout=handle, stderr=handle
        )


def ceiling_client(url: str, database: str, expected: int) -> None:
    """The bare durable poller (run as ``--ceiling-client URL DB N``): getUpdates, store the
    batch with sqlite3 in one transaction, confirm it with the next call."""
    import sqlite3

    import httpx

    db = sqlite3.connect(database)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE updates (update_id INTEGER PRIMARY KEY, raw BLOB)")
    offset: int | None = None
    stored = 0
    with httpx.Client(base_url=f"{url}/bot{TOKEN}", timeout=30) as client:
        while stored < expected:
            form = {"timeout": "1", "limit": "100"}
            if offset is not None:
                form["offset"] = str(offset)
            found = client.post("/getUpdates", data=form).json()["result"]
            if not found:
                continue
            with db:
                db.executemany(
                    "INSERT OR IGNORE INTO updates VALUES (?, ?)",
                    [(u["update_id"], json.dumps(u).encode()) for u in found],
                )
            stored += len(found)
            offset = found[-1]["update_id"] + 1
        client.post("/getUpdates", data={"offset": str(offset), "limit": "1", "timeout": "0"})


async def measure_ceiling(args: argparse.Namespace, workdir: Path) -> TimedBotApi:
    api = TimedBotApi()
    async with fake_bot_api(api) as (_fake, url):
        queue_updates(api, args)
        command = [sys.executable, __file__, "--ceiling-client", url,
                   str(workdir / "ceiling.db"), str(args.updates)]  # fmt: skip
        done = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=args.timeout
        )
        if done.returncode != 0:
            raise BenchError(f"the ceiling client failed:\n{done.stderr[-2000:]}")
    return api


def timing(api: TimedBotApi, updates: int) -> dict[str, Any]:
    """Updates per second (first answer to last confirmation) and the per-update time
    from being handed over to being confirmed."""
    latencies = [(api.confirmed_at[uid] - api.served_at[uid]) * 1000 for uid in api.confirmed_at]
    seconds = max(api.confirmed_at.values()) - min(api.served_at.values())
    return {
        "seconds": round(seconds, 3),
        "updates_per_second": round(updates / seconds, 1),
        "to_commit_ms": {
            "p50": round(percentile(latencies, 0.50), 1),
            "p95": round(percentile(latencies, 0.95), 1),
            "max": round(max(latencies), 1),
        },
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def one_round(args: argparse.Namespace, number: int) -> dict[str, Any]:
    """A fresh database (made outside the event loop: fresh_database runs its own) and
    one measured run."""
    with tempfile.TemporaryDirectory(prefix="ventanilla-bench-tg-") as tmp:
        workdir = Path(tmp)
        with fresh_database(args.database, workdir) as db_url:
            return asyncio.run(measure(args, number, db_url, workdir))


async def measure(
    args: argparse.Namespace, number: int, db_url: str, workdir: Path
) -> dict[str, Any]:
    api = TimedBotApi()
    async with fake_bot_api(api) as (_fake, url):
        queue_updates(api, args)
        last = api.pending[-1]["update_id"]
        port = free_port()
        env = daemon_env(port, db_url, workdir)
        env.update(
            VENTANILLA_TELEGRAM__ENABLED="true",
            VENTANILLA_TELEGRAM__TOKEN=TOKEN,
            VENTANILLA_TELEGRAM__API_BASE_URL=url,
            VENTANILLA_TELEGRAM__MAX_MESSAGES_PER_MINUTE="0",
        )
        log = workdir / "daemon.log"
        proc = await asyncio.to_thread(start_daemon, args, env, log)
        try:
            await asyncio.to_thread(wait_ready, f"http://{HOST}:{port}", proc, log, 60.0)
            deadline = time.monotonic() + args.timeout
            while last not in api.confirmed_at:
                if proc.poll() is not None:
                    raise BenchError(f"the daemon exited:\n{log_tail(log)}")
                if time.monotonic() > deadline:
                    raise BenchError(
                        f"{len(api.confirmed_at)} of {args.updates} updates "
                        f"confirmed after {args.timeout:.0f} s:\n{log_tail(log)}"
                    )
                await asyncio.sleep(0.05)
        finally:
            code = await asyncio.to_thread(stop, proc)
    rows, distinct = await count_inbound(db_url)
    ceiling = timing(await measure_ceiling(args, workdir), args.updates)
    daemon = timing(api, args.updates)
    record = {
        "round": number,
        "updates": args.updates,
        **daemon,
        "ceiling": ceiling,
        "ratio": round(daemon["updates_per_second"] / ceiling["updates_per_second"], 3),
        "getupdates_calls": len(api.offsets),
        "files_downloaded": len(api.downloads),
        "acks_sent": len(api.received),
        "stored": rows,
        "stored_distinct": distinct,
        "exit_code": code,
    }
    if rows != args.updates or distinct != args.updates:
        raise BenchError(f"stored {rows} rows ({distinct} distinct) for {args.updates} updates")
    return record


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    parser.add_argument("--photo-every", type=int, default=50, help="0: text only")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per round")
    parser.add_argument("--database", help="a PostgreSQL URL (a scratch database is made)")
    parser.add_argument(
        "--ventanilla", type=Path, default=Path(sys.executable).parent / "ventanilla"
    )
    parser.add_argument("--config", type=Path, default=REPO / "config" / "example.toml")
    parser.add_argument("--out", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--ceiling-client"]:
        ceiling_client(argv[1], argv[2], int(argv[3]))
        return 0
    args = parse_args(argv)
    engine = "postgresql" if (args.database or "").startswith("postgresql") else "sqlite"
    out = args.out or BENCH / "results" / (
        "telegram_pg.json" if engine != "sqlite" else "telegram.json"
    )
    rounds: list[dict[str, Any]] = []
    try:
        for number in range(1, args.rounds + 1):
            record = one_round(args, number)
            rounds.append(record)
            print(
                f"round {number}: {record['updates']} updates in {record['seconds']:.1f} s = "
                f"{record['updates_per_second']:.0f} updates/s; getUpdates → commit "
                f"p50 {record['to_commit_ms']['p50']:.0f} ms, "
                f"p95 {record['to_commit_ms']['p95']:.0f} ms, "
                f"max {record['to_commit_ms']['max']:.0f} ms; "
                f"{record['getupdates_calls']} getUpdates, {record['files_downloaded']} files, "
                f"{record['acks_sent']} acknowledgements sent; stored {record['stored']}"
            )
            c = record["ceiling"]
            print(
                f"         ceiling (bare poller + sqlite3): {c['updates_per_second']:.0f} "
                f"updates/s, p50 {c['to_commit_ms']['p50']:.0f} ms, "
                f"p95 {c['to_commit_ms']['p95']:.0f} ms; daemon/ceiling {record['ratio']:.2f}"
            )
    except BenchError as exc:
        print(f"bench/telegram_intake.py: {exc}", file=sys.stderr)
        return 1
    summary = {
        "updates_per_second": statistics.median(r["updates_per_second"] for r in rounds),
        "ceiling_updates_per_second": statistics.median(
            r["ceiling"]["updates_per_second"] for r in rounds
        ),
        "ratio": statistics.median(r["ratio"] for r in rounds),
        "to_commit_ms_p50": statistics.median(r["to_commit_ms"]["p50"] for r in rounds),
        "to_commit_ms_p95": statistics.median(r["to_commit_ms"]["p95"] for r in rounds),
    }
    result = {
        "benchmark": "telegram",
        "engine": engine,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "parameters": {
            "updates": args.updates,
            "users": args.users,
            "photo_every": args.photo_every,
            "rounds": args.rounds,
        },
        "rounds": rounds,
        "median": summary,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"median: {summary['updates_per_second']:.0f} updates/s, getUpdates → commit "
        f"p50 {summary['to_commit_ms_p50']:.0f} ms, p95 {summary['to_commit_ms_p95']:.0f} ms, "
        f"{summary['ratio']:.2f} of the ceiling "
        f"→ {out.relative_to(REPO) if out.is_relative_to(REPO) else out}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
