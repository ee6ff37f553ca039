"""The accept path: group commit, dedup, routing, outbox, failure isolation and replay."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from config.app import Services, open_services
from intake.accept import IntakeWriter
from intake.message import AcceptResult, Address, Attachment, Channel, InboundMessage
from routing.catalog import CatalogSnapshot
from storage import migrate
from storage.db import Database, StorageUnavailable
from storage.models import Case, CaseEvent, Customer, Inbound, Message, Notification
from storage.write_path import WritePath
from tests.conftest import intake_batch, make_settings


def msg(
    email: str = "ana@example.com",
    subject: str = "No tengo Internet",
    ext: str | None = None,
    **extra: object,
) -> InboundMessage:
    return InboundMessage(
        channel=Channel.API,
        external_id=ext or uuid.uuid4().hex,
        sender=Address(name="Ana Pérez", email=email),
        raw=b'{"raw": true}',
        subject=subject,
        text="Desde ayer no tengo conexión.",
        **extra,  # type: ignore[arg-type]
    )


async def count(services: Services, model: type, *where: object) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)))  # type: ignore[arg-type]


async def test_new_case_is_routed_and_acknowledged(services: Services) -> None:
    result = await services.writer.accept(msg(category="Problema Grave"))
    assert result.outcome == "created"
    assert result.case_number == "CAS-000001"
    async with services.db.session() as session:
        case = await session.scalar(select(Case).where(Case.number == result.case_number))
        assert case is not None
        catalog = services.catalog.current
        assert catalog.get("areas", case.area_id).name == "Técnica"
        assert catalog.get("technicians", case.assignee_id).name == "Técnico de guardia"
        assert catalog.get("statuses", case.status_id).name == "Abierta"
        assert catalog.get("priorities", case.priority_id).name == "Normal"
        assert catalog.get("severities", case.severity_id).name == "Medios"
        events = (
            await session.scalars(select(CaseEvent).where(CaseEvent.case_id == case.id))
        ).all()
        routed = next(e for e in events if e.kind == "routed")
        assert any("Técnica" in r for r in routed.detail["reasons"])
        ack = await session.scalar(
            select(Notification).where(
                Notification.case_id == case.id, Notification.audience == "customer"
            )
        )
        assert ack is not None
        assert ack.channel == "email" and ack.status == "pending" and ack.trigger == "auto"
        assert ack.recipient == "ana@example.com"
        assert "CAS-000001" in ack.subject and "CAS-000001" in ack.body
        inbound = await session.scalar(select(Inbound).where(Inbound.case_id == case.id))
        assert inbound is not None and inbound.raw == b'{"raw": true}'


async def test_defaults_apply_without_category(services: Services) -> None:
    result = await services.writer.accept(msg())
    async with services.db.session() as session:
        case = await session.scalar(select(Case).where(Case.number == result.case_number))
        assert case is not None
        assert services.catalog.current.get("categories", case.category_id).name == "Problema menor"
        assert services.catalog.current.get("areas", case.area_id).name == "Mesa de ayuda"


async def test_duplicate_external_id_is_one_case(services: Services) -> None:
    first = await services.writer.accept(msg(ext="dup-1"))
    again = await services.writer.accept(msg(ext="dup-1"))
    assert again.outcome == "duplicate" and again.case_number == first.case_number
    # Same id twice inside one batch as well.
    both = await asyncio.gather(*(services.writer.accept(msg(ext="dup-2")) for _ in range(5)))
    assert sorted(r.outcome for r in both).count("created") == 1
    assert len({r.case_number for r in both}) == 1
    assert await count(services, Case) == 2
    assert await count(services, Inbound) == 2


async def test_concurrent_accepts_are_group_committed(services: Services) -> None:
    sizes: list[int] = []
    services.writes.on_batch = sizes.append
    results = await asyncio.gather(
        *(services.writer.accept(msg(email=f"c{i}@example.com")) for i in range(100))
    )
    assert {r.outcome for r in results} == {"created"}
    numbers = sorted(r.case_number or "" for r in results)
    assert numbers == [f"CAS-{n:06d}" for n in range(1, 101)]
    assert sum(sizes) == 100 and max(sizes) > 1  # fewer transactions than messages
    assert await count(services, Customer) == 100


async def test_same_sender_is_one_customer_and_tag_continues_case(services: Services) -> None:
    first = await services.writer.accept(msg())
    follow = await services.writer.accept(msg(subject=f"Re: [{first.case_number}] sigue igual"))
    assert follow.outcome == "continued" and follow.case_number == first.case_number
    assert await count(services, Customer) == 1
    assert await count(services, Message) == 2
    assert (
        await count(services, Notification, Notification.audience == "customer") == 1
    )  # follow-ups are not acknowledged again
    # A stranger quoting the number opens a case of their own instead.
    other = await services.writer.accept(
        msg(email="otro@example.com", subject=f"[{first.case_number}] hola")
    )
    assert other.outcome == "created" and other.case_number != first.case_number


async def test_automatic_message_gets_no_ack(services: Services) -> None:
    result = await services.writer.accept(msg(auto_submitted=True))
    assert await count(services, Notification, Notification.audience == "customer") == 0
    async with services.db.session() as session:
        kinds = (await session.scalars(select(CaseEvent.kind))).all()
    assert "ack_suppressed" in kinds and result.outcome == "created"


async def test_bad_message_does_not_fail_its_batch_mates(services: Services) -> None:
    # A size no engine can store makes the batch's INSERT fail at the database.
    stored = services.attachments.save_sync(b"log", "x.txt", "text/plain")
    bad = msg(attachments=(Attachment(stored.sha256, 2**64, "text/plain", "x.txt"),))
    goods = [msg(email=f"g{i}@example.com") for i in range(5)]
    results = await asyncio.gather(
        *(services.writer.accept(m) for m in [*goods[:2], bad, *goods[2:]])
    )
    outcomes = [r.outcome for r in results]
    assert outcomes == ["created", "created", "failed", "created", "created", "created"]
    async with services.db.session() as session:
        failed = await session.scalar(select(Inbound).where(Inbound.status == "failed"))
    assert failed is not None and failed.raw == bad.raw and failed.error


async def test_message_naming_a_missing_attachment_fails_alone(services: Services) -> None:
    missing = msg(attachments=(Attachment("0" * 64, 3, "text/plain", "gone.txt"),))
    goods = [msg(email=f"h{i}@example.com") for i in range(3)]
    results = await asyncio.gather(
        *(services.writer.accept(m) for m in [goods[0], missing, *goods[1:]])
    )
    assert [r.outcome for r in results] == ["created", "failed", "created", "created"]
    assert "not in the store" in (results[1].error or "")


async def test_routing_failure_is_kept_and_replayed(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = intake_batch(services).engine

    def no_defaults(msg: Any, catalog: CatalogSnapshot) -> Any:
        return type(engine).decide(engine, msg, CatalogSnapshot())  # routing cannot decide

    monkeypatch.setattr(engine, "decide", no_defaults)
    result = await services.writer.accept(msg(ext="replay-me"))
    assert result.outcome == "failed" and "routing" in (result.error or "")
    assert await count(services, Case) == 0
    monkeypatch.undo()
    replayed = await services.writer.retry(result.inbound_id)
    assert replayed.outcome == "created" and replayed.inbound_id == result.inbound_id
    async with services.db.session() as session:
        row = await session.get(Inbound, result.inbound_id)
    assert row is not None and row.status == "processed" and row.retries == 1
    with pytest.raises(ValueError):
        await services.writer.retry(result.inbound_id)


async def test_storage_down_raises_storage_unavailable(services: Services) -> None:
    dead = Database("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    writes = WritePath(dead, services.runner)
    writer = IntakeWriter(dead, writes, services.intake_metrics)
    task = asyncio.create_task(writes.run())
    await writes.wait_started()
    with pytest.raises(StorageUnavailable):
        await writer.accept(msg())
    await writes.close()
    await task
    await dead.close()


async def test_two_writers_never_share_a_case_number(tmp_path, db_url: str) -> None:  # type: ignore[no-untyped-def]
    """Two daemons on one database (scale-out) get distinct, gap-free numbers."""
    settings = make_settings(tmp_path, db_url)
    if not settings.database.is_sqlite:
        await migrate.upgrade(settings.database.url)
    a, b = await open_services(settings), await open_services(settings)
    tasks = [asyncio.create_task(s.writes.run()) for s in (a, b)]
    await a.writes.wait_started()
    await b.writes.wait_started()
    try:
        results = await asyncio.gather(
            *((a if i % 2 else b).writer.accept(msg(email=f"w{i}@example.com")) for i in range(60))
        )
    finally:
        for s in (a, b):
            await s.writes.close()
        await asyncio.gather(*tasks)
    numbers = sorted(r.case_number or "" for r in results)
    assert numbers == [f"CAS-{n:06d}" for n in range(1, 61)]
    await a.close()
    await b.close()


async def test_attachments_reach_the_disk_before_their_commit(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receivers write files without waiting on the disk; the writer flushes every file of
    a batch before the commit that references them."""
    import os

    from intake import attachments as attachments_module

    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1])
        real_fsync(fd)

    monkeypatch.setattr(attachments_module.os, "fsync", recording_fsync)
    files = [
        services.attachments.save_sync(f"f{i}".encode(), "f.txt", "text/plain") for i in range(3)
    ]
    assert synced == []  # writing alone does not flush
    first = msg(attachments=tuple(files[:2]))
    second = msg(email="b@example.com", attachments=(files[2], files[0]))
    results = await asyncio.gather(services.writer.accept(first), services.writer.accept(second))
    assert [r.outcome for r in results] == ["created", "created"]
    assert sorted(set(synced)) == sorted(f.sha256 for f in files)


