"""SMS through Vonage's SMS API.

``POST {api_base_url}/sms/json``, form-encoded ``api_key``, ``api_secret``, ``from``,
``to`` (E.164 without the "+"), ``text`` and ``type=unicode`` when the text is not
GSM-7 (otherwise Vonage would mangle it). Vonage answers HTTP 200 whatever happened; the
outcome is in ``messages[]``, one entry per part of a long text, each with ``status``
("0" sent, with its ``message-id``; otherwise ``error-text``). From the SMS API's error
table: 1 (throttled) and 5 (internal error) are worth another try, the rest is a
refusal of this message (bad number, barred, no credit, bad credentials …).

``client-ref`` carries our idempotency key and ``callback`` our receipt URL, so every
part's delivery receipt comes back naming the notification it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from notifiers.base import Delivered, Outgoing, PermanentError, TransientError
from notifiers.sms_http import HttpClient, refused
from notifiers.sms_numbers import recipient_number
from notifiers.sms_segments import is_gsm7, sms_text

RECEIPT_PATH = "/webhooks/vonage/dlr"
RETRIED_STATUSES = frozenset({"1", "5"})  # Throttled, Internal Error


@dataclass(frozen=True)
class VonageConfig:
    api_key: str
    api_secret: str = field(repr=False)
    from_number: str  # a number or an alphanumeric sender id
    api_base_url: str = "https://rest.nexmo.com"
    receipt_url: str | None = None  # {public_url}/webhooks/vonage/dlr
    default_region: str = "AR"
    concurrency: int = 4
    timeout_seconds: float = 15.0


class VonageNotifier:
    channel = "sms"

    def __init__(self, config: VonageConfig, name: str = "vonage") -> None:
        self.config = config
        self.name = name
        self.concurrency = max(1, config.concurrency)
        self.http = HttpClient("Vonage", config.timeout_seconds, self.concurrency)
        self.url = f"{config.api_base_url.rstrip('/')}/sms/json"

    async def start(self) -> None:
        await self.http.start()

    async def stop(self) -> None:
        await self.http.stop()

    def form(self, message: Outgoing) -> dict[str, str]:
        cfg = self.config
        text = sms_text(message.text)
        form = {
            "api_key": cfg.api_key,
            "api_secret": cfg.api_secret,
            "from": cfg.from_number,
            "to": recipient_number(message.recipient, cfg.default_region).lstrip("+"),
            "text": text,
            "client-ref": message.idempotency_key[:40],
        }
        if not is_gsm7(text):
            form["type"] = "unicode"
        if cfg.receipt_url:
            form["callback"] = cfg.receipt_url
            form["status-report-req"] = "1"
        return form

    async def send(self, message: Outgoing) -> Delivered:
        answer = await self.http.request("POST", self.url, data=self.form(message))
        body = answer.json()
        if answer.status != 200 or not isinstance(body, dict):
            reason = _error_title(body) or answer.text[:200] or "no reason given"
            raise refused("Vonage", answer, None, reason)
        parts = [p for p in body.get("messages") or [] if isinstance(p, dict)]
        if not parts:
            raise TransientError("Vonage: an answer without messages", response=answer.text)
        for part in parts:
            status = str(part.get("status", ""))
            if status != "0":
                text = f"Vonage: status {status}: {part.get('error-text') or 'no reason given'}"
                if status in RETRIED_STATUSES:
                    raise TransientError(text, code=status, response=answer.text)
                raise PermanentError(text, code=status, response=answer.text)
        first = parts[0].get("message-id")
        return Delivered(str(first) if first else None, "0", answer.text)


def _error_title(body: Any) -> str | None:
    """Vonage's RFC 7807 error body (``title``, ``detail``), used outside the SMS API's
    own envelope (e.g. a 401 or 429 from its gateway)."""
    if isinstance(body, dict) and body.get("title"):
        return f"{body['title']}: {body.get('detail', '')}".rstrip(": ")
    return None
