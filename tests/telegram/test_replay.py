"""An update the adapter could not translate is kept raw as a failed inbound row (its
offset confirmed: nothing is lost, nothing blocks the chat) and ``inbound retry`` replays
it after the fix, files fetched again through the Bot API."""

from __future__ import annotations

from typing import Any

import pytest

from config.app import Services
from intake.message import InboundMessage
from intake.telegram import TelegramTranslator
from storage.models import Attachment
from tests.telegram.bot_api import FakeBotApi
from tests.telegram.support import eventually, inbound, messages, parts_of, rows, running


async def test_an_update_that_failed_to_translate_is_kept_and_replayed(
    services: Services, fake: tuple[FakeBotApi, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = fake
    update = api.photo(b"\xff\xd8 medidor", caption="Lectura del medidor")
    real = TelegramTranslator.translate

    async def broken(self: TelegramTranslator, *args: Any, **kwargs: Any) -> InboundMessage:
        raise RuntimeError("a bug in the adapter")

    monkeypatch.setattr(TelegramTranslator, "translate", broken)
    async with running(parts_of(services)):
        await eventually(lambda: not api.pending and api.confirmed is not None)
    [row] = await inbound(services)
    assert row.status == "failed" and "a bug in the adapter" in (row.error or "")
    assert row.external_id == f"tg:{update['message']['chat']['id']}:1"
    assert api.confirmed == update["update_id"] + 1  # kept, so confirmed
    monkeypatch.setattr(TelegramTranslator, "translate", real)  # the fix
    result = await services.writer.retry(row.id)
    assert result.outcome == "created" and result.case_number
    [message] = await messages(services)
    assert message.text == "Lectura del medidor"
    [stored] = await rows(services, Attachment)
    assert services.attachments.path_of(stored.sha256).read_bytes() == b"\xff\xd8 medidor"
    [row] = await inbound(services)
    assert row.status == "processed" and row.retries == 1
