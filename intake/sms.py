"""What every SMS webhook shares once its provider's request is verified and read.

The provider adapters (``intake.sms_twilio``, ``intake.sms_vonage``, ``intake.sms_generic``)
check the signature and translate the request into an ``IncomingSms``; ``SmsIntake``
decides what it is and hands it to the write path:

- a message that is only an opt-out or opt-in keyword (``intake.sms_keywords``) becomes
  a ``SetSmsOptOut`` (``cases.sms_opt_outs``): recorded, no case, confirmed once;
- a part of a long message becomes a ``CollectSmsPart`` (``cases.sms_parts``);
- anything else becomes an ``InboundMessage`` accepted like any channel's.

The sender's number is written in E.164 with ``[sms] default_region`` by the same function
as the web form's phone field (``intake.forms.normalize_phone``), so a customer who gave
their number on the form and then texts is one customer. A number that sends more than
``[sms] max_messages_per_minute`` has its messages recorded but not acknowledged (loop
protection; the reason is on the case and in the log).

Every call returns only after the commit and raises ``StorageUnavailable`` when the
database cannot take it, so the adapter answers the provider 503 and it retries. Each
webhook is counted in ``ventanilla_sms_webhook_total{provider, outcome}``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from prometheus_client import CollectorRegistry, Counter

from cases.sms_opt_outs import OptOutResult, SetSmsOptOut
from cases.sms_parts import CollectSmsPart, PartCollected
from intake.accept import IntakeWriter
from intake.forms import normalize_phone
from intake.message import Address, Attachment, Channel, InboundMessage
from intake.ratelimit import RateLimiter
from intake.sms_keywords import keyword_of
from storage.db import StorageUnavailable

log = logging.getLogger(__name__)

Outcome = Literal["accepted", "duplicate", "rejected_signature", "unavailable", "opt_out", "opt_in"]
OUTCOMES: tuple[Outcome, ...] = (
    "accepted", "duplicate", "rejected_signature", "unavailable", "opt_out", "opt_in",
)  # fmt: skip


class Writes(Protocol):
    async def submit(self, op: Any) -> Any: ...


class SmsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.webhooks = Counter(
            "ventanilla_sms_webhook",
            "Inbound SMS webhooks by provider and outcome (accepted, duplicate, "
            "rejected_signature, unavailable, opt_out, opt_in).",
            ["provider", "outcome"],
            registry=registry,
        )

    def count(self, provider: str, outcome: Outcome) -> None:
        self.webhooks.labels(provider, outcome).inc()


@dataclass(frozen=True)
class SmsIntakeConfig:
    default_region: str = "AR"
    default_language: str = "es"
    max_messages_per_minute: int = 10
    confirm_opt_out: bool = True


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """One verified inbound SMS (or MMS), in the provider's words."""

    provider: str  # twilio | vonage | generic
    external_id: str  # the provider's message id (MessageSid, messageId, …)
    sender: str  # the From number as the provider gave it
    text: str
    raw: bytes  # the request's fields, kept as the inbound row's raw bytes
    attachments: tuple[Attachment, ...] = ()
    reply_provider: str = ""  # the sender that answers on this provider's number


@dataclass(frozen=True, slots=True)
class LongSmsPart:
    concat_ref: str
    total: int
    part: int  # 1-based


class SmsIntake:
    def __init__(
        self, writer: IntakeWriter, writes: Writes, metrics: SmsMetrics, config: SmsIntakeConfig
    ) -> None:
        self.writer = writer
        self.writes = writes
        self.metrics = metrics
        self.config = config
        per_minute = config.max_messages_per_minute
        self.flood = RateLimiter(per_minute, per_minute)

    def phone(self, number: str) -> str:
        """E.164 as the web form writes it; a sender that is no valid number (a short code,
        an alphanumeric sender id) is kept as given, so it is still one identity."""
        given = number.strip()
        return normalize_phone(given, self.config.default_region) or given

    def rejected(self, provider: str, request_from: str | None, signature_given: bool) -> None:
        self.metrics.count(provider, "rejected_signature")
        log.warning(
            "%s SMS webhook refused: %s signature (from %s)",
            provider, "wrong" if signature_given else "no", request_from,
        )  # fmt: skip

    async def receive(self, sms: IncomingSms, part: LongSmsPart | None = None) -> Outcome:
        """Store ``sms`` (an opt-out, a part, or a message); its outcome once committed."""
        phone = self.phone(sms.sender)
        try:
            keyword = None if sms.attachments or part else keyword_of(sms.text)
            if keyword is not None:
                op = SetSmsOptOut(
                    phone=phone,
                    opt_out=keyword.opt_out,
                    keyword=keyword.word,
                    language=keyword.language,
                    external_id=sms.external_id,
                    raw=sms.raw,
                    provider=sms.provider,
                    confirm=self.config.confirm_opt_out,
                    reply_provider=sms.reply_provider,
                )
                done: OptOutResult = await self.writes.submit(op)
                outcome: Outcome = "opt_out" if keyword.opt_out else "opt_in"
                if done.outcome == "duplicate":
                    outcome = "duplicate"
            elif part is not None:
                msg = self.message(sms, phone)
                collect = CollectSmsPart(
                    msg, sms.provider, sms.external_id, part.concat_ref, part.total, part.part
                )
                collected: PartCollected = await self.writes.submit(collect)
                result = collected.result
                outcome = "duplicate" if result and result.outcome == "duplicate" else "accepted"
            else:
                accepted = await self.writer.accept(self.message(sms, phone))
                outcome = "duplicate" if accepted.outcome == "duplicate" else "accepted"
        except StorageUnavailable:
            self.metrics.count(sms.provider, "unavailable")
            raise
        self.metrics.count(sms.provider, outcome)
        return outcome

    def message(self, sms: IncomingSms, phone: str) -> InboundMessage:
        suppress = None
        if self.flood.take(phone):
            per_minute = self.config.max_messages_per_minute
            suppress = f"more than {per_minute} SMS a minute from {phone} (loop protection)"
            log.warning("acknowledgement suppressed: %s", suppress)
        return InboundMessage(
            channel=Channel.SMS,
            external_id=sms.external_id,
            sender=Address(phone=phone),
            raw=sms.raw,
            text=sms.text,
            attachments=sms.attachments,
            language=self.config.default_language,
            suppress_ack_reason=suppress,
        )
