"""A SQLite write path in a process of its own: transactions run beside the event loop.

The daemon's event loop (HTTP, SMTP, parsing hand-offs) and the intake writer's Python work
(building rows, SQLAlchemy's per-row parameter processing) each need most of a core at full
load; in one process they take turns on one interpreter lock. Here the writer gets its own
process: ``factory(*factory_args)`` runs once in the child to build the writing function
``fn(connection, *args)``; each ``write(*args)`` runs it there in one transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``) and returns its result. Only arguments and results
cross the pipe.

The child ignores SIGINT and SIGTERM: stopping is the parent's decision (a terminal's
Ctrl-C reaches the whole process group, and the parent still has batches to commit while
it drains). When the parent goes away the child's pipe closes and it exits. If the child
dies, the write in flight fails with ``StorageUnavailable`` (the caller answers "retry
later": nothing was acknowledged) and the next write starts a new child.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine

from storage.db import StorageUnavailable, sqlite_writer_engine
from storage.wal import checkpoint_in_background

T = TypeVar("T")

# The child's state: its engine and its writing function (one child per executor).
_engine: Engine | None = None
_fn: Callable[..., Any] | None = None


def _child_start(
    url: str, factory: Callable[..., Callable[..., Any]], args: tuple[Any, ...]
) -> None:
    global _engine, _fn
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _engine = sqlite_writer_engine(url)
    checkpoint_in_background(_engine)
    _fn = factory(*args)
    # Everything built so far (modules, SQLAlchemy's caches) lives as long as the process:
    # keep the cyclic garbage collector from walking it again on every full collection,
    # which otherwise stalls a batch every few seconds.
    gc.freeze()


def _child_write(args: tuple[Any, ...]) -> Any:
    assert _engine is not None and _fn is not None, "writer process not initialised"
    with _engine.begin() as conn:
        return _fn(conn, *args)


def _child_ready() -> bool:
    assert _engine is not None
    with _engine.connect():
        return True


class WriterProcess(Generic[T]):
    """One child process that runs ``fn(connection, *args)`` transactions on a SQLite file."""

    def __init__(
        self,
        url: str,
        factory: Callable[..., Callable[..., T]],
        *factory_args: Any,
    ) -> None:
        self.url = url
        self._initargs = (url, factory, factory_args)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("forkserver"),
                initializer=_child_start,
                initargs=self._initargs,
            )
        return self._pool

    async def start(self) -> None:
        """Start the child and open its database now, not on the first write."""
        await self._run(_child_ready)

    async def write(self, *args: Any) -> T:
        """Run the writing function in the child, in one transaction; its result."""
        result: T = await self._run(_child_write, args)
        return result

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), fn, *args)
        except BrokenProcessPool as exc:
            # The child died (killed, out of memory): whether the transaction in flight
            # committed is unknown, so the callers retry and dedup settles it.
            self._discard()
            raise StorageUnavailable(f"writer process died: {exc}") from exc

    async def restart(self) -> None:
        """Start a fresh child (e.g. to pick up reloaded templates), then retire the old
        one once its write in flight is done. Writes never wait for a child to start."""
        old, self._pool = self._pool, None
        await self.start()
        if old is not None:
            await asyncio.to_thread(old.shutdown, True)

    def _discard(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Wait for the write in flight, then stop the child."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
