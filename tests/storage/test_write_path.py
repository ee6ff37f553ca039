"""The one write path: operations of every kind group-committed in one transaction, each
answered after the commit with its own result or its own error, never its batch-mates'.
Runs on SQLite in the writer process (as the daemon) and on PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from cases.operations import AcceptMessage, AddNote, UpdateCase
from config.app import Services
from intake.message import Address, Channel, InboundMessage
from storage.models import CaseEvent, Inbound
from storage.operations import OperationFailed, OperationRefused


@dataclass(frozen=True)
class Unheard:
    """An operation no executor knows."""

    value: int


def message() -> InboundMessage:
    return InboundMessage(
        Channel.API, uuid.uuid4().hex, Address(name="Ana", email="ana@example.com"), b"raw",
        subject="Consulta", text="Hola",
    )  # fmt: skip


async def test_a_mixed_batch_answers_each_operation_on_its_own(services: Services) -> None:
    number = (await services.writer.accept(message())).case_number
    assert number
    writes = services.writes
    sizes: list[int] = []
    writes.on_batch = sizes.append
    gate, at_door = asyncio.Event(), asyncio.Event()
    real = writes._write

    async def held(batch: Any) -> Any:
        at_door.set()
        await gate.wait()
        return await real(batch)

    writes._write = held  # type: ignore[method-assign]
    blocker = asyncio.ensure_future(writes.submit(AddNote(number, "primera", "ops")))
    await at_door.wait()
    ops = [
        AddNote(number, "buena", "ops"),
        UpdateCase(number, {"status": "Inexistente"}, "ops"),
        Unheard(1),
        AcceptMessage(message()),
        UpdateCase("CAS-999999", {"priority": "Alta"}, "ops"),
        UpdateCase(number, {"priority": "Alta"}, "ops"),
    ]
    pending = [asyncio.ensure_future(writes.submit(op)) for op in ops]
    for _ in range(500):
        if writes._queue.qsize() + sum(sizes) - 1 >= len(ops):
            break
        await asyncio.sleep(0.01)
    gate.set()
    writes._write = real  # type: ignore[method-assign]
    await blocker
    answers = await asyncio.gather(*pending, return_exceptions=True)
    if writes.writers == 1:
        assert sizes[:2] == [1, len(ops)], sizes  # one batch, one transaction

    note, bad_status, unheard, accepted, missing, priority = answers
    assert not isinstance(note, BaseException) and note.event_id
    assert isinstance(bad_status, OperationRefused) and bad_status.field == "status"
    assert isinstance(unheard, OperationFailed) and "no executor" in str(unheard)
    assert not isinstance(accepted, BaseException) and accepted.outcome == "created"
    assert isinstance(missing, OperationRefused) and missing.kind == "not_found"
    assert not isinstance(priority, BaseException) and priority.changes["priority"][1] == "Alta"
    async with services.db.session() as session:
        notes = await session.scalar(
            select(func.count()).select_from(CaseEvent).where(CaseEvent.kind == "note")
        )
        inbound = await session.scalar(select(func.count()).select_from(Inbound))
    assert (notes, inbound) == (2, 2)


async def test_nothing_runs_when_the_write_path_is_stopped(services: Services) -> None:
    await services.writes.close()
    from storage.db import StorageUnavailable

    with pytest.raises(StorageUnavailable):
        await services.writes.submit(AddNote("CAS-000001", "x", "ops"))
