"""A Python child process that the event loop talks to over the child's stdin and stdout.

Used for the work that would otherwise take the event loop's interpreter lock: the SQLite
writer (``storage.writer_process``) and the MIME parsers (``intake.email.parser_pool``).
The child is a plain ``python -m <module>``: it imports only what its work needs (no
re-import of the daemon's main module, as multiprocessing's spawn and forkserver do) and
is ready before the first call. Calls and answers are length-prefixed pickles, answered in
order. The event loop reads the answers itself, so the parent needs no helper threads (a
process pool's manager and feeder threads take the interpreter lock from the loop for
every call) and no fork server.

The child ignores SIGINT and SIGTERM: stopping is the parent's decision (a terminal's
Ctrl-C reaches the whole process group, and the parent may still have work to finish
while it drains). When the parent goes away the child reads end-of-file and exits. If the
child dies, the calls in flight fail with ``ChildGone`` and the owner decides what that
means (the writer: retry later; a parser: the mail is kept as failed).

A call may carry a deadline, counted from the moment the child begins it (calls are
worked one at a time, in order, so that is when the answer before it arrived). A child
that has not answered by then is killed: that call fails with ``CallTimedOut``, and the
calls queued behind it with a ``ChildGone`` whose ``started`` is False, since the child
never read them as work, so the owner may hand them to another child.
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
from typing import IO, Any, Protocol

_LENGTH = struct.Struct(">Q")


class ChildGone(Exception):
    """The child exited, was killed, or fell out of step; whatever was in flight is
    unknown, unless ``started`` is False: the child was killed before it began this call."""

    def __init__(self, reason: str, *, started: bool = True) -> None:
        super().__init__(reason)
        self.started = started


class CallTimedOut(ChildGone):
    """The call ran past its deadline (seconds); the child was killed."""

    def __init__(self, deadline: float) -> None:
        super().__init__(f"no answer within {deadline:g} s: child process killed")
        self.deadline = deadline


class _Call:
    """One call waiting for its answer, and its deadline's timer once the child is on it."""

    __slots__ = ("deadline", "future", "timer")

    def __init__(self, future: asyncio.Future[Any], deadline: float | None) -> None:
        self.future = future
        self.deadline = deadline  # seconds from the moment the child begins it
        self.timer: asyncio.TimerHandle | None = None


def frame(obj: object) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


