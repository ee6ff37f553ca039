"""SQLite details the intake's speed depends on: checkpoints, indexes, cheap conversions."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from cases.acks import AckLimiter  # noqa: F401  (the query below is the one it runs)
from storage import migrate
from storage.db import sqlite_writer_engine
from storage.migrate_child import MigrationFailed, upgrade_in_child
from storage.models import Notification, UtcDateTime
from storage.wal import BackgroundCheckpoints


def test_checkpoints_run_in_the_background_not_in_commits(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    engine = create_engine(f"sqlite:///{path}")
    checkpoints = BackgroundCheckpoints(engine, interval=0.05)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
            conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
            conn.exec_driver_sql("INSERT INTO t VALUES (?)", [("x" * 500,)] * 5000)
        # In WAL mode only a checkpoint writes pages into the database file itself, and
        # the engine's own connections no longer do it on commit (the pooled connection
        # stays open, so no closing checkpoint either): the file grows by the thread alone.
        deadline = time.monotonic() + 10
        while path.stat().st_size < 2_000_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > 2_000_000
    finally:
        checkpoints.stop()
        engine.dispose()


@pytest.mark.parametrize("writer_finishes", [True, False])
def test_the_log_starts_over_under_steady_writes(tmp_path: Path, writer_finishes: bool) -> None:
    """A writer that never pauses still gets its log rewound: between two transactions it
    copies what the last background pass left behind (``finish``), so the log stays about
    one pass long instead of holding everything written since the load began."""
    path = tmp_path / "steady.db"
    engine = sqlite_writer_engine(f"sqlite+aiosqlite:///{path}")
    checkpoints = BackgroundCheckpoints(engine, interval=0.02)
    row = "x" * 8000  # two pages and more per row
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x TEXT)")
        largest = 0
        deadline = time.monotonic() + 20
        # Until the thread has made a few dozen passes (or 20 s), writing all along.
        while checkpoints.passes < 40 and time.monotonic() < deadline:
            if writer_finishes:
                checkpoints.finish()
            with engine.begin() as conn:
                conn.exec_driver_sql("INSERT INTO t VALUES (?)", [(row,)] * 4)
            largest = max(largest, wal_size(path))
        with engine.connect() as conn:
            written = conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() * len(row)
    finally:
        checkpoints.stop()
        engine.dispose()
    assert checkpoints.passes >= 40
    if writer_finishes:
        assert largest < written / 4, (largest, written)
    else:  # the background passes alone: the log holds nearly everything ever written
        assert largest > written * 0.75, (largest, written)


def wal_size(path: Path) -> int:
    try:
        return (path.parent / (path.name + "-wal")).stat().st_size
    except FileNotFoundError:
        return 0


def test_utc_datetime_converts_each_object_once_and_each_value_right() -> None:
    from sqlalchemy.dialects import sqlite

    dialect = sqlite.dialect()
    process = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)  # as at execution
    assert process is not None
    now = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)
    later = now + timedelta(seconds=1)
    assert process(now) == "2026-11-23 12:00:00.123456"
    assert process(now) is process(now)  # the cached conversion
    assert process(later) == "2026-11-23 12:00:01.123456"
    assert process(None) is None
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 1, 1))


async def test_acknowledgement_cap_lookup_uses_the_recipient_index(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
    await migrate.upgrade(url)
    query = (
        select(Notification.recipient, func.count())
        .where(
            Notification.recipient.in_(["ana@example.com"]),
            Notification.trigger == "auto",
            Notification.template.like("ack_%"),
            Notification.created_at >= datetime.now(UTC) - timedelta(days=1),
        )
        .group_by(Notification.recipient)
    )
    engine = create_engine(f"sqlite:///{tmp_path / 'v.db'}")
    try:
        with engine.connect() as conn:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
    finally:
        engine.dispose()
    assert any("ix_notifications_recipient_created" in row[-1] for row in plan), plan


async def test_daemon_migrates_in_a_child_process(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'child.db'}"
    await upgrade_in_child(url)
    assert await migrate.current_revision(url) == migrate.head_revision()
    with pytest.raises(MigrationFailed, match="unable to open database"):
        await upgrade_in_child(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'x.db'}")
