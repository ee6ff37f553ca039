"""A SQLite write path in a process of its own: transactions run beside the event loop.

The daemon's event loop (HTTP, SMTP, parsing hand-offs) and the intake writer's Python work
(building rows, SQLAlchemy's per-row parameter processing) each need most of a core at full
load; in one process they take turns on one interpreter lock. Here the writer gets its own
process (``plumbing.child_process``): ``factory(*factory_args)`` runs once in the child to
build the writing function ``fn(connection, *args)``; each ``write(*args)`` runs it there
in one transaction (``BEGIN IMMEDIATE`` … ``COMMIT``) and returns its result.

If the child dies, the writes in flight fail with ``StorageUnavailable`` (the callers
answer "retry later": nothing was acknowledged; whether the batch in flight committed is
unknown, so dedup settles the retry) and the next write starts a new child.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from plumbing.child_process import ChildGone, ChildProcess, serve
from storage.db import StorageUnavailable

T = TypeVar("T")

MODULE = "storage.writer_process"


class WriterProcess(Generic[T]):
    """One child process that runs ``fn(connection, *args)`` transactions on a SQLite file."""

    def __init__(
        self,
        url: str,
        factory: Callable[..., Callable[..., T]],
        *factory_args: Any,
    ) -> None:
        self._setup = (url, factory, factory_args)
        self._child: ChildProcess | None = None
        self._starting = asyncio.Lock()  # one child at a time, however many writers wait

    async def start(self) -> None:
        """Start the child and open its database now, not on the first write."""
        if self._child is not None and self._child.alive:
            return
        async with self._starting:
            if self._child is None or not self._child.alive:
                self._child = await ChildProcess.spawn(MODULE, self._setup)

    def state(self) -> dict[str, object]:
        """For ``/readyz``: the child's pid and whether it runs (a dead one is replaced by
        the next write, so this is information, not a readiness condition)."""
        child = self._child
        return {"pid": child.proc.pid if child else None, "alive": bool(child and child.alive)}

    async def write(self, *args: Any) -> T:
        """Run the writing function in the child, in one transaction; its result."""
        try:
            await self.start()
            assert self._child is not None
            result: T = await self._child.call(args)
        except ChildGone as exc:
            raise StorageUnavailable(f"writer process: {exc}") from exc
        return result

    async def restart(self) -> None:
        """Start a fresh child (e.g. to pick up reloaded templates), then retire the old
        one once its writes in flight are done. Writes never wait for a child to start."""
        async with self._starting:
            old, self._child = self._child, await ChildProcess.spawn(MODULE, self._setup)
        if old is not None:
            await old.close()

    async def close(self) -> None:
        """Let the writes in flight finish, then stop the child."""
        if self._child is not None:
            await self._child.close()
            self._child = None


# --- the child ------------------------------------------------------------------------------


class _Transactions:
    """The child's side: each call runs the writing function in one transaction."""

    def __init__(self, setup: tuple[str, Callable[..., Callable[..., Any]], tuple[Any, ...]]):
        from storage.db import sqlite_writer_engine
        from storage.wal import BackgroundCheckpoints

        url, factory, factory_args = setup
        self.engine = sqlite_writer_engine(url)
        self.checkpoints = BackgroundCheckpoints(self.engine)
        self.fn = factory(*factory_args)
        with self.engine.connect():
            pass  # the database opens now, so a bad path fails start()

    def __call__(self, args: tuple[Any, ...]) -> Any:
        self.checkpoints.finish()  # between two transactions: see storage.wal
        with self.engine.begin() as conn:
            return self.fn(conn, *args)

    def close(self) -> None:
        self.checkpoints.stop()
        self.engine.dispose()


if __name__ == "__main__":
    serve(_Transactions)
