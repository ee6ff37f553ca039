"""Web Push through the dispatcher against a loopback push service that checks VAPID and
the aes128gcm body and decrypts it: delivery with the push message id, Retry-After
honoured, hangs and 5xx retried, gone subscriptions failing their row and forgetting the
technician's channel, other refusals failing without forgetting it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from config.app import Services
from notifiers.base import Outgoing, PermanentError
from notifiers.push_credentials import b64url, vapid_public_key
from notifiers.push_http import PushContent
from notifiers.push_webpush import (
    MAX_PLAINTEXT,
    VapidSigner,
    WebPushConfig,
    WebPushNotifier,
    fitted_payload,
)
from tests.notifiers.dispatch_support import running
from tests.notifiers.push_peers import HANG, Reply, WebPushService, serving
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


def vapid_key() -> tuple[str, str]:
    """A fresh VAPID key: its PEM and the public key browsers subscribe with."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, vapid_public_key(key)


def notifier(
    pem: str, *, ttl_seconds: int = 86_400, timeout_seconds: float = 10
) -> WebPushNotifier:
    config = WebPushConfig(pem, "mailto:soporte@example.com", ttl_seconds, 8, timeout_seconds)
    return WebPushNotifier("web", config)


async def test_a_notice_arrives_encrypted_and_signed_with_its_message_id(
    services: Services, tmp_path: Path
) -> None:
    pem, public = vapid_key()
    outbox = push_outbox(tmp_path)
    async with serving(WebPushService(public)) as service:
        ids = []
        for _ in range(2):
            _, subscription = service.subscribe()
            tech = await add_technician(services, "web", subscription)
            ids.append(await enqueue_push(services, outbox, "web", subscription, tech))
        async with running(dispatcher_for(services, {"web": notifier(pem, ttl_seconds=600)})):
            await settled(services, *ids)
    first = await row(services, ids[0])
    assert first.status == "sent" and first.provider_id and first.provider_id.startswith("msg-")
    assert summary(await attempts(services, ids[0])) == [("sent", "201")]
    pushed = service.received[0]
    # Decrypted by the push service's peer with the subscription's private key.
    assert pushed.payload == {
        "title": "Caso CAS-000123 asignado: atención",
        "body": "Sin conexión desde ayer en la sucursal.",
    }
    assert pushed.headers["TTL"] == "600" and pushed.headers["Content-Encoding"] == "aes128gcm"
    assert pushed.record_size == 4096
    # One VAPID token per push service, signed once and reused.
    assert len(service.vapid_tokens) == 2 and len(set(service.vapid_tokens)) == 1


async def test_a_gone_subscription_fails_and_is_forgotten_other_refusals_only_fail(
    services: Services, tmp_path: Path
) -> None:
    pem, public = vapid_key()
    outbox = push_outbox(tmp_path)
    async with serving(WebPushService(public)) as service:
        unsubscribed_id, unsubscribed = service.subscribe()
        del service.subscriptions[unsubscribed_id]  # the browser unsubscribed: 410
        expired_id, expired = service.subscribe()
        service.script(expired_id, Reply(404, "expired"))
        refused_id, refused = service.subscribe()
        service.script(refused_id, Reply(400, "bad request"))
        techs = [await add_technician(services, "web", s) for s in (unsubscribed, expired, refused)]
        ids = [
            await enqueue_push(services, outbox, "web", s, t)
            for s, t in zip((unsubscribed, expired, refused), techs, strict=True)
        ]
        # A second service that knows another application server key: 403 (RFC 8292 §4.2).
        _, other_public = vapid_key()
        async with serving(WebPushService(other_public)) as other:
            _, foreign = other.subscribe()
            foreign_tech = await add_technician(services, "web", foreign)
            ids.append(await enqueue_push(services, outbox, "web", foreign, foreign_tech))
            async with running(dispatcher_for(services, {"web": notifier(pem)})):
                await settled(services, *ids)
    gone, expired_row, refused_row, foreign_row = [await row(services, i) for i in ids]
    for found, code in ((gone, "410"), (expired_row, "404")):
        assert found.status == "failed" and "subscription gone" in (found.status_reason or "")
        assert summary(await attempts(services, found.id)) == [("permanent", code)]
    for tech in techs[:2]:
        assert await channels(services, tech) == [("email", "tec@example.com")]
    assert refused_row.status == "failed" and "400" in (refused_row.status_reason or "")
    assert foreign_row.status == "failed" and "VAPID" in (foreign_row.status_reason or "")
    assert [c for c, _ in await channels(services, techs[2])] == ["push", "email"]
    assert [c for c, _ in await channels(services, foreign_tech)] == ["push", "email"]


