"""Helpers for the Telegram intake tests: settings pointed at the fake Bot API, the part
running in the background, and what the database holds afterwards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from config.app import Services
from config.settings import Settings
from config.telegram_parts import TelegramParts, build_telegram_parts
from storage.models import Case, CaseEvent, CustomerIdentity, Inbound, Message, Notification
from tests.conftest import make_settings
from tests.telegram.bot_api import TOKEN


def telegram_settings(tmp_path: Path, db_url: str, base_url: str, **env: str) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        VENTANILLA_TELEGRAM__ENABLED="true",
        VENTANILLA_TELEGRAM__TOKEN=TOKEN,
        VENTANILLA_TELEGRAM__API_BASE_URL=base_url,
        VENTANILLA_TELEGRAM__POLL_TIMEOUT_SECONDS="1",
        VENTANILLA_TELEGRAM__TIMEOUT_SECONDS="5",
        **env,
    )


def parts_of(services: Services) -> TelegramParts:
    parts = build_telegram_parts(
        services.settings, services.writer, services.attachments, services.db
    )
    for part in (parts.poller, parts.webhook):
        if part is not None:  # fast retries in tests
            part.link.backoff_initial, part.link.backoff_max = 0.05, 0.2
    return parts


@asynccontextmanager
async def running(parts: TelegramParts) -> AsyncIterator[TelegramParts]:
    task = asyncio.create_task(parts.run())
    try:
        yield parts
    finally:
        await parts.stop()
        await asyncio.wait_for(task, 15)


async def eventually(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 15.0
) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def rows(services: Services, model: Any, *where: Any) -> list[Any]:
    async with services.db.session() as session:
        return list((await session.scalars(select(model).where(*where).order_by(model.id))).all())


async def inbound(services: Services) -> list[Inbound]:
    return await rows(services, Inbound, Inbound.channel == "telegram")


async def messages(services: Services) -> list[Message]:
    return await rows(services, Message, Message.channel == "telegram")


async def notifications(services: Services) -> list[Notification]:
    return await rows(services, Notification, Notification.channel == "telegram")


async def identities(services: Services) -> list[CustomerIdentity]:
    return await rows(services, CustomerIdentity)


async def cases(services: Services) -> list[Case]:
    return await rows(services, Case)


async def events(services: Services, kind: str) -> list[CaseEvent]:
    return await rows(services, CaseEvent, CaseEvent.kind == kind)
