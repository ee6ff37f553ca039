"""The Telegram intake by long polling, against the loopback Bot API: each kind of
message becomes a case or a follow-up, with its files in the store; /start greets and
groups are declined through the outbox; the offset confirms an update only after its
commit, so a restart, a crash or the database going away loses nothing and stores
nothing twice."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from config.app import Services
from config.telegram_parts import build_telegram_parts
from intake.message import AcceptResult, InboundMessage
from storage.db import StorageUnavailable
from storage.models import Attachment
from tests.telegram.bot_api import ANA, GROUP, JOHN, ROBOT, FakeBotApi
from tests.telegram.support import (
    cases,
    events,
    eventually,
    identities,
    inbound,
    messages,
    notifications,
    parts_of,
    rows,
    running,
)

# PTB's RetryAfter warns about its own attribute when it is raised (PTB 22.2+).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:telegram")


@pytest.fixture
def telegram_env() -> dict[str, str]:
    return {"VENTANILLA_TELEGRAM__MAX_MESSAGES_PER_MINUTE": "3"}


def drained(api: FakeBotApi) -> bool:
    """Every queued update confirmed (the offset is past them all)."""
    return not api.pending and api.confirmed is not None


async def test_a_text_opens_a_case_acknowledged_in_the_chat(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    first = api.text("Hola, no tengo internet desde ayer")
    async with running(parts_of(services)) as parts:
        await eventually(lambda: drained(api))
        assert parts.poller is not None and parts.poller.ready
        state = parts.poller.state()
    [row] = await inbound(services)
    chat = ANA["id"]
    assert row.external_id == f"tg:{chat}:{first['message']['message_id']}"
    assert row.status == "processed" and json.loads(row.raw) == first  # as Telegram sent it
    [case] = await cases(services)
    assert case.origin_channel == "telegram" and case.title.startswith("Hola, no tengo")
    assert case.contact == str(chat)
    assert {(i.kind, i.value) for i in await identities(services)} == {("telegram", str(chat))}
    [ack] = await notifications(services)
    assert (ack.template, ack.recipient, ack.language) == ("ack_telegram", str(chat), "es")
    assert case.number in ack.body
    assert state["state"] == "running" and state["bot"] == "ventanilla_bot"
    assert state["updates"] == {"stored": 1}
    assert api.confirmed == first["update_id"] + 1
    # getUpdates asks only for what becomes a message.
    assert json.loads(api.forms["getUpdates"][0]["allowed_updates"]) == [
        "message",
        "edited_message",
    ]
    assert api.calls[:2] == ["getMe", "deleteWebhook"]


async def test_photos_documents_voice_notes_and_locations_keep_their_content(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    jpeg = b"\xff\xd8\xff\xe0" + b"foto" * 500
    pdf = b"%PDF-1.4 factura"
    ogg = b"OggS voz"
    api.photo(jpeg, caption="Así quedó el módem")
    api.document(pdf, "factura marzo.pdf", "application/pdf")
    api.voice(ogg)
    api.location(-34.603722, -58.381592)
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    texts = [m.text for m in await messages(services)]
    assert texts[0] == "Así quedó el módem"
    assert "-34.603722, -58.381592" in texts[3] and texts[3].startswith("Ubicación:")
    files = {a.filename: a for a in await rows(services, Attachment)}
    assert set(files) == {"foto-1.jpg", "factura marzo.pdf", "nota-de-voz-3.ogg"}
    assert files["foto-1.jpg"].size == len(jpeg)  # the largest size, not the thumbnail
    assert files["factura marzo.pdf"].content_type == "application/pdf"
    assert files["nota-de-voz-3.ogg"].content_type == "audio/ogg"
    for a in files.values():
        assert services.attachments.path_of(a.sha256).read_bytes() in (jpeg, pdf, ogg)
    # Four quick messages of one customer are one conversation: one case, one ack.
    assert len(await cases(services)) == 1 and len(await notifications(services)) == 1


async def test_a_file_over_the_limit_is_named_in_the_text_not_fetched(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    api.document(b"x" * 100, "video.mp4", "video/mp4", size=30 * 1024 * 1024)
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    [message] = await messages(services)
    assert "video.mp4 (30.0 MB) supera el límite de 10.0 MB" in message.text
    assert api.downloads == [] and "getFile" not in api.calls


async def test_an_edit_is_a_follow_up_on_the_same_case_marked_as_an_edit(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    original = api.text("Mi número de cliente es 1234")
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
        api.edit(original, "Mi número de cliente es 12345")
        await eventually(lambda: drained(api))
    first, edit = await messages(services)
    message_id = original["message"]["message_id"]
    assert first.text == "Mi número de cliente es 1234"  # never rewritten
    assert edit.case_id == first.case_id and edit.text.endswith("12345")
    assert edit.subject == f"Edición del mensaje {message_id}"
    assert edit.external_id.startswith(f"tg:{ANA['id']}:{message_id}:edit:")
    assert len(await notifications(services)) == 1  # a follow-up is not acknowledged again


async def test_start_greets_in_the_user_s_language_once(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    start = api.command("/start", user=JOHN)
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    # Telegram hands the same update over again (as after a crash before the offset was
    # confirmed; a fresh poller starts without one): still one greeting.
    api.pending.append(start)
    async with running(parts_of(services)) as parts:
        await eventually(lambda: drained(api))
        assert parts.poller is not None
        assert parts.poller.state()["updates"] == {"duplicate": 1}
    [greeting] = await notifications(services)
    assert (greeting.template, greeting.language) == ("welcome_telegram", "en")
    assert greeting.recipient == str(JOHN["id"]) and greeting.subject == "Hello, John!"
    assert greeting.case_id is None and await inbound(services) == []


async def test_a_message_delivered_twice_is_stored_once(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    update = api.text("Sin señal")
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    api.pending.append(update)
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    assert len(await inbound(services)) == 1 and len(await messages(services)) == 1


async def test_group_chats_are_declined_once_and_nothing_is_stored(
    services: Services, fake: tuple[FakeBotApi, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = fake
    api.group_text("Hola bot")
    api.group_text("¿Alguien más sin luz?", user=JOHN)
    with caplog.at_level(logging.INFO, logger="intake.telegram_updates"):
        async with running(parts_of(services)):
            await eventually(lambda: drained(api))
    [refusal] = await notifications(services)
    assert refusal.template == "group_declined_telegram"
    assert refusal.recipient == "-1001234567890" and "chat privado" in refusal.body
    assert await inbound(services) == [] and await cases(services) == []
    assert "group chat -1001234567890 declined" in caplog.text


async def test_sharing_one_s_own_contact_links_the_phone_to_the_customer(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    api.contact("5491122334455")  # Telegram sends a user's own number without "+"
    api.contact("1133445566", owner=987654)  # someone else's card: not an identity
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    found = {(i.kind, i.value) for i in await identities(services)}
    assert found == {("telegram", str(ANA["id"])), ("phone", "+5491122334455")}
    texts = [m.text for m in await messages(services)]
    assert texts[0] == "Contacto compartido: Ana 5491122334455"


async def test_loops_are_recorded_but_not_acknowledged(
    services: Services, fake: tuple[FakeBotApi, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = fake
    api.text("Respuesta automática: estoy de vacaciones", user=ROBOT)
    with caplog.at_level(logging.INFO, logger="intake.telegram_loops"):
        async with running(parts_of(services)):
            await eventually(lambda: drained(api))
    [case] = await cases(services)
    [suppressed] = await events(services, "ack_suppressed")
    assert suppressed.case_id == case.id
    assert suppressed.detail["reason"] == "sent by a bot (loop protection)"
    assert await notifications(services) == []
    assert "recorded without acknowledgement: sent by a bot" in caplog.text


async def test_restart_while_updates_wait_loses_none_and_stores_none_twice(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    api.max_batch, api.serve_delay = 5, 0.2
    users = [{**ANA, "id": 6_000_000 + i, "first_name": f"Cliente {i}"} for i in range(10)]
    for n in range(30):
        api.text(f"Mensaje {n}", user=users[n % 10])
    first, last = api.pending[0]["update_id"], api.pending[-1]["update_id"]
    # A graceful stop after the first batches …
    async with running(parts_of(services)):
        await eventually(lambda: (api.confirmed or 0) >= first + 10)
    assert api.pending, "updates are still waiting at the restart"
    # … then a crash: the task is cancelled mid-way, nothing confirmed at stop.
    crashed = parts_of(services)
    task = asyncio.create_task(crashed.run())
    calls = len(api.offsets)
    await eventually(lambda: len(api.offsets) >= calls + 2)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert api.pending, "updates are still waiting after the crash"
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    stored = await inbound(services)
    assert len(stored) == 30 and len({r.external_id for r in stored}) == 30
    assert api.confirmed == last + 1
    assert sorted(m.text for m in await messages(services)) == sorted(
        f"Mensaje {n}" for n in range(30)
    )


async def test_storage_down_keeps_the_offset_until_it_is_back(
    services: Services, fake: tuple[FakeBotApi, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, _ = fake
    update = api.text("¿Me pueden llamar?")
    real = services.writer.accept
    down = True

    async def accept(msg: InboundMessage) -> AcceptResult:
        if down:
            raise StorageUnavailable("database is locked")
        return await real(msg)

    monkeypatch.setattr(services.writer, "accept", accept)
    async with running(parts_of(services)) as parts:
        await eventually(lambda: len(api.offsets) >= 3)
        assert parts.poller is not None
        assert all(o is None or o <= update["update_id"] for o in api.offsets)
        assert api.pending and await inbound(services) == []
        assert parts.poller.state()["state"] == "retrying"
        down = False
        await eventually(lambda: drained(api))
    assert len(await inbound(services)) == 1


async def test_flood_control_waits_as_asked_and_a_rejected_token_stops_the_part(
    services: Services, fake: tuple[FakeBotApi, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = fake
    api.failures["getUpdates"] = ["flood_1"]
    api.text("Hola")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    assert loop.time() - started >= 1.0  # retry_after 1
    api.token = "0:other"  # the token is revoked
    with caplog.at_level(logging.ERROR):
        async with running(parts_of(services)) as parts:
            assert parts.poller is not None
            await eventually(lambda: parts.poller is not None and parts.poller.status.state
                             == "stopped")  # fmt: skip
            await asyncio.sleep(0.3)  # still running, idle: the daemon goes on
            assert not parts.poller.ready
    rejected = [r for r in caplog.records if "rejected the bot token" in r.getMessage()]
    assert len(rejected) == 1 and rejected[0].levelno == logging.ERROR


async def test_a_file_that_cannot_be_fetched_now_holds_the_update_until_it_can(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    api.failures["getFile"] = ["error_500", "flood_1"]
    update = api.document(b"%PDF contrato", "contrato.pdf", "application/pdf")
    async with running(parts_of(services)):
        await eventually(lambda: drained(api))
    # Asked for again twice (the offset stays at it), then confirmed.
    uid = update["update_id"]
    assert api.offsets[:3] == [None, uid, uid] and api.confirmed == uid + 1
    [message] = await messages(services)
    [stored] = await rows(services, Attachment)
    assert stored.filename == "contrato.pdf" and stored.message_id == message.id


async def test_groups_when_allowed_are_stored_and_answered_in_the_group(
    services: Services, fake: tuple[FakeBotApi, str]
) -> None:
    api, _ = fake
    api.group_text("Hola, se cortó la luz en la cuadra")
    allowed = services.settings.model_copy(
        update={"telegram": services.settings.telegram.model_copy(update={"allow_groups": True})}
    )
    parts = build_telegram_parts(allowed, services.writer, services.attachments, services.db)
    async with running(parts):
        await eventually(lambda: drained(api))
    [case] = await cases(services)
    [ack] = await notifications(services)
    assert (ack.template, ack.recipient) == ("ack_telegram", str(GROUP["id"]))
    found = {(i.kind, i.value) for i in await identities(services)}
    assert found == {("telegram", str(ANA["id"]))}  # the customer is who wrote
    assert case.number in ack.body


async def test_an_unexpected_error_does_not_stop_polling(
    services: Services, fake: tuple[FakeBotApi, str], caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = fake
    update = api.text("¿Siguen ahí?")
    parts = parts_of(services)
    assert parts.poller is not None
    updates = parts.poller.updates
    real = updates.process_batch
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("a bug in the batch")
        return await real(*args, **kwargs)

    updates.process_batch = flaky  # type: ignore[method-assign]
    with caplog.at_level(logging.ERROR, logger="intake.telegram_poll"):
        async with running(parts):
            await eventually(lambda: drained(api))
    assert "polling failed; retrying" in caplog.text
    assert api.offsets[:2] == [None, None]  # not confirmed by the failed round
    assert api.confirmed == update["update_id"] + 1 and len(await inbound(services)) == 1