async def test_busy_slow_and_failing_services_are_retried_as_they_ask(
    services: Services, tmp_path: Path
) -> None:
    pem, public = vapid_key()
    outbox = push_outbox(tmp_path)
    in_20_minutes = format_datetime(datetime.now(UTC) + timedelta(minutes=20), usegmt=True)
    async with serving(WebPushService(public)) as service:
        subs = [service.subscribe() for _ in range(4)]
        busy, unavailable, hanging, failing = (sub_id for sub_id, _ in subs)
        service.script(busy, Reply(429, "slow down", {"Retry-After": "900"}))
        service.script(unavailable, Reply(503, "maintenance", {"Retry-After": in_20_minutes}))
        service.script(hanging, HANG)
        service.script(failing, Reply(500, "oops"))
        ids = [await enqueue_push(services, outbox, "web", s) for _, s in subs]
        dispatcher = dispatcher_for(services, {"web": notifier(pem, timeout_seconds=0.5)})
        async with running(dispatcher):
            await settled(services, *ids)
            rows = [await row(services, i) for i in ids]
            assert [r.status for r in rows] == ["pending"] * 4
            # The policy's backoff is at most 60 s here: the rest is the service's word.
            assert later_than(rows[0].next_attempt_at, 800)  # Retry-After: 900
            assert later_than(rows[1].next_attempt_at, 1000)  # Retry-After: <HTTP-date>
            assert not later_than(rows[3].next_attempt_at, 60)
            for row_id in ids:
                await make_due(services, row_id)
            dispatcher.poke()
            await all_sent(services, *ids)
    codes = [summary(await attempts(services, i)) for i in ids]
    assert codes == [
        [("transient", "429"), ("sent", "201")],
        [("transient", "503"), ("sent", "201")],
        [("transient", "timeout"), ("sent", "201")],
        [("transient", "500"), ("sent", "201")],
    ]
    assert len(service.received) == 4


# --- the notifier alone -------------------------------------------------------------------


def outgoing(recipient: str, text: str = "Hola", **headers: str) -> Outgoing:
    return Outgoing(1, "push", "web", recipient, "Caso CAS-000001", text, headers=headers)


async def test_link_and_urgency_go_along_and_a_long_text_is_cut_to_fit() -> None:
    pem, public = vapid_key()
    async with serving(WebPushService(public)) as service:
        _, subscription = service.subscribe()
        web = notifier(pem)
        await web.start()
        try:
            long_text = "ñandú " * 2000  # 12 000 bytes: more than any push service must take
            link = "https://soporte.example.com/casos/CAS-000001"
            sent = await web.send(outgoing(subscription, long_text, url=link, urgency="high"))
        finally:
            await web.stop()
    [pushed] = service.received
    assert sent.code == "201" and pushed.headers["Urgency"] == "high"
    assert pushed.payload["url"] == link and pushed.payload["body"].endswith("…")
    assert len(json.dumps(pushed.payload, ensure_ascii=False).encode()) <= MAX_PLAINTEXT


@pytest.mark.parametrize(
    ("recipient", "reason"),
    [
        ("not json", "not a Web Push subscription"),
        ('{"keys": {}}', "no endpoint URL"),
        ('{"endpoint": "https://push.example/x"}', "no keys"),
        ('{"endpoint": "https://push.example/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}}',
         "malformed"),
    ],
)  # fmt: skip
async def test_a_malformed_subscription_is_refused_before_any_request(
    recipient: str, reason: str
) -> None:
    pem, _ = vapid_key()
    web = notifier(pem)
    with pytest.raises(PermanentError) as info:
        await web.send(outgoing(recipient))
    assert reason in str(info.value) and not info.value.gone
    await web.stop()


def test_a_vapid_token_is_signed_again_before_it_expires() -> None:
    pem, _ = vapid_key()
    now = [1_000_000.0]
    signer = VapidSigner(pem, "mailto:soporte@example.com", clock=lambda: now[0])
    first = signer.header("https://push.example.net/a")
    assert signer.header("https://push.example.net/b") == first  # same audience
    assert signer.header("https://other.example.org/a") != first
    now[0] += 11 * 3600 + 1  # within an hour of its 12-hour expiry
    assert signer.header("https://push.example.net/a") != first


def test_raw_and_pem_vapid_keys_sign_the_same() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    assert VapidSigner(raw, "mailto:a@b.example").public_key == vapid_public_key(key)
    assert VapidSigner(pem, "mailto:a@b.example").public_key == vapid_public_key(key)


@pytest.mark.parametrize("text", ["ñandú " * 2000, 'dijo "no"\n' * 2000, "\x01" * 3000])
def test_the_payload_is_cut_to_fit_keeping_as_much_text_as_fits(text: str) -> None:
    link = "https://soporte.example.com/casos/CAS-000001"
    data = fitted_payload(PushContent("Caso CAS-000001", text, link))
    payload = json.loads(data)
    assert len(data) <= MAX_PLAINTEXT < len(data) + 12  # nothing more would have fit
    assert payload["body"].endswith("…") and text.startswith(payload["body"][:-1])
    assert payload["url"] == link
