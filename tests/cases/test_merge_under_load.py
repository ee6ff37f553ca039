"""A merge while mail for the source keeps arriving: nothing is lost, everything ends on
the target (SQLite writer process and PostgreSQL with concurrent batches)."""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import func, select

from cases.operations import MergeCase
from config.app import Services
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.models import Case, Inbound, Message


def reply(number: str, n: int) -> InboundMessage:
    return InboundMessage(
        channel=Channel.EMAIL,
        external_id=f"{uuid.uuid4().hex}@cliente.example.org",
        sender=Address(name="Ana", email="ana@cliente.example.org"),
        raw=b"raw",
        subject=f"Re: [{number}] sin servicio ({n})",
        text=f"Sigue igual ({n}).",
    )


async def test_mail_arriving_during_a_merge_all_lands_on_the_target(services: Services) -> None:
    first = InboundMessage(
        channel=Channel.API,
        external_id=uuid.uuid4().hex,
        sender=Address(name="Ana", email="ana@cliente.example.org"),
        raw=b"raw",
        subject="Sin servicio",
        text="Hola",
    )
    source = (await services.writer.accept(first)).case_number
    target = (
        await services.writer.accept(
            InboundMessage(Channel.API, uuid.uuid4().hex, Address(email="b@example.org"), b"r")
        )
    ).case_number
    assert source and target

    async def stream(start: int) -> list[AcceptResult]:
        results = []
        for n in range(start, start + 15):
            results.append(await services.writer.accept(reply(source, n)))
            await asyncio.sleep(0)
        return results

    streams = [asyncio.ensure_future(stream(k * 100)) for k in range(4)]
    await asyncio.sleep(0.05)
    merged = await services.writes.submit(MergeCase(source, target, "ops"))
    results = [r for s in await asyncio.gather(*streams) for r in s]

    assert merged.number == target
    assert len(results) == 60 and all(r.outcome == "continued" for r in results)
    assert {r.case_number for r in results} <= {source, target}
    async with services.db.session() as session:
        source_id = await session.scalar(select(Case.id).where(Case.number == source))
        on_source = await session.scalar(
            select(func.count()).select_from(Message).where(Message.case_id == source_id)
        )
        inbound_on_source = await session.scalar(
            select(func.count()).select_from(Inbound).where(Inbound.case_id == source_id)
        )
        total = await session.scalar(select(func.count()).select_from(Message))
    assert (on_source, inbound_on_source) == (0, 0)
    assert total == 62  # the two first messages and the 60 replies, none lost
