"""SQLite WAL checkpoints in a background thread instead of inside a writer's commit.

By default the commit that pushes the write-ahead log past 1,000 pages also copies the log
into the database file and syncs it, so every few dozen batches one commit takes many
times longer than the rest (measured: a fifth of the intake writer's time was spent in
COMMIT). The writer's connections turn automatic checkpoints off and this thread runs a
PASSIVE checkpoint every ``interval`` seconds on its own connection: passive checkpoints
never block writers or readers, and the sqlite3 module releases the interpreter lock while
one runs. https://sqlite.org/wal.html#application_initiated_checkpoints
"""

from __future__ import annotations

import logging
import sqlite3
import threading

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)


def checkpoint_in_background(engine: Engine, interval: float = 1.0) -> threading.Event:
    """Turn off automatic checkpoints on ``engine``'s connections and start the thread.

    Call before the engine's first connection. Setting the returned event stops the thread.
    """
    event.listen(engine, "connect", _no_autocheckpoint)
    stop = threading.Event()
    thread = threading.Thread(
        target=_checkpoint_loop, args=(engine, interval, stop), name="wal-checkpoint", daemon=True
    )
    thread.start()
    return stop


def _no_autocheckpoint(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.close()


def _checkpoint_loop(engine: Engine, interval: float, stop: threading.Event) -> None:
    # A plain connection in autocommit mode, not one of the engine's: those begin every
    # transaction with BEGIN IMMEDIATE, and a checkpoint inside a transaction is refused
    # (SQLITE_LOCKED) after taking the write lock from the writer.
    path = engine.url.database or ""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout=1000")
        while not stop.wait(interval):
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # a checkpoint missed now is done by the next one
                log.warning("WAL checkpoint failed: %s", exc)
    finally:
        conn.close()
