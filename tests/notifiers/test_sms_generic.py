"""SMS through a generic HTTP gateway configured in ``[sms.generic]``, against a loopback
fake: the rendered body and headers, the id read from the answer, and what a 429, a 5xx,
a hang and a refusal do (SQLite writer process, and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.app import Services, default_providers
from config.settings import Settings
from notifiers.sms_generic import find_path
from storage.models import utcnow
from tests.conftest import make_settings
from tests.notifiers.dispatch_support import until
from tests.notifiers.sms_fakes import GATEWAY_TOKEN, FakeGateway, fake_gateway
from tests.notifiers.sms_helpers import (
    PHONE,
    accept_from_phone,
    attempts,
    dispatching,
    rows,
    statuses,
)

pytestmark = pytest.mark.writer_process

TEMPLATE = (
    '{"destination": {{ to|tojson }}, "sender": {{ from|tojson }}, '
    '"message": {{ text|tojson }}, "dedup": {{ idempotency_key|tojson }}}'
)


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    async with fake_gateway() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, db_url: str, gateway: FakeGateway) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        VENTANILLA_SMS__GENERIC__ENABLED="true",
        VENTANILLA_SMS__GENERIC__URL=f"{gateway.url}/v1/send",
        VENTANILLA_SMS__GENERIC__BODY_TEMPLATE=f"'{TEMPLATE}'",
        VENTANILLA_SMS__GENERIC__AUTH_TOKEN=GATEWAY_TOKEN,
        VENTANILLA_SMS__GENERIC__HEADERS__X_TENANT="ventanilla",
        VENTANILLA_SMS__GENERIC__SUCCESS_CODES="[202]",
        VENTANILLA_SMS__GENERIC__MESSAGE_ID_PATH="data.messages.0.id",
        VENTANILLA_SMS__GENERIC__FROM_NUMBER="Soporte",
        VENTANILLA_SMS__GENERIC__TIMEOUT_SECONDS="0.5",
    )


async def test_the_gateway_gets_the_rendered_body_and_its_id_is_kept(
    services: Services, gateway: FakeGateway
) -> None:
    assert default_providers(services.settings)["sms"] == "generic"
    await accept_from_phone(services)
    async with dispatching(services):
        await until(statuses(services, "sent"))
    [row] = await rows(services)
    [got] = gateway.received
    assert json.loads(got.body) == {
        "destination": PHONE,
        "sender": "Soporte",
        "message": row.body.strip(),
        "dedup": f"ventanilla-{row.id}",
    }
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["x_tenant"] == "ventanilla"
    assert (row.provider, row.provider_id) == ("generic", "gw-1")
    [attempt] = await attempts(services)
    assert (attempt.outcome, attempt.provider_code) == ("sent", "202")


async def test_429_5xx_and_a_hang_are_retried_and_a_refusal_fails(
    services: Services, gateway: FakeGateway
) -> None:
    gateway.answers = ["429", "500", "hang", "refused"]
    for last in "1234":
        await accept_from_phone(services, f"+549115555012{last}")
    async with dispatching(services, slots=1):
        await until(statuses(services, "pending", "pending", "pending", "failed"))
    throttled, broken, hung, refused = await rows(services)
    assert throttled.next_attempt_at is not None
    assert throttled.next_attempt_at > utcnow() + timedelta(seconds=800)
    assert broken.last_error == "SMS gateway: HTTP 502: Bad Gateway"
    assert "timed out" in (hung.last_error or "")
    assert refused.status_reason == ('SMS gateway: HTTP 422: {"error": "destination not allowed"}')
    kinds = [(a.outcome, a.provider_code) for a in await attempts(services)]
    assert kinds == [("transient", "429"), ("transient", "502"), ("transient", None),
                     ("permanent", "422")]  # fmt: skip


def test_the_message_id_path_walks_keys_and_list_indexes() -> None:
    answer = {"data": {"messages": [{"id": "a"}, {"id": "b"}]}, "ok": True}
    assert find_path(answer, "data.messages.1.id") == "b"
    assert find_path(answer, "data.messages.-1.id") == "b"
    assert find_path(answer, "data.messages.5.id") is None
    assert find_path(answer, "data.missing.id") is None
    assert find_path(None, "data") is None
