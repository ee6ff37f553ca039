"""What SMS providers report after a send: Twilio's status callbacks and Vonage's
delivery receipts over HTTP, verified by signature, applied through the write path
(SQLite writer process, and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient

from config.app import Services
from config.settings import Settings
from notifiers.sms_signatures import twilio_signature, vonage_signature
from storage.db import StorageUnavailable
from tests.conftest import make_settings
from tests.notifiers.dispatch_support import until
from tests.notifiers.sms_fakes import (
    TWILIO_SID,
    TWILIO_TOKEN,
    VONAGE_KEY,
    VONAGE_SECRET,
    FakeTwilio,
    fake_twilio,
)
from tests.notifiers.sms_helpers import (
    PHONE,
    accept_from_phone,
    attempts,
    dispatching,
    rows,
    sent_sms,
    statuses,
)

pytestmark = pytest.mark.writer_process

Client = TestClient[Any, Any]
PUBLIC_URL = "https://soporte.example.com"
TWILIO_STATUS = f"{PUBLIC_URL}/webhooks/twilio/status"
VONAGE_SIGNATURE_SECRET = "vonage-signature-secret"


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, db_url: str, twilio: FakeTwilio) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        VENTANILLA_HTTP__PUBLIC_URL=PUBLIC_URL,
        VENTANILLA_SMS__TWILIO__ENABLED="true",
        VENTANILLA_SMS__TWILIO__ACCOUNT_SID=TWILIO_SID,
        VENTANILLA_SMS__TWILIO__AUTH_TOKEN=TWILIO_TOKEN,
        VENTANILLA_SMS__TWILIO__FROM_NUMBER='"+15005550006"',
        VENTANILLA_SMS__TWILIO__API_BASE_URL=twilio.url,
        VENTANILLA_SMS__VONAGE__ENABLED="true",
        VENTANILLA_SMS__VONAGE__API_KEY=VONAGE_KEY,
        VENTANILLA_SMS__VONAGE__API_SECRET=VONAGE_SECRET,
        VENTANILLA_SMS__VONAGE__FROM_NUMBER="Soporte",
        VENTANILLA_SMS__VONAGE__SIGNATURE_SECRET=VONAGE_SIGNATURE_SECRET,
        VENTANILLA_SMS__VONAGE__SIGNATURE_METHOD="sha256",
    )


# --- Twilio ----------------------------------------------------------------------------


def twilio_status(sid: str, status: str, error: str | None = None) -> dict[str, str]:
    """A status callback's form, as Twilio posts it."""
    form = {
        "SmsSid": sid, "SmsStatus": status, "MessageStatus": status, "To": PHONE,
        "MessageSid": sid, "AccountSid": TWILIO_SID, "From": "+15005550006",
        "ApiVersion": "2010-04-01",
    }  # fmt: skip
    if error:
        form["ErrorCode"] = error
    return form


async def post_twilio(
    client: Client, form: dict[str, str], query: str = "", signed_url: str | None = None
) -> int:
    """POST ``form`` signed over ``signed_url`` (by default the URL Twilio was given)."""
    url = signed_url or TWILIO_STATUS + (f"?{query}" if query else "")
    signature = twilio_signature(url, form.items(), TWILIO_TOKEN)
    path = "/webhooks/twilio/status" + (f"?{query}" if query else "")
    resp = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    return resp.status


