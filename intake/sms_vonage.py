"""Vonage's inbound-SMS webhook, ``GET|POST /webhooks/vonage/sms``.

Vonage sends ``msisdn`` (the sender, international format without "+"), ``to``,
``messageId``, ``text``, ``type``, ``keyword``, ``message-timestamp`` and, for a signed
account, ``timestamp``, ``nonce`` and ``sig`` ("Inbound SMS" in Vonage's docs), as a GET
query, a form or a JSON body, as the account is set up. With ``[sms.vonage]
signature_secret`` set the ``sig`` must verify with ``signature_method``; without it a
message naming another account's ``api-key`` is refused. A refusal is a 403 and nothing is
stored.

A long text arrives as several messages, each with its own ``messageId`` and ``concat``,
``concat-ref``, ``concat-total`` and ``concat-part`` ("Concatenated inbound messages"):
each part is stored as it comes (``cases.sms_parts``) and the part that completes the set
makes the one message. Vonage resends any message not answered 200 or 204 for 24 hours,
so every answer waits for the commit, and storage trouble is a 503.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aiohttp import web

from intake.sms import IncomingSms, LongSmsPart, SmsIntake
from plumbing.webhook_requests import webhook_params
from plumbing.webhook_signatures import vonage_valid

INBOUND_PATH = "/webhooks/vonage/sms"
MAX_PARTS = 255  # concat-total is one byte of the user data header


@dataclass(frozen=True)
class VonageInboundConfig:
    api_key: str
    signature_secret: str = field(default="", repr=False)
    signature_method: str = "md5hash"


class VonageSmsIntake:
    def __init__(self, core: SmsIntake, config: VonageInboundConfig) -> None:
        self.core = core
        self.config = config

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(INBOUND_PATH, self.incoming, allow_head=False),
            web.post(INBOUND_PATH, self.incoming),
        ]

    async def incoming(self, request: web.Request) -> web.Response:
        params = await webhook_params(request)
        cfg = self.config
        if cfg.signature_secret:
            if not vonage_valid(params, cfg.signature_secret, cfg.signature_method):
                self.core.rejected("vonage", request.remote, bool(params.get("sig")))
                raise web.HTTPForbidden(text="missing or invalid sig")
        elif params.get("api-key") not in (None, cfg.api_key):
            self.core.rejected("vonage", request.remote, False)
            raise web.HTTPForbidden(text="a message for another account")
        message_id, msisdn = params.get("messageId", ""), params.get("msisdn", "")
        if not message_id or not msisdn:
            raise web.HTTPBadRequest(text="messageId and msisdn are required")
        # msisdn is in international format without the "+" (Vonage's docs): read as a
        # national number it would be wrong in every region.
        sender = "+" + msisdn if msisdn.isdigit() else msisdn
        sms = IncomingSms(
            provider="vonage",
            external_id=message_id,
            sender=sender,
            text=params.get("text", ""),
            raw=json.dumps(params, sort_keys=True, ensure_ascii=False).encode("utf-8"),
            reply_provider="vonage",
        )
        await self.core.receive(sms, long_sms_part(params))
        return web.Response(status=200)


def long_sms_part(params: dict[str, str]) -> LongSmsPart | None:
    """The part this message is of a longer one, or None for a whole message."""
    if params.get("concat", "").lower() != "true":
        return None
    ref = params.get("concat-ref", "")
    total, part = params.get("concat-total", ""), params.get("concat-part", "")
    if not ref or not total.isdigit() or not part.isdigit():
        raise web.HTTPBadRequest(text="concat needs concat-ref, concat-total and concat-part")
    if not 1 <= int(part) <= int(total) <= MAX_PARTS:
        raise web.HTTPBadRequest(text="concat-part must be within 1 … concat-total")
    if int(total) == 1:
        return None
    return LongSmsPart(ref[:40], int(total), int(part))
