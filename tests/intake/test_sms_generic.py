"""A generic gateway's inbound SMS: the shared secret as a header, or an HMAC-SHA256 of
the body; JSON or form; refusals store nothing and are counted; the gateway's id dedups."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.app import Services
from config.settings import Settings
from storage.models import Inbound
from tests.intake.sms_support import (
    CUSTOMER,
    GENERIC_SECRET,
    Client,
    body_hmac,
    count,
    messages,
    sms_settings,
    webhooks,
)

PATH = "/webhooks/generic/sms"


@pytest.fixture
def auth() -> str:
    return "header"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, auth: str) -> Settings:
    return sms_settings(tmp_path, db_url, VENTANILLA_SMS__GENERIC__INBOUND_AUTH=auth)


async def test_the_shared_secret_header(services: Services, client: Client) -> None:
    fields = {"id": "gw-1", "from": "011 15-5555-0123", "text": "Hola desde el gateway"}
    for headers in ({}, {"X-Webhook-Secret": "wrong"}):
        assert (await client.post(PATH, data=fields, headers=headers)).status == 403
    assert await count(services, Inbound) == 0
    assert webhooks(services, "generic", "rejected_signature") == 2
    good = {"X-Webhook-Secret": GENERIC_SECRET}
    resp = await client.post(PATH, data=fields, headers=good)
    assert resp.status == 200 and (await resp.json()) == {"status": "accepted"}
    resp = await client.post(PATH, data=fields, headers=good)
    assert (await resp.json()) == {"status": "duplicate"}
    [message] = await messages(services)
    assert (message.sender, message.text) == (CUSTOMER, "Hola desde el gateway")


@pytest.mark.parametrize("auth", ["hmac"])
async def test_an_hmac_of_the_body(services: Services, client: Client) -> None:
    body = json.dumps({"id": 7, "from": CUSTOMER, "text": "Firmado"}).encode()
    json_type = {"Content-Type": "application/json"}
    tampered = body.replace(b"Firmado", b"Cambiado")
    resp = await client.post(
        PATH, data=tampered, headers={**json_type, "X-Signature": body_hmac(body)}
    )
    assert resp.status == 403
    resp = await client.post(PATH, data=body, headers={**json_type, "X-Signature": body_hmac(body)})
    assert resp.status == 200
    [message] = await messages(services)
    assert message.text == "Firmado"
    assert webhooks(services, "generic", "accepted") == 1
