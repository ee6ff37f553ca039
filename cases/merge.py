"""Executors of ``MergeCase`` and ``CloneCase``.

Merge: the source's messages (with their attachments), inbound records and internal notes
move to the target, its children become the target's, its tags and CC addresses join the
target's; the source is closed as merged and points to the target, so anything threaded to
it later lands on the target (``cases.threads``). Notifications stay with the case they
were sent for: the outbound log is history. Merging a case into itself, or into or from a
merged case, is refused.

Clone: a new case with the same fields, linked to the original (``cloned_from``); the
conversation is not copied.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from cases.case_fields import find_case, plan_changes
from cases.catalog_state import CatalogInTransaction
from cases.edit import refuse_merged, write_case
from cases.events import record_event
from cases.numbering import CaseNumbers
from cases.operations import CaseChanged, CloneCase, MergeCase
from routing.catalog import CatalogSnapshot, Item
from storage.models import Case, CaseEvent, Inbound, Message
from storage.operations import Executor, OperationRefused, WriteContext

# Case columns a clone copies (the rest is its own: number, times, conversation, links).
CLONED = (
    "title",
    "description",
    "status_id",
    "priority_id",
    "severity_id",
    "category_id",
    "subreason",
    "area_id",
    "assignee_id",
    "customer_id",
    "contact",
    "origin_channel",
    "language",
    "tags",
    "cc",
    "is_public",
    "parent_id",
    "solution",
)


def merged_status(catalog: CatalogSnapshot, name: str | None) -> Item:
    """The status a merged case gets: the configured one, else the first closed status."""
    status = catalog.find("statuses", name) if name else None
    if status is None:
        status = next((s for s in catalog.statuses if s.kind == "closed"), None)
    if status is None:
        raise OperationRefused("conflict", "the catalog has no closed status to merge into")
    return status


class CaseMerger(Executor):
    def __init__(self, catalogs: CatalogInTransaction, status_name: str | None = None) -> None:
        self.catalogs = catalogs
        self.status_name = status_name

    def run_one(self, conn: Connection, op: MergeCase, ctx: WriteContext) -> CaseChanged:
        # Both rows locked first, in id order (as intake batches take theirs): a batch
        # threading mail to the source commits before the move, or waits and sees the merge.
        numbers = {n.strip() for n in (op.number, op.into)} | {
            n.strip().upper() for n in (op.number, op.into)
        }
        conn.execute(
            select(Case.id).where(Case.number.in_(numbers)).order_by(Case.id).with_for_update()
        )
        source = find_case(conn, op.number)
        target = find_case(conn, op.into, "into")
        if source.id == target.id:
            raise OperationRefused("invalid", "a case cannot be merged into itself", "into")
        if target.merged_into_id is not None:
            raise OperationRefused(
                "invalid", f"{target.number} was itself merged; merge into its target", "into"
            )
        refuse_merged(conn, source)
        status = merged_status(self.catalogs.get(conn, ctx), self.status_name)
        moved = self._move(conn, source, target)
        write_case(
            conn,
            source,
            {
                "merged_into_id": target.id,
                "status_id": status.id,
                "closed_at": source.closed_at or ctx.now,
            },
            ctx,
        )
        joined: dict[str, Any] = {}
        for name in ("tags", "cc"):
            mine, theirs = list(target._mapping[name] or []), list(source._mapping[name] or [])
            union = mine + [v for v in theirs if v not in mine]
            if union != mine:
                joined[name] = union
        version = write_case(conn, target, joined, ctx)
        record_event(conn, source.id, "merged", {"into": target.number, **moved}, op.actor, ctx.now)
        event_id = record_event(
            conn, target.id, "merged_from", {"case": source.number, **moved}, op.actor, ctx.now
        )
        return CaseChanged(target.number, version, event_id=event_id, at=ctx.now)

    @staticmethod
    def _move(conn: Connection, source: Row[Any], target: Row[Any]) -> dict[str, int]:
        def move(table: Any, *where: Any, column: Any = None) -> int:
            column = column if column is not None else table.case_id
            done = conn.execute(
                update(table).where(column == source.id, *where).values({column.key: target.id})
            )
            return int(done.rowcount)

        return {
            "messages": move(Message),
            "inbound": move(Inbound),
            "notes": move(CaseEvent, CaseEvent.kind == "note"),
            "children": move(Case, column=Case.parent_id),
        }


class CaseCloner(Executor):
    def __init__(self, catalogs: CatalogInTransaction, numbers: CaseNumbers) -> None:
        self.catalogs = catalogs
        self.numbers = numbers

    def run_one(self, conn: Connection, op: CloneCase, ctx: WriteContext) -> CaseChanged:
        original = find_case(conn, op.number)
        refuse_merged(conn, original)
        (number,) = self.numbers.reserve(conn, 1)
        values = {name: original._mapping[name] for name in CLONED}
        catalog = self.catalogs.get(conn, ctx)
        status = catalog.get("statuses", values["status_id"])
        case_id = conn.scalar(
            insert(Case)
            .values(
                **values,
                number=number,
                cloned_from_id=original.id,
                escalation_level=0,
                version=1,
                created_at=ctx.now,
                updated_at=ctx.now,
                closed_at=ctx.now if status is not None and status.kind == "closed" else None,
            )
            .returning(Case.id)
        )
        assert case_id is not None
        clone = find_case(conn, number)
        version = 1
        if op.changes:
            plan = plan_changes(conn, clone, op.changes, catalog, ctx.now)
            if plan.values:
                version = write_case(conn, clone, plan.values, ctx)
        record_event(conn, original.id, "cloned_to", {"case": number}, op.actor, ctx.now)
        event_id = record_event(
            conn, case_id, "cloned_from", {"case": original.number}, op.actor, ctx.now
        )
        return CaseChanged(number, version, event_id=event_id, created=number, at=ctx.now)
