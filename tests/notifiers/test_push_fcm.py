"""FCM HTTP v1 through the dispatcher against a loopback FCM and its OAuth2 token
endpoint, which verifies the service account's signed JWT: delivery with FCM's message
name, the access token fetched once and reused, fetched again after it expires and after
FCM refuses it (401), UNREGISTERED forgetting the technician's channel, Retry-After
honoured, INVALID_ARGUMENT and a refused grant failing for good."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.app import Services
from notifiers.base import Outgoing, TransientError
from notifiers.push_fcm import FcmConfig, FcmNotifier
from tests.notifiers.dispatch_support import running
from tests.notifiers.push_peers import HANG, FcmService, Reply, fcm_error, serving
from tests.notifiers.push_support import (
    add_technician,
    all_sent,
    attempts,
    channels,
    dispatcher_for,
    enqueue_push,
    later_than,
    make_due,
    push_outbox,
    row,
    settled,
    summary,
)

pytestmark = pytest.mark.writer_process


class Clock:
    """A monotonic clock the test moves (the access token's lifetime)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fcm_for(
    service: FcmService, clock: Clock | None = None, *, concurrency: int = 8, timeout: float = 10
) -> FcmNotifier:
    config = FcmConfig(
        service.service_account(), service.base_url, concurrency=concurrency,
        timeout_seconds=timeout,
    )  # fmt: skip
    return FcmNotifier("fcm", config, clock=clock or Clock())


async def test_notices_go_with_one_access_token_until_it_expires(
    services: Services, tmp_path: Path
) -> None:
    outbox = push_outbox(tmp_path)
    clock = Clock()
    async with serving(FcmService()) as fcm:
        fcm.expires_in = 3600
        # Four at once: one token fetch however many sends wait for it.
        first = [await enqueue_push(services, outbox, "fcm", fcm.register()) for _ in range(4)]
        dispatcher = dispatcher_for(services, {"fcm": fcm_for(fcm, clock, concurrency=4)})
        async with running(dispatcher):
            await all_sent(services, *first)
            assert fcm.token_requests == 1
            clock.now += 3600 - 299  # within five minutes of its expiry: fetched anew
            later = await enqueue_push(services, outbox, "fcm", fcm.register())
            dispatcher.poke()
            await all_sent(services, later)
    assert fcm.token_requests == 2
    assert [s.access_token for s in fcm.received] == ["ya29.test-1"] * 4 + ["ya29.test-2"]
    sent = await row(services, first[0])
    assert sent.provider_id and sent.provider_id.startswith("projects/ventanilla-test/messages/")
    assert summary(await attempts(services, first[0])) == [("sent", "200")]
    message = fcm.received[0].message
    assert message["notification"] == {
        "title": "Caso CAS-000123 asignado: atención",
        "body": "Sin conexión desde ayer en la sucursal.",
    }


async def test_a_refused_access_token_is_replaced_once(services: Services, tmp_path: Path) -> None:
    outbox = push_outbox(tmp_path)
    async with serving(FcmService()) as fcm:
        dispatcher = dispatcher_for(services, {"fcm": fcm_for(fcm)})
        async with running(dispatcher):
            warm = await enqueue_push(services, outbox, "fcm", fcm.register())
            await all_sent(services, warm)
            fcm.revoke()  # FCM stops taking the cached token: 401, a new one, sent
            again = await enqueue_push(services, outbox, "fcm", fcm.register())
            dispatcher.poke()
            await all_sent(services, again)
            assert fcm.token_requests == 2
            # A token endpoint whose tokens FCM never takes: refused twice, failed.
            fcm.script("token", Reply(200, {"access_token": "ya29.bogus", "expires_in": 3600}))
            fcm.revoke()
            refused = await enqueue_push(services, outbox, "fcm", fcm.register())
            dispatcher.poke()
            await settled(services, refused)
    assert summary(await attempts(services, again)) == [("sent", "200")]
    failed = await row(services, refused)
    assert failed.status == "failed" and "fresh access token was refused" in (
        failed.status_reason or ""
    )
    assert summary(await attempts(services, refused)) == [("permanent", "401 UNAUTHENTICATED")]


async def test_an_unregistered_token_is_forgotten_and_bad_requests_fail(
    services: Services, tmp_path: Path
) -> None:
    outbox = push_outbox(tmp_path)
    async with serving(FcmService()) as fcm:
        stale = "fcm-uninstalled-app"  # never registered: UNREGISTERED (404)
        invalid = fcm.register()
        not_valid = "The registration token is not valid"
        fcm.script(invalid, Reply(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
                                                 not_valid)))  # fmt: skip
        stale_tech = await add_technician(services, "fcm", stale)
        invalid_tech = await add_technician(services, "fcm", invalid)
        ids = [
            await enqueue_push(services, outbox, "fcm", stale, stale_tech),
            await enqueue_push(services, outbox, "fcm", invalid, invalid_tech),
        ]
        async with running(dispatcher_for(services, {"fcm": fcm_for(fcm)})):
            await settled(services, *ids)
    gone, refused = [await row(services, i) for i in ids]
    assert gone.status == "failed" and "registration token gone" in (gone.status_reason or "")
    assert summary(await attempts(services, gone.id)) == [("permanent", "404 UNREGISTERED")]
    assert await channels(services, stale_tech) == [("email", "tec@example.com")]
    assert refused.status == "failed" and "not valid" in (refused.status_reason or "")
    assert summary(await attempts(services, refused.id)) == [("permanent", "400 INVALID_ARGUMENT")]
    assert [c for c, _ in await channels(services, invalid_tech)] == ["push", "email"]


