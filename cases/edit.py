"""Executors of ``UpdateCase`` and ``AddNote``: an agent's changes to one case.

A change is checked (``cases.case_fields``), written with the case's version bumped, and
recorded as an ``updated`` event with its actor and every field's before and after. The
update is conditional on the version read (optimistic locking), so two agents who read the
same version cannot both write: the second is refused as stale, and with ``If-Match`` the
caller is told so before anything changes.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection, Row

from cases.case_fields import find_case, plan_changes
from cases.catalog_state import CatalogInTransaction
from cases.events import record_event
from cases.notices import case_context, status_notices, technician_notice, technician_routes
from cases.operations import AddNote, CaseChanged, UpdateCase
from notifiers.outbox import Outbox
from storage.models import Case
from storage.operations import Executor, OperationRefused, WriteContext

MAX_NOTE = 100_000


def check_version(case: Row[Any], expected: int | None) -> None:
    if expected is not None and case.version != expected:
        raise OperationRefused(
            "stale",
            f"{case.number} changed since it was read (version {case.version}, not {expected})",
        )


def refuse_merged(conn: Connection, case: Row[Any]) -> None:
    """A merged case lives on in the case it was merged into: changes go there."""
    if case.merged_into_id is not None:
        into = conn.scalar(select(Case.number).where(Case.id == case.merged_into_id))
        raise OperationRefused("conflict", f"{case.number} was merged into {into}; use {into}")


def write_case(conn: Connection, case: Row[Any], values: dict[str, Any], ctx: WriteContext) -> int:
    """Write ``values`` and bump the version, unless someone else did meanwhile."""
    version = int(case.version) + 1
    done = conn.execute(
        update(Case)
        .where(Case.id == case.id, Case.version == case.version)
        .values(**values, version=version, updated_at=ctx.now)
    )
    if done.rowcount != 1:
        raise OperationRefused("stale", f"{case.number} changed while it was being updated")
    return version


class CaseUpdater(Executor):
    def __init__(self, catalogs: CatalogInTransaction, outbox: Outbox | None = None) -> None:
        self.catalogs = catalogs
        self.outbox = outbox  # tells the new technician, the customer, the watchers

    def run_one(self, conn: Connection, op: UpdateCase, ctx: WriteContext) -> CaseChanged:
        case = find_case(conn, op.number)
        check_version(case, op.if_version)
        refuse_merged(conn, case)
        plan = plan_changes(conn, case, op.changes, self.catalogs.get(conn, ctx), ctx.now)
        if not plan.changes:
            return CaseChanged(case.number, case.version, at=ctx.now)
        version = write_case(conn, case, plan.values, ctx)
        if self.outbox is not None:
            self._tell(conn, case, plan.values, plan.changes, ctx)
        event_id = record_event(
            conn,
            case.id,
            "updated",
            {"changes": {k: {"before": b, "after": a} for k, (b, a) in plan.changes.items()}},
            op.actor,
            ctx.now,
        )
        return CaseChanged(case.number, version, plan.changes, event_id, at=ctx.now)

    def _tell(
        self,
        conn: Connection,
        before: Row[Any],
        values: dict[str, Any],
        changes: dict[str, Any],
        ctx: WriteContext,
    ) -> None:
        """Notices of this change (cases.notices): reassignment, status change."""
        assert self.outbox is not None
        catalog = self.catalogs.get(conn, ctx)
        case = SimpleNamespace(**{**before._mapping, **values})
        requests = []
        if "assignee" in changes and case.assignee_id is not None:
            routes = technician_routes(conn, [case.assignee_id])
            context = case_context(case, catalog)
            requests += technician_notice(
                case.assignee_id, routes.get(case.assignee_id), "assigned", context,
                case.id, case.customer_id,
            )  # fmt: skip
        if "status" in changes:
            requests += status_notices(
                case,
                catalog.get("statuses", before.status_id),
                catalog.get("statuses", case.status_id),
                catalog,
                case.watchers or [],
            )
        self.outbox.enqueue(conn, requests, ctx.now)


class NoteWriter(Executor):
    def run_one(self, conn: Connection, op: AddNote, ctx: WriteContext) -> CaseChanged:
        text = op.text.strip()
        if not text:
            raise OperationRefused("invalid", "a note needs text", "text")
        if len(text) > MAX_NOTE:
            raise OperationRefused("invalid", f"a note is at most {MAX_NOTE} characters", "text")
        case = find_case(conn, op.number)
        refuse_merged(conn, case)
        event_id = record_event(conn, case.id, "note", {"text": text}, op.actor, ctx.now)
        conn.execute(update(Case).where(Case.id == case.id).values(updated_at=ctx.now))
        return CaseChanged(case.number, case.version, event_id=event_id, at=ctx.now)
