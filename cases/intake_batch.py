"""The intake's executor: a batch of ``AcceptMessage`` written inside one transaction, set-based.

For a batch the writer issues a fixed number of statements (dedup lookup, identity lookup,
thread lookup, then one multi-row INSERT per table) instead of a dozen per message: the
per-statement round trip through the async driver is what makes naive intake slow (see
PERFORMANCE.md). A message whose routing raises is stored as a failed inbound row in the
same batch. If the batch raises, the runner (``storage.operations``) tries each message
alone, and one that still fails is kept by ``failed`` as a failed inbound row.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import Connection

from cases.acks import AckLimiter, acknowledgements
from cases.batch_locks import lock_threads
from cases.bounces import mark_bounced
from cases.catalog_state import CatalogInTransaction
from cases.chat_threads import CaseMentions
from cases.events import event_row
from cases.inbound_failures import record_failed_inbound
from cases.lookups import (
    BatchState,
    Work,
    find_customers,
    identities_of,
    mark_duplicates,
)
from cases.notices import case_context, technician_notice, technician_routes
from cases.numbering import CaseNumbers
from cases.opening import open_case
from cases.operations import AcceptMessage, RecordFailedInbound
from cases.statements import CASE_NUMBERS, REOPEN_CASES, TOUCH_CASES
from cases.threads import ThreadingPolicy, find_threads
from intake.message import AcceptResult
from notifiers.outbox import OutboundRequest, Outbox
from routing.catalog import CatalogSnapshot
from routing.engine import RuleEngine
from storage.bulk import core_insert, insert_returning_ids
from storage.models import (
    Attachment,
    Case,
    CaseEvent,
    Customer,
    CustomerIdentity,
    Inbound,
    Message,
    MessageRef,
)
from storage.operations import Executor, WriteContext

# Reply references kept per message: In-Reply-To and the newest References are the ones a
# late original can be.
MAX_REFS = 10


class IntakeBatch(Executor):
    """Turns a batch of ``AcceptMessage`` into rows. Holds no state between batches."""

    isolated = False

    def __init__(
        self,
        outbox: Outbox,
        engine: RuleEngine,
        catalogs: CatalogInTransaction,
        numbers: CaseNumbers,
        *,
        threading: ThreadingPolicy | None = None,
        acks_per_sender_per_day: int = 0,
        missing_files: Callable[[list[str]], set[str]] | None = None,
    ) -> None:
        """``missing_files`` names the attachment digests not in the store: a message
        naming one fails alone (kept as a failed row) instead of committing a dangling
        reference."""
        self.missing_files = missing_files
        self.outbox = outbox
        self.engine = engine
        self.catalogs = catalogs
        self.numbers = numbers
        self.threading = threading or ThreadingPolicy()
        self.acks_per_day = acks_per_sender_per_day
        self._refs = random.Random(secrets.randbits(128))
        self._tag = re.compile(r"\[(" + re.escape(numbers.prefix) + r"\d{1,12})\]")
        self._mentions = CaseMentions(numbers.prefix, numbers.width)

    def _new_ref(self) -> str:
        # Unique, not secret: a PRNG seeded once from the OS. uuid4() per row would make a
        # getrandom() syscall per customer, and every syscall in this thread hands the GIL
        # to the event loop and waits to get it back (measured: it doubled the insert time).
        return f"{self._refs.getrandbits(128):032x}"

    def run(
        self, conn: Connection, ops: Sequence[AcceptMessage], ctx: WriteContext
    ) -> list[AcceptResult]:
        catalog = self.catalogs.get(conn, ctx)
        now = ctx.now
        st = BatchState(now=now)
        work = [Work(item=op, identities=identities_of(op.msg)) for op in ops]
        lock_threads(conn, work, self._tag)
        mark_duplicates(conn, work, st)
        fresh = [w for w in work if w.duplicate_of is None]
        self._check_files(fresh)
        usable = [w for w in fresh if w.outcome != "failed"]
        find_customers(conn, usable, st)
        find_threads(conn, usable, self._tag, self.threading, catalog, now, self._mentions)
        self._route_openers(usable, catalog, now)
        self._insert_customers(conn, usable, st)
        self._insert_cases(conn, usable, catalog, now)
        self._insert_inbound(conn, fresh, now)
        self._insert_timeline(conn, fresh, catalog, now)
        return [self._result(w, st) for w in work]

    def _check_files(self, work: list[Work]) -> None:
        wanted = [a.sha256 for w in work for a in w.item.msg.attachments]
        if not wanted or self.missing_files is None:
            return
        missing = self.missing_files(wanted)
        for w in work:
            gone = [a.sha256 for a in w.item.msg.attachments if a.sha256 in missing]
            if gone:
                w.outcome = "failed"
                w.error = f"attachment {gone[0]} is not in the store"

    def failed(
        self, conn: Connection, op: AcceptMessage, error: Exception, ctx: WriteContext
    ) -> AcceptResult:
        """Keep the message as a failed row: nothing accepted is ever lost."""
        msg = op.msg
        return record_failed_inbound(
            conn,
            RecordFailedInbound(
                msg.channel, msg.external_id, msg.raw, f"{type(error).__name__}: {error}"
            ),
            ctx.now,
            normalized=msg.to_json(),
            retry_of=op.retry_of,
        )

    def _route_openers(self, work: list[Work], catalog: CatalogSnapshot, now: datetime) -> None:
        """Route every message that opens a case; a batch-mate joining an opener whose
        routing failed opens the case itself (and later joiners follow it)."""
        replaced: dict[int, Work] = {}
        for w in work:
            if w.joins is not None:
                opener = replaced.get(id(w.joins), w.joins)
                if opener.outcome == "created":
                    w.joins = opener
                    continue
                replaced[id(w.joins)] = w
                w.joins, w.outcome, w.reasons = None, "", ()
            if w.case_id is None:
                open_case(w, self.engine, catalog, now)

    # --- lookups ---------------------------------------------------------------------

    # --- inserts ---------------------------------------------------------------------

    def _insert_customers(self, conn: Connection, work: list[Work], st: BatchState) -> None:
        now = st.now
        ids: list[int] = []
        if st.new_customers:
            ids = insert_returning_ids(
                conn,
                Customer.__table__,
                [
                    {"ref": self._new_ref(), "name": name, "created_at": now, "updated_at": now}
                    for name, _ in st.new_customers
                ],
                "ref",
            )
        rows = [
            {"customer_id": ids[i], "kind": kind, "value": value, "created_at": now}
            for i, (_name, idents) in enumerate(st.new_customers)
            for kind, value in idents
        ]
        rows += [
            {"customer_id": w.customer_id, "kind": kind, "value": value, "created_at": now}
            for w in work
            if w.customer_id is not None
            for kind, value in w.identities
        ]
        if rows:
            core_insert(conn, CustomerIdentity.__table__, rows)
        for w in work:
            if w.new_customer is not None:
                w.customer_id = ids[w.new_customer]

    def _insert_cases(
        self, conn: Connection, work: list[Work], catalog: CatalogSnapshot, now: datetime
    ) -> None:
        new = [w for w in work if w.new_case is not None and w.outcome == "created"]
        if new:
            for w, number in zip(new, self.numbers.reserve(conn, len(new)), strict=True):
                w.case_number = number
                assert w.new_case is not None
                w.new_case.update(number=w.case_number, customer_id=w.customer_id)
            case_ids = insert_returning_ids(
                conn, Case.__table__, [w.new_case for w in new if w.new_case], "number"
            )
            for w, case_id in zip(new, case_ids, strict=True):
                w.case_id = case_id
        for w in work:
            if w.joins is not None:
                w.case_id, w.case_number = w.joins.case_id, w.joins.case_number
        continued = {w.case_id for w in work if w.outcome == "continued" and w.joins is None}
        if continued:
            conn.execute(TOUCH_CASES, {"ids": list(continued), "now": now})
            reopened = {w.case_id for w in work if w.reopen and w.outcome == "continued"}
            status = catalog.find("statuses", self.threading.reopen_status) or catalog.default(
                "statuses"
            )
            if reopened and status is not None:
                conn.execute(REOPEN_CASES, {"ids": list(reopened), "status": status.id})
            rows = conn.execute(CASE_NUMBERS, {"ids": list(continued)})
            numbers = {r.id: r.number for r in rows}
            for w in work:
                if w.outcome == "continued" and w.joins is None and w.case_id is not None:
                    w.case_number = numbers[w.case_id]

    def _insert_inbound(self, conn: Connection, work: list[Work], now: datetime) -> None:
        fresh = [w for w in work if w.item.retry_of is None]
        if fresh:
            inbound_ids = insert_returning_ids(
                conn,
                Inbound.__table__,
                [self._inbound_row(w, now) for w in fresh],
                "channel",
                "external_id",
            )
            for w, inbound_id in zip(fresh, inbound_ids, strict=True):
                w.inbound_id = inbound_id
        for w in work:
            if w.item.retry_of is not None:
                w.inbound_id = w.item.retry_of
                row = self._inbound_row(w, now)
                conn.execute(
                    update(Inbound)
                    .where(Inbound.id == w.item.retry_of)
                    .values(
                        status=row["status"],
                        error=row["error"],
                        case_id=row["case_id"],
                        normalized=row["normalized"],
                        retries=Inbound.retries + 1,
                    )
                )

    def _inbound_row(self, w: Work, now: datetime) -> dict[str, Any]:
        msg = w.item.msg
        return {
            "channel": msg.channel.value,
            "external_id": w.external_id or msg.external_id,
            "fingerprint": msg.fingerprint,
            "received_at": now,
            "status": "failed" if w.outcome == "failed" else "processed",
            "error": w.error,
            "raw": msg.raw,
            # A processed message's normalized form is its messages/attachments rows; the
            # JSON copy is kept only where a replay will need it.
            "normalized": msg.to_json() if w.outcome == "failed" else None,
            "case_id": w.case_id,
            "retries": 0,
        }

    def _insert_timeline(
        self, conn: Connection, work: list[Work], catalog: CatalogSnapshot, now: datetime
    ) -> None:
        ok = [w for w in work if w.outcome in ("created", "continued")]
        if not ok:
            return
        message_ids = insert_returning_ids(
            conn,
            Message.__table__,
            [
                {
                    "case_id": w.case_id,
                    "inbound_id": w.inbound_id,
                    "direction": "in",
                    "channel": w.item.msg.channel.value,
                    "external_id": w.item.msg.external_id,
                    "sender": w.item.msg.sender.display()[:320],
                    "subject": w.item.msg.subject[:1000],
                    "text": w.item.msg.text,
                    "html": w.item.msg.html,
                    "auto_submitted": w.item.msg.auto_submitted,
                    "created_at": now,
                }
                for w in ok
            ],
            "inbound_id",
        )
        attachments = [
            {
                "message_id": mid,
                "sha256": a.sha256,
                "size": a.size,
                "content_type": a.content_type,
                "filename": a.filename,
            }
            for w, mid in zip(ok, message_ids, strict=True)
            for a in w.item.msg.attachments
        ]
        if attachments:
            core_insert(conn, Attachment.__table__, attachments)
        refs = [
            {"message_id": mid, "ref": ref[:500]}
            for w, mid in zip(ok, message_ids, strict=True)
            for ref in dict.fromkeys(w.item.msg.in_reply_to[:MAX_REFS])
        ]
        if refs:
            core_insert(conn, MessageRef.__table__, refs)
        events: list[dict[str, Any]] = []
        acks: list[OutboundRequest] = []
        wanted = acknowledgements(conn, ok, catalog, now)
        recipients = {a.recipient for a in wanted.values() if isinstance(a, OutboundRequest)}
        limiter = AckLimiter(conn, recipients, self.acks_per_day, now)
        for w in ok:
            msg = w.item.msg
            if w.outcome == "created":
                events.append(self._event(w, "created", {"channel": msg.channel.value}, now))
                events.append(self._event(w, "routed", {"reasons": list(w.reasons)}, now))
            else:
                detail: dict[str, Any] = {"channel": msg.channel.value}
                if w.reasons:
                    detail["reasons"] = list(w.reasons)
                events.append(self._event(w, "message_received", detail, now))
                if w.reopen:
                    events.append(
                        self._event(w, "reopened", {"status": self.threading.reopen_status}, now)
                    )
            if w.reused_id is not None:
                reuse = {"message_id": w.reused_id, "stored_as": w.external_id}
                events.append(self._event(w, "message_id_reused", reuse, now))
            if msg.reports_on:
                bounced = mark_bounced(conn, msg.reports_on, msg.report_error)
                if bounced:
                    events.append(
                        self._event(
                            w,
                            "delivery_failed",
                            {"notifications": bounced, "error": msg.report_error},
                            now,
                        )
                    )
            ack = limiter.check(wanted[w])
            if isinstance(ack, str):
                events.append(self._event(w, "ack_suppressed", {"reason": ack}, now))
            elif ack is not None:
                acks.append(ack)
        core_insert(conn, CaseEvent.__table__, events)
        self.outbox.enqueue(conn, acks + self._assignment_notices(conn, ok, catalog), now)

    def _assignment_notices(
        self, conn: Connection, work: list[Work], catalog: CatalogSnapshot
    ) -> list[OutboundRequest]:
        """The technician a new case was routed to hears of it (cases.notices)."""
        opened = [w for w in work if w.outcome == "created" and w.new_case]
        assigned = [w for w in opened if w.new_case and w.new_case.get("assignee_id")]
        if not assigned:
            return []
        routes = technician_routes(
            conn, (w.new_case["assignee_id"] for w in assigned if w.new_case)
        )
        found: list[OutboundRequest] = []
        for w in assigned:
            assert w.new_case is not None
            case = SimpleNamespace(**w.new_case)  # its number and id are set by now
            tech_id = w.new_case["assignee_id"]
            found += technician_notice(
                tech_id, routes.get(tech_id), "assigned",
                case_context(case, catalog, customer_name=w.item.msg.sender.name),
                w.case_id, w.customer_id,
            )  # fmt: skip
        return found

    def _event(self, w: Work, kind: str, detail: dict[str, Any], now: datetime) -> dict[str, Any]:
        assert w.case_id is not None
        return event_row(w.case_id, kind, detail, "system", now)

    def _result(self, w: Work, st: BatchState) -> AcceptResult:
        if w.duplicate_of is not None:
            outcome = "conflict" if w.conflict else "duplicate"
            error = "this id was already used for a different message" if w.conflict else None
            if w.duplicate_of[0] == -1:
                first = st.firsts[(w.item.msg.channel.value, w.external_id)]
                return AcceptResult(outcome, first.inbound_id, first.case_number, error)
            inbound_id, case_id = w.duplicate_of
            number = st.dup_numbers.get(case_id or 0)
            return AcceptResult(outcome, inbound_id, number, error)
        return AcceptResult(w.outcome, w.inbound_id, w.case_number, w.error, w.reasons)
