"""Web Push: one notification to one browser subscription, encrypted (RFC 8291) and
signed with our VAPID key (RFC 8292), delivered through the browser's push service
(RFC 8030).

The row's recipient is the subscription as the browser's ``PushSubscription.toJSON()``
gives it: ``{"endpoint": ..., "keys": {"p256dh": ..., "auth": ...}}``. The payload is
JSON ``{title, body, url?}``, encrypted by pywebpush's ``WebPusher.encode`` (aes128gcm)
and POSTed with our own aiohttp session: pywebpush's senders either block (requests) or
open a session per message. Encrypting and signing take well under a millisecond of CPU,
so they run on the loop.

The push service's answer decides: 2xx sent; 404/410 the subscription is gone (its
technician's channel is forgotten); 429 and 5xx later, after Retry-After; any other 4xx
never.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlsplit

import http_ece
from py_vapid import Vapid02, VapidException
from pywebpush import WebPusher, WebPushException

from notifiers.base import Delivered, Outgoing, PermanentError
from notifiers.push_credentials import b64url_decode, load_vapid_key, vapid_public_key
from notifiers.push_http import (
    ID_CHARS,
    RESPONSE_CHARS,
    PushContent,
    PushHttp,
    clip,
    refusal,
)

# RFC 8030 §7.2: a push service must take 4096 bytes of payload. aes128gcm adds its
# header (RFC 8291 §4: 16 salt + 4 record size + 1 + a 65-byte key id), one padding
# delimiter and a 16-byte tag, which leaves this much for the JSON.
MAX_PLAINTEXT = 4096 - 86 - 1 - 16
VAPID_LIFETIME = 12 * 3600  # RFC 8292 §2: "exp" no more than 24 hours ahead
VAPID_RENEW = 3600  # a cached token is signed anew this long before it expires
URGENCIES = ("very-low", "low", "normal", "high")  # RFC 8030 §5.3


@dataclass(frozen=True)
class WebPushConfig:
    vapid_private_key: str = field(repr=False)
    vapid_subject: str  # mailto: or https: URI the push service may contact (RFC 8292 §2.1)
    ttl_seconds: int = 86_400  # RFC 8030 §5.2: how long the service keeps an undelivered one
    concurrency: int = 8
    timeout_seconds: float = 10.0


class VapidSigner:
    """The VAPID ``Authorization`` header for a push service. A token names its audience
    (the endpoint's origin), so one is signed per origin and reused until shortly before
    it expires rather than signed for every message."""

    MAX_ORIGINS = 64

    def __init__(
        self, private_key: str, subject: str, clock: Callable[[], float] = time.time
    ) -> None:
        key = load_vapid_key(private_key)
        self.public_key = vapid_public_key(key)
        # The subject was checked with the settings; py_vapid's own check is stricter
        # than RFC 8292 §2.1 and would refuse valid https: subjects.
        self._vapid = Vapid02(private_key=key, conf={"no-strict": True})
        self.subject = subject
        self.clock = clock
        self._tokens: dict[str, tuple[int, str]] = {}

    def header(self, endpoint: str) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = self.clock()
        cached = self._tokens.get(audience)
        if cached is not None and cached[0] - VAPID_RENEW > now:
            return cached[1]
        expires = int(now) + VAPID_LIFETIME
        try:
            signed = self._vapid.sign({"aud": audience, "exp": expires, "sub": self.subject})
        except VapidException as exc:
            raise PermanentError(
                f"cannot sign VAPID for the push service {parts.netloc}: {exc}", code="vapid"
            ) from exc
        if len(self._tokens) >= self.MAX_ORIGINS:
            self._tokens.clear()
        self._tokens[audience] = (expires, signed["Authorization"])
        return str(signed["Authorization"])


def parse_subscription(recipient: str) -> dict[str, Any]:
    """The subscription JSON, checked: an endpoint URL, a P-256 ``p256dh`` point and a
    16-byte ``auth`` secret (RFC 8291 §3)."""
    try:
        subscription = json.loads(recipient)
    except ValueError:
        subscription = None
    if not isinstance(subscription, dict):
        raise PermanentError("the recipient is not a Web Push subscription", code="subscription")
    endpoint, keys = subscription.get("endpoint"), subscription.get("keys")
    if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in ("https", "http"):
        raise PermanentError("the subscription has no endpoint URL", code="subscription")
    if not isinstance(keys, dict):
        raise PermanentError("the subscription has no keys", code="subscription")
    try:
        p256dh = b64url_decode(keys["p256dh"])
        auth = b64url_decode(keys["auth"])
    except (TypeError, KeyError, ValueError, AttributeError):
        raise PermanentError(
            "the subscription has no usable keys (p256dh, auth)", code="subscription"
        ) from None
    if len(p256dh) != 65 or p256dh[0] != 4 or len(auth) != 16:
        raise PermanentError(
            "the subscription's keys are malformed (p256dh: 65-byte point, auth: 16 bytes)",
            code="subscription",
        )
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


def fitted_payload(content: PushContent) -> bytes:
    """The JSON, shortened (body first, then title) to what every push
    service must accept (a link too long to fit even alone is dropped)."""
    if len(_json(replace(content, title="", body=""))) > MAX_PLAINTEXT:
        content = replace(content, url=None)
    data = _json(content)
    for name in ("body", "title"):
        if len(data) <= MAX_PLAINTEXT:
            return data
        raw = getattr(content, name).encode()
        # The most bytes of this field that fit, escaping included (binary search).
        low, high = 0, len(raw)
        while low < high:
            middle = (low + high + 1) // 2
            if len(_json(replace(content, **{name: _cut(raw, middle)}))) <= MAX_PLAINTEXT:
                low = middle
            else:
                high = middle - 1
        content = replace(content, **{name: _cut(raw, low)})
        data = _json(content)
    return data


def _json(content: PushContent) -> bytes:
    return json.dumps(content.as_dict(), ensure_ascii=False).encode()


def _cut(raw: bytes, size: int) -> str:
    kept = raw[:size].decode(errors="ignore").rstrip()
    return kept + "…" if kept else ""


def encrypt(subscription: dict[str, Any], payload: bytes) -> bytes:
    try:
        body = WebPusher(subscription).encode(payload, "aes128gcm")["body"]
    except (WebPushException, http_ece.ECEException, ValueError, TypeError) as exc:
        raise PermanentError(
            f"cannot encrypt for this subscription: {type(exc).__name__}", code="subscription"
        ) from exc
    return bytes(body)


class WebPushNotifier:
    channel = "push"

    def __init__(
        self, name: str, config: WebPushConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.name = name
        self.config = config
        self.concurrency = max(1, config.concurrency)
        self.signer = VapidSigner(config.vapid_private_key, config.vapid_subject, clock)
        self.http = PushHttp(
            f"Web Push {name}", timeout_seconds=config.timeout_seconds, concurrency=self.concurrency
        )

    async def start(self) -> None:
        self.http.session()

    async def stop(self) -> None:
        await self.http.close()

    async def send(self, message: Outgoing) -> Delivered:
        subscription = parse_subscription(message.recipient)
        endpoint: str = subscription["endpoint"]
        body = encrypt(subscription, fitted_payload(PushContent.of(message)))
        headers = {
            "Authorization": self.signer.header(endpoint),
            "TTL": str(self.config.ttl_seconds),  # RFC 8030 §5.2: required
            "Content-Encoding": "aes128gcm",  # RFC 8291 §4
            "Content-Type": "application/octet-stream",
        }
        urgency = message.headers.get("urgency")
        if urgency in URGENCIES:
            headers["Urgency"] = str(urgency)
        answer = await self.http.post(endpoint, data=body, headers=headers)
        service = f"push service {urlsplit(endpoint).netloc}"
        if 200 <= answer.status < 300:
            # RFC 8030 §5: 201 Created, the Location naming the push message resource.
            location = answer.headers.get("Location", "")
            message_id = urlsplit(location).path.rstrip("/").rpartition("/")[2]
            return Delivered(
                clip(message_id, ID_CHARS), str(answer.status), clip(answer.text, RESPONSE_CHARS)
            )
        if answer.status in (404, 410):
            # RFC 8030 §7.3: the subscription expired or was unsubscribed; it will not
            # come back, so its owner's channel is forgotten.
            raise refusal(service, answer, reason="subscription gone", gone=True)
        if answer.status in (401, 403):
            # RFC 8292 §4.2: our VAPID token was refused, or the subscription was made
            # for another application server key.
            raise refusal(service, answer, reason="VAPID authorization refused")
        raise refusal(service, answer, reason=answer.text.strip()[:200])
