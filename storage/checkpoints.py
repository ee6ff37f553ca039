"""Reads and writes the IMAP pollers' checkpoints (UIDVALIDITY + last UID per folder).

A checkpoint only ever moves after the message it names has been committed, so whatever it
says has been read is safely in the database. Saves are ``SaveCheckpoint`` operations on
the one write path. Database errors leave as ``StorageUnavailable``, the same signal the
intake path gives, so a poller handles both alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from storage.db import Database, StorageUnavailable, is_unavailable_error
from storage.models import ImapCheckpoint
from storage.operations import Executor, WriteContext


@dataclass(frozen=True, slots=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


@dataclass(frozen=True, slots=True)
class SaveCheckpoint:
    account: str
    folder: str
    uidvalidity: int
    last_uid: int


class CheckpointWriter(Executor):
    """Executes ``SaveCheckpoint``: insert or overwrite the row in one statement (no
    read-then-write race)."""

    def run_one(self, conn: Connection, op: SaveCheckpoint, ctx: WriteContext) -> None:
        values = {
            "account": op.account,
            "folder": op.folder,
            "uidvalidity": op.uidvalidity,
            "last_uid": op.last_uid,
            "updated_at": ctx.now,
        }
        insert: Any = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        conn.execute(
            insert(ImapCheckpoint)
            .values(**values)
            .on_conflict_do_update(
                index_elements=[ImapCheckpoint.account, ImapCheckpoint.folder],
                set_={k: values[k] for k in ("uidvalidity", "last_uid", "updated_at")},
            )
        )


class Submitter(Protocol):
    async def submit(self, op: Any) -> Any: ...


class CheckpointStore:
    """One row per (account, folder) in ``imap_checkpoints``."""

    def __init__(self, db: Database, writes: Submitter) -> None:
        self.db = db
        self.writes = writes

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
        with _storage_errors():
            await self.writes.submit(SaveCheckpoint(account, folder, uidvalidity, last_uid))


@contextmanager
def _storage_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if isinstance(exc, StorageUnavailable) or not is_unavailable_error(exc):
            raise
        raise StorageUnavailable(f"checkpoint store: {exc}") from exc
