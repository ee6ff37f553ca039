"""SMS through Vonage, against a loopback fake of its SMS API: the request an
acknowledgement makes, a per-message throttle and refusal inside a 200, an HTTP 429, a
500 and a hang (SQLite writer process, and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from config.app import Services
from config.settings import Settings
from notifiers.base import Outgoing
from notifiers.sms_vonage import VonageConfig, VonageNotifier
from storage.models import utcnow
from tests.conftest import make_settings
from tests.notifiers.dispatch_support import until
from tests.notifiers.sms_fakes import VONAGE_KEY, VONAGE_SECRET, FakeVonage, fake_vonage
from tests.notifiers.sms_helpers import (
    accept_from_phone,
    attempts,
    dispatching,
    make_due,
    rows,
    statuses,
)

pytestmark = pytest.mark.writer_process


@pytest.fixture
async def vonage() -> AsyncIterator[FakeVonage]:
    async with fake_vonage() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, db_url: str, vonage: FakeVonage) -> Settings:
    return make_settings(
        tmp_path,
        db_url,
        VENTANILLA_SMS__VONAGE__ENABLED="true",
        VENTANILLA_SMS__VONAGE__API_KEY=VONAGE_KEY,
        VENTANILLA_SMS__VONAGE__API_SECRET=VONAGE_SECRET,
        VENTANILLA_SMS__VONAGE__FROM_NUMBER="Soporte",
        VENTANILLA_SMS__VONAGE__API_BASE_URL=vonage.url,
        VENTANILLA_SMS__VONAGE__TIMEOUT_SECONDS="0.5",
        VENTANILLA_HTTP__PUBLIC_URL="https://soporte.example.com",
    )


async def test_an_acknowledgement_goes_out_with_vonages_message_id(
    services: Services, vonage: FakeVonage
) -> None:
    await accept_from_phone(services)
    async with dispatching(services):
        await until(statuses(services, "sent"))
    [row] = await rows(services)
    [got] = vonage.received
    assert got.form == {
        "api_key": VONAGE_KEY,
        "api_secret": VONAGE_SECRET,
        "from": "Soporte",
        "to": "5491155550123",  # E.164 without the "+"
        "text": row.body.strip(),
        "type": "unicode",  # "número" has a character GSM-7 does not
        "client-ref": f"ventanilla-{row.id}",
        "callback": "https://soporte.example.com/webhooks/vonage/dlr",
        "status-report-req": "1",
    }
    assert (row.provider, row.provider_id) == ("vonage", vonage.ids[0])
    [attempt] = await attempts(services)
    assert (attempt.outcome, attempt.provider_code) == ("sent", "0")


async def test_a_throttled_message_is_retried_and_a_barred_number_fails(
    services: Services, vonage: FakeVonage
) -> None:
    vonage.answers = ["throttled", "barred"]
    await accept_from_phone(services, "+5491155550123")
    await accept_from_phone(services, "+5491155550124")
    async with dispatching(services, slots=1) as dispatcher:
        await until(statuses(services, "pending", "failed"))
        first, second = await rows(services)
        assert "Throughput Rate Exceeded" in (first.last_error or "")
        assert second.status_reason == "Vonage: status 7: Number barred."
        await make_due(services)
        dispatcher.poke()
        await until(statuses(services, "sent", "failed"))
    outcomes = [(a.outcome, a.provider_code) for a in await attempts(services)]
    assert outcomes == [("transient", "1"), ("permanent", "7"), ("sent", "0")]


async def test_an_http_429_honours_retry_after_and_a_500_or_a_hang_is_retried(
    services: Services, vonage: FakeVonage
) -> None:
    vonage.answers = ["429", "500", "hang"]
    for last in "123":
        await accept_from_phone(services, f"+549115555012{last}")
    async with dispatching(services, slots=1):
        await until(statuses(services, "pending", "pending", "pending"))
    throttled, broken, hung = await rows(services)
    assert throttled.next_attempt_at is not None
    assert throttled.next_attempt_at > utcnow() + timedelta(seconds=800)
    assert broken.last_error == "Vonage: HTTP 500: <html><body>Internal Server Error</body></html>"
    assert "timed out" in (hung.last_error or "")
    assert [a.provider_code for a in await attempts(services)] == ["429", "500", None]


def test_a_gsm_text_is_sent_as_text_and_others_as_unicode() -> None:
    notifier = VonageNotifier(VonageConfig("k", "s", "Soporte"))

    def form(text: str) -> dict[str, str]:
        return notifier.form(Outgoing(7, "sms", "vonage", "+5491155550123", "", text))

    assert "type" not in form("Su caso es CAS-000001. ¿Todo bien? {ok} €\n")
    assert form("Su número de caso es CAS-000001")["type"] == "unicode"
    assert "callback" not in form("hola")  # no receipt URL configured
