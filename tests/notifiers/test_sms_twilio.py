"""SMS through Twilio, against a loopback fake of its Messages API: what Twilio receives
for an acknowledgement, and what a 429, a 500, a hang and its refusals do to the outbox;
opted-out and invalid numbers never reach it (SQLite writer process, and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.app import Services
from config.settings import Settings
from storage.models import OptOut, utcnow
from tests.conftest import make_settings
from tests.notifiers.dispatch_support import until
from tests.notifiers.sms_fakes import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, fake_twilio
from tests.notifiers.sms_helpers import (
    PHONE,
    accept_from_phone,
    attempts,
    dispatching,
    make_due,
    rows,
    statuses,
)

pytestmark = pytest.mark.writer_process


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, db_url: str, twilio: FakeTwilio) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        VENTANILLA_SMS__TWILIO__ENABLED="true",
        VENTANILLA_SMS__TWILIO__ACCOUNT_SID=TWILIO_SID,
        VENTANILLA_SMS__TWILIO__AUTH_TOKEN=TWILIO_TOKEN,
        VENTANILLA_SMS__TWILIO__FROM_NUMBER='"+15005550006"',
        VENTANILLA_SMS__TWILIO__API_BASE_URL=twilio.url,
        VENTANILLA_SMS__TWILIO__TIMEOUT_SECONDS="0.5",
        VENTANILLA_HTTP__PUBLIC_URL="https://soporte.example.com/",
    )


async def test_an_acknowledgement_goes_out_with_twilios_sid(
    services: Services, twilio: FakeTwilio
) -> None:
    # Written the local way (Buenos Aires mobile): Twilio gets it in E.164.
    result = await accept_from_phone(services, "011 15-5555-0123")
    async with dispatching(services):
        await until(statuses(services, "sent"))
    [row] = await rows(services)
    [got] = twilio.received
    assert got.form == {
        "To": PHONE,
        "From": "+15005550006",
        "Body": row.body.strip(),
        "StatusCallback": (
            f"https://soporte.example.com/webhooks/twilio/status?notification={row.id}"
        ),
    }
    assert result.case_number and result.case_number in got.form["Body"]
    # The title's "ó" is outside GSM-7, so the text goes as UCS-2: 70 characters a segment.
    assert 70 < len(row.body.strip()) <= 134
    assert (row.provider, row.provider_id, row.segments) == ("twilio", twilio.sids[0], 2)
    [attempt] = await attempts(services)
    assert (attempt.outcome, attempt.provider_code) == ("sent", "201")
    assert attempt.provider_message_id == twilio.sids[0]


async def test_a_429_is_retried_no_sooner_than_retry_after(
    services: Services, twilio: FakeTwilio
) -> None:
    twilio.answers = ["429"]
    await accept_from_phone(services)
    async with dispatching(services):
        await until(statuses(services, "pending"))
    [row] = await rows(services)
    # The policy's backoff is at most 60 s here: 900 s comes from Retry-After.
    assert row.next_attempt_at is not None
    assert row.next_attempt_at > utcnow() + timedelta(seconds=800)
    [attempt] = await attempts(services)
    assert (attempt.outcome, attempt.provider_code) == ("transient", "20429")


async def test_a_500_and_a_timeout_are_retried_and_then_sent(
    services: Services, twilio: FakeTwilio
) -> None:
    twilio.answers = ["500", "hang"]
    await accept_from_phone(services, "+5491155550123")
    await accept_from_phone(services, "+5491155550124")
    async with dispatching(services) as dispatcher:
        await until(statuses(services, "pending", "pending"))
        errors = sorted(a.error or "" for a in await attempts(services))
        assert "HTTP 500 20500: Internal Server Error" in errors[0]
        assert "timed out" in errors[1]
        await make_due(services)
        dispatcher.poke()
        await until(statuses(services, "sent", "sent"))
    assert [a.outcome for a in await attempts(services)].count("sent") == 2
    assert {r.provider_id for r in await rows(services)} == set(twilio.sids)


async def test_refusals_fail_with_twilios_code_and_message(
    services: Services, twilio: FakeTwilio
) -> None:
    twilio.answers = ["invalid", "unsubscribed"]
    await accept_from_phone(services, "+5491155550123")
    await accept_from_phone(services, "+5491155550124")
    async with dispatching(services, slots=1):
        await until(statuses(services, "failed", "failed"))
    first, second = await rows(services)
    assert first.status_reason == (
        "Twilio: HTTP 400 21211: Invalid 'To' Phone Number: +5491155550123"
    )
    assert second.status_reason == (
        "Twilio: HTTP 400 21610: Attempt to send to unsubscribed recipient"
    )
    assert [(a.outcome, a.provider_code) for a in await attempts(services)] == [
        ("permanent", "21211"),
        ("permanent", "21610"),
    ]


async def test_an_opted_out_number_is_suppressed(services: Services, twilio: FakeTwilio) -> None:
    async with services.db.session() as session, session.begin():
        session.add(OptOut(channel="sms", address=PHONE, source="STOP"))
    await accept_from_phone(services)
    async with dispatching(services):
        await until(statuses(services, "suppressed"))
    [row] = await rows(services)
    assert row.status_reason == f"{PHONE} opted out of sms messages"
    assert twilio.received == []


async def test_a_number_that_is_not_one_fails_without_a_request(
    services: Services, twilio: FakeTwilio
) -> None:
    await accept_from_phone(services, "12")
    async with dispatching(services):
        await until(statuses(services, "failed"))
    [row] = await rows(services)
    assert row.status_reason == "not a valid phone number"
    assert twilio.received == []
