"""SMS through Twilio's Messages API.

``POST {api_base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json``, form-encoded
``To``, ``From`` (or ``MessagingServiceSid`` when the sender is a Messaging Service,
``MG…``), ``Body`` and ``StatusCallback``, with HTTP basic auth AccountSid:AuthToken.
Twilio answers 201 and the message resource, whose ``sid`` is the provider's id; a
refusal is a JSON body ``{"code", "message", "more_info", "status"}`` whose code is
Twilio's (21211 invalid ``To``, 21610 unsubscribed recipient, 20429 too many requests).

The status callback URL names the notification (``?notification=<id>``): Twilio signs
the URL with the query, so the callback finds its row by key and the reference cannot
be forged (see ``notifiers.sms_callbacks``).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from notifiers.base import Delivered, Outgoing
from notifiers.sms_http import HttpClient, refused
from notifiers.sms_numbers import recipient_number
from notifiers.sms_segments import sms_text

STATUS_CALLBACK_PATH = "/webhooks/twilio/status"


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str = field(repr=False)
    from_number: str  # a number, an alphanumeric sender id, or a Messaging Service (MG…)
    api_base_url: str = "https://api.twilio.com"
    status_callback_url: str | None = None  # {public_url}/webhooks/twilio/status
    default_region: str = "AR"
    concurrency: int = 4
    timeout_seconds: float = 15.0


class TwilioNotifier:
    channel = "sms"

    def __init__(self, config: TwilioConfig, name: str = "twilio") -> None:
        self.config = config
        self.name = name
        self.concurrency = max(1, config.concurrency)
        self.http = HttpClient("Twilio", config.timeout_seconds, self.concurrency)
        self.url = (
            f"{config.api_base_url.rstrip('/')}/2010-04-01/Accounts/"
            f"{quote(config.account_sid, safe='')}/Messages.json"
        )
        credentials = f"{config.account_sid}:{config.auth_token}".encode()
        self._auth = {"Authorization": "Basic " + base64.b64encode(credentials).decode("ascii")}

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()

    def form(self, message: Outgoing) -> dict[str, str]:
        cfg = self.config
        form = {
            "To": recipient_number(message.recipient, cfg.default_region),
            "Body": sms_text(message.text),
        }
        if cfg.from_number.startswith("MG"):
            form["MessagingServiceSid"] = cfg.from_number
        else:
            form["From"] = cfg.from_number
        if cfg.status_callback_url:
            query = urlencode({"notification": message.notification_id})
            form["StatusCallback"] = f"{cfg.status_callback_url}?{query}"
        return form

    async def send(self, message: Outgoing) -> Delivered:
        form = self.form(message)
        answer = await self.http.request("POST", self.url, data=form, headers=self._auth)
        body = answer.json()
        body = body if isinstance(body, dict) else {}
        if answer.status in (200, 201):
            sid = body.get("sid")
            return Delivered(str(sid) if sid else None, str(answer.status), answer.text)
        code = body.get("code")
        reason = str(body.get("message") or answer.text[:200] or "no reason given")
        raise refused("Twilio", answer, str(code) if code is not None else None, reason)
