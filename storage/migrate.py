"""Schema migrations: ``upgrade(url)`` brings a database to the newest Alembic revision.

Used by ``ventanilla db upgrade`` and, on SQLite, by ``serve`` at start-up.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


# Made by migrations in raw SQL, not described by the models: the full-text index of the
# outbound log (an FTS5 table and its shadow tables on SQLite; on PostgreSQL the stored
# document column and its GIN index; storage.search_sql).
UNMODELLED_PREFIXES = ("notifications_fts", "ix_notifications_fts", "fts_document")


def modelled(_obj: object, name: str | None, _type: str, _reflected: bool, _to: object) -> bool:
    """Alembic's ``include_object``: leave the unmodelled objects out of comparisons."""
    return not (name or "").startswith(UNMODELLED_PREFIXES)


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade_sync(url: str, revision: str = "head") -> None:
    """Run from a thread without a running loop (alembic's env.py uses asyncio.run)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade_sync, url, revision)


async def current_revision(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


if __name__ == "__main__":  # storage.migrate_child runs this
    import os
    import sys

    upgrade_sync(os.environ["VENTANILLA_MIGRATE_URL"], sys.argv[1] if len(sys.argv) > 1 else "head")
