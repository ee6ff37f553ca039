"""What every dispatch test needs: a dispatcher over given notifiers with short timings, a
context that runs it (notifiers started and stopped around it), and a poll for a check."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry

from config.app import Services
from notifiers.base import Notifier
from notifiers.dispatcher import OutboxDispatcher
from notifiers.metrics import DispatchMetrics
from notifiers.retry import RetryPolicy


def dispatcher_for(
    services: Services, notifiers: Mapping[str, Notifier], **kw: Any
) -> OutboxDispatcher:
    return OutboxDispatcher(
        services.writes,
        notifiers,
        kw.pop("policy", RetryPolicy(max_attempts=3, base_seconds=30, max_seconds=60)),
        kw.pop("metrics", None) or DispatchMetrics(CollectorRegistry()),
        owner=kw.pop("owner", "test"),
        poll_seconds=kw.pop("poll_seconds", 0.2),
        **kw,
    )


@asynccontextmanager
async def running(dispatcher: OutboxDispatcher) -> AsyncIterator[OutboxDispatcher]:
    await dispatcher.start_notifiers()
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
        await task
        await dispatcher.stop_notifiers()


async def until(check: Callable[[], Awaitable[bool]], within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)
