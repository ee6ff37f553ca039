"""SQLite WAL checkpoints in a background thread instead of inside a writer's commit.

By default the commit that pushes the write-ahead log past 1,000 pages also copies the log
into the database file and syncs it, so every few dozen batches one commit takes many
times longer than the rest (measured: a fifth of the intake writer's time was spent in
COMMIT). The writer's connections turn automatic checkpoints off and a thread runs a
PASSIVE checkpoint every ``interval`` seconds on its own connection: passive checkpoints
never block writers or readers, and the sqlite3 module releases the interpreter lock while
one runs. https://sqlite.org/wal.html#application_initiated_checkpoints

A passive checkpoint alone never lets the log start over under steady load: SQLite
rewinds the log only at a write that finds every frame already copied, and the writer
always appends a batch or two while the thread copies. The log then grows for as long as
the load lasts (measured: 160 MB for 2,000 mails), and every frame lands on a new page of
the file, which the kernel must allocate and zero (perf, SMTP load: file writes took 21 %
of the writer process's CPU with the log growing, 8 % with a log that starts over).
So the writer finishes each pass between two of its transactions (``finish``): it copies
the few frames the pass left behind, no other transaction of its own is open then, and
its next write starts the log again from the top, over pages already in memory.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

# Passes right after a pass, each over what was appended during the one before.
FOLLOW_UPS = 2
# The log file left on disk after a burst is cut back to this size when it starts over.
JOURNAL_SIZE_LIMIT = 128 * 1024 * 1024


class BackgroundCheckpoints:
    """The checkpoint thread of one writer engine; ``finish`` is the writer's part."""

    def __init__(self, engine: Engine, interval: float = 1.0) -> None:
        """Turn off automatic checkpoints on ``engine``'s connections and start the thread.

        Call before the engine's first connection.
        """
        self.engine = engine
        self.stopped = threading.Event()
        self.passes = 0  # background passes done, for tests and curiosity
        self._left_behind = threading.Event()  # a pass ended with frames left to copy
        event.listen(engine, "connect", _writer_connection)
        self._thread = threading.Thread(
            target=self._run, args=(interval,), name="wal-checkpoint", daemon=True
        )
        self._thread.start()

    def finish(self) -> None:
        """Copy what the last background pass left in the log. Call between transactions
        on the writing thread; cheap when there is nothing to do."""
        if not self._left_behind.is_set():
            return
        self._left_behind.clear()
        raw = self.engine.raw_connection()
        try:
            # The raw connection is in autocommit mode (see db._sqlite_writer_on_connect):
            # no BEGIN goes first, and a checkpoint inside a transaction would be refused.
            busy, _frames = _checkpoint(raw.driver_connection)
        except sqlite3.Error as exc:  # the writer's own transaction must not fail for it
            log.warning("WAL checkpoint failed: %s", exc)
            busy = True
        finally:
            raw.close()
        if busy:  # the thread's next pass is under way: leave it to that one
            self._left_behind.set()

    def stop(self) -> None:
        self.stopped.set()

    def _run(self, interval: float) -> None:
        # A plain connection in autocommit mode, not one of the engine's: those begin every
        # transaction with BEGIN IMMEDIATE, and a checkpoint inside a transaction is refused
        # (SQLITE_LOCKED) after taking the write lock from the writer.
        path = self.engine.url.database or ""
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=1000")
            while not self.stopped.wait(interval):
                try:
                    busy, frames = _pass(conn)
                except sqlite3.Error as exc:  # a checkpoint missed now is done by the next one
                    log.warning("WAL checkpoint failed: %s", exc)
                    continue
                self.passes += 1
                if busy or frames:
                    # The pass copied the log as it stood when the pass began; the writer
                    # has appended to it since, and copies the rest itself (``finish``).
                    self._left_behind.set()
        finally:
            conn.close()


def _pass(conn: Any) -> tuple[bool, int]:
    """A checkpoint and its follow-ups: each copies only what the writer appended during
    the one before, so the part left to ``finish``, which the writer waits for, shrinks
    (measured: 9-28 ms without follow-ups, 4-5 ms with two)."""
    busy, frames = _checkpoint(conn)
    for _ in range(FOLLOW_UPS):
        if busy or not frames:
            break
        busy, now = _checkpoint(conn)
        if now == frames:  # nothing appended meanwhile
            break
        frames = now
    return busy, frames


def _checkpoint(conn: Any) -> tuple[bool, int]:
    """One PASSIVE checkpoint: (whether another checkpoint was running, frames in the log
    as this one found it)."""
    busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return bool(busy), int(frames)


def _writer_connection(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    cursor.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
    cursor.close()
