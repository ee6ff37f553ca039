"""ParseGroups: a mail goes at once while a parser is free, and in a group while all are
busy; each caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from intake.email.parse_groups import ParseGroups


class GatedParser:
    """``prepare_many`` that records each call and finishes it only when told to."""

    def __init__(self) -> None:
        self.calls: list[list[bytes]] = []
        self.gates: list[asyncio.Event] = []

    async def prepare_many(self, raws: Sequence[bytes]) -> list[str]:
        gate = asyncio.Event()
        self.calls.append(list(raws))
        self.gates.append(gate)
        await gate.wait()
        return [raw.decode().upper() for raw in raws]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_mail_goes_at_once_while_a_slot_is_free_and_in_groups_meanwhile() -> None:
    parser = GatedParser()
    groups = ParseGroups(parser.prepare_many, lambda: 2, size=3)
    first = [asyncio.create_task(groups.prepare(b"a")), asyncio.create_task(groups.prepare(b"b"))]
    await settle()
    assert parser.calls == [[b"a"], [b"b"]]  # alone, without waiting for company
    later = [asyncio.create_task(groups.prepare(raw)) for raw in (b"c", b"d", b"e", b"f")]
    await settle()
    assert len(parser.calls) == 2  # both slots busy: the rest waits
    parser.gates[0].set()
    await settle()
    assert parser.calls[2] == [b"c", b"d", b"e"]  # one group, at most ``size``
    parser.gates[1].set()
    await settle()
    assert parser.calls[3] == [b"f"]
    for gate in parser.gates:
        gate.set()
    assert await asyncio.gather(*first, *later) == ["A", "B", "C", "D", "E", "F"]


async def test_slots_are_asked_each_time() -> None:
    """The pool's size is read when a mail arrives (a pool may start after the groups)."""
    parser = GatedParser()
    slots = [1]
    groups = ParseGroups(parser.prepare_many, lambda: slots[0])
    tasks = [asyncio.create_task(groups.prepare(b"a")), asyncio.create_task(groups.prepare(b"b"))]
    await settle()
    assert parser.calls == [[b"a"]]
    slots[0] = 2
    tasks.append(asyncio.create_task(groups.prepare(b"c")))
    await settle()
    assert parser.calls == [[b"a"], [b"b", b"c"]]
    for gate in parser.gates:
        gate.set()
    assert await asyncio.gather(*tasks) == ["A", "B", "C"]


async def test_a_failed_call_fails_its_group_only() -> None:
    calls: list[list[bytes]] = []

    async def flaky(raws: Sequence[bytes]) -> list[str]:
        calls.append(list(raws))
        await asyncio.sleep(0)
        if b"bad" in raws:
            raise RuntimeError("pool broke")
        return [raw.decode() for raw in raws]

    groups = ParseGroups(flaky, lambda: 1)
    tasks = [asyncio.create_task(groups.prepare(r)) for r in (b"ok1", b"bad", b"ok2")]
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert calls == [[b"ok1"], [b"bad", b"ok2"]]
    assert done[0] == "ok1"
    assert all(isinstance(d, RuntimeError) for d in done[1:])
    # and the groups go on afterwards
    assert await groups.prepare(b"next") == "next"


async def test_cancel_stops_running_and_waiting_mail() -> None:
    parser = GatedParser()
    groups = ParseGroups(parser.prepare_many, lambda: 1)
    running = asyncio.create_task(groups.prepare(b"a"))
    waiting = asyncio.create_task(groups.prepare(b"b"))
    await settle()
    groups.cancel()
    for task in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task
