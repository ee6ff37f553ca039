"""Loopback peers for the push notifiers' tests, each speaking its provider's API and
checking what the real one checks:

- a Web Push service (RFC 8030): the VAPID token's ES256 signature, audience, expiry and
  subject (RFC 8292), the TTL header, the aes128gcm body's header (RFC 8188 §2.1, RFC 8291
  §4), then decrypts the message with the subscription's private key;
- FCM HTTP v1 and its OAuth2 token endpoint: the JWT assertion's RS256 signature against
  the service account's public key and its claims (RFC 7523), bearer tokens on sends;
- ntfy: topic, bearer token, Title (RFC 2047 decoded), Click, body.

A test makes one recipient (subscription, registration token, topic) answer otherwise:
``HANG`` until the peer closes, or any status, body and headers (500, 429 with
Retry-After, a refusal, a gone subscription).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from typing import Any, TypeVar

import http_ece
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from py_vapid import jwt as vapid_jwt

from notifiers.push_credentials import b64url, b64url_decode


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any = ""  # a dict is sent as JSON
    headers: dict[str, str] = field(default_factory=dict)


HANG = Reply(-1)


class Peer:
    def __init__(self) -> None:
        self.app = web.Application()
        self.port = 0
        self.scripts: dict[str, list[Reply]] = {}
        self.released = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, key: str, *replies: Reply) -> None:
        """The next answers to requests for ``key`` (a recipient, or "token")."""
        self.scripts.setdefault(key, []).extend(replies)

    async def scripted(self, key: str) -> web.Response | None:
        queue = self.scripts.get(key)
        if not queue:
            return None
        reply = queue.pop(0)
        if reply is HANG:
            await self.released.wait()
            return web.Response(status=503)
        return respond(reply.status, reply.body, reply.headers)


def respond(status: int, body: Any = "", headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(body, dict):
        return web.json_response(body, status=status, headers=headers)
    return web.Response(status=status, text=str(body), headers=headers)


P = TypeVar("P", bound=Peer)


@asynccontextmanager
async def serving(peer: P) -> AsyncIterator[P]:
    runner = web.AppRunner(peer.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    peer.port = runner.addresses[0][1]
    try:
        yield peer
    finally:
        peer.released.set()
        await runner.cleanup()


# --- Web Push -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    subscription: str
    payload: dict[str, Any]
    headers: dict[str, str]
    record_size: int


class WebPushService(Peer):
    """Subscriptions live at ``/push/<id>``; an unknown id is gone (410)."""

    def __init__(self, vapid_public_key: str) -> None:
        super().__init__()
        self.vapid_public_key = vapid_public_key
        self.subscriptions: dict[str, tuple[ec.EllipticCurvePrivateKey, bytes]] = {}
        self.received: list[Pushed] = []
        self.vapid_tokens: list[str] = []
        self.app.router.add_post("/push/{id}", self.push)

    def subscribe(self) -> tuple[str, str]:
        """A new browser subscription: its id and the JSON the browser would give."""
        sub_id = uuid.uuid4().hex
        key = ec.generate_private_key(ec.SECP256R1())
        auth = os.urandom(16)
        self.subscriptions[sub_id] = (key, auth)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        subscription = {
            "endpoint": f"{self.base_url}/push/{sub_id}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(point), "auth": b64url(auth)},
        }
        return sub_id, json.dumps(subscription)

    def vapid_problem(self, authorization: str) -> str | None:
        # RFC 8292 §3: Authorization: vapid t=<JWT>, k=<public key>
        match = re.fullmatch(r"vapid\s+t=([^,\s]+)\s*,\s*k=([A-Za-z0-9_-]+)", authorization)
        if match is None:
            return "no VAPID authorization"
        token, key = match.groups()
        if key != self.vapid_public_key:
            return "not the application server key the subscription was made with"
        try:
            claims = vapid_jwt.decode(token, key)
        except InvalidSignature:
            return "bad VAPID signature"
        header = json.loads(b64url_decode(token.split(".")[0]))
        now = time.time()
        if header.get("alg") != "ES256":
            return "VAPID tokens are ES256"
        if claims.get("aud") != self.base_url:
            return f"audience {claims.get('aud')!r} is not this push service"
        if not now < claims.get("exp", 0) <= now + 86_400:
            return "expired, or expires more than 24 hours ahead"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "no contact subject"
        self.vapid_tokens.append(token)
        return None

    async def push(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["id"]
        scripted = await self.scripted(sub_id)
        if scripted is not None:
            return scripted
        if sub_id not in self.subscriptions:
            return respond(410, "push subscription has unsubscribed or expired")
        problem = self.vapid_problem(request.headers.get("Authorization", ""))
        if problem:
            return respond(401 if "signature" in problem else 403, problem)
        if not request.headers.get("TTL", "").isdigit():
            return respond(400, "TTL header required (RFC 8030 §5.2)")
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return respond(415, "Content-Encoding must be aes128gcm")
        body = await request.read()
        if len(body) > 4096:
            return respond(413, "payload too large")
        # RFC 8188 §2.1 header: salt(16) rs(4) idlen(1) keyid; RFC 8291 §4: the key id is
        # the sender's ephemeral P-256 key, uncompressed (65 bytes, 0x04 first).
        record_size = int.from_bytes(body[16:20], "big")
        idlen = body[20]
        if idlen != 65 or body[21] != 0x04 or record_size < 18:
            return respond(400, "bad aes128gcm header")
        key, auth = self.subscriptions[sub_id]
        try:
            plain = http_ece.decrypt(body, private_key=key, auth_secret=auth, version="aes128gcm")
        except Exception as exc:
            return respond(400, f"cannot decrypt: {exc}")
        self.received.append(Pushed(sub_id, json.loads(plain), dict(request.headers), record_size))
        n = len(self.received)
        return respond(201, "", {"Location": f"{self.base_url}/message/msg-{n}"})


# --- FCM ----------------------------------------------------------------------------------


def fcm_error(status: int, rpc: str, code: str = "", message: str = "") -> dict[str, Any]:
    error: dict[str, Any] = {"code": status, "message": message or rpc, "status": rpc}
    if code:
        error["details"] = [
            {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}
        ]
    return {"error": error}


@dataclass(frozen=True)
class FcmSent:
    token: str
    message: dict[str, Any]
    access_token: str


class FcmService(Peer):
    """``/token`` (OAuth2) and ``/v1/projects/<project>/messages:send``; registration
    tokens not registered here are UNREGISTERED (404)."""

    def __init__(self, project_id: str = "ventanilla-test") -> None:
        super().__init__()
        self.project_id = project_id
        self.account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = uuid.uuid4().hex
        self.client_email = f"notices@{project_id}.iam.gserviceaccount.com"
        self.expires_in = 3600
        self.token_requests = 0
        self.issued: list[str] = []
        self.valid: set[str] = set()
        self.registered: set[str] = set()
        self.received: list[FcmSent] = []
        self.app.router.add_post("/token", self.token)
        self.app.router.add_post("/v1/projects/{project}/messages:send", self.send)

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    def service_account(self, **changes: Any) -> str:
        pem = self.account_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        account = {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1234567890",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            **changes,
        }
        return json.dumps(account)

    def register(self) -> str:
        token = f"fcm-{uuid.uuid4().hex}"
        self.registered.add(token)
        return token

    def assertion_problem(self, assertion: str) -> str | None:
        try:
            head, claims_part, signature = assertion.split(".")
            header = json.loads(b64url_decode(head))
            claims = json.loads(b64url_decode(claims_part))
            self.account_key.public_key().verify(
                b64url_decode(signature),
                f"{head}.{claims_part}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, InvalidSignature):
            return "Invalid JWT Signature."
        now = time.time()
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            return "Invalid JWT header."
        if claims.get("iss") != self.client_email or claims.get("aud") != self.token_uri:
            return "Invalid JWT: iss or aud."
        if "https://www.googleapis.com/auth/firebase.messaging" not in claims.get("scope", ""):
            return "Invalid JWT: scope."
        if not claims["iat"] - 60 <= now < claims["exp"] <= claims["iat"] + 3600:
            return "Invalid JWT: Token must be a short-lived token (60 minutes)."
        return None

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        scripted = await self.scripted("token")
        if scripted is not None:
            return scripted
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return respond(400, {"error": "unsupported_grant_type"})
        problem = self.assertion_problem(str(form.get("assertion", "")))
        if problem:
            return respond(400, {"error": "invalid_grant", "error_description": problem})
        access = f"ya29.test-{len(self.issued) + 1}"
        self.issued.append(access)
        self.valid.add(access)
        return respond(
            200, {"access_token": access, "expires_in": self.expires_in, "token_type": "Bearer"}
        )

    def revoke(self) -> None:
        """Every access token issued so far is refused from now on."""
        self.valid.clear()

    async def send(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization", "")
        access = authorization.removeprefix("Bearer ")
        if not authorization.startswith("Bearer ") or access not in self.valid:
            return respond(401, fcm_error(401, "UNAUTHENTICATED", message="invalid credentials"))
        if request.match_info["project"] != self.project_id:
            return respond(403, fcm_error(403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"))
        message = (await request.json())["message"]
        target = message.get("token") or message.get("topic", "")
        scripted = await self.scripted(target)
        if scripted is not None:
            return scripted
        if "notification" not in message or "title" not in message["notification"]:
            return respond(400, fcm_error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"))
        if "token" in message and message["token"] not in self.registered:
            return respond(404, fcm_error(404, "NOT_FOUND", "UNREGISTERED"))
        self.received.append(FcmSent(target, message, access))
        name = f"projects/{self.project_id}/messages/0:{len(self.received)}%test"
        return respond(200, {"name": name})


# --- ntfy ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    topic: str
    title: str
    message: str
    click: str | None
    priority: str | None


class NtfyServer(Peer):
    def __init__(self, token: str = "") -> None:
        super().__init__()
        self.token = token
        self.received: list[Published] = []
        self.app.router.add_post("/{topic}", self.publish)

    async def publish(self, request: web.Request) -> web.Response:
        topic = request.match_info["topic"]
        scripted = await self.scripted(topic)
        if scripted is not None:
            return scripted
        if self.token and request.headers.get("Authorization") != f"Bearer {self.token}":
            return respond(403, {"code": 40301, "http": 403, "error": "forbidden"})
        raw_title = request.headers.get("Title", "")
        title = str(make_header(decode_header(raw_title))) if raw_title else ""
        body = (await request.read()).decode()
        self.received.append(
            Published(
                topic, title, body, request.headers.get("Click"), request.headers.get("Priority")
            )
        )
        n = len(self.received)
        return respond(
            200,
            {"id": f"ntfy{n}", "time": int(time.time()), "event": "message", "topic": topic,
             "title": title, "message": body},
        )  # fmt: skip
