"""One customer across channels: identities added by an operator, and two customers merged
into one.

An identity (an email address, an E.164 phone number, a Telegram user id) belongs to one
customer only; adding one that another customer holds is refused with that customer's id,
so the operator can merge them instead. Merging moves every case, identity and
notification of the customer into the other, records an event on each case moved (who,
from which customer to which), and removes the emptied customer.
"""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from cases.events import record_event
from notifiers.sms_numbers import e164
from storage.models import Case, Customer, CustomerIdentity, Notification
from storage.operations import Executor, OperationRefused, WriteContext

KINDS = ("email", "phone", "telegram")


def checked_identity(kind: str, value: str, region: str) -> str:
    """``value`` as identities are stored, or a refusal naming the field at fault."""
    text = value.strip()
    if kind == "email":
        try:
            return str(validate_email(text, check_deliverability=False).normalized).lower()
        except EmailNotValidError as exc:
            raise OperationRefused("invalid", f"{text!r} is not an email address: {exc}",
                                   "value") from None  # fmt: skip
    if kind == "phone":
        number = e164(text, region)
        if number is None:
            raise OperationRefused("invalid", f"{text!r} is not a phone number", "value")
        return number
    if kind == "telegram":
        if not text.lstrip("-").isdigit() or len(text) > 20:
            raise OperationRefused("invalid", "a Telegram user id is a number", "value")
        return text
    raise OperationRefused("invalid", f"kind must be one of {', '.join(KINDS)}", "kind")


@dataclass(frozen=True, slots=True)
class AddIdentity:
    """Give customer ``customer_id`` an identity (``value`` already checked)."""

    customer_id: int
    kind: str
    value: str
    actor: str = "system"


@dataclass(frozen=True, slots=True)
class MergeCustomers:
    """Merge customer ``customer_id`` into customer ``into``."""

    customer_id: int
    into: int
    actor: str = "system"


def _exists(conn: Connection, customer_id: int, field: str | None = None) -> None:
    if conn.scalar(select(Customer.id).where(Customer.id == customer_id)) is None:
        raise OperationRefused("not_found", f"no customer {customer_id}", field)


class IdentityWriter(Executor):
    """Executor of ``AddIdentity``; answers the customer's id."""

    def run_one(self, conn: Connection, op: AddIdentity, ctx: WriteContext) -> int:
        _exists(conn, op.customer_id)
        owner = conn.scalar(
            select(CustomerIdentity.customer_id).where(
                CustomerIdentity.kind == op.kind, CustomerIdentity.value == op.value
            )
        )
        if owner == op.customer_id:
            return op.customer_id  # already theirs: nothing to do
        if owner is not None:
            raise OperationRefused(
                "conflict",
                f"{op.value} belongs to customer {owner}; merge the two customers instead",
                "value",
            )
        conn.execute(
            insert(CustomerIdentity).values(
                customer_id=op.customer_id, kind=op.kind, value=op.value, created_at=ctx.now
            )
        )
        conn.execute(
            update(Customer).where(Customer.id == op.customer_id).values(updated_at=ctx.now)
        )
        return op.customer_id


class CustomerMerger(Executor):
    """Executor of ``MergeCustomers``; answers the remaining customer's id."""

    def run_one(self, conn: Connection, op: MergeCustomers, ctx: WriteContext) -> int:
        if op.customer_id == op.into:
            raise OperationRefused("invalid", "a customer cannot be merged into itself", "into")
        _exists(conn, op.customer_id)
        _exists(conn, op.into, "into")
        cases = list(conn.scalars(select(Case.id).where(Case.customer_id == op.customer_id)))
        conn.execute(
            update(Case).where(Case.customer_id == op.customer_id)
            .values(customer_id=op.into, updated_at=ctx.now)
        )  # fmt: skip
        for case_id in cases:
            record_event(
                conn, case_id, "customer_merged",
                {"customer": [op.customer_id, op.into]}, op.actor, ctx.now,
            )  # fmt: skip
        conn.execute(
            update(CustomerIdentity).where(CustomerIdentity.customer_id == op.customer_id)
            .values(customer_id=op.into)
        )  # fmt: skip
        conn.execute(
            update(Notification).where(Notification.customer_id == op.customer_id)
            .values(customer_id=op.into)
        )  # fmt: skip
        both = select(Customer.id, Customer.name).where(Customer.id.in_((op.customer_id, op.into)))
        names = {int(r.id): str(r.name or "") for r in conn.execute(both)}
        values: dict[str, object] = {"updated_at": ctx.now}
        if not names.get(op.into) and names.get(op.customer_id):
            values["name"] = names[op.customer_id]
        conn.execute(update(Customer).where(Customer.id == op.into).values(**values))
        conn.execute(delete(Customer).where(Customer.id == op.customer_id))
        return op.into
