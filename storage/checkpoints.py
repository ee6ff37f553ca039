"""Reads and writes the IMAP pollers' checkpoints (UIDVALIDITY + last UID per folder).

A checkpoint only ever moves after the message it names has been committed, so whatever it
says has been read is safely in the database. Database errors leave as
``StorageUnavailable``, the same signal the intake path gives, so a poller handles both alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.db import Database, StorageUnavailable, is_unavailable_error
from storage.models import ImapCheckpoint, utcnow


@dataclass(frozen=True, slots=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


class CheckpointStore:
    """One row per (account, folder) in ``imap_checkpoints``."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, account: str, folder: str) -> Checkpoint | None:
        with _storage_errors():
            async with self.db.session() as session:
                row = await session.scalar(
                    select(ImapCheckpoint).where(
                        ImapCheckpoint.account == account, ImapCheckpoint.folder == folder
                    )
                )
        return None if row is None else Checkpoint(row.uidvalidity, row.last_uid)

    async def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        """Insert or overwrite the row in one statement (no read-then-write race)."""
        values = {
            "account": account,
            "folder": folder,
            "uidvalidity": uidvalidity,
            "last_uid": last_uid,
            "updated_at": utcnow(),
        }
        insert: Any = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        statement = (
            insert(ImapCheckpoint)
            .values(**values)
            .on_conflict_do_update(
                index_elements=[ImapCheckpoint.account, ImapCheckpoint.folder],
                set_={k: values[k] for k in ("uidvalidity", "last_uid", "updated_at")},
            )
        )
        with _storage_errors():
            async with self.db.session() as session, session.begin():
                await session.execute(statement)


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if isinstance(exc, StorageUnavailable) or not is_unavailable_error(exc):
            raise
        raise StorageUnavailable(f"checkpoint store: {exc}") from exc
