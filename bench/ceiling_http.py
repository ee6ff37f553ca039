"""The ceiling for durable HTTP intake: a bare aiohttp server, one sqlite3 insert + commit each.

    python bench/ceiling_http.py --port 8099 --db /tmp/ceiling.db

``POST /form`` parses the JSON body, inserts it with the standard-library ``sqlite3`` module
(WAL, synchronous=NORMAL), commits, and answers 201 JSON; ``GET /readyz`` answers 200. It is
the "plain sqlite3 insert + commit per request" row of PERFORMANCE.md: the same durability
promise as the daemon (committed before answered) with nothing else around it, so the
daemon's throughput can be read as a fraction of it.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time

from aiohttp import web

DB_KEY = web.AppKey("db", sqlite3.Connection)


def open_db(path: str) -> sqlite3.Connection:
    # The same pragmas the daemon uses for SQLite: WAL keeps readers off the writer's back,
    # synchronous=NORMAL fsyncs at checkpoints only (a commit survives a process crash).
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS submission ("
        " id INTEGER PRIMARY KEY, received_at REAL NOT NULL, body TEXT NOT NULL)"
    )
    return conn


async def submit(request: web.Request) -> web.Response:
    raw = await request.read()
    try:
        fields = json.loads(raw)
    except ValueError:
        return web.json_response(
            {"error": {"code": "bad_json", "message": "body is not JSON"}}, status=400
        )
    if not isinstance(fields, dict):
        return web.json_response(
            {"error": {"code": "bad_json", "message": "body is not an object"}}, status=400
        )
    conn = request.app[DB_KEY]
    # Blocking on purpose: this is the cost floor of "committed before answered" in-process.
    conn.execute("BEGIN")
    cursor = conn.execute(
        "INSERT INTO submission (received_at, body) VALUES (?, ?)",
        (time.time(), raw.decode()),
    )
    conn.execute("COMMIT")
    return web.json_response({"submission": {"id": cursor.lastrowid}}, status=201)


async def ready(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


def build_app(db_path: str) -> web.Application:
    app = web.Application()
    app[DB_KEY] = open_db(db_path)

    async def close_db(app: web.Application) -> None:
        app[DB_KEY].close()

    app.on_cleanup.append(close_db)
    app.add_routes([web.post("/form", submit), web.get("/readyz", ready)])
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True, help="SQLite file to write")
    args = parser.parse_args(argv)
    # No access log: the ceiling is the bare request + commit path.
    web.run_app(build_app(args.db), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
