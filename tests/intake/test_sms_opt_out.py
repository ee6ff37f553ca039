"""STOP / BAJA / START by SMS: the opt-out is set and cleared through the write path, the
dispatcher holds back what is queued to the number meanwhile (the row suppressed), each
change is confirmed once in the keyword's language, keyword messages open no case; and
loop protection: a flood from one number and an echo of our own text are recorded but not
acknowledged, with the reason on the case."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from config.app import Services
from config.settings import Settings
from intake.sms_keywords import keyword_of
from storage.models import Case, CaseEvent, Status
from tests.intake.sms_support import (
    CUSTOMER,
    Client,
    cases,
    inbound,
    opted_out,
    post_twilio,
    sms_rows,
    sms_settings,
    twilio_form,
    webhooks,
)
from tests.notifiers.dispatch_support import until
from tests.notifiers.sms_fakes import FakeTwilio, fake_twilio
from tests.notifiers.sms_helpers import dispatching, sent_sms


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    async with fake_twilio() as fake:
        yield fake


@pytest.fixture
def confirm() -> str:
    return "true"


@pytest.fixture
def settings(tmp_path: Path, db_url: str, twilio: FakeTwilio, confirm: str) -> Settings:
    return sms_settings(
        tmp_path,
        db_url,
        twilio_api=twilio.url,
        VENTANILLA_SMS__MAX_MESSAGES_PER_MINUTE="3",
        VENTANILLA_SMS__CONFIRM_OPT_OUT=confirm,
    )


async def suppressed_acks(services: Services) -> list[str]:
    async with services.db.session() as session:
        found = await session.scalars(
            select(CaseEvent.detail).where(CaseEvent.kind == "ack_suppressed")
        )
        return [detail["reason"] for detail in found.all()]


def sid(n: int) -> str:
    return f"SM{n:032d}"


def test_keywords_are_whole_messages_case_accent_and_punctuation_aside() -> None:
    for text, word, out, lang in [
        ("STOP", "STOP", True, "en"), (" stop ", "STOP", True, "en"), ("Baja.", "BAJA", True, "es"),
        ("¡ALTO!", "ALTO", True, "es"), ("Cancelar", "CANCELAR", True, "es"),
        ("unsubscribe", "UNSUBSCRIBE", True, "en"), ("Álta", "ALTA", False, "es"),
        ("start", "START", False, "en"), ("UNSTOP", "UNSTOP", False, "en"),
    ]:  # fmt: skip
        keyword = keyword_of(text)
        assert keyword is not None, text
        assert (keyword.word, keyword.opt_out, keyword.language) == (word, out, lang)
    for text in ("no puedo dar de baja el servicio", "stop it please", "", "altas"):
        assert keyword_of(text) is None


async def test_stop_baja_start_round_trip_with_the_dispatcher_honouring_it(
    services: Services, client: Client, twilio: FakeTwilio
) -> None:
    # A message first: its acknowledgement is queued but not sent yet.
    assert (await post_twilio(client, twilio_form(sid(1), "Sin conexión"))).status == 200
    [ack] = await sms_rows(services)
    assert ack.template == "ack_sms" and ack.status == "pending"

    assert (await post_twilio(client, twilio_form(sid(2), "STOP"))).status == 200
    assert await opted_out(services) == [CUSTOMER]
    # The same message again, and STOP again: nothing new, no second confirmation.
    assert (await post_twilio(client, twilio_form(sid(2), "STOP"))).status == 200
    assert (await post_twilio(client, twilio_form(sid(3), "Baja"))).status == 200
    rows = await sms_rows(services)
    assert [(r.template, r.language) for r in rows] == [("ack_sms", "es"), ("optout_sms", "en")]
    assert len(await cases(services)) == 1  # keywords open nothing
    keyword_rows = [r for r in await inbound(services) if r.external_id in (sid(2), sid(3))]
    assert [r.case_id for r in keyword_rows] == [None, None]
    assert webhooks(services, "twilio", "opt_out") == 2
    assert webhooks(services, "twilio", "duplicate") == 1

    async with dispatching(services):
        await until(lambda: _settled(services))
    ack, confirmation = await sms_rows(services)
    assert ack.status == "suppressed" and "opted out" in (ack.status_reason or "")
    assert confirmation.status == "sent"  # the one message an opted-out number gets
    assert [r.form["Body"] for r in twilio.received] == [confirmation.body.strip()]

    assert (await post_twilio(client, twilio_form(sid(4), "ALTA"))).status == 200
    assert await opted_out(services) == []
    assert (await post_twilio(client, twilio_form(sid(5), "Otra consulta, CAS-999"))).status == 200
    async with dispatching(services):
        await until(lambda: _settled(services))
    rows = await sms_rows(services)
    assert [(r.template, r.language, r.status) for r in rows[2:]] == [
        ("optin_sms", "es", "sent"),
    ]
    assert "BAJA" in rows[2].body
    assert webhooks(services, "twilio", "opt_in") == 1


async def _settled(services: Services) -> bool:
    return all(r.status in ("sent", "suppressed") for r in await sms_rows(services))


@pytest.mark.parametrize("confirm", ["false"])
async def test_confirmations_can_be_turned_off(services: Services, client: Client) -> None:
    # For Twilio long codes that answer STOP themselves (Advanced Opt-Out).
    assert (await post_twilio(client, twilio_form(sid(50), "STOP"))).status == 200
    assert await opted_out(services) == [CUSTOMER]
    assert await sms_rows(services) == []


async def test_a_flood_from_one_number_is_recorded_but_not_acknowledged(
    services: Services, client: Client
) -> None:
    # Each message opens a case of its own (the last one is closed each time), as an
    # automatic sender's messages would: past 3 a minute they are not acknowledged.
    for n in range(5):
        await close_every_case(services)
        form = twilio_form(sid(100 + n), f"Mensaje automático {n}")
        assert (await post_twilio(client, form)).status == 200
    assert len(await inbound(services)) == 5 and len(await cases(services)) == 5
    assert [r.template for r in await sms_rows(services)] == ["ack_sms"] * 3
    flood = f"more than 3 SMS a minute from {CUSTOMER} (loop protection)"
    assert await suppressed_acks(services) == [flood, flood]
    # Another number is not held back by this one.
    other = twilio_form(sid(200), "Consulta", sender="+5491155550999")
    assert (await post_twilio(client, other)).status == 200
    assert len(await sms_rows(services)) == 4


async def close_every_case(services: Services) -> None:
    async with services.db.session() as session, session.begin():
        closed = await session.scalar(select(Status.id).where(Status.kind == "closed").limit(1))
        await session.execute(update(Case).values(status_id=closed))


async def test_an_echo_of_our_own_text_is_not_acknowledged(
    services: Services, client: Client
) -> None:
    # We texted the number (an agent's reply, say); its autoresponder sends it back when
    # no case of theirs is open, which opens one: recorded, not acknowledged.
    await sent_sms(services, "twilio", "SM-ours", body="Por favor reinicie el módem.\n")
    echo = twilio_form(sid(301), "  POR FAVOR reinicie   el módem. ")
    assert (await post_twilio(client, echo)).status == 200
    assert len(await inbound(services)) == 1 and len(await cases(services)) == 1
    assert await suppressed_acks(services) == [
        f"the text repeats an SMS we sent to {CUSTOMER} (autoresponder loop guard)"
    ]
    assert [r.template for r in await sms_rows(services)] == ["ack_sms"]  # ours, not new
    # Another text from the same number is acknowledged as usual.
    await close_every_case(services)
    assert (await post_twilio(client, twilio_form(sid(302), "Sigo sin señal"))).status == 200
    assert [r.template for r in await sms_rows(services)] == ["ack_sms", "ack_sms"]
