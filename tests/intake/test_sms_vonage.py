"""Vonage's inbound-SMS webhook: ``sig`` signed by Vonage's documented algorithm (md5hash,
sha256, sha512) by GET, form and JSON; refusals store nothing and are counted; a long text
in three parts arriving out of order is one message, and a retried part changes nothing;
the api-key check when no signature secret is set; storage down is a 503."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from config.app import Services
from config.settings import Settings
from storage.db import StorageUnavailable
from storage.models import Inbound, SmsPart
from tests.intake.sms_support import (
    CUSTOMER,
    VONAGE_SIGNATURE_SECRET,
    Client,
    cases,
    count,
    inbound,
    messages,
    phone_customer,
    sms_settings,
    vonage_inbound,
    vonage_sig,
    webhooks,
)

PATH = "/webhooks/vonage/sms"


@pytest.fixture(params=["md5hash", "sha256", "sha512"])
def method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def signature_secret() -> str:
    return VONAGE_SIGNATURE_SECRET


@pytest.fixture
def settings(tmp_path: Path, db_url: str, method: str, signature_secret: str) -> Settings:
    return sms_settings(
        tmp_path,
        db_url,
        VENTANILLA_SMS__VONAGE__SIGNATURE_METHOD=method,
        VENTANILLA_SMS__VONAGE__SIGNATURE_SECRET=signature_secret,
    )


async def send(client: Client, how: str, fields: dict[str, str]) -> Any:
    if how == "get":
        return await client.get(PATH, params=fields)
    if how == "json":
        return await client.post(PATH, json=fields)
    return await client.post(PATH, data=fields)


@pytest.mark.parametrize("how", ["get", "form", "json"])
async def test_a_signed_message_opens_a_case(
    services: Services, client: Client, method: str, how: str
) -> None:
    fields = vonage_inbound("0A0000000123ABCD", "No funciona el router & el módem", method)
    resp = await send(client, how, fields)
    assert resp.status == 200
    [row] = await inbound(services)
    assert (row.channel, row.external_id) == ("sms", "0A0000000123ABCD")
    [message] = await messages(services)
    assert message.text == "No funciona el router & el módem"
    # msisdn has no "+": the customer is still the E.164 number.
    [case] = await cases(services)
    assert await phone_customer(services, CUSTOMER) == case.customer_id
    # Vonage resends what it did not see answered: the same id is one message.
    assert (await send(client, how, fields)).status == 200
    assert await count(services, Inbound) == 1
    assert webhooks(services, "vonage", "accepted") == 1
    assert webhooks(services, "vonage", "duplicate") == 1


async def test_a_missing_or_wrong_sig_is_refused_and_nothing_is_stored(
    services: Services, client: Client, method: str
) -> None:
    good = vonage_inbound("0A0000000124ABCD", "Hola", method)
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    tampered = {**good, "text": "Otro texto"}
    other_secret = {**good, "sig": vonage_sig(good, "another-secret", method)}
    for fields in (unsigned, tampered, other_secret, {**good, "sig": "0" * 32}):
        resp = await client.post(PATH, data=fields)
        assert resp.status == 403
    assert await count(services, Inbound) == 0 and await count(services, SmsPart) == 0
    assert webhooks(services, "vonage", "rejected_signature") == 4


def part(ref: str, number: int, text: str, method: str, total: int = 3) -> dict[str, str]:
    return vonage_inbound(
        f"0B00000000000{ref}{number}", text, method,
        concat="true", **{"concat-ref": ref, "concat-total": str(total),
                          "concat-part": str(number)},
    )  # fmt: skip


async def test_a_long_text_in_three_parts_out_of_order_is_one_message(
    services: Services, client: Client, method: str
) -> None:
    texts = ["Desde ayer a la tarde no tengo conexión a Inte", "rnet en ninguna compu",
             "tadora; las luces del módem parpadean."]  # fmt: skip
    for number in (3, 1):
        resp = await client.post(PATH, data=part("7", number, texts[number - 1], method))
        assert resp.status == 200
        assert await cases(services) == []  # stored, waiting for the rest
    assert await count(services, SmsPart) == 2
    # A retried part before the set is complete changes nothing.
    assert (await client.get(PATH, params=part("7", 1, texts[0], method))).status == 200
    resp = await client.post(PATH, json=part("7", 2, texts[1], method))
    assert resp.status == 200
    [message] = await messages(services)
    assert message.text == "".join(texts)
    [row] = await inbound(services)
    assert row.external_id.startswith(f"concat:{CUSTOMER}:7:")
    # A part retried after the message exists is a duplicate of it.
    assert (await client.post(PATH, data=part("7", 3, texts[2], method))).status == 200
    assert len(await messages(services)) == 1 and await count(services, Inbound) == 1
    # The same concat-ref used again later (it wraps) is another message.
    again = [part("7", n, t, method, total=2) | {"messageId": f"0C{n}"} for n, t in
             ((1, "Otra consulta "), (2, "larga"))]  # fmt: skip
    for fields in again:
        fields["sig"] = vonage_sig(fields, VONAGE_SIGNATURE_SECRET, method)
        assert (await client.post(PATH, data=fields)).status == 200
    assert [m.text for m in await messages(services)][-1] == "Otra consulta larga"


async def test_storage_down_answers_503_so_vonage_retries(
    services: Services, client: Client, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(_op: object) -> None:
        raise StorageUnavailable("database is down")

    monkeypatch.setattr(services.writes, "submit", down)
    for fields in (vonage_inbound("0A01", "Hola", method), part("9", 1, "Hola", method)):
        resp = await client.post(PATH, data=fields)
        assert resp.status == 503 and resp.headers["Retry-After"]
    assert webhooks(services, "vonage", "unavailable") == 2


@pytest.mark.parametrize(("method", "signature_secret"), [("md5hash", "")])
async def test_without_a_signature_secret_another_accounts_message_is_refused(
    services: Services, client: Client, method: str
) -> None:
    fields = vonage_inbound("0A02", "Hola", method)
    del fields["sig"]
    stranger = {**fields, "api-key": "someone-else"}
    assert (await client.post(PATH, data=stranger)).status == 403
    assert (await client.post(PATH, data=fields)).status == 200
    assert len(await messages(services)) == 1
