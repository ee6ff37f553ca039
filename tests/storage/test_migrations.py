"""Migrations: upgrade works on both engines and matches the models exactly."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage import migrate
from storage.models import Base


async def test_upgrade_matches_models(db_url: str) -> None:
    await migrate.upgrade(db_url)
    assert await migrate.current_revision(db_url) == migrate.head_revision()
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn: Any) -> list[Any]:
                context = MigrationContext.configure(
                    sync_conn, opts={"compare_type": True, "include_object": migrate.modelled}
                )
                return list(compare_metadata(context, Base.metadata))

            assert await conn.run_sync(diff) == []
            counter = await conn.scalar(text("SELECT value FROM counters WHERE name = 'case'"))
            assert counter == 0
            if conn.dialect.name == "postgresql":
                first = await conn.scalar(text("SELECT nextval('case_numbers')"))
                assert first == 1
    finally:
        await engine.dispose()
    # Running it again is a no-op.
    await migrate.upgrade(db_url)


async def test_sqlite_pragmas(tmp_path: Any) -> None:
    from storage.db import Database

    url = f"sqlite+aiosqlite:///{tmp_path / 'p.db'}"
    db = Database(url)
    try:
        async with db.engine.connect() as conn:
            assert (await conn.scalar(text("PRAGMA journal_mode"))) == "wal"
            assert (await conn.scalar(text("PRAGMA foreign_keys"))) == 1
            assert (await conn.scalar(text("PRAGMA busy_timeout"))) == 10000
    finally:
        await db.close()


async def test_downgrade_and_upgrade_again(db_url: str) -> None:
    import asyncio

    from alembic import command

    await migrate.upgrade(db_url)
    await asyncio.to_thread(command.downgrade, migrate.alembic_config(db_url), "0001")
    assert await migrate.current_revision(db_url) == "0001"
    await migrate.upgrade(db_url)
    assert await migrate.current_revision(db_url) == migrate.head_revision()
