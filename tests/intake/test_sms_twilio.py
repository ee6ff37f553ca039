"""Twilio's incoming-message webhook: signed with Twilio's own RequestValidator, refused
without a good signature (nothing stored, counted), answered with empty TwiML after the
commit, deduplicated on MessageSid, MMS media fetched with basic auth, 503 when storage
is down, and one customer for a number given on the web form and then texting."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from config.app import Services
from config.settings import Settings
from storage.db import StorageUnavailable
from storage.models import Attachment, Inbound
from tests.intake.sms_support import (
    CUSTOMER,
    PUBLIC_URL,
    Client,
    FakeMedia,
    cases,
    count,
    fake_media,
    inbound,
    messages,
    phone_customer,
    post_twilio,
    sms_settings,
    twilio_form,
    twilio_signed,
    webhooks,
)
from tests.intake.test_webform import form_tokens


@pytest.fixture
async def media() -> AsyncIterator[FakeMedia]:
    async with fake_media() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, db_url: str, media: FakeMedia) -> Settings:
    return sms_settings(tmp_path, db_url, twilio_api=media.url)


async def test_a_signed_sms_opens_a_case_and_is_answered_with_empty_twiml(
    services: Services, client: Client
) -> None:
    form = twilio_form("SM" + "1" * 32, "Hola, no tengo conexión desde ayer.")
    resp = await post_twilio(client, form)
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    assert "<Response></Response>" in await resp.text()
    [row] = await inbound(services)
    assert (row.channel, row.external_id, row.status) == ("sms", "SM" + "1" * 32, "processed")
    [case] = await cases(services)
    assert case.origin_channel == "sms" and row.case_id == case.id
    [message] = await messages(services)
    assert message.text == "Hola, no tengo conexión desde ayer." and message.sender == CUSTOMER
    assert await phone_customer(services) == case.customer_id
    assert webhooks(services, "twilio", "accepted") == 1


async def test_a_repeated_message_sid_gets_the_same_answer_and_stays_one_message(
    services: Services, client: Client
) -> None:
    form = twilio_form("SM" + "2" * 32, "¿Cuándo vienen a revisar la línea?")
    answers = [await (await post_twilio(client, form)).text() for _ in range(3)]
    assert len(set(answers)) == 1
    assert await count(services, Inbound) == 1 and len(await cases(services)) == 1
    assert webhooks(services, "twilio", "accepted") == 1
    assert webhooks(services, "twilio", "duplicate") == 2


async def test_a_missing_or_wrong_signature_is_refused_and_nothing_is_stored(
    services: Services, client: Client
) -> None:
    form = twilio_form("SM" + "3" * 32, "Hola")
    forged = [
        {},  # none
        {"X-Twilio-Signature": twilio_signed(form, token="another-token")},
        {"X-Twilio-Signature": twilio_signed({**form, "Body": "otro texto"})},
        # Signed over the URL the request reached, not the public one Twilio was given.
        {"X-Twilio-Signature": twilio_signed(form, str(client.make_url("/webhooks/twilio/sms")))},
    ]
    for headers in forged:
        resp = await client.post("/webhooks/twilio/sms", data=form, headers=headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
    assert await count(services, Inbound) == 0 and await cases(services) == []
    assert webhooks(services, "twilio", "rejected_signature") == len(forged)


async def test_the_signature_covers_the_query_of_the_configured_url(
    services: Services, client: Client
) -> None:
    form = twilio_form("SM" + "4" * 32, "Con parámetros en la URL")
    signature = twilio_signed(form, f"{PUBLIC_URL}/webhooks/twilio/sms?area=ventas")
    resp = await client.post(
        "/webhooks/twilio/sms?area=ventas", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert resp.status == 200 and len(await cases(services)) == 1


async def test_mms_media_is_fetched_with_the_account_credentials(
    services: Services, client: Client, media: FakeMedia
) -> None:
    photo = b"\xff\xd8\xff\xe0" + b"jpeg bytes " * 100
    url = media.add("ME" + "a" * 32, photo, "image/jpeg")
    elsewhere = "http://127.0.0.2:9/2010-04-01/Accounts/x/Messages/MM1/Media/ME2"
    form = twilio_form(
        "MM" + "5" * 32, "Foto del módem", NumMedia="2",
        MediaUrl0=url, MediaContentType0="image/jpeg",
        MediaUrl1=elsewhere, MediaContentType1="image/png",
    )  # fmt: skip
    resp = await post_twilio(client, form)
    assert resp.status == 200
    assert len(media.authorizations) == 1 and media.authorizations[0]  # only our API's URL
    async with services.db.session() as session:
        from sqlalchemy import select

        [stored] = (await session.scalars(select(Attachment))).all()
    assert (stored.size, stored.content_type) == (len(photo), "image/jpeg")
    assert stored.filename.endswith(".jpg")
    assert services.attachments.path_of(stored.sha256).read_bytes() == photo
    [message] = await messages(services)
    assert message.text.startswith("Foto del módem")
    assert "[MMS file not retrieved: image/png" in message.text


async def test_storage_down_answers_503_so_twilio_retries(
    services: Services, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(_op: object) -> None:
        raise StorageUnavailable("database is down")

    monkeypatch.setattr(services.writes, "submit", down)
    resp = await post_twilio(client, twilio_form("SM" + "6" * 32, "Hola"))
    assert resp.status == 503 and resp.headers["Retry-After"]
    assert webhooks(services, "twilio", "unavailable") == 1
    monkeypatch.undo()
    assert await count(services, Inbound) == 0


async def test_a_number_from_the_web_form_and_from_sms_is_one_customer(
    services: Services, client: Client
) -> None:
    # The form's phone is written as people write it in Buenos Aires; the SMS comes in
    # E.164. Both become +5491155550123 with [sms] default_region = "AR".
    tokens = await form_tokens(client)
    resp = await client.post(
        "/form",
        data={"name": "Ana Pérez", "phone": "011 15-5555-0123", "subject": "Sin conexión",
              "description": "Desde ayer no tengo Internet.", "category": "Problema menor",
              **tokens},
        headers={"Accept": "application/json"},
    )  # fmt: skip
    assert resp.status == 201, await resp.text()
    form_customer = await phone_customer(services)
    assert form_customer is not None
    resp = await post_twilio(client, twilio_form("SM" + "7" * 32, "Sigo sin conexión"))
    assert resp.status == 200
    customers = {c.customer_id for c in await cases(services)}
    assert customers == {form_customer}
