"""The routing engine: a pure function from a message, its preset and the catalog to a Decision.

No I/O and no clock reads: the same inputs always give the same Decision, with a reason for
every field it sets, so ``ventanilla route explain`` and the case's events can say why.
This is the minimum the foundation needs (category → area → default technician, defaults
for status, priority and severity); rules as data extend it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.catalog import CatalogSnapshot


class RoutingError(Exception):
    """The catalog cannot route this message (e.g. no default status configured)."""


@dataclass(frozen=True, slots=True)
class RoutingInput:
    """The message facts routing looks at (typed fields, never channel objects)."""

    channel: str
    category: str | None = None
    subreason: str | None = None
    area: str | None = None
    priority: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    status_id: int
    priority_id: int
    severity_id: int
    category_id: int | None
    area_id: int | None
    assignee_id: int | None
    subreason: str | None
    reasons: tuple[str, ...] = field(default=())


class RuleEngine:
    """Decides where a new case goes. Stateless; hold one per catalog snapshot or share it."""

    def decide(self, msg: RoutingInput, catalog: CatalogSnapshot) -> Decision:
        reasons: list[str] = []

        status = catalog.default("statuses")
        priority = catalog.find("priorities", msg.priority)
        if priority is not None:
            reasons.append(f"priority {priority.name}: preset on the {msg.channel} intake")
        else:
            priority = catalog.default("priorities")
            if priority is not None:
                reasons.append(f"priority {priority.name}: default priority")
        severity = catalog.default("severities")
        if status is None or priority is None or severity is None:
            raise RoutingError("the catalog has no default status, priority or severity")
        reasons.append(f"status {status.name}: default status")
        reasons.append(f"severity {severity.name}: default severity")

        category = catalog.find("categories", msg.category)
        if category is not None and not category.in_use:
            reasons.append(f"category {category.name} is not in use: default category instead")
            category = None
        if category is not None:
            reasons.append(f"category {category.name}: chosen by the customer")
        else:
            category = catalog.default("categories")
            if category is not None:
                reasons.append(f"category {category.name}: default category")

        area = catalog.find("areas", msg.area)
        if area is not None:
            reasons.append(f"area {area.name}: preset on the {msg.channel} intake")
        elif category is not None and category.area_id is not None:
            area = catalog.get("areas", category.area_id)
            if area is not None:
                reasons.append(f"area {area.name}: area of category {category.name}")
        if area is None:
            area = catalog.default("areas")
            if area is not None:
                reasons.append(f"area {area.name}: default area")

        assignee = None
        if category is not None and category.technician_id is not None:
            tech = catalog.get("technicians", category.technician_id)
            if tech is not None and tech.available:
                assignee = tech
                reasons.append(f"assignee {tech.name}: default technician of {category.name}")
        if assignee is None:
            reasons.append("unassigned: no default technician applies")

        subreason = None
        if msg.subreason and category is not None:
            known = {s.casefold(): s for s in category.subreasons}
            subreason = known.get(msg.subreason.casefold(), msg.subreason)

        return Decision(
            status_id=status.id,
            priority_id=priority.id,
            severity_id=severity.id,
            category_id=category.id if category else None,
            area_id=area.id if area else None,
            assignee_id=assignee.id if assignee else None,
            subreason=subreason,
            reasons=tuple(reasons),
        )
