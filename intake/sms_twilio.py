"""Twilio's incoming-message webhook, ``POST /webhooks/twilio/sms``.

Twilio posts a form (``MessageSid``, ``AccountSid``, ``From``, ``To``, ``Body``,
``NumMedia``, ``MediaUrl0`` …; "Twilio's request to your incoming message Webhook URL" in
Twilio's docs) signed in ``X-Twilio-Signature`` over the URL it was given and the sorted
fields ("Webhooks security"). The URL is rebuilt from ``[http] public_url``, not from what
reached us: a proxy in front changes the host and scheme we see, not what Twilio signed.
A missing or wrong signature is a 403 and nothing is stored.

The answer is an empty TwiML document (no reply message: acknowledgements go through the
outbox like every other notice), given only after the commit; 503 with Retry-After when
storage is down. Twilio does not retry a failed incoming-message webhook on its own unless
the URL carries connection overrides (``#rc=``, "Connection overrides" in Twilio's docs);
a retry it does make carries the same MessageSid and is answered as the first was.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from intake.sms import IncomingSms, SmsIntake
from intake.sms_media import TwilioMedia
from plumbing.webhook_signatures import twilio_valid

INBOUND_PATH = "/webhooks/twilio/sms"
# An empty <Response>: "do nothing more" (TwiML for Programmable Messaging).
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


@dataclass(frozen=True)
class TwilioInboundConfig:
    auth_token: str = field(repr=False)
    public_url: str  # [http] public_url: the base of the URL Twilio signs


class TwilioSmsIntake:
    def __init__(self, core: SmsIntake, config: TwilioInboundConfig, media: TwilioMedia) -> None:
        self.core = core
        self.config = config
        self.media = media

    def routes(self) -> list[web.RouteDef]:
        return [web.post(INBOUND_PATH, self.incoming)]

    async def close(self) -> None:
        await self.media.close()

    def signed_url(self, request: web.Request) -> str:
        url = self.config.public_url.rstrip("/") + INBOUND_PATH
        if request.rel_url.raw_query_string:
            url += "?" + request.rel_url.raw_query_string
        return url

    async def incoming(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        signature = request.headers.get("X-Twilio-Signature")
        if not twilio_valid(self.signed_url(request), params, self.config.auth_token, signature):
            self.core.rejected("twilio", request.remote, bool(signature))
            raise web.HTTPForbidden(text="missing or invalid X-Twilio-Signature")
        fields = dict(params)
        sid = fields.get("MessageSid") or fields.get("SmsSid") or ""
        sender = fields.get("From", "")
        if not sid or not sender:
            raise web.HTTPBadRequest(text="MessageSid and From are required")
        text = fields.get("Body", "")
        fetched = await self.media.fetch(fields)
        if fetched.missing:
            text += "".join(f"\n[MMS file not retrieved: {reason}]" for reason in fetched.missing)
        sms = IncomingSms(
            provider="twilio",
            external_id=sid,
            sender=sender,
            text=text,
            raw=urlencode(params).encode("utf-8"),
            attachments=fetched.attachments,
            reply_provider="twilio",
        )
        await self.core.receive(sms)
        return web.Response(text=EMPTY_TWIML, content_type="text/xml")