async def test_a_delivered_callback_to_the_url_twilio_was_given_is_recorded(
    services: Services, client: Client, twilio: FakeTwilio
) -> None:
    await accept_from_phone(services)
    async with dispatching(services):
        await until(statuses(services, "sent"))
    [sid] = twilio.sids
    callback = urlsplit(twilio.received[0].form["StatusCallback"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == TWILIO_STATUS
    # An intermediate status is acknowledged and not recorded; the final one is.
    assert await post_twilio(client, twilio_status(sid, "sent"), callback.query) == 204
    assert await post_twilio(client, twilio_status(sid, "delivered"), callback.query) == 204
    [row] = await rows(services)
    assert row.status == "sent"
    sent, receipt = await attempts(services)
    assert (receipt.outcome, receipt.provider_code, receipt.provider_message_id) == (
        "receipt", "delivered", sid,
    )  # fmt: skip
    assert receipt.error is None and sent.outcome == "sent"


async def test_an_undelivered_callback_fails_the_row_with_twilios_error_once(
    services: Services, client: Client
) -> None:
    row_id = await sent_sms(services, "twilio", "SM1")
    form = twilio_status("SM1", "undelivered", "30003")
    for _ in range(2):  # Twilio may call twice: recorded once
        assert await post_twilio(client, form, f"notification={row_id}") == 204
    [row] = await rows(services)
    assert row.status == "failed"
    assert row.status_reason == "twilio reports the message undelivered: 30003"
    [receipt] = await attempts(services)
    assert (receipt.outcome, receipt.provider_code) == ("receipt", "undelivered")
    assert receipt.error == row.status_reason


async def test_the_row_is_found_by_twilios_sid_when_the_url_does_not_name_it(
    services: Services, client: Client
) -> None:
    await sent_sms(services, "twilio", "SM2")
    assert await post_twilio(client, twilio_status("SM2", "failed", "30008")) == 204
    [row] = await rows(services)
    assert row.status == "failed" and "30008" in (row.status_reason or "")


async def test_callbacks_without_a_good_signature_are_refused_and_change_nothing(
    services: Services, client: Client
) -> None:
    row_id = await sent_sms(services, "twilio", "SM3")
    path = f"/webhooks/twilio/status?notification={row_id}"
    form = twilio_status("SM3", "undelivered", "30003")
    url = f"{TWILIO_STATUS}?notification={row_id}"
    good = twilio_signature(url, form.items(), TWILIO_TOKEN)
    attempts_to_forge = [
        {},  # no signature
        {"X-Twilio-Signature": twilio_signature(url, form.items(), "another-token")},
        {"X-Twilio-Signature": good[:-2] + "AA"},
    ]
    for headers in attempts_to_forge:
        resp = await client.post(path, data=form, headers=headers)
        assert resp.status == 403
        assert (await resp.json())["error"]["code"] == "forbidden"
    # Signed for other parameters, for another row, or over the URL we happen to see.
    delivered = twilio_signature(url, twilio_status("SM3", "delivered").items(), TWILIO_TOKEN)
    resp = await client.post(path, data=form, headers={"X-Twilio-Signature": delivered})
    assert resp.status == 403
    assert await post_twilio(client, form, "notification=999", signed_url=url) == 403
    seen = str(client.make_url(path))
    assert await post_twilio(client, form, f"notification={row_id}", signed_url=seen) == 403
    [row] = await rows(services)
    assert row.status == "sent" and await attempts(services) == []


async def test_a_receipt_about_an_earlier_send_does_not_fail_the_row(
    services: Services, client: Client
) -> None:
    # The first send timed out on our side but went; the retry is the one on the row.
    row_id = await sent_sms(services, "twilio", "SM-retry")
    form = twilio_status("SM-first", "undelivered", "30003")
    assert await post_twilio(client, form, f"notification={row_id}") == 204
    [row] = await rows(services)
    assert row.status == "sent"
    [receipt] = await attempts(services)
    assert (receipt.provider_message_id, receipt.provider_code) == ("SM-first", "undelivered")


async def test_a_receipt_before_the_send_is_recorded_is_refused_for_now(
    services: Services, client: Client
) -> None:
    row_id = await sent_sms(services, "twilio", None, status="sending", sent_at=None)
    form = twilio_status("SM4", "failed", "30005")
    resp_status = await post_twilio(client, form, f"notification={row_id}")
    assert resp_status == 503
    [row] = await rows(services)
    assert row.status == "sending" and await attempts(services) == []


async def test_storage_down_answers_503_with_retry_after(
    services: Services, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def down(_op: object) -> None:
        raise StorageUnavailable("database is down")

    monkeypatch.setattr(services.writes, "submit", down)
    form = twilio_status("SM5", "delivered")
    signature = twilio_signature(TWILIO_STATUS, form.items(), TWILIO_TOKEN)
    resp = await client.post(
        "/webhooks/twilio/status", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert resp.status == 503 and "Retry-After" in resp.headers


async def test_a_technicians_undelivered_notice_goes_on_to_their_next_channel(
    services: Services, client: Client
) -> None:
    context = {"case_number": "CAS-000042", "title": "Sin conexión", "customer_name": "Ana",
               "category": ""}  # fmt: skip
    row_id = await sent_sms(
        services, "twilio", "SM6", audience="technician", context=context,
        fallback=[{"channel": "email", "address": "tecnica@example.com"}],
    )  # fmt: skip
    form = twilio_status("SM6", "undelivered", "30006")
    assert await post_twilio(client, form, f"notification={row_id}") == 204
    sms, email = await rows(services, every_channel=True)
    assert sms.status == "failed"
    assert (email.channel, email.recipient, email.template, email.status) == (
        "email", "tecnica@example.com", "ack_email", "pending",
    )  # fmt: skip
    assert "CAS-000042" in email.body


# --- Vonage ----------------------------------------------------------------------------


def vonage_receipt(message_id: str, status: str, row_id: int, err: str = "0") -> dict[str, str]:
    """A delivery receipt's fields, as Vonage sends them, signed."""
    fields = {
        "msisdn": PHONE.lstrip("+"), "to": "Soporte", "network-code": "72234",
        "messageId": message_id, "price": "0.03330000", "status": status,
        "scts": "2001011400", "err-code": err, "api-key": VONAGE_KEY,
        "client-ref": f"ventanilla-{row_id}", "message-timestamp": "2020-01-01 14:00:00",
        "timestamp": "1577887200", "nonce": "ec11dd3e-1e7f-4db5-9467-82b02cd223b9",
    }  # fmt: skip
    fields["sig"] = vonage_signature(fields, VONAGE_SIGNATURE_SECRET, "sha256")
    return fields


async def test_vonage_receipts_by_get_and_json_post(services: Services, client: Client) -> None:
    row_id = await sent_sms(services, "vonage", "0B00000127FDBC63")
    delivered = vonage_receipt("0B00000127FDBC63", "delivered", row_id)
    resp = await client.get("/webhooks/vonage/dlr", params=delivered)
    assert resp.status == 204
    [row] = await rows(services)
    assert row.status == "sent"
    # The second part of the text (its own id) did not arrive: the message failed.
    failed = vonage_receipt("0B00000127FDBC64", "failed", row_id, err="6")
    resp = await client.post("/webhooks/vonage/dlr", json=failed)
    assert resp.status == 204
    [row] = await rows(services)
    assert row.status == "failed"
    assert row.status_reason == "vonage reports the message failed: err-code 6"
    codes = [(a.provider_message_id, a.provider_code) for a in await attempts(services)]
    assert codes == [("0B00000127FDBC63", "delivered"), ("0B00000127FDBC64", "failed")]


async def test_vonage_receipts_without_a_good_sig_are_refused(
    services: Services, client: Client
) -> None:
    row_id = await sent_sms(services, "vonage", "0B00000127FDBC65")
    good = vonage_receipt("0B00000127FDBC65", "failed", row_id, err="6")
    unsigned = {k: v for k, v in good.items() if k != "sig"}
    tampered = {**good, "status": "rejected"}
    for fields in (unsigned, tampered, {**good, "sig": "0" * 64}):
        resp = await client.post("/webhooks/vonage/dlr", data=fields)
        assert resp.status == 403
    [row] = await rows(services)
    assert row.status == "sent" and await attempts(services) == []


async def test_unknown_messages_and_intermediate_statuses_change_nothing(
    services: Services, client: Client
) -> None:
    row_id = await sent_sms(services, "vonage", "0B00000127FDBC66")
    accepted = vonage_receipt("0B00000127FDBC66", "accepted", row_id)
    stranger = vonage_receipt("0B00000127FDBC99", "failed", row_id + 100)
    for fields in (accepted, stranger):
        resp = await client.get("/webhooks/vonage/dlr", params=fields)
        assert resp.status == 204
    assert await post_twilio(client, twilio_status("SM-unknown", "failed", "30003")) == 204
    [row] = await rows(services)
    assert row.status == "sent" and await attempts(services) == []
