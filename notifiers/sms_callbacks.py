"""The webhooks SMS providers call about messages we sent: Twilio's status callback
(``POST /webhooks/twilio/status``) and Vonage's delivery receipt
(``GET|POST /webhooks/vonage/dlr``).

Only the provider may change a message's fate, so each request is verified first:
Twilio's ``X-Twilio-Signature`` over the callback URL as we gave it (``[http]
public_url`` + path + query: a proxy in front changes what we see, not what Twilio
signed), and Vonage's ``sig`` when a signature secret is configured (otherwise a receipt
naming another account's ``api-key`` is refused). A missing or wrong signature is a 403
and nothing is written.

Intermediate statuses (queued, sent, accepted, buffered …) are acknowledged and dropped;
final ones become an ``ApplyReceipt`` on the write path, and the answer (204, as both
providers' samples answer) is given only after the commit. When storage is down the
answer is 503 (the JSON error middleware): Vonage retries a receipt it could not deliver.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from notifiers.receipts import ApplyReceipt, ReceiptResult
from notifiers.sms_signatures import twilio_valid, vonage_valid
from notifiers.sms_twilio import STATUS_CALLBACK_PATH
from notifiers.sms_vonage import RECEIPT_PATH
from plumbing.webhook_requests import webhook_params

log = logging.getLogger(__name__)

# Twilio's message statuses (Messages resource); "read" is a delivery with a read receipt.
TWILIO_DELIVERED = frozenset({"delivered", "read"})
TWILIO_FAILED = frozenset({"failed", "undelivered"})
# Vonage's final DLR statuses; "accepted", "buffered" and "unknown" are not final.
VONAGE_DELIVERED = frozenset({"delivered"})
VONAGE_FAILED = frozenset({"failed", "rejected", "expired"})
OUR_REFERENCE = re.compile(r"ventanilla-(\d{1,18})")


class Writes(Protocol):
    async def submit(self, op: Any) -> Any: ...


@dataclass(frozen=True)
class TwilioCallbackConfig:
    auth_token: str = field(repr=False)
    public_url: str  # [http] public_url: the base of the URL Twilio signs


@dataclass(frozen=True)
class VonageCallbackConfig:
    api_key: str
    signature_secret: str = field(default="", repr=False)
    signature_method: str = "md5hash"


class SmsStatusCallbacks:
    """Routes for the providers that are enabled; a disabled one's path is a 404."""

    def __init__(
        self,
        writes: Writes,
        twilio: TwilioCallbackConfig | None = None,
        vonage: VonageCallbackConfig | None = None,
    ) -> None:
        self.writes = writes
        self.twilio = twilio
        self.vonage = vonage

    def routes(self) -> list[web.RouteDef]:
        found: list[web.RouteDef] = []
        if self.twilio is not None:
            found.append(web.post(STATUS_CALLBACK_PATH, self.twilio_status))
        if self.vonage is not None:
            found.append(web.get(RECEIPT_PATH, self.vonage_receipt, allow_head=False))
            found.append(web.post(RECEIPT_PATH, self.vonage_receipt))
        return found

    async def twilio_status(self, request: web.Request) -> web.Response:
        assert self.twilio is not None
        form = await request.post()
        params = [(k, v) for k, v in form.items() if isinstance(v, str)]
        url = self.twilio.public_url.rstrip("/") + STATUS_CALLBACK_PATH
        if request.rel_url.raw_query_string:
            url += "?" + request.rel_url.raw_query_string
        signature = request.headers.get("X-Twilio-Signature")
        if not twilio_valid(url, params, self.twilio.auth_token, signature):
            log.warning("Twilio status callback refused: %s signature from %s",
                        "wrong" if signature else "no", request.remote)  # fmt: skip
            raise web.HTTPForbidden(text="missing or invalid X-Twilio-Signature")
        fields = dict(params)
        sid, status = fields.get("MessageSid", ""), fields.get("MessageStatus", "").lower()
        if not sid or not status:
            raise web.HTTPBadRequest(text="MessageSid and MessageStatus are required")
        if status not in TWILIO_DELIVERED | TWILIO_FAILED:
            return web.Response(status=204)
        notification = request.query.get("notification", "")
        receipt = ApplyReceipt(
            provider="twilio",
            provider_message_id=sid,
            status=status,
            failed=status in TWILIO_FAILED,
            error_code=fields.get("ErrorCode") or None,
            error_text=fields.get("ErrorMessage") or None,
            notification_id=int(notification) if notification.isdigit() else None,
        )
        return _answer(await self.writes.submit(receipt))

    async def vonage_receipt(self, request: web.Request) -> web.Response:
        assert self.vonage is not None
        params = await webhook_params(request)
        cfg = self.vonage
        if cfg.signature_secret:
            if not vonage_valid(params, cfg.signature_secret, cfg.signature_method):
                log.warning("Vonage receipt refused: %s signature from %s",
                            "wrong" if params.get("sig") else "no", request.remote)  # fmt: skip
                raise web.HTTPForbidden(text="missing or invalid sig")
        elif params.get("api-key") not in (None, cfg.api_key):
            raise web.HTTPForbidden(text="a receipt for another account")
        message_id, status = params.get("messageId", ""), params.get("status", "").lower()
        if not message_id or not status:
            raise web.HTTPBadRequest(text="messageId and status are required")
        if status not in VONAGE_DELIVERED | VONAGE_FAILED:
            return web.Response(status=204)
        error = params.get("err-code", "")
        reference = OUR_REFERENCE.fullmatch(params.get("client-ref", ""))
        receipt = ApplyReceipt(
            provider="vonage",
            provider_message_id=message_id,
            status=status,
            failed=status in VONAGE_FAILED,
            error_code=f"err-code {error}" if error not in ("", "0") else None,
            notification_id=int(reference.group(1)) if reference else None,
            one_id_per_message=False,  # each part of a long text has its own id
        )
        return _answer(await self.writes.submit(receipt))


def _answer(result: ReceiptResult) -> web.Response:
    if result == "not_yet":
        # The send itself is not recorded yet: applying the receipt now could be undone.
        raise web.HTTPServiceUnavailable(
            text="the message's send is still being recorded; retry shortly",
            headers={"Retry-After": "5"},
        )
    if result == "unknown":
        log.info("a delivery receipt for a message we do not know was ignored")
    return web.Response(status=204)
