"""The SQLite writer process: transactions run in a child, errors and deaths come back."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from plumbing.child_process import ChildGone
from storage.db import StorageUnavailable
from storage.writer_process import WriterProcess
from tests.storage import writer_factories


@pytest.fixture
def notes_url(tmp_path: Path) -> str:
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT UNIQUE)")
    return f"sqlite+aiosqlite:///{path}"


def stored(url: str) -> list[str]:
    with sqlite3.connect(url.split("///", 1)[1]) as conn:
        return [r[0] for r in conn.execute("SELECT text FROM notes ORDER BY id")]


async def test_writes_commit_in_a_child_in_order(notes_url: str) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    await process.start()
    try:
        results = await asyncio.gather(*(process.write(f"note {i}") for i in range(20)))
    finally:
        await process.close()
    pids = {pid for pid, _ in results}
    assert len(pids) == 1 and os.getpid() not in pids
    assert [count for _, count in results] == list(range(1, 21))  # answered in order
    assert stored(notes_url) == [f"note {i}" for i in range(20)]


async def test_errors_come_back_with_their_type_and_roll_back(notes_url: str) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    try:
        await process.write("once")
        with pytest.raises(IntegrityError):
            await process.write("once")
        _, count = await process.write("twice")  # the child keeps serving
    finally:
        await process.close()
    assert count == 2
    assert stored(notes_url) == ["once", "twice"]


async def test_unpicklable_result_is_an_error_not_a_hang(notes_url: str) -> None:
    process = WriterProcess[object](notes_url, writer_factories.unpicklable_result)
    try:
        with pytest.raises(RuntimeError, match="function"):
            await asyncio.wait_for(process.write(), 30)
    finally:
        await process.close()


async def test_a_failing_factory_fails_start(notes_url: str) -> None:
    process = WriterProcess[object](notes_url, writer_factories.broken_factory)
    with pytest.raises(ValueError, match="no writer today"):
        await process.start()
    await process.close()


async def test_dead_child_means_retry_later_then_a_new_child(notes_url: str) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    try:
        first_pid, _ = await process.write("before")
        os.kill(first_pid, signal.SIGKILL)
        # The write in flight (or the first after the death is noticed) is refused as
        # temporary; a later one starts a new child.
        for _attempt in range(50):
            try:
                pid, count = await process.write("after")
                break
            except StorageUnavailable:
                await asyncio.sleep(0.05)
        else:
            pytest.fail("no new writer process after the old one died")
    finally:
        await process.close()
    assert pid != first_pid and count == 2


async def test_child_ignores_terminal_signals_and_exits_when_closed(notes_url: str) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    pid, _ = await process.write("one")
    os.kill(pid, signal.SIGINT)  # Ctrl-C on a terminal reaches the whole process group
    os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.2)
    same, count = await process.write("two")
    assert (same, count) == (pid, 2)
    await process.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_restart_swaps_children_without_losing_writes(notes_url: str) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    try:
        old, _ = await process.write("a")
        in_flight = asyncio.ensure_future(process.write("b"))
        await process.restart()
        new, count = await process.write("c")
        await in_flight
    finally:
        await process.close()
    assert new != old and count >= 2
    assert sorted(stored(notes_url)) == ["a", "b", "c"]


async def test_an_answer_that_cannot_be_unpickled_fails_its_caller_only(notes_url: str) -> None:
    process = WriterProcess[object](notes_url, writer_factories.raises_unrebuildable)
    try:
        with pytest.raises(RuntimeError, match="unreadable answer"):
            await asyncio.wait_for(process.write(), 30)
        with pytest.raises(RuntimeError, match="unreadable answer"):
            await asyncio.wait_for(process.write(), 30)  # the child still answers in step
    finally:
        await process.close()


async def test_an_unpicklable_payload_fails_its_caller_and_keeps_the_order(notes_url: str) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    await process.start()
    try:
        with pytest.raises(AttributeError, match="pickle"):
            await process.write(lambda: None)
        # Nothing was queued for it: the next answer is the next call's own.
        _pid, count = await process.write("after")
    finally:
        await process.close()
    assert count == 1 and stored(notes_url) == ["after"]


async def test_writing_to_a_child_that_is_gone_fails_with_child_gone(
    notes_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    process = WriterProcess[tuple[int, int]](notes_url, writer_factories.insert_note)
    await process.start()
    child = process._child
    assert child is not None and child.proc.stdin is not None

    def closed_transport(data: bytes) -> None:
        # What uvloop raises for a write after the child closed its end of the pipe.
        raise RuntimeError("unable to perform operation on <WriteUnixTransport closed=True>")

    monkeypatch.setattr(child.proc.stdin, "write", closed_transport)
    try:
        with pytest.raises(ChildGone, match="exited or closed its input"):
            await child.call(("note",))
        assert child.in_flight == 0 and not child.alive
    finally:
        monkeypatch.undo()
        await process.close()
