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

A backstop keeps the log bounded when the thread is not doing its job. Between two
transactions (``finish``) the writer notices a thread that has died (it copies the log
itself from then on, and starts a new thread) and a log past ``hard_limit`` bytes (it
copies everything and cuts the file to nothing, waiting briefly for readers), logging once
why. ``register_wal_metrics`` shows the log's size and the frames not yet copied on
``/metrics``, read from the files at each scrape, so a lag is visible before the backstop
has to act.
"""

from __future__ import annotations

import logging
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import Engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

# Passes right after a pass, each over what was appended during the one before.
FOLLOW_UPS = 2
MB = 1024 * 1024
# The log file left on disk after a burst is cut back to this size when it starts over.
JOURNAL_SIZE_LIMIT = 128 * MB
# Past this size the log is not starting over (a log that does stays within one pass, and
# is cut back to JOURNAL_SIZE_LIMIT when it does): the writer copies and truncates it.
HARD_LIMIT = 2 * JOURNAL_SIZE_LIMIT
# How long the writer's own truncating checkpoint waits for readers to leave the log.
BACKSTOP_WAIT_MS = 2000
# A dead thread is started again no sooner than this after its last start: one that dies
# at once (a file it cannot open) is not restarted for every transaction.
RESTART_PAUSE = 10.0
# After a truncating checkpoint that readers kept from finishing, the writer's
# transactions go on unhindered for this long before it waits for them again.
TRUNCATE_RETRY = 10.0


class BackgroundCheckpoints:
    """The checkpoint thread of one writer engine; ``finish`` is the writer's part."""

    def __init__(
        self,
        engine: Engine,
        interval: float = 1.0,
        *,
        hard_limit: int = HARD_LIMIT,
        restart_pause: float = RESTART_PAUSE,
    ) -> None:
        """Turn off automatic checkpoints on ``engine``'s connections and start the thread.

        Call before the engine's first connection.
        """
        self.engine = engine
        self.interval = interval
        self.hard_limit = hard_limit
        self.restart_pause = restart_pause
        self.wal = Path((engine.url.database or "") + "-wal")
        self.stopped = threading.Event()
        self.passes = 0  # background passes done, for tests and curiosity
        self.truncations = 0  # the backstop's checkpoints past hard_limit, likewise
        self._left_behind = threading.Event()  # a pass ended with frames left to copy
        self._death: BaseException | None = None  # why the thread stopped, if it did
        self._reported: set[str] = set()  # the deaths already logged, by cause
        self._over_limit = False
        self._truncate_after = 0.0  # monotonic time before which no truncation is tried
        event.listen(engine, "connect", _writer_connection)
        self._start_thread()

    def _start_thread(self) -> None:
        self._death = None
        self._started = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, args=(self.interval,), name="wal-checkpoint", daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the checkpoint thread is alive."""
        return self._thread.is_alive()

    def finish(self) -> None:
        """Copy what the last background pass left in the log, and act as the backstop
        (see the module's docstring). Call between transactions on the writing thread;
        cheap when there is nothing to do."""
        if not self._thread.is_alive() and not self.stopped.is_set():
            self._thread_died()
        if self._wal_bytes() > self.hard_limit:
            if time.monotonic() >= self._truncate_after:
                self._truncate()
        elif self._over_limit:
            self._over_limit = False
            log.info("SQLite WAL back under %.1f MB", self.hard_limit / MB)
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

    def _thread_died(self) -> None:
        """The writer copies the log itself after each transaction from now on, as SQLite's
        automatic checkpoints would have, until a new thread runs."""
        self._left_behind.set()
        cause = repr(self._death) if self._death is not None else "it exited"
        if cause not in self._reported:  # once per cause: a thread that keeps dying
            self._reported.add(cause)
            log.warning(
                "WAL checkpoint thread died (%s): the writer copies the log itself between "
                "transactions and starts a new thread",
                cause,
                exc_info=self._death,
            )
        if time.monotonic() - self._started >= self.restart_pause:
            self._start_thread()

    def _truncate(self) -> None:
        """Copy the whole log into the database and cut the file to nothing, waiting up to
        BACKSTOP_WAIT_MS for the readers still reading from it."""
        if not self._over_limit:
            self._over_limit = True
            log.warning(
                "SQLite WAL at %.1f MB, past %.1f MB: the checkpoint thread is not keeping "
                "up (or readers hold the log); the writer checkpoints and truncates it",
                self._wal_bytes() / MB,
                self.hard_limit / MB,
            )
        raw = self.engine.raw_connection()
        try:
            conn: Any = raw.driver_connection
            waited = conn.execute("PRAGMA busy_timeout").fetchone()[0]
            conn.execute(f"PRAGMA busy_timeout={BACKSTOP_WAIT_MS}")
            try:
                # Outside any transaction (autocommit: see finish): TRUNCATE is refused
                # inside one. A reader that outlasts the wait leaves the log as it is, and
                # the writer tries again TRUNCATE_RETRY later.
                busy, _log, _copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(waited)}")
        except sqlite3.Error as exc:  # the writer's own transactions must not fail for it
            log.warning("WAL checkpoint (TRUNCATE) failed: %s", exc)
            busy = True
        finally:
            raw.close()
        if busy:
            self._truncate_after = time.monotonic() + TRUNCATE_RETRY
        else:
            self.truncations += 1

    def _wal_bytes(self) -> int:
        try:
            return self.wal.stat().st_size
        except FileNotFoundError:
            return 0

    def _run(self, interval: float) -> None:
        try:
            self._passes(interval)
        except Exception as exc:  # noted for the writer, which logs it and starts a new thread
            self._death = exc

    def _passes(self, interval: float) -> None:
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


# --- the log as /metrics shows it ---------------------------------------------------------

# The wal-index header at the start of the "-shm" file, in the machine's byte order
# (https://sqlite.org/walformat.html#the_wal_index_file_format): two copies of a 48-byte
# header whose mxFrame (frames in the log) is at offset 16, then the checkpoint info,
# whose nBackfill (frames already copied into the database) is at offset 96.
_HEADER = struct.Struct("=48s48sI")
_MX_FRAME = struct.Struct("=16xI")


def wal_index(database: Path) -> tuple[int, int] | None:
    """(frames in the log, frames copied into the database) from the wal-index, or None
    when there is none (no connection has the database open in WAL mode)."""
    try:
        with open(str(database) + "-shm", "rb") as shm:
            for _ in range(3):
                shm.seek(0)
                data = shm.read(_HEADER.size)
                if len(data) < _HEADER.size:
                    return None
                first, second, backfilled = _HEADER.unpack(data)
                # SQLite writes the copies one after the other: equal, they are whole.
                if first == second:
                    (frames,) = _MX_FRAME.unpack_from(first)
                    return frames, min(backfilled, frames)
    except FileNotFoundError:
        return None
    return None  # a writer was changing it each time: no reading this once


class WalCollector:
    """The SQLite log's size and the frames not yet copied into the database, read at
    each scrape from the files beside it (whichever process writes: the writer process's
    checkpoint thread and backstop keep them small)."""

    def __init__(self, database: Path) -> None:
        self.database = database

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        try:
            size = Path(str(self.database) + "-wal").stat().st_size
        except FileNotFoundError:
            size = 0
        yield GaugeMetricFamily(
            "ventanilla_sqlite_wal_bytes",
            "Size of the SQLite write-ahead log file (the backstop truncates it past "
            f"{HARD_LIMIT >> 20} MB).",
            value=float(size),
        )
        index = wal_index(self.database)
        frames, copied = index if index is not None else (0, 0)
        yield GaugeMetricFamily(
            "ventanilla_sqlite_wal_frames",
            "Frames (pages written) in the SQLite write-ahead log.",
            value=float(frames),
        )
        yield GaugeMetricFamily(
            "ventanilla_sqlite_wal_frames_pending",
            "Frames of the write-ahead log not yet checkpointed into the database: how far "
            "the checkpoints lag behind the writer.",
            value=float(frames - copied),
        )


def register_wal_metrics(registry: Any, database_url: str) -> None:
    """Show the SQLite log on ``registry``; nothing for other databases."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        registry.register(WalCollector(Path(url.database or "")))
