"""A batch-mate joining an opener whose routing fails opens the case itself (in-thread
writer: the test reaches into the routing engine)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from config.app import Services
from tests.cases.test_batch_threading import held, message
from tests.conftest import intake_batch


async def test_a_batch_mate_of_an_opener_whose_routing_fails_opens_the_case(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The joiner must not be left pointing at a case that was never opened."""
    if services.writes.writers > 1:
        pytest.skip("needs both in one batch: one writer (SQLite)")
    engine = intake_batch(services).engine
    real = engine.decide
    calls: list[str] = []

    def first_fails(msg: Any, catalog: Any) -> Any:
        calls.append(msg.channel)
        if len(calls) == 2:  # the blocker is the first decision
            raise RuntimeError("routing broke")
        return real(msg, catalog)

    monkeypatch.setattr(engine, "decide", first_fails)
    async with held(services) as release:
        pending = [
            asyncio.ensure_future(services.writer.accept(message("ana@example.com", s)))
            for s in ("Clave", "RE: Clave")
        ]
        await release(2)
        opener, joiner = await asyncio.gather(*pending)
    assert opener.outcome == "failed"
    assert joiner.outcome == "created" and joiner.case_number
