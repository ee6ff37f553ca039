"""The Telegram intake by webhook: setWebhook at start with our secret and the update
kinds we take; ``POST /webhooks/telegram`` with the right secret is stored and answered
200 after the commit, a wrong or missing secret is refused with 403 and stores nothing,
and a database that is down gets 503 with Retry-After so Telegram delivers it again;
/readyz shows getWebhookInfo."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from config.app import Services, build_http_app
from config.settings import ConfigError
from intake.message import AcceptResult, InboundMessage
from storage.db import StorageUnavailable
from tests.conftest import make_settings
from tests.telegram.bot_api import FakeBotApi
from tests.telegram.support import (
    eventually,
    inbound,
    messages,
    notifications,
    parts_of,
    running,
)

SECRET = "s3cr3t-Token_1"
HEADER = "X-Telegram-Bot-Api-Secret-Token"


@pytest.fixture
def telegram_env() -> dict[str, str]:
    return {
        "VENTANILLA_TELEGRAM__MODE": "webhook",
        "VENTANILLA_TELEGRAM__WEBHOOK_SECRET": SECRET,
        "VENTANILLA_HTTP__PUBLIC_URL": "https://soporte.example.com/",
    }


@pytest.fixture
async def hooked(
    services: Services, fake: tuple[FakeBotApi, str]
) -> AsyncIterator[TestClient[Any, Any]]:
    parts = parts_of(services)
    app = build_http_app(services)
    app.add_routes(parts.routes())
    services.readiness.update(parts.readiness())
    async with running(parts), TestClient(TestServer(app)) as client:
        await eventually(lambda: parts.webhook is not None and parts.webhook.ready)
        yield client


def taken(api: FakeBotApi) -> dict[str, Any]:
    """The update the fake queued last, taken off the queue: the webhook delivers it."""
    return api.pending.pop()


async def test_the_webhook_is_set_with_the_secret_and_the_update_kinds(
    hooked: TestClient[Any, Any], fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    [form] = api.forms["setWebhook"]
    assert form["url"] == "https://soporte.example.com/webhooks/telegram"
    assert form["secret_token"] == SECRET
    assert json.loads(form["allowed_updates"]) == ["message", "edited_message"]
    assert "getUpdates" not in api.calls  # no polling in webhook mode
    ready = await hooked.get("/readyz")
    body = await ready.json()
    assert ready.status == 200, body
    telegram = body["checks"]["telegram"]
    assert telegram["mode"] == "webhook" and telegram["state"] == "running"
    assert telegram["webhook"]["url"] == "https://soporte.example.com/webhooks/telegram"
    assert telegram["webhook"]["pending_update_count"] == 0


async def test_an_update_with_the_right_secret_is_stored_before_the_200(
    services: Services, hooked: TestClient[Any, Any], fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    api.photo(b"\xff\xd8 imagen del router", caption="El router parpadea")
    update = taken(api)
    answer = await hooked.post("/webhooks/telegram", json=update, headers={HEADER: SECRET})
    assert answer.status == 200, await answer.text()
    [message] = await messages(services)  # committed by the time of the 200
    assert message.text == "El router parpadea"
    assert api.downloads == [f"documents/{update['message']['photo'][-1]['file_id']}"]
    [ack] = await notifications(services)
    assert ack.template == "ack_telegram"
    # Telegram retrying the same update: 200 again, still one message.
    again = await hooked.post("/webhooks/telegram", json=update, headers={HEADER: SECRET})
    assert again.status == 200 and (await again.json())["outcome"] == "duplicate"
    assert len(await inbound(services)) == 1


@pytest.mark.parametrize("secret", ["wrong", "", None])
async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_stored(
    services: Services,
    hooked: TestClient[Any, Any],
    fake: tuple[FakeBotApi, str],
    secret: str | None,
) -> None:
    api, _ = fake
    api.text("Soy un impostor")
    headers = {HEADER: secret} if secret is not None else {}
    answer = await hooked.post("/webhooks/telegram", json=taken(api), headers=headers)
    assert answer.status == 403
    assert (await answer.json())["error"]["code"] == "forbidden"
    assert await inbound(services) == [] and await notifications(services) == []


async def test_storage_down_answers_503_so_telegram_delivers_it_again(
    services: Services,
    hooked: TestClient[Any, Any],
    fake: tuple[FakeBotApi, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, _ = fake
    api.text("¿Hay un corte en mi zona?")
    update = taken(api)

    async def down(_msg: InboundMessage) -> AcceptResult:
        raise StorageUnavailable("database is locked")

    real = services.writer.accept
    monkeypatch.setattr(services.writer, "accept", down)
    answer = await hooked.post("/webhooks/telegram", json=update, headers={HEADER: SECRET})
    assert answer.status == 503 and answer.headers["Retry-After"] == "5"
    assert await inbound(services) == []
    monkeypatch.setattr(services.writer, "accept", real)
    answer = await hooked.post("/webhooks/telegram", json=update, headers={HEADER: SECRET})
    assert answer.status == 200
    assert len(await inbound(services)) == 1


async def test_a_body_that_is_not_an_update_is_a_400(
    hooked: TestClient[Any, Any],
) -> None:
    answer = await hooked.post("/webhooks/telegram", data=b"[1, 2]", headers={HEADER: SECRET})
    assert answer.status == 400 and (await answer.json())["error"]["code"] == "bad_request"


def test_webhook_mode_needs_a_well_formed_secret(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    base = {
        "VENTANILLA_TELEGRAM__ENABLED": "true",
        "VENTANILLA_TELEGRAM__TOKEN": "1:x",
        "VENTANILLA_TELEGRAM__MODE": "webhook",
    }
    with pytest.raises(ConfigError, match="needs webhook_secret"):
        make_settings(tmp_path, url, **base)
    with pytest.raises(ConfigError, match="1-256 characters"):
        make_settings(tmp_path, url, **base, VENTANILLA_TELEGRAM__WEBHOOK_SECRET="a b")
