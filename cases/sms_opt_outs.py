"""SMS opt-out and opt-in (STOP / BAJA, START / ALTA) as an operation on the write path.

A keyword message changes the number's row in ``opt_outs``, which the dispatcher checks
when it claims a row (``notifiers.suppression``), so everything queued to that number is
held back from then on, including rows queued earlier. In the same transaction:

- the message is kept as an inbound row (channel ``sms``, the provider's id, the raw
  request) with no case: it is a request about messaging, not a support request, so it
  opens nothing and is never acknowledged; the row also makes a provider's retry of the
  same message a duplicate that changes nothing and confirms nothing again;
- a change of state is confirmed once by SMS (``optout_sms`` / ``optin_sms``), unless
  confirmations are off (Twilio's long codes answer STOP themselves). A keyword that
  changes nothing (STOP from a number already out) is recorded and not confirmed, which
  also keeps two automatic senders from confirming each other forever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from notifiers.outbox import OutboundRequest, Outbox
from storage.models import CustomerIdentity, Inbound, OptOut
from storage.operations import Executor, WriteContext

log = logging.getLogger(__name__)

OptOutOutcome = Literal["opted_out", "opted_in", "unchanged", "duplicate"]


@dataclass(frozen=True, slots=True)
class SetSmsOptOut:
    phone: str  # E.164
    opt_out: bool  # True: STOP and the like; False: START and the like
    keyword: str  # as the customer wrote it (normalized), for the record
    language: str  # of the confirmation: that of the keyword
    external_id: str  # the provider's message id: the inbound dedup key
    raw: bytes  # the provider's request, kept as any inbound message's raw bytes
    provider: str  # the provider it came through (twilio, vonage, generic)
    confirm: bool = True
    reply_provider: str = ""  # the sender the confirmation goes through ("": default)


@dataclass(frozen=True, slots=True)
class OptOutResult:
    outcome: OptOutOutcome
    inbound_id: int
    confirmation_id: int | None = None


class OptOutWriter(Executor):
    """Executes ``SetSmsOptOut``."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def run_one(self, conn: Connection, op: SetSmsOptOut, ctx: WriteContext) -> OptOutResult:
        seen = conn.scalar(
            select(Inbound.id).where(
                Inbound.channel == "sms", Inbound.external_id == op.external_id
            )
        )
        if seen is not None:
            return OptOutResult("duplicate", int(seen))
        current = conn.scalar(
            select(OptOut.id).where(OptOut.channel == "sms", OptOut.address == op.phone)
        )
        outcome: OptOutOutcome = "unchanged"
        if op.opt_out and current is None:
            source = f"{op.keyword} by SMS ({op.provider} {op.external_id})"
            conn.execute(
                insert(OptOut).values(
                    channel="sms", address=op.phone, created_at=ctx.now, source=source[:200]
                )
            )
            outcome = "opted_out"
        elif not op.opt_out and current is not None:
            conn.execute(delete(OptOut).where(OptOut.id == current))
            outcome = "opted_in"
        inbound_id = conn.scalar(
            insert(Inbound)
            .values(
                channel="sms",
                external_id=op.external_id,
                received_at=ctx.now,
                status="processed",
                error=None,
                raw=op.raw,
                normalized=None,  # as for any processed row: the raw request is the record
                case_id=None,
                retries=0,
            )
            .returning(Inbound.id)
        )
        assert inbound_id is not None
        log.info("SMS %s from %s (%s): %s", op.keyword, op.phone, op.provider, outcome)
        confirmation = None
        if op.confirm and outcome != "unchanged":
            customer = conn.scalar(
                select(CustomerIdentity.customer_id)
                .where(CustomerIdentity.kind == "phone", CustomerIdentity.value == op.phone)
                .limit(1)
            )
            request = OutboundRequest(
                "sms",
                "optout_sms" if op.opt_out else "optin_sms",
                op.language,
                op.phone,
                {},
                customer_id=customer,
                provider=op.reply_provider,
                automatic="auto-replied",
            )
            confirmation = self.outbox.enqueue_one(conn, request, ctx.now)
        return OptOutResult(outcome, int(inbound_id), confirmation)
