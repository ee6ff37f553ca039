"""Who hears what when a case changes (the defaults; rules will make them configurable):

- the assigned technician, on assignment and reassignment, through their channels in their
  order of preference (``technician_channels``; without any, their email, else their
  phone): the notice goes on the first, and the rest are its fallback, tried in turn when
  one fails for good;
- the customer, when a public case moves to a pending or closed status, on the channel they
  wrote by;
- the case's watchers, of every status change, by email.

Each becomes an outbox row in the caller's transaction (``notifiers.outbox``). Templates
are named ``<what>_<channel>``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from cases.catalog_state import CatalogInTransaction
from notifiers.outbox import OutboundRequest
from routing.catalog import CatalogSnapshot
from storage.models import Case, Technician, TechnicianChannel
from storage.operations import WriteContext

# What ``case_context`` reads of a case.
CONTEXT_COLUMNS = (
    Case.id, Case.number, Case.title, Case.status_id, Case.assignee_id, Case.area_id,
    Case.category_id,
)  # fmt: skip

# Where a customer is answered, by the channel they wrote by (the form and the API: email
# when there is an address, else SMS).
CUSTOMER_CHANNEL = {"email": "email", "sms": "sms", "telegram": "telegram"}


def case_context(case: Any, catalog: CatalogSnapshot, **more: Any) -> dict[str, Any]:
    """What every notice about a case can say."""
    status = catalog.get("statuses", case.status_id)
    tech = catalog.get("technicians", case.assignee_id)
    area = catalog.get("areas", case.area_id)
    category = catalog.get("categories", case.category_id)
    return {
        "case_number": case.number,
        "title": case.title,
        "status": status.name if status else "",
        "technician_name": tech.name if tech else "",
        "area": area.name if area else "",
        "category": category.public_name if category else "",
        **more,
    }


class CurrentCaseContext:
    """``(conn, case ids, ctx)`` → each case's notice context as it is now (what a resend
    renders again from), by id; cases that are gone are left out. The cases are read
    together, a chunk of ids per query, with only the columns ``case_context`` reads."""

    CHUNK = 500

    def __init__(self, catalogs: CatalogInTransaction) -> None:
        self.catalogs = catalogs

    def __call__(
        self, conn: Connection, case_ids: Collection[int], ctx: WriteContext
    ) -> dict[int, dict[str, Any]]:
        wanted = sorted(set(case_ids))
        if not wanted:
            return {}
        catalog = self.catalogs.get(conn, ctx)
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(wanted), self.CHUNK):
            rows = conn.execute(
                select(*CONTEXT_COLUMNS).where(Case.id.in_(wanted[start : start + self.CHUNK]))
            )
            found.update((row.id, case_context(row, catalog)) for row in rows)
        return found


def customer_address(case: Any) -> tuple[str, str] | None:
    """(channel, address) the customer is answered on, or None when there is none."""
    contact = (case.contact or "").strip()
    if not contact:
        return None
    channel = CUSTOMER_CHANNEL.get(case.origin_channel)
    if channel is None:  # web form, API: by what the contact is
        channel = "email" if "@" in contact else "sms"
    return channel, contact


def technician_routes(
    conn: Connection, technician_ids: Iterable[int]
) -> dict[int, tuple[str, list[dict[str, str]]]]:
    """Each technician's language and channels in order (without any configured: their
    email, else their phone), read in two queries for any number of technicians."""
    ids = sorted(set(technician_ids))
    if not ids:
        return {}
    techs = {
        r.id: r
        for r in conn.execute(
            select(Technician.id, Technician.email, Technician.phone, Technician.language).where(
                Technician.id.in_(ids)
            )
        )
    }
    routes: dict[int, list[dict[str, str]]] = {}
    for r in conn.execute(
        select(
            TechnicianChannel.technician_id,
            TechnicianChannel.channel,
            TechnicianChannel.provider,
            TechnicianChannel.address,
        )
        .where(TechnicianChannel.technician_id.in_(ids))
        .order_by(TechnicianChannel.technician_id, TechnicianChannel.position)
    ):
        routes.setdefault(r.technician_id, []).append(
            {"channel": r.channel, "provider": r.provider, "address": r.address}
        )
    found: dict[int, tuple[str, list[dict[str, str]]]] = {}
    for tech_id, tech in techs.items():
        mine = routes.get(tech_id) or [
            {"channel": channel, "provider": "", "address": address}
            for channel, address in (("email", tech.email), ("sms", tech.phone))
            if address
        ]
        found[tech_id] = (tech.language, mine)
    return found


def technician_notice(
    technician_id: int,
    route: tuple[str, list[dict[str, str]]] | None,
    template: str,
    context: dict[str, Any],
    case_id: int | None,
    customer_id: int | None,
) -> list[OutboundRequest]:
    """The notice for one technician on their first channel, the others as fallback."""
    if route is None or not route[1]:
        return []
    language, (first, *rest) = route[0], route[1]
    return [
        OutboundRequest(
            channel=first["channel"],
            template=f"{template}_{first['channel']}",
            language=language,
            recipient=first["address"],
            context=context,
            case_id=case_id,
            customer_id=customer_id,
            provider=first["provider"],
            audience="technician",
            technician_id=technician_id,
            fallback=tuple(rest),
        )
    ]


def status_notices(
    case: Row[Any] | Any,
    before: Any,
    after: Any,
    catalog: CatalogSnapshot,
    watchers: Iterable[str],
) -> list[OutboundRequest]:
    """The customer (public case, now pending or closed) and the watchers."""
    context = case_context(case, catalog, previous_status=before.name if before else "")
    found: list[OutboundRequest] = []
    where = customer_address(case)
    if case.is_public and after is not None and after.kind in ("pending", "closed") and where:
        channel, address = where
        found.append(
            OutboundRequest(
                channel, f"status_{channel}", case.language, address, context,
                case.id, case.customer_id,
            )
        )  # fmt: skip
    for watcher in watchers:
        found.append(
            OutboundRequest(
                "email", "watch_email", case.language, watcher, context, case.id,
                case.customer_id, audience="watcher",
            )
        )  # fmt: skip
    return found