async def test_quota_and_outages_are_retried_after_what_fcm_asks(
    services: Services, tmp_path: Path
) -> None:
    outbox = push_outbox(tmp_path)
    async with serving(FcmService()) as fcm:
        quota, unavailable, hanging = fcm.register(), fcm.register(), fcm.register()
        fcm.script(quota, Reply(429, fcm_error(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
                                {"Retry-After": "900"}))  # fmt: skip
        fcm.script(unavailable, Reply(503, fcm_error(503, "UNAVAILABLE", "UNAVAILABLE"),
                                      {"Retry-After": "1200"}))  # fmt: skip
        fcm.script(hanging, HANG)
        targets = (quota, unavailable, hanging)
        ids = [await enqueue_push(services, outbox, "fcm", t) for t in targets]
        dispatcher = dispatcher_for(services, {"fcm": fcm_for(fcm, timeout=0.5)})
        async with running(dispatcher):
            await settled(services, *ids)
            rows = [await row(services, i) for i in ids]
            assert [r.status for r in rows] == ["pending"] * 3
            assert later_than(rows[0].next_attempt_at, 800)
            assert later_than(rows[1].next_attempt_at, 1100)
            for row_id in ids:
                await make_due(services, row_id)
            dispatcher.poke()
            await all_sent(services, *ids)
    assert [summary(await attempts(services, i))[0] for i in ids] == [
        ("transient", "429 QUOTA_EXCEEDED"),
        ("transient", "503 UNAVAILABLE"),
        ("transient", "timeout"),
    ]


async def test_a_refused_grant_fails_and_a_token_endpoint_outage_is_retried(
    services: Services, tmp_path: Path
) -> None:
    outbox = push_outbox(tmp_path)
    async with serving(FcmService()) as fcm:
        fcm.script("token", Reply(503, "unavailable", {"Retry-After": "600"}))
        down = await enqueue_push(services, outbox, "fcm", fcm.register())
        async with running(dispatcher_for(services, {"fcm": fcm_for(fcm)})):
            await settled(services, down)
        # The account's key is not the one the token endpoint knows: invalid_grant.
        other = FcmService()
        account = other.service_account(token_uri=fcm.token_uri)
        config = FcmConfig(account, fcm.base_url, project_id="ventanilla-test")
        refused = await enqueue_push(services, outbox, "wrong", fcm.register())
        async with running(dispatcher_for(services, {"wrong": FcmNotifier("wrong", config)})):
            await settled(services, refused)
    waiting = await row(services, down)
    assert waiting.status == "pending" and later_than(waiting.next_attempt_at, 500)
    assert summary(await attempts(services, down)) == [("transient", "503")]
    failed = await row(services, refused)
    assert failed.status == "failed" and "Invalid JWT Signature" in (failed.status_reason or "")
    assert summary(await attempts(services, refused)) == [("permanent", "oauth invalid_grant")]
    assert fcm.received == []


# --- the notifier alone -------------------------------------------------------------------


async def test_a_link_and_a_topic_are_sent_as_fcm_expects() -> None:
    async with serving(FcmService()) as fcm:
        notifier = fcm_for(fcm)
        await notifier.start()
        try:
            link = "https://soporte.example.com/casos/CAS-000001"
            await notifier.send(Outgoing(1, "push", "fcm", "/topics/guardia", "Caso", "Hola",
                                         headers={"url": link}))  # fmt: skip
        finally:
            await notifier.stop()
    [sent] = fcm.received
    assert sent.message["topic"] == "guardia" and "token" not in sent.message
    assert sent.message["data"] == {"url": link}
    assert sent.message["webpush"] == {"fcm_options": {"link": link}}


async def test_an_unreachable_fcm_is_transient() -> None:
    async with serving(FcmService()) as fcm:
        account = fcm.service_account(token_uri="http://127.0.0.1:9/token")
    notifier = FcmNotifier("fcm", FcmConfig(account, "http://127.0.0.1:9", timeout_seconds=2))
    with pytest.raises(TransientError) as info:
        await notifier.send(Outgoing(1, "push", "fcm", "t", "Caso", "Hola"))
    await notifier.stop()
    assert info.value.code == "connect" and "127.0.0.1:9" in str(info.value)
