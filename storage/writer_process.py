"""A SQLite write path in a process of its own: transactions run beside the event loop.

The daemon's event loop (HTTP, SMTP, parsing hand-offs) and the intake writer's Python work
(building rows, SQLAlchemy's per-row parameter processing) each need most of a core at full
load; in one process they take turns on one interpreter lock. Here the writer gets its own
process: ``factory(*factory_args)`` runs once in the child to build the writing function
``fn(connection, *args)``; each ``write(*args)`` runs it there in one transaction
(``BEGIN IMMEDIATE`` … ``COMMIT``) and returns its result.

The child is a plain ``python -m storage.writer_process`` talking over its stdin/stdout:
length-prefixed pickles, answered in order. The event loop reads the answers itself, so
the parent needs no helper threads (a process pool's manager and feeder threads would take
the interpreter lock from the loop for every batch) and no fork server.

The child ignores SIGINT and SIGTERM: stopping is the parent's decision (a terminal's
Ctrl-C reaches the whole process group, and the parent still has batches to commit while
it drains). When the parent goes away the child reads end-of-file and exits. If the child
dies, the writes in flight fail with ``StorageUnavailable`` (the callers answer "retry
later": nothing was acknowledged) and the next write starts a new child.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import os
import pickle
import signal
import struct
import sys
from collections.abc import Callable
from typing import IO, Any, Generic, TypeVar

from storage.db import StorageUnavailable

T = TypeVar("T")

_LENGTH = struct.Struct(">Q")


def _frame(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class WriterProcess(Generic[T]):
    """One child process that runs ``fn(connection, *args)`` transactions on a SQLite file."""

    def __init__(
        self,
        url: str,
        factory: Callable[..., Callable[..., T]],
        *factory_args: Any,
    ) -> None:
        self._setup = (url, factory, factory_args)
        self._child: _Child | None = None
        self._starting = asyncio.Lock()  # one child at a time, however many writers wait

    async def start(self) -> None:
        """Start the child and open its database now, not on the first write."""
        if self._child is not None and self._child.alive:
            return
        async with self._starting:
            if self._child is None or not self._child.alive:
                self._child = await _Child.spawn(self._setup)

    def state(self) -> dict[str, object]:
        """For ``/readyz``: the child's pid and whether it runs (a dead one is replaced by
        the next write, so this is information, not a readiness condition)."""
        child = self._child
        return {"pid": child.proc.pid if child else None, "alive": bool(child and child.alive)}

    async def write(self, *args: Any) -> T:
        """Run the writing function in the child, in one transaction; its result."""
        await self.start()
        assert self._child is not None
        result: T = await self._child.call(args)
        return result

    async def restart(self) -> None:
        """Start a fresh child (e.g. to pick up reloaded templates), then retire the old
        one once its writes in flight are done. Writes never wait for a child to start."""
        async with self._starting:
            old, self._child = self._child, await _Child.spawn(self._setup)
        if old is not None:
            await old.close()

    async def close(self) -> None:
        """Let the writes in flight finish, then stop the child."""
        if self._child is not None:
            await self._child.close()
            self._child = None


class _Child:
    """The parent's handle on one running child: send calls, match answers in order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.alive = True
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._reader = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def spawn(cls, setup: tuple[Any, ...]) -> _Child:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "storage.writer_process",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = cls(proc)
        try:
            await child.call(setup)  # the child answers once its database is open
        except BaseException:
            await child.close()
            raise
        return child

    async def call(self, payload: object) -> Any:
        if not self.alive:
            raise StorageUnavailable("writer process is not running")
        assert self.proc.stdin is not None
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # One write() per frame, and the future queued in the same step: the order of the
        # frames on the pipe is the order of the futures, and the child answers in order.
        self._waiting.append(future)
        self.proc.stdin.write(_frame(payload))
        try:
            await self.proc.stdin.drain()
        except ConnectionError as exc:  # BrokenPipeError, ConnectionResetError
            self._fail_all(f"writer process pipe closed: {exc}")
        return await future

    async def _read_answers(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                header = await self.proc.stdout.readexactly(_LENGTH.size)
                (size,) = _LENGTH.unpack(header)
                data = await self.proc.stdout.readexactly(size)
                future = self._waiting.popleft()
                try:
                    ok, value = pickle.loads(data)
                except Exception as exc:  # e.g. an exception type that cannot be rebuilt
                    ok, value = False, RuntimeError(f"unreadable writer answer: {exc!r}")
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The child exited or was killed: whether the batch in flight committed is
            # unknown, so its callers retry and dedup settles it.
            code = await self.proc.wait()
            self._fail_all(f"writer process exited ({code}): {type(exc).__name__}")
        except Exception as exc:  # out of step with the child: never leave a caller waiting
            self._fail_all(f"writer process answer unreadable: {exc!r}")
            self.proc.kill()

    def _fail_all(self, reason: str) -> None:
        self.alive = False
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(StorageUnavailable(reason))

    async def close(self) -> None:
        """Close the child's stdin (it finishes what it has read, then exits) and wait."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._fail_all("writer process stopped")


# --- the child ------------------------------------------------------------------------------


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None  # the parent closed the pipe: time to go
    (size,) = _LENGTH.unpack(header)
    return pickle.loads(stream.read(size))


def _answer(stream: IO[bytes], ok: bool, value: object) -> None:
    try:
        data = _frame((ok, value))
    except Exception as exc:  # an unpicklable result or exception still gets an answer
        data = _frame((False, RuntimeError(f"{type(value).__name__}: {value} ({exc})")))
    stream.write(data)
    stream.flush()


def _child_main() -> None:
    from storage.db import sqlite_writer_engine
    from storage.wal import checkpoint_in_background

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers go out on the original stdout; anything printed by accident goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    calls = sys.stdin.buffer
    setup = _read_frame(calls)
    if setup is None:
        return
    url, factory, factory_args = setup
    try:
        engine = sqlite_writer_engine(url)
        checkpoint_in_background(engine)
        fn = factory(*factory_args)
        with engine.connect():
            pass
    except Exception as exc:
        _answer(answers, False, exc)
        return
    # Everything built so far (modules, SQLAlchemy's caches) lives as long as the process:
    # keep the cyclic garbage collector from walking it again on every full collection,
    # which otherwise stalls a batch every few seconds.
    gc.freeze()
    _answer(answers, True, None)
    try:
        while (args := _read_frame(calls)) is not None:
            try:
                with engine.begin() as conn:
                    result = fn(conn, *args)
            except Exception as exc:
                _answer(answers, False, exc)
            else:
                _answer(answers, True, result)
    except BrokenPipeError:
        pass  # the parent is gone (killed): what was committed stays, dedup handles resends
    finally:
        engine.dispose()


if __name__ == "__main__":
    _child_main()
