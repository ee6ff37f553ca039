"""The WAL backstop and its metrics: a checkpoint thread that dies is replaced and the writer
copies the log meanwhile; a log past the hard limit is truncated by the writer; /metrics
shows the log's size and the frames the checkpoints have not copied yet."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry

from storage import wal
from storage.db import sqlite_writer_engine
from storage.wal import BackgroundCheckpoints, register_wal_metrics, wal_index

ROW = "x" * 8000  # two pages and more


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "wal.db"


def writer(database: Path, **kwargs: Any) -> tuple[Any, BackgroundCheckpoints]:
    engine = sqlite_writer_engine(f"sqlite+aiosqlite:///{database}")
    checkpoints = BackgroundCheckpoints(engine, **kwargs)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
    return engine, checkpoints


def write(engine: Any, checkpoints: BackgroundCheckpoints, transactions: int) -> int:
    """Transactions as the writer process runs them (``finish`` before each); the largest
    the log file grew meanwhile."""
    largest = 0
    for _ in range(transactions):
        checkpoints.finish()
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", [(ROW,)] * 4)
        largest = max(largest, checkpoints._wal_bytes())
    return largest


def wait_for(condition: Any, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


@pytest.fixture
def dying_passes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Make the checkpoint thread's first pass raise (a bug, not a SQLite error); the
    list counts the passes that raised."""
    real, raised = wal._pass, [0]

    def pass_(conn: Any) -> tuple[bool, int]:
        if not raised[0]:
            raised[0] += 1
            raise RuntimeError("a bug in the checkpoint thread")
        return real(conn)

    monkeypatch.setattr(wal, "_pass", pass_)
    yield raised


def test_while_the_thread_is_dead_the_writer_copies_the_log_itself(
    database: Path, dying_passes: list[int], caplog: pytest.LogCaptureFixture
) -> None:
    engine, checkpoints = writer(database, interval=0.01, restart_pause=3600)
    try:
        wait_for(lambda: not checkpoints.running)
        with caplog.at_level(logging.WARNING, logger="storage.wal"):
            largest = write(engine, checkpoints, 200)
    finally:
        checkpoints.stop()
        engine.dispose()
    assert not checkpoints.running  # not restarted within restart_pause
    # Without the writer's own copies the log would hold all 200 transactions (6.4 MB).
    assert largest < 200 * len(ROW) * 4 / 10, largest
    deaths = [r for r in caplog.records if "checkpoint thread died" in r.getMessage()]
    assert len(deaths) == 1  # logged once, not once per transaction
    assert "a bug in the checkpoint thread" in deaths[0].getMessage()


def test_a_dead_thread_is_replaced_between_two_transactions(
    database: Path, dying_passes: list[int]
) -> None:
    engine, checkpoints = writer(database, interval=0.01, restart_pause=0)
    try:
        wait_for(lambda: not checkpoints.running)
        write(engine, checkpoints, 1)
        assert checkpoints.running
        passes = checkpoints.passes
        wait_for(lambda: checkpoints.passes > passes)  # the new thread does its passes
    finally:
        checkpoints.stop()
        engine.dispose()
    assert dying_passes == [1]


def test_a_stopped_thread_is_not_restarted(database: Path) -> None:
    engine, checkpoints = writer(database, interval=0.01, restart_pause=0)
    try:
        checkpoints.stop()
        wait_for(lambda: not checkpoints.running)
        write(engine, checkpoints, 1)
        assert not checkpoints.running
    finally:
        engine.dispose()