class ChildProcess:
    """The parent's handle on one running child: send calls, match answers in order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.alive = True
        self._waiting: collections.deque[_Call] = collections.deque()
        self._reader = asyncio.get_running_loop().create_task(self._read_answers())

    @classmethod
    async def spawn(cls, module: str, setup: object) -> ChildProcess:
        """Start ``python -m module`` and hand it ``setup``; returns once the child has
        answered that it is ready (or raises what its setup raised)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        child = cls(proc)
        try:
            await child.call(setup)
        except BaseException:
            await child.close()
            raise
        return child

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def call(self, payload: object, deadline: float | None = None) -> Any:
        """The child's answer to ``payload``; if ``deadline`` seconds pass after the child
        began this call without an answer, the child is killed (``CallTimedOut``)."""
        if not self.alive:
            raise ChildGone("child process is not running")
        assert self.proc.stdin is not None
        data = frame(payload)  # a payload that cannot be pickled fails here, queuing nothing
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # One write() per frame, and the call queued in the same step: the order of the
        # frames on the pipe is the order of the calls, and the child answers in order.
        self._waiting.append(_Call(future, deadline))
        if len(self._waiting) == 1:
            self._begun()
        try:
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()
        except (ConnectionError, RuntimeError) as exc:
            # The child exited before it read this: asyncio reports the closed pipe as
            # BrokenPipeError or ConnectionResetError, uvloop as a RuntimeError from the
            # closed transport (seen when a child that cannot start exits at once).
            self._fail_all(f"child process exited or closed its input: {exc}")
        return await future

    async def _read_answers(self) -> None:
        assert self.proc.stdout is not None
        try:
            while True:
                header = await self.proc.stdout.readexactly(_LENGTH.size)
                (size,) = _LENGTH.unpack(header)
                data = await self.proc.stdout.readexactly(size)
                if not self._waiting:  # an answer that crossed a kill for a deadline
                    continue
                done = self._waiting.popleft()
                if done.timer is not None:
                    done.timer.cancel()
                if self._waiting:
                    self._begun()  # the child goes on to the next call now
                future = done.future
                try:
                    ok, value = pickle.loads(data)
                except Exception as exc:  # e.g. an exception type that cannot be rebuilt
                    ok, value = False, RuntimeError(f"unreadable answer: {exc!r}")
                if future.done():
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            # The child exited or was killed: what it was doing is unknown.
            code = await self.proc.wait()
            self._fail_all(f"child process exited ({code}): {type(exc).__name__}")
        except Exception as exc:  # out of step with the child: never leave a caller waiting
            self._fail_all(f"child process answer unreadable: {exc!r}")
            self.proc.kill()

    def _begun(self) -> None:
        """The call at the head of the queue is the child's work now: start its clock."""
        head = self._waiting[0]
        if head.deadline is not None and head.timer is None:
            loop = asyncio.get_running_loop()
            head.timer = loop.call_later(head.deadline, self._overdue, head, head.deadline)

    def _overdue(self, call: _Call, deadline: float) -> None:
        # Still the child's work (its caller may have gone, the calls behind it have not).
        if not self._waiting or self._waiting[0] is not call:
            return
        # SIGKILL: the child ignores SIGTERM, and a child stuck in a loop would not read
        # a closed pipe. Its end-of-file then reaches _read_answers, which finds no one
        # left to answer.
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self._waiting.popleft()
        if not call.future.done():
            call.future.set_exception(CallTimedOut(deadline))
        self._fail_all(
            "child process killed: a call before this one ran past its deadline", started=False
        )

    def _fail_all(self, reason: str, *, started: bool = True) -> None:
        self.alive = False
        while self._waiting:
            call = self._waiting.popleft()
            if call.timer is not None:
                call.timer.cancel()
            if not call.future.done():
                call.future.set_exception(ChildGone(reason, started=started))

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
        self._fail_all("child process stopped")


# --- the child ------------------------------------------------------------------------------


class Worker(Protocol):
    """What a child's ``start(setup)`` returns: called once per call, closed at the end."""

    def __call__(self, payload: Any, /) -> Any: ...

    def close(self) -> None: ...


def _read_frame(stream: IO[bytes]) -> Any:
    header = stream.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None  # the parent closed the pipe: time to go
    (size,) = _LENGTH.unpack(header)
    return pickle.loads(stream.read(size))


def _answer(stream: IO[bytes], ok: bool, value: object) -> None:
    try:
        data = frame((ok, value))
    except Exception as exc:  # an unpicklable result or exception still gets an answer
        data = frame((False, RuntimeError(f"{type(value).__name__}: {value} ({exc})")))
    stream.write(data)
    stream.flush()


def serve(start: Callable[[Any], Worker]) -> None:
    """The child's main loop: ``start(setup)`` with the first frame, then one answer per
    call, in order, until the parent closes the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Answers go out on the original stdout; anything printed by accident goes to stderr.
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    calls = sys.stdin.buffer
    setup = _read_frame(calls)
    if setup is None:
        return
    try:
        worker = start(setup)
    except Exception as exc:
        _answer(answers, False, exc)
        return
    # Everything built so far (modules, caches) lives as long as the process: keep the
    # cyclic garbage collector from walking it again on every full collection, which
    # otherwise stalls a call every few seconds.
    gc.freeze()
    _answer(answers, True, None)
    try:
        while (payload := _read_frame(calls)) is not None:
            try:
                result = worker(payload)
            except Exception as exc:
                _answer(answers, False, exc)
            else:
                _answer(answers, True, result)
    except BrokenPipeError:
        pass  # the parent is gone (killed)
    finally:
        worker.close()