async def test_the_next_batch_is_handed_over_before_the_last_is_answered(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When mail waited while a batch was written, it goes to the database before that
    batch's senders get their answers (the writer does not idle while the event loop
    writes replies); with nothing waiting, the answers go at once."""
    writer, writes = services.writer, services.writes
    order: list[str] = []
    started = asyncio.Event()

    def on_batch(size: int) -> None:
        order.append(f"batch of {size}")
        started.set()

    writes.on_batch = on_batch
    hold = asyncio.Event()
    real_before_write = writes.before_write
    assert real_before_write is not None

    async def held(ops: Any) -> None:
        if len(order) == 1:
            await hold.wait()
        await real_before_write(ops)

    monkeypatch.setattr(writes, "before_write", held)

    def tracked(n: int) -> asyncio.Task[AcceptResult]:
        task = asyncio.ensure_future(writer.accept(msg(email=f"o{n}@example.com")))
        task.add_done_callback(lambda _: order.append(f"answered {n}"))
        return task

    first = tracked(0)
    await started.wait()
    waiting = [tracked(n) for n in (1, 2, 3)]
    for _ in range(5):
        await asyncio.sleep(0)
    hold.set()
    results = await asyncio.gather(first, *waiting)
    assert [r.outcome for r in results] == ["created"] * 4
    assert order[:2] == ["batch of 1", "batch of 3"]
    assert order.index("batch of 3") < order.index("answered 0")
    assert sorted(order[2:]) == ["answered 0", "answered 1", "answered 2", "answered 3"]
