"""Inbound SMS from any HTTP gateway, ``POST /webhooks/generic/sms``.

Offered when ``[sms.generic] inbound_secret`` is set. The gateway proves itself either by
sending the secret itself in a header (``inbound_auth = "header"``, header
``X-Webhook-Secret`` unless ``inbound_header`` names another) or by signing the raw body
with it: the hex HMAC-SHA256, bare or as ``sha256=<hex>`` (``inbound_auth = "hmac"``,
header ``X-Signature`` by default), as GitHub-style webhooks do. A missing or wrong proof
is a 403 and nothing is stored.

The body is a JSON object or a form; the sender, the text and the gateway's message id are
read from the fields ``inbound_from_field``, ``inbound_text_field`` and
``inbound_id_field`` (default ``from``, ``text``, ``id``). The id is required: it is what
makes a gateway's retry a duplicate. The answer, after the commit, is
``{"status": <outcome>}``; 503 when storage is down.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl

from aiohttp import web

from intake.sms import IncomingSms, SmsIntake
from plumbing.webhook_signatures import body_hmac_valid, shared_secret_valid

INBOUND_PATH = "/webhooks/generic/sms"
DEFAULT_HEADERS = {"header": "X-Webhook-Secret", "hmac": "X-Signature"}
MAX_BODY = 65_536  # a text message and its metadata: far below


@dataclass(frozen=True)
class GenericInboundConfig:
    secret: str = field(repr=False)
    auth: Literal["header", "hmac"] = "header"
    header: str = ""
    from_field: str = "from"
    text_field: str = "text"
    id_field: str = "id"
    reply_provider: str = ""  # "generic" when the gateway also sends for us

    @property
    def header_name(self) -> str:
        return self.header or DEFAULT_HEADERS[self.auth]


class GenericSmsIntake:
    def __init__(self, core: SmsIntake, config: GenericInboundConfig) -> None:
        self.core = core
        self.config = config

    def routes(self) -> list[web.RouteDef]:
        return [web.post(INBOUND_PATH, self.incoming)]

    async def incoming(self, request: web.Request) -> web.Response:
        cfg = self.config
        if request.content_length is not None and request.content_length > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(
                max_size=MAX_BODY, actual_size=request.content_length
            )
        body = await request.read()
        given = request.headers.get(cfg.header_name)
        if cfg.auth == "hmac":
            valid = body_hmac_valid(body, cfg.secret, given)
        else:
            valid = shared_secret_valid(given, cfg.secret)
        if not valid:
            self.core.rejected("generic", request.remote, bool(given))
            raise web.HTTPForbidden(text=f"missing or invalid {cfg.header_name}")
        fields = _fields(body, request.content_type)
        message_id, sender = fields.get(cfg.id_field, ""), fields.get(cfg.from_field, "")
        if not message_id or not sender:
            raise web.HTTPBadRequest(text=f"{cfg.id_field} and {cfg.from_field} are required")
        sms = IncomingSms(
            provider="generic",
            external_id=message_id[:400],
            sender=sender,
            text=fields.get(cfg.text_field, ""),
            raw=body,
            reply_provider=cfg.reply_provider,
        )
        outcome = await self.core.receive(sms)
        return web.json_response({"status": outcome})


def _fields(body: bytes, content_type: str) -> dict[str, str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the body is not UTF-8") from None
    if content_type == "application/json":
        try:
            data: Any = json.loads(text)
        except ValueError:
            raise web.HTTPBadRequest(text="the body is not JSON") from None
        if not isinstance(data, dict):
            raise web.HTTPBadRequest(text="the body is not a JSON object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True))
