"""The Telegram tests' fixtures: the fake Bot API on loopback and the settings pointed at
it (a module adds its own keys by overriding ``telegram_env``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.settings import Settings
from tests.telegram.bot_api import FakeBotApi, fake_bot_api
from tests.telegram.support import telegram_settings


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeBotApi, str]]:
    async with fake_bot_api() as served:
        yield served


@pytest.fixture
def telegram_env() -> dict[str, str]:
    return {}


@pytest.fixture
def settings(
    tmp_path: Path, db_url: str, fake: tuple[FakeBotApi, str], telegram_env: dict[str, str]
) -> Settings:
    return telegram_settings(tmp_path, db_url, fake[1], **telegram_env)
