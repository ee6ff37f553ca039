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

from cases.operations import AcceptMessage, ReplyToCase
from cases.statements import CASE_NUMBERS, DUPLICATES, IDENTITIES
from intake.message import InboundMessage


def attachment_digests(ops: Sequence[object]) -> list[str]:
    """The stored files the messages and replies among ``ops`` refer to: flushed before
    the commit."""
    found = [a.sha256 for op in ops if isinstance(op, AcceptMessage) for a in op.msg.attachments]
    found += [a.sha256 for op in ops if isinstance(op, ReplyToCase) for a in op.attachments]
    return found


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
    external_id: str = ""  # the id it is stored under (derived when a Message-ID is reused)
    reused_id: str | None = None  # the reused Message-ID, recorded on the case
    conflict: bool = False  # a duplicate id with other content, on a channel that refuses


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


def _reused(stored: str | None, incoming: str | None) -> bool:
    """Another message under a known external id (both fingerprints known, different)."""
    return stored is not None and incoming is not None and stored != incoming


def reuse_id(external_id: str, fingerprint: str) -> str:
    """The id an email is stored under when its Message-ID was already taken by another
    message (broken mailers reuse them): stable, so its own retransmission dedups."""
    return f"{external_id}#{fingerprint[:16]}"


def mark_duplicates(conn: Connection, work: list[Work], st: BatchState) -> None:
    """Mark retransmissions (same channel and external id, same content) as duplicates.

    A known email Message-ID carried by different content is stored as a new message
    under a derived id, the reuse recorded; on other channels a reused id (an API
    Idempotency-Key with another body) is a conflict, answered as such.
    """
    fresh = [w for w in work if not w.item.retry_of]
    for w in fresh:
        w.external_id = w.item.msg.external_id
    known = _known(conn, {(w.item.msg.channel.value, w.external_id) for w in fresh})
    derived = [
        w
        for w in fresh
        if w.item.msg.channel.value == "email"
        and w.item.msg.fingerprint is not None
        and (w.item.msg.channel.value, w.external_id) in known
        and _reused(known[(w.item.msg.channel.value, w.external_id)][2], w.item.msg.fingerprint)
    ]
    for w in derived:
        assert w.item.msg.fingerprint is not None
        w.reused_id, w.external_id = w.external_id, reuse_id(w.external_id, w.item.msg.fingerprint)
    if derived:
        known.update(_known(conn, {("email", w.external_id) for w in derived}))
    seen: dict[tuple[str, str], Work] = {}
    for w in fresh:
        key = (w.item.msg.channel.value, w.external_id)
        if key in known:
            inbound_id, case_id, stored = known[key]
            w.duplicate_of = (inbound_id, case_id)
            w.conflict = _reused(stored, w.item.msg.fingerprint)
        elif key in seen:
            first = seen[key]
            if key[0] == "email" and _reused(first.item.msg.fingerprint, w.item.msg.fingerprint):
                assert w.item.msg.fingerprint is not None
                w.reused_id, w.external_id = (
                    w.external_id,
                    reuse_id(w.external_id, w.item.msg.fingerprint),
                )
                key = (key[0], w.external_id)
            if key in seen:
                w.duplicate_of = (-1, None)  # resolved after the first one is written
                w.inbound_id = -1
                w.conflict = _reused(seen[key].item.msg.fingerprint, w.item.msg.fingerprint)
            else:
                seen[key] = w
        else:
            seen[key] = w
    st.firsts = seen
    numbers = {case_id for (_i, case_id, _f) in known.values() if case_id}
    if numbers:
        rows = conn.execute(CASE_NUMBERS, {"ids": sorted(numbers)})
        st.dup_numbers = {r.id: r.number for r in rows}


def _known(
    conn: Connection, keys: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, int | None, str | None]]:
    if not keys:
        return {}
    rows = conn.execute(
        DUPLICATES,
        {"channels": sorted({a for a, _ in keys}), "ids": sorted({b for _, b in keys})},
    )
    found = {(r.channel, r.external_id): (r.id, r.case_id, r.fingerprint) for r in rows}
    return {key: value for key, value in found.items() if key in keys}


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
