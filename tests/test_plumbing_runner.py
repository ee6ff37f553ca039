"""The generic Runner: claims come in batches of ``min_claim`` while work is in flight, a
poke meanwhile neither spins nor is lost, and an idle runner claims at once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from plumbing.runner import Runner


class Counting(Runner[int]):
    def __init__(self, items: int, **kw: int) -> None:
        super().__init__("test", poll_seconds=30, **kw)
        self.waiting = list(range(items))
        self.claims: list[int] = []
        self.done: list[int] = []
        self.gates: dict[int, asyncio.Event] = {}

    async def claim(self, capacity: int) -> Sequence[int]:
        self.claims.append(capacity)
        taken, self.waiting = self.waiting[:capacity], self.waiting[capacity:]
        return taken

    async def process(self, item: int) -> None:
        gate = self.gates.setdefault(item, asyncio.Event())
        await gate.wait()
        self.done.append(item)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_claims_wait_for_a_batch_of_free_slots() -> None:
    runner = Counting(40, slots=8, min_claim=4)
    task = asyncio.create_task(runner.run())
    await settle()
    assert runner.claims == [8]
    for item in range(3):  # three free slots: not yet worth a claim, even when poked
        runner.gates.setdefault(item, asyncio.Event()).set()
        runner.poke()
        await settle()
    assert runner.claims == [8]
    runner.gates.setdefault(3, asyncio.Event()).set()
    await settle()
    assert runner.claims == [8, 4]
    for item in range(4, 40):
        runner.gates.setdefault(item, asyncio.Event()).set()
        await settle()
    assert sorted(runner.done) == list(range(40))
    assert all(size >= 4 for size in runner.claims)
    await runner.stop()
    await task


async def test_an_idle_runner_claims_a_single_item_at_once() -> None:
    runner = Counting(0, slots=8, min_claim=4)
    task = asyncio.create_task(runner.run())
    await settle()
    runner.waiting = [99]
    runner.gates[99] = asyncio.Event()
    runner.gates[99].set()
    runner.poke()
    await settle()
    assert runner.done == [99]
    await runner.stop()
    await task
