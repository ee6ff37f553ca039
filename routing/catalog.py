"""The catalog (areas, statuses, priorities, severities, categories, technicians) in memory.

``CatalogSnapshot`` is an immutable copy read from the database, so the routing engine stays
pure and the accept path never queries the catalog per message. ``seed_catalog`` fills empty
tables from the config's ``[catalog]`` section on first start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import Database
from storage.models import Area, Category, Priority, Severity, Status, Technician


@dataclass(frozen=True, slots=True)
class Item:
    """An area, status, priority or severity: what routing needs of it."""

    id: int
    name: str
    is_default: bool = False
    kind: str = ""  # statuses: open | pending | closed
    rank: int = 0
    colour: str = ""


@dataclass(frozen=True, slots=True)
class TechnicianItem:
    id: int
    name: str
    email: str | None
    phone: str | None
    area_id: int | None
    active: bool


@dataclass(frozen=True, slots=True)
class CategoryItem:
    id: int
    name: str
    comment: str
    price: Decimal | None
    area_id: int | None
    technician_id: int | None
    in_use: bool
    available_technician_app: bool
    available_customer_app: bool
    available_web_portal: bool
    customer_description: str
    colour: str
    subreasons: tuple[str, ...]
    is_default: bool

    @property
    def public_name(self) -> str:
        return self.customer_description or self.name


def _by_name(items: tuple[Any, ...]) -> dict[str, Any]:
    return {item.name.casefold(): item for item in items}


@dataclass(frozen=True)
class CatalogSnapshot:
    areas: tuple[Item, ...] = ()
    statuses: tuple[Item, ...] = ()
    priorities: tuple[Item, ...] = ()
    severities: tuple[Item, ...] = ()
    categories: tuple[CategoryItem, ...] = ()
    technicians: tuple[TechnicianItem, ...] = ()
    _index: dict[str, dict[Any, Any]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index["#default"] = {}
        for kind in ("areas", "statuses", "priorities", "severities", "categories", "technicians"):
            self._index[kind] = _by_name(getattr(self, kind))
            self._index[kind + "#id"] = {item.id: item for item in getattr(self, kind)}
            defaults = [i for i in getattr(self, kind) if getattr(i, "is_default", False)]
            self._index["#default"][kind] = defaults[0] if defaults else None

    def find(self, kind: str, name: str | None) -> Any | None:
        """Look an item up by name, case-insensitively; None when absent."""
        return self._index[kind].get(name.casefold()) if name else None

    def get(self, kind: str, item_id: int | None) -> Any | None:
        return self._index[kind + "#id"].get(item_id) if item_id is not None else None

    def default(self, kind: str) -> Any | None:
        return self._index["#default"][kind]

    def portal_categories(self) -> list[CategoryItem]:
        """Categories a customer may choose on the web form (in use and on the portal)."""
        return [c for c in self.categories if c.in_use and c.available_web_portal]


class CatalogCache:
    """Holds the current snapshot; ``refresh`` after any catalog change (or SIGHUP)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.current = CatalogSnapshot()

    async def refresh(self) -> CatalogSnapshot:
        async with self._db.session() as session:
            self.current = await load_catalog(session)
        return self.current


async def load_catalog(session: AsyncSession) -> CatalogSnapshot:
    def items(rows: Any) -> tuple[Item, ...]:
        return tuple(
            Item(
                id=r.id,
                name=r.name,
                is_default=r.is_default,
                kind=getattr(r, "kind", ""),
                rank=getattr(r, "rank", 0),
                colour=getattr(r, "colour", ""),
            )
            for r in rows
        )

    areas = (await session.scalars(select(Area).order_by(Area.id))).all()
    statuses = (await session.scalars(select(Status).order_by(Status.rank, Status.id))).all()
    priorities = (await session.scalars(select(Priority).order_by(Priority.rank))).all()
    severities = (await session.scalars(select(Severity).order_by(Severity.rank))).all()
    techs = (await session.scalars(select(Technician).order_by(Technician.id))).all()
    cats = (await session.scalars(select(Category).order_by(Category.id))).all()
    return CatalogSnapshot(
        areas=items(areas),
        statuses=items(statuses),
        priorities=items(priorities),
        severities=items(severities),
        technicians=tuple(
            TechnicianItem(t.id, t.name, t.email, t.phone, t.area_id, t.active) for t in techs
        ),
        categories=tuple(
            CategoryItem(
                id=c.id,
                name=c.name,
                comment=c.comment,
                price=c.price,
                area_id=c.area_id,
                technician_id=c.technician_id,
                in_use=c.in_use,
                available_technician_app=c.available_technician_app,
                available_customer_app=c.available_customer_app,
                available_web_portal=c.available_web_portal,
                customer_description=c.customer_description,
                colour=c.colour,
                subreasons=tuple(c.subreasons or ()),
                is_default=c.is_default,
            )
            for c in cats
        ),
    )
