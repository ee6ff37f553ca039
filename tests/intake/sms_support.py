"""What the SMS intake tests share: settings with the providers enabled, requests signed
as each provider signs them (Twilio's own library for Twilio; Vonage's documented
algorithm), a loopback stand-in for Twilio's media URLs, and reads of what was stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from config.app import Services
from config.settings import Settings
from storage.models import Case, CustomerIdentity, Inbound, Message, Notification, OptOut
from tests.conftest import make_settings

Client = TestClient[Any, Any]
PUBLIC_URL = "https://soporte.example.com"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token"
OUR_NUMBER = "+15005550006"
VONAGE_KEY = "abcd1234"
VONAGE_SIGNATURE_SECRET = "vonage-signature-secret"
GENERIC_SECRET = "generic-inbound-secret"
CUSTOMER = "+5491155550123"  # E.164 of 011 15-5555-0123 in Buenos Aires


def sms_settings(tmp_path: Path, db_url: str, twilio_api: str = "", **env: str) -> Settings:
    """Twilio, Vonage (sig with ``VONAGE_METHOD`` or md5hash) and a generic gateway."""
    values = {
        "VENTANILLA_HTTP__PUBLIC_URL": PUBLIC_URL,
        "VENTANILLA_SMS__TWILIO__ENABLED": "true",
        "VENTANILLA_SMS__TWILIO__ACCOUNT_SID": TWILIO_SID,
        "VENTANILLA_SMS__TWILIO__AUTH_TOKEN": TWILIO_TOKEN,
        "VENTANILLA_SMS__TWILIO__FROM_NUMBER": f'"{OUR_NUMBER}"',
        "VENTANILLA_SMS__VONAGE__ENABLED": "true",
        "VENTANILLA_SMS__VONAGE__API_KEY": VONAGE_KEY,
        "VENTANILLA_SMS__VONAGE__API_SECRET": "vonage-api-secret",
        "VENTANILLA_SMS__VONAGE__FROM_NUMBER": "Soporte",
        "VENTANILLA_SMS__VONAGE__SIGNATURE_SECRET": VONAGE_SIGNATURE_SECRET,
        "VENTANILLA_SMS__GENERIC__INBOUND_SECRET": GENERIC_SECRET,
        **env,
    }
    if twilio_api:
        values["VENTANILLA_SMS__TWILIO__API_BASE_URL"] = twilio_api
    return make_settings(tmp_path, db_url, **values)


# --- Twilio ----------------------------------------------------------------------------


def twilio_form(sid: str, body: str, sender: str = CUSTOMER, **extra: str) -> dict[str, str]:
    """An incoming message's form, as Twilio posts it."""
    return {
        "ToCountry": "US", "ToState": "CA", "SmsMessageSid": sid, "NumMedia": "0",
        "ToCity": "", "FromZip": "", "SmsSid": sid, "FromState": "", "SmsStatus": "received",
        "FromCity": "", "Body": body, "FromCountry": "AR", "To": OUR_NUMBER,
        "ToZip": "", "NumSegments": "1", "MessageSid": sid, "AccountSid": TWILIO_SID,
        "From": sender, "ApiVersion": "2010-04-01", **extra,
    }  # fmt: skip


def twilio_signed(form: dict[str, str], url: str | None = None, token: str = TWILIO_TOKEN) -> str:
    """``X-Twilio-Signature`` as Twilio's own library computes it."""
    return str(
        RequestValidator(token).compute_signature(url or f"{PUBLIC_URL}/webhooks/twilio/sms", form)
    )


async def post_twilio(client: Client, form: dict[str, str], **headers: str) -> Any:
    headers = headers or {"X-Twilio-Signature": twilio_signed(form)}
    return await client.post("/webhooks/twilio/sms", data=form, headers=headers)


# --- Vonage ----------------------------------------------------------------------------


def vonage_sig(fields: dict[str, str], secret: str, method: str) -> str:
    """Vonage's signature, written from its docs ("Signing messages"): the fields but
    ``sig`` sorted by name as ``&name=value`` (``&`` and ``=`` in values as ``_``), then
    md5hash appends the secret and takes MD5; the others are an HMAC keyed by it."""
    signed = "".join(
        "&" + name + "=" + fields[name].replace("&", "_").replace("=", "_")
        for name in sorted(fields)
        if name != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((signed + secret).encode()).hexdigest()
    return hmac.new(secret.encode(), signed.encode(), getattr(hashlib, method)).hexdigest()


def vonage_inbound(
    message_id: str, text: str, method: str = "md5hash", msisdn: str = CUSTOMER[1:], **extra: str
) -> dict[str, str]:
    """An inbound SMS's fields as Vonage sends them, signed."""
    fields = {
        "msisdn": msisdn, "to": "447700900000", "messageId": message_id, "text": text,
        "type": "text", "keyword": text.split(" ")[0].upper() if text else "",
        "api-key": VONAGE_KEY, "message-timestamp": "2026-12-10 12:00:00",
        "timestamp": "1796731200", "nonce": f"nonce-{message_id}", **extra,
    }  # fmt: skip
    fields["sig"] = vonage_sig(fields, VONAGE_SIGNATURE_SECRET, method)
    return fields


# --- generic ---------------------------------------------------------------------------


def body_hmac(body: bytes, secret: str = GENERIC_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# --- Twilio's media, on loopback -------------------------------------------------------


@dataclass
class FakeMedia:
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path → body, type
    authorizations: list[str | None] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, media_sid: str, body: bytes, content_type: str) -> str:
        path = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/MM1/Media/{media_sid}"
        self.files[path] = (body, content_type)
        return self.url + path

    async def serve(self, request: web.Request) -> web.Response:
        # Media behind HTTP basic auth: the account SID and auth token (Twilio's docs).
        given = request.headers.get("Authorization")
        self.authorizations.append(given)
        wanted = "Basic " + base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if given != wanted:
            return web.Response(status=401)
        if request.path not in self.files:
            return web.Response(status=404)
        body, content_type = self.files[request.path]
        return web.Response(body=body, content_type=content_type)


@asynccontextmanager
async def fake_media() -> AsyncIterator[FakeMedia]:
    fake = FakeMedia()
    app = web.Application()
    app.add_routes([web.get("/{tail:.*}", fake.serve)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    try:
        yield fake
    finally:
        await runner.cleanup()


# --- reads -----------------------------------------------------------------------------


def webhooks(services: Services, provider: str, outcome: str) -> float:
    value = services.registry.get_sample_value(
        "ventanilla_sms_webhook_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0


async def count(services: Services, model: Any) -> int:
    async with services.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def inbound(services: Services) -> list[Inbound]:
    async with services.db.session() as session:
        return list((await session.scalars(select(Inbound).order_by(Inbound.id))).all())


async def messages(services: Services) -> list[Message]:
    async with services.db.session() as session:
        return list((await session.scalars(select(Message).order_by(Message.id))).all())


async def cases(services: Services) -> list[Case]:
    async with services.db.session() as session:
        return list((await session.scalars(select(Case).order_by(Case.id))).all())


async def phone_customer(services: Services, phone: str = CUSTOMER) -> int | None:
    async with services.db.session() as session:
        return await session.scalar(
            select(CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == "phone", CustomerIdentity.value == phone
            )
        )


async def opted_out(services: Services) -> list[str]:
    async with services.db.session() as session:
        return list((await session.scalars(select(OptOut.address))).all())


async def sms_rows(services: Services) -> list[Notification]:
    async with services.db.session() as session:
        query = select(Notification).where(Notification.channel == "sms")
        return list((await session.scalars(query.order_by(Notification.id))).all())
