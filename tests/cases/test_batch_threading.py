"""Threading inside one batch, with concurrent submissions: a reply committed together with
the message it answers, and quick mails from one sender on one subject, continue one case.

The write path is held on an unrelated batch while the concurrent submissions queue up, so
they are certainly written as one batch (``on_batch`` shows it); then it is released.
Runs on SQLite in the writer process (as the daemon) and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select, text

from cases.batch_locks import lock_key
from config.app import Services
from intake.message import AcceptResult, Address, Channel, InboundMessage
from storage.models import Case, Inbound
from tests.email.test_smtp_support import GOOD, HOST, running


@asynccontextmanager
async def held(services: Services) -> AsyncIterator[Callable[[int], Awaitable[list[int]]]]:
    """While inside, every batch waits at the door; ``release(n)`` waits until ``n``
    submissions arrived behind the first (queued, or held in a batch of their own where
    several drainers run, on PostgreSQL), lets everything through and answers the batch
    sizes. On SQLite the ``n`` then form one batch."""
    writes = services.writes
    gate, first_at_door = asyncio.Event(), asyncio.Event()
    sizes: list[int] = []
    real = writes._write

    async def write(batch: Any) -> Any:
        sizes.append(len(batch))
        first_at_door.set()
        await gate.wait()
        return await real(batch)

    writes._write = write  # type: ignore[method-assign]
    blocker = asyncio.ensure_future(
        services.writer.accept(message("otro@example.com", "Otra cosa"))
    )
    await first_at_door.wait()  # the blocker's batch is at the door before anything is sent

    async def release(waiting: int) -> list[int]:
        for _ in range(500):
            if sum(sizes) - 1 + writes._queue.qsize() >= waiting:
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"{waiting} submissions never arrived")
        gate.set()
        await blocker
        return sizes

    try:
        yield release
    finally:
        gate.set()
        writes._write = real  # type: ignore[method-assign]


def one_batch(services: Services, sizes: list[int], n: int) -> None:
    """On SQLite (one writer) the ``n`` submissions were one batch after the blocker."""
    if services.writes.writers == 1:
        assert sizes[:2] == [1, n], sizes


def message(email: str, subject: str, **extra: Any) -> InboundMessage:
    return InboundMessage(
        channel=extra.pop("channel", Channel.EMAIL),
        external_id=extra.pop("external_id", f"{uuid.uuid4().hex}@example.org"),
        sender=Address(name="Ana", email=email),
        raw=b"raw",
        subject=subject,
        text="Hola",
        **extra,
    )


def mail(subject: str, message_id: str, in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = "Ana Pérez <ana@example.org>"
    msg["To"] = GOOD
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = f"<{in_reply_to}>"
    msg.set_content("Sigue sin funcionar.\n")
    return msg.as_bytes()


async def case_of(services: Services, message_id: str) -> str:
    async with services.db.session() as session:
        number = await session.scalar(
            select(Case.number)
            .join(Inbound, Inbound.case_id == Case.id)
            .where(Inbound.external_id == message_id)
        )
    assert number is not None
    return number


async def test_a_reply_sent_with_its_original_over_smtp_continues_its_case(
    services: Services,
) -> None:
    original, reply = f"{uuid.uuid4().hex}@example.org", f"{uuid.uuid4().hex}@example.org"
    async with running(services) as smtp, held(services) as release:

        async def send(raw: bytes) -> Any:
            return await aiosmtplib.send(
                raw, sender="ana@example.org", recipients=[GOOD], hostname=HOST,
                port=smtp.port, start_tls=False,
            )  # fmt: skip

        sending = [
            asyncio.ensure_future(send(mail("Sin señal", original))),
            asyncio.ensure_future(send(mail("RE: Sin señal (otra vez)", reply, original))),
        ]
        sizes = await release(2)
        answers = await asyncio.gather(*sending)
    one_batch(services, sizes, 2)
    assert all(errors == {} for errors, _ in answers)
    assert await case_of(services, original) == await case_of(services, reply)


async def test_quick_mails_from_one_sender_on_one_subject_are_one_case(
    services: Services,
) -> None:
    async with held(services) as release:
        results: list[asyncio.Future[AcceptResult]] = [
            asyncio.ensure_future(services.writer.accept(message("ana@example.com", subject)))
            for subject in ("No anda el módem", "RE: No anda el módem", "No anda el módem")
        ]
        results.append(
            asyncio.ensure_future(
                services.writer.accept(message("beto@example.com", "No anda el módem"))
            )
        )
        sizes = await release(4)
        outcomes = await asyncio.gather(*results)
    one_batch(services, sizes, 4)
    ana = {r.case_number for r in outcomes[:3]}
    assert len(ana) == 1 and [r.outcome for r in outcomes[:3]] == [
        "created",
        "continued",
        "continued",
    ]
    assert outcomes[3].case_number not in ana  # another sender: another case


async def test_a_reply_to_a_batch_mate_that_continues_a_known_case(services: Services) -> None:
    first = message("ana@example.com", "Factura")
    known = await services.writer.accept(first)
    follow = message("ana@example.com", "Re: Factura", in_reply_to=(first.external_id,))
    answer = message("colega@example.com", "Re: Re: Factura", in_reply_to=(follow.external_id,))
    async with held(services) as release:
        pending = [asyncio.ensure_future(services.writer.accept(m)) for m in (follow, answer)]
        sizes = await release(2)
        results = await asyncio.gather(*pending)
    one_batch(services, sizes, 2)
    assert {r.case_number for r in results} == {known.case_number}
    assert [r.outcome for r in results] == ["continued", "continued"]


async def test_postgresql_batches_sharing_a_thread_key_wait_for_each_other(
    services: Services,
) -> None:
    """A batch waits for one in flight that shares a sender (its advisory lock) and then
    sees its rows; unrelated batches go on meanwhile."""
    if services.db.is_sqlite:
        pytest.skip("one writer on SQLite: batches never overlap")
    async with services.db.engine.connect() as conn:
        held_lock = await conn.begin()
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(:k)"),
            {"k": lock_key("identity:email:ana@example.com")},
        )
        waiting = asyncio.ensure_future(services.writer.accept(message("ana@example.com", "X")))
        for _ in range(500):  # taken by a drainer, so that Beto's goes in another batch
            await asyncio.sleep(0.01)
            if services.writes._queue.qsize() == 0:
                break
        other = await services.writer.accept(message("beto@example.com", "Y"))
        assert other.outcome == "created"
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await held_lock.rollback()
    assert (await waiting).outcome == "created"


async def test_a_reply_queued_ahead_of_its_original_still_joins_it(services: Services) -> None:
    """Concurrent SMTP sessions finish in any order: the reply may be written first."""
    original = message("ana@example.com", "Corte de luz")
    answer = message("colega@example.com", "Re: Corte de luz", in_reply_to=(original.external_id,))
    async with held(services) as release:
        pending = [asyncio.ensure_future(services.writer.accept(m)) for m in (answer, original)]
        sizes = await release(2)
        first, second = await asyncio.gather(*pending)
    one_batch(services, sizes, 2)
    assert first.case_number == second.case_number
    assert sorted([first.outcome, second.outcome]) == ["continued", "created"]


async def test_an_original_arriving_after_its_reply_joins_the_reply_case(
    services: Services,
) -> None:
    """Across batches too (concurrent batches on PostgreSQL finish in any order)."""
    original = message("ana@example.com", "Sin tono")
    answer = message("colega@example.com", "Re: Sin tono", in_reply_to=(original.external_id,))
    first = await services.writer.accept(answer)
    second = await services.writer.accept(original)
    assert (first.outcome, second.outcome) == ("created", "continued")
    assert first.case_number == second.case_number
