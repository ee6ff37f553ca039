"""Engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg).

SQLite connections get WAL, a busy timeout, foreign keys and synchronous=NORMAL on every
connect; sessions never expire on commit (no lazy loads after a commit, see DESIGN §5).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # NORMAL in WAL mode: a commit survives a process crash (kill -9); only an OS crash
    # or power loss may lose the last transactions. See https://sqlite.org/pragma.html#pragma_synchronous
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    "PRAGMA foreign_keys=ON",
)


T = TypeVar("T")
READERS = 2  # reader threads (and connections) for Database.read on SQLite


class StorageUnavailable(Exception):
    """The database cannot be reached or written now; the sender should retry later."""


def is_unavailable_error(exc: BaseException) -> bool:
    """True for errors that mean 'database down or locked', not 'this row is bad'."""
    if isinstance(exc, OperationalError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OSError | ConnectionError | TimeoutError)


class Database:
    """Owns the async engine and hands out sessions. One per process."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("postgresql"):
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_on_connect)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._sync_engine: Engine | None = None
        self._writer_thread: ThreadPoolExecutor | None = None
        self._read_engine: Engine | None = None
        self._reader: ThreadPoolExecutor | None = None

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(connection, *args)`` in one transaction and commit.

        This is the intake writer's path. On PostgreSQL it runs on the async engine
        (``run_sync``: each statement awaits asyncpg). On SQLite the whole transaction runs
        in one dedicated thread on a synchronous engine: a batch is a dozen statements, and
        paying aiosqlite's thread hop and a greenlet switch for each of them, on the event
        loop's core, cost more than the SQL itself (measured: bench/).
        """
        if not self.is_sqlite:
            async with self.engine.begin() as conn:
                return await conn.run_sync(fn, *args)
        if self._sync_engine is None:
            self._sync_engine = sqlite_writer_engine(self.url)
            self._writer_thread = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer_thread, self._write_sync, fn, args)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(connection, *args, **kwargs)`` on a sync ``Connection``; its result.

        A read is a handful of statements; on SQLite each one through aiosqlite is a thread
        hop and a wake-up of the event loop, which under load waits behind every other
        request's turn. Here the whole read runs in one reader thread (WAL lets readers run
        beside the writer) and the loop is woken once. PostgreSQL runs it on the async
        engine (``run_sync``: each statement awaits asyncpg on the loop).
        """
        if not self.is_sqlite:
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn, *args, **kwargs)
        if self._reader is None:
            self._read_engine = sqlite_reader_engine(self.url, READERS)
            self._reader = ThreadPoolExecutor(READERS, thread_name_prefix="sqlite-reader")
        loop = asyncio.get_running_loop()
        call = functools.partial(self._read_sync, fn, args, kwargs)
        return await loop.run_in_executor(self._reader, call)

    def _read_sync(self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
        assert self._read_engine is not None
        with self._read_engine.connect() as conn:
            return fn(conn, *args, **kwargs)

    def _write_sync(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._sync_engine is not None
        with self._sync_engine.begin() as conn:
            return fn(conn, *args)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as session:
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    async def close(self) -> None:
        for thread in (self._writer_thread, self._reader):
            if thread is not None:
                thread.shutdown(wait=True)
        for engine in (self._sync_engine, self._read_engine):
            if engine is not None:
                engine.dispose()
        await self.engine.dispose()


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(pragma)
    cursor.close()


def sqlite_reader_engine(async_url: str, size: int) -> Engine:
    """Sync connections for ``Database.read``: one per reader thread, kept open."""
    engine = create_engine(
        async_url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1),
        pool_size=size,
        max_overflow=0,
        # Each connection is used by whichever reader thread holds it (never two at once).
        connect_args={"check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    return engine


def sqlite_writer_engine(async_url: str) -> Engine:
    engine = create_engine(async_url.replace("sqlite+aiosqlite", "sqlite+pysqlite", 1))
    event.listen(engine, "connect", _sqlite_writer_on_connect)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_writer_on_connect(dbapi_connection: Any, record: Any) -> None:
    _sqlite_on_connect(dbapi_connection, record)
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite would defer it).
    dbapi_connection.isolation_level = None


def _sqlite_begin_immediate(conn: Connection) -> None:
    # Take the write lock at BEGIN: a deferred transaction that reads first and writes
    # later fails at once with SQLITE_BUSY_SNAPSHOT when another process committed in
    # between, where BEGIN IMMEDIATE simply waits up to busy_timeout.
    # https://sqlite.org/lang_transaction.html
    conn.exec_driver_sql("BEGIN IMMEDIATE")