def test_a_log_past_the_hard_limit_is_truncated_by_the_writer(
    database: Path, caplog: pytest.LogCaptureFixture
) -> None:
    limit = 256 * 1024
    # A thread that falls behind: alive, but its first pass is an hour away.
    engine, checkpoints = writer(database, interval=3600, hard_limit=limit)
    try:
        with caplog.at_level(logging.INFO, logger="storage.wal"):
            largest = write(engine, checkpoints, 200)
            assert checkpoints.running and checkpoints.passes == 0
            assert checkpoints.truncations >= 10
            # Past the limit by one transaction at most (the check comes before it).
            assert largest < limit + 64 * 1024, largest
            while checkpoints._wal_bytes() <= limit:
                write(engine, checkpoints, 1)
            checkpoints.finish()
            assert checkpoints._wal_bytes() == 0
    finally:
        checkpoints.stop()
        engine.dispose()
    over = [r for r in caplog.records if "past 0.2 MB" in r.getMessage()]
    assert len(over) >= 1 and all(r.levelno == logging.WARNING for r in over)
    back = [r for r in caplog.records if "back under" in r.getMessage()]
    assert len(back) >= 1
    # Once per crossing of the limit, not once per transaction.
    assert len(back) <= len(over) <= len(back) + 1 <= checkpoints.truncations


def test_readers_holding_the_log_delay_the_truncation_not_the_writes(
    database: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wal, "BACKSTOP_WAIT_MS", 50)
    engine, checkpoints = writer(database, interval=3600, hard_limit=64 * 1024)
    attempts: list[int] = []
    truncate = checkpoints._truncate
    monkeypatch.setattr(checkpoints, "_truncate", lambda: attempts.append(1) or truncate())
    reader = sqlite3.connect(database, isolation_level=None)
    try:
        write(engine, checkpoints, 1)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot inside the log
        write(engine, checkpoints, 10)
        # One attempt, refused while the reader holds the log; the writes went on and
        # the next attempt waits for TRUNCATE_RETRY.
        assert len(attempts) == 1 and checkpoints.truncations == 0
        reader.execute("COMMIT")
        monkeypatch.setattr(wal, "TRUNCATE_RETRY", 0)
        checkpoints._truncate_after = 0
        checkpoints.finish()
        assert checkpoints.truncations == 1 and checkpoints._wal_bytes() == 0
    finally:
        reader.close()
        checkpoints.stop()
        engine.dispose()


def test_wal_index_counts_the_frames_sqlite_counts(database: Path) -> None:
    assert wal_index(database) is None  # no database yet
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(ROW,)] * 20)
        frames, copied = wal_index(database) or (0, 0)
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        size = (database.parent / "wal.db-wal").stat().st_size
        assert frames == (size - 32) // (page + 24) > 40 and copied == 0
        _busy, log_frames, checkpointed = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert wal_index(database) == (log_frames, checkpointed) == (frames, frames)
    finally:
        conn.close()


def test_the_collector_reads_the_log_of_a_sqlite_database_only(database: Path) -> None:
    registry = CollectorRegistry()
    register_wal_metrics(registry, "postgresql+asyncpg://postgres@127.0.0.1/x")
    assert registry.get_sample_value("ventanilla_sqlite_wal_bytes") is None
    register_wal_metrics(registry, f"sqlite+aiosqlite:///{database}")
    assert registry.get_sample_value("ventanilla_sqlite_wal_bytes") == 0
    conn = sqlite3.connect(database, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [(ROW,)] * 20)
        size = (database.parent / "wal.db-wal").stat().st_size
        assert registry.get_sample_value("ventanilla_sqlite_wal_bytes") == size
        frames = registry.get_sample_value("ventanilla_sqlite_wal_frames")
        assert frames is not None and frames > 40
        assert registry.get_sample_value("ventanilla_sqlite_wal_frames_pending") == frames
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        assert registry.get_sample_value("ventanilla_sqlite_wal_frames_pending") == 0
    finally:
        conn.close()


async def test_metrics_show_the_log_on_sqlite(client: TestClient[Any, Any], db_url: str) -> None:
    response = await client.get("/metrics")
    text = await response.text()
    names = ("ventanilla_sqlite_wal_bytes", "ventanilla_sqlite_wal_frames_pending")
    if db_url.startswith("sqlite"):
        assert all(f"\n{name} " in text for name in names), text
    else:
        assert not any(name in text for name in names)
