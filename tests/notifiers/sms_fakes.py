"""Loopback stand-ins for SMS providers: Twilio's Messages API, Vonage's SMS API and a
generic HTTP gateway, each answering as the real one does (bodies, codes, error shapes).

Each fake records the requests it got and follows a script of answers, one per request
(``ok`` once the script is used up): ``hang`` (no answer until the fake stops), ``500``,
``429`` (with ``Retry-After: <retry_after>``), and the provider's own refusals.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: bytes


@dataclass
class Fake:
    answers: list[str] = field(default_factory=list)
    retry_after: str = "900"
    received: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def take(self, request: web.Request) -> tuple[Received, str]:
        body = await request.read()
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        got = Received(request.path, dict(request.headers), form, body)
        self.received.append(got)
        answer = self.answers.pop(0) if self.answers else "ok"
        if answer == "hang":
            await self.release.wait()
        return got, answer


@asynccontextmanager
async def serving(fake: Fake, routes: list[web.RouteDef]) -> AsyncIterator[Fake]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


# --- Twilio ----------------------------------------------------------------------------

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token"


def _twilio_error(status: int, code: int, message: str, **headers: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return web.json_response(body, status=status, headers=headers)


@dataclass
class FakeTwilio(Fake):
    sids: list[str] = field(default_factory=list)

    async def messages(self, request: web.Request) -> web.Response:
        got, answer = await self.take(request)
        expected = base64.b64encode(f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
        if (
            request.match_info["sid"] != TWILIO_SID
            or request.headers.get("Authorization") != f"Basic {expected}"
        ):
            return _twilio_error(401, 20003, "Authenticate")
        form = got.form
        if answer == "429":
            return _twilio_error(
                429, 20429, "Too Many Requests", **{"Retry-After": self.retry_after}
            )
        if answer == "500":
            return _twilio_error(500, 20500, "Internal Server Error")
        if answer == "invalid":
            return _twilio_error(400, 21211, f"Invalid 'To' Phone Number: {form.get('To')}")
        if answer == "unsubscribed":
            return _twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = "SM" + secrets.token_hex(16)
        self.sids.append(sid)
        return web.json_response(
            {
                "account_sid": TWILIO_SID,
                "api_version": "2010-04-01",
                "body": form.get("Body"),
                "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
                "date_sent": None,
                "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "num_media": "0",
                "num_segments": "1",
                "price": None,
                "price_unit": "USD",
                "sid": sid,
                "status": "queued",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}/Media.json"
                },
                "to": form.get("To"),
                "uri": f"/2010-04-01/Accounts/{TWILIO_SID}/Messages/{sid}.json",
            },
            status=201,
        )


@asynccontextmanager
async def fake_twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    path = "/2010-04-01/Accounts/{sid}/Messages.json"
    async with serving(fake, [web.post(path, fake.messages)]):
        yield fake


# --- Vonage ----------------------------------------------------------------------------

VONAGE_KEY, VONAGE_SECRET = "abcd1234", "vonage-api-secret"


@dataclass
class FakeVonage(Fake):
    ids: list[str] = field(default_factory=list)

    async def sms(self, request: web.Request) -> web.Response:
        got, answer = await self.take(request)
        form = got.form
        if answer == "429":
            return web.json_response(
                {"type": "https://developer.nexmo.com/api-errors#throttled",
                 "title": "Throttled", "detail": "Too many requests"},
                status=429, headers={"Retry-After": self.retry_after},
            )  # fmt: skip
        if answer == "500":
            return web.Response(status=500, text="<html><body>Internal Server Error</body></html>")
        if form.get("api_key") != VONAGE_KEY or form.get("api_secret") != VONAGE_SECRET:
            return _vonage([{"status": "4", "error-text": "Bad Credentials"}])
        if answer == "throttled":
            return _vonage([{"status": "1", "error-text": "Throughput Rate Exceeded - please "
                             "wait [ 30 ] and retry"}])  # fmt: skip
        if answer == "barred":
            return _vonage([{"status": "7", "error-text": "Number barred."}])
        text = form.get("text", "")
        per_part = 67 if form.get("type") == "unicode" else 153
        single = 70 if form.get("type") == "unicode" else 160
        count = 1 if len(text) <= single else math.ceil(len(text) / per_part)
        parts = []
        for _ in range(count):
            message_id = secrets.token_hex(8).upper()
            self.ids.append(message_id)
            parts.append({
                "to": form.get("to"), "message-id": message_id, "status": "0",
                "remaining-balance": "15.53590000", "message-price": "0.03330000",
                "network": "72234", "client-ref": form.get("client-ref"),
            })  # fmt: skip
        return _vonage(parts)


def _vonage(parts: list[dict[str, Any]]) -> web.Response:
    # The SMS API answers 200 whatever happened to the message: the outcome is per part.
    return web.json_response({"message-count": str(len(parts)), "messages": parts})


@asynccontextmanager
async def fake_vonage() -> AsyncIterator[FakeVonage]:
    fake = FakeVonage()
    async with serving(fake, [web.post("/sms/json", fake.sms)]):
        yield fake


# --- a generic gateway -----------------------------------------------------------------

GATEWAY_TOKEN = "Bearer gateway-token"


class FakeGateway(Fake):
    async def send(self, request: web.Request) -> web.Response:
        got, answer = await self.take(request)
        if request.headers.get("Authorization") != GATEWAY_TOKEN:
            return web.json_response({"error": "unauthorized"}, status=401)
        if answer == "429":
            return web.json_response(
                {"error": "slow down"}, status=429, headers={"Retry-After": self.retry_after}
            )
        if answer == "500":
            return web.Response(status=502, text="Bad Gateway")
        if answer == "refused":
            return web.json_response({"error": "destination not allowed"}, status=422)
        json.loads(got.body)  # a body that is not JSON would be a 500 here
        return web.json_response(
            {"data": {"messages": [{"id": f"gw-{len(self.received)}", "status": "queued"}]}},
            status=202,
        )


@asynccontextmanager
async def fake_gateway() -> AsyncIterator[FakeGateway]:
    fake = FakeGateway()
    async with serving(fake, [web.post("/v1/send", fake.send)]):
        yield fake
