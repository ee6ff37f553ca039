"""The lookups that start a batch: duplicates, known customers, and threads to continue.

Each is one query for the whole batch (``cases.statements``); the results are written
onto the batch's ``Work`` items for ``cases.intake_batch`` to insert from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from cases.operations import AcceptMessage
from cases.statements import CASE_NUMBERS, DUPLICATES, IDENTITIES
from intake.message import InboundMessage


def attachment_digests(ops: Sequence[object]) -> list[str]:
    """The stored files the messages among ``ops`` refer to: flushed before the commit."""
    return [a.sha256 for op in ops if isinstance(op, AcceptMessage) for a in op.msg.attachments]


@dataclass
class BatchState:
    """Per-batch bookkeeping, so the writer itself keeps nothing between batches."""

    now: datetime
    new_customers: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)
    firsts: dict[tuple[str, str], Work] = field(default_factory=dict)
    dup_numbers: dict[int, str] = field(default_factory=dict)


@dataclass(eq=False)  # hashed by identity: used as a dict key within a batch
class Work:
    item: AcceptMessage
    outcome: str = ""
    error: str | None = None
    customer_id: int | None = None
    new_customer: int | None = None  # index into the batch's new customers
    case_id: int | None = None
    case_number: str | None = None
    new_case: dict[str, Any] | None = None
    reasons: tuple[str, ...] = ()
    duplicate_of: tuple[int, int | None] | None = None
    inbound_id: int = 0
    identities: list[tuple[str, str]] = field(default_factory=list)
    parent_case_id: int | None = None  # a new case linked to the closed one answered
    reopen: bool = False  # continues a closed case that the policy reopens
    joins: Work | None = None  # continues the case a batch-mate opens


def identities_of(msg: InboundMessage) -> list[tuple[str, str]]:
    sender = msg.sender
    found: list[tuple[str, str]] = []
    if sender.email:
        found.append(("email", sender.email.strip().lower()))
    if sender.phone:
        found.append(("phone", sender.phone))
    if sender.telegram_id:
        found.append(("telegram", sender.telegram_id))
    return found


def mark_duplicates(conn: Connection, work: list[Work], st: BatchState) -> None:
    keys = {(w.item.msg.channel.value, w.item.msg.external_id) for w in work if not w.item.retry_of}
    known: dict[tuple[str, str], tuple[int, int | None]] = {}
    if keys:
        rows = conn.execute(
            DUPLICATES,
            {"channels": sorted({a for a, _ in keys}), "ids": sorted({b for _, b in keys})},
        )
        found = {(r.channel, r.external_id): (r.id, r.case_id) for r in rows}
        known = {key: value for key, value in found.items() if key in keys}
    seen: dict[tuple[str, str], Work] = {}
    for w in work:
        if w.item.retry_of:
            continue
        key = (w.item.msg.channel.value, w.item.msg.external_id)
        if key in known:
            w.duplicate_of = known[key]
        elif key in seen:
            w.duplicate_of = (-1, None)  # resolved after the first one is written
            w.inbound_id = -1
        else:
            seen[key] = w
    st.firsts = seen
    numbers = {case_id for (_i, case_id) in known.values() if case_id}
    if numbers:
        rows = conn.execute(CASE_NUMBERS, {"ids": sorted(numbers)})
        st.dup_numbers = {r.id: r.number for r in rows}


def find_customers(conn: Connection, work: list[Work], st: BatchState) -> None:
    wanted = {ident for w in work for ident in w.identities}
    found: dict[tuple[str, str], int] = {}
    if wanted:
        rows = conn.execute(
            IDENTITIES,
            {"kinds": sorted({a for a, _ in wanted}), "values": sorted({b for _, b in wanted})},
        )
        found = {(r.kind, r.value): r.customer_id for r in rows if (r.kind, r.value) in wanted}
    pending: dict[tuple[str, str], int] = {}
    for w in work:
        known = next((found[i] for i in w.identities if i in found), None)
        if known is not None:
            w.customer_id = known
            # Identities this message adds to a known customer (e.g. a phone).
            w.identities = [i for i in w.identities if i not in found]
            continue
        index = next((pending[i] for i in w.identities if i in pending), None)
        if index is None:
            index = len(st.new_customers)
            st.new_customers.append((w.item.msg.sender.name, []))
        for ident in w.identities:
            if ident not in pending:
                pending[ident] = index
                st.new_customers[index][1].append(ident)
        w.new_customer = index
        w.identities = []
