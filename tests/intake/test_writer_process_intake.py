"""The intake writer with its SQLite transactions in the writer process (what `serve` runs)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import uuid
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.app import Services, open_services
from intake.message import Address, Attachment, Channel, InboundMessage
from storage.db import StorageUnavailable
from storage.models import Case, Notification
from tests.conftest import make_settings


def message(n: int, ext: str | None = None) -> InboundMessage:
    return InboundMessage(
        channel=Channel.API,
        external_id=ext or uuid.uuid4().hex,
        sender=Address(name=f"Cliente {n}", email=f"cliente{n}@example.com"),
        raw=b"{}",
        subject=f"Consulta {n}",
        text="Sin servicio desde ayer.",
        category="Problema menor",
    )


@pytest.fixture
async def process_services(tmp_path: Path):  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'v.db'}")
    services = await open_services(settings)
    await services.start_writer_process()
    task = asyncio.create_task(services.writes.run())
    await services.writes.wait_started()
    try:
        yield services
    finally:
        await services.writes.close()
        await task
        await services.close()


async def writer_pid(services: Services) -> int:
    assert services.writes.process is not None and services.writes.process._child is not None
    return services.writes.process._child.proc.pid


async def test_batches_commit_in_the_writer_process(process_services: Services) -> None:
    services = process_services
    assert await writer_pid(services) != os.getpid()
    sizes: list[int] = []
    services.writes.on_batch = sizes.append
    results = await asyncio.gather(*(services.writer.accept(message(i)) for i in range(100)))
    assert sorted(r.case_number or "" for r in results) == [f"CAS-{i:06d}" for i in range(1, 101)]
    assert sum(sizes) == 100 and len(sizes) < 100  # grouped
    # A duplicate is still recognized across batches, and the acknowledgements were queued.
    again = await services.writer.accept(message(0, ext="fixed"))
    dup = await services.writer.accept(message(0, ext="fixed"))
    assert (again.outcome, dup.outcome) == ("created", "duplicate")
    async with services.db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Case)) == 101
        assert (
            await session.scalar(
                select(func.count())
                .select_from(Notification)
                .where(Notification.audience == "customer")
            )
            == 101
        )


async def test_mail_arriving_during_a_commit_goes_in_one_batch_after_it(
    process_services: Services,
) -> None:
    services = process_services
    sizes: list[int] = []
    sent = asyncio.Event()

    def on_batch(size: int) -> None:
        sizes.append(size)
        sent.set()

    services.writes.on_batch = on_batch
    first = asyncio.create_task(services.writer.accept(message(0)))
    await sent.wait()  # the first batch is on its way to the child
    later = []
    for n in range(1, 11):  # one at a time, as mail arrives, while the child commits
        later.append(asyncio.create_task(services.writer.accept(message(n))))
        await asyncio.sleep(0)
    await asyncio.gather(first, *later)
    assert sizes == [1, 10]


async def test_a_killed_writer_process_costs_a_retry_not_a_message(
    process_services: Services,
) -> None:
    services = process_services
    first = await services.writer.accept(message(1))
    os.kill(await writer_pid(services), signal.SIGKILL)
    for _attempt in range(50):
        try:
            second = await services.writer.accept(message(2, ext="after-kill"))
            break
        except StorageUnavailable:  # the adapter answers 451 / 503: the sender retries
            await asyncio.sleep(0.05)
    else:
        pytest.fail("intake did not recover after the writer process died")
    assert first.outcome == second.outcome == "created"
    assert services.writes.running


async def test_reload_restarts_the_writer_process(process_services: Services) -> None:
    services = process_services
    before = await writer_pid(services)
    assert services.writes.process is not None
    await services.writes.process.restart()
    result = await services.writer.accept(message(3))
    assert result.outcome == "created"
    assert await writer_pid(services) != before


async def test_the_writer_process_flushes_attachments_before_its_commit(
    process_services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The event loop's process flushes nothing (the child does it beside the batch's
    statements), and a message naming a file that is not in the store fails alone."""
    from intake import attachments as attachments_module

    flushed_here: list[int] = []
    monkeypatch.setattr(attachments_module.os, "fsync", flushed_here.append)
    services = process_services
    stored = services.attachments.save_sync(b"factura", "factura.pdf", "application/pdf")
    good = dataclasses.replace(message(1), attachments=(stored,))
    missing = dataclasses.replace(
        message(2), attachments=(Attachment("0" * 64, 3, "text/plain", "gone.txt"),)
    )
    results = await asyncio.gather(
        services.writer.accept(good),
        services.writer.accept(missing),
        services.writer.accept(message(3)),
    )
    assert [r.outcome for r in results] == ["created", "failed", "created"]
    assert "not in the store" in (results[1].error or "")
    assert flushed_here == []
