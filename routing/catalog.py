"""The catalog (areas, statuses, priorities, severities, categories, technicians) in memory.

``CatalogSnapshot`` is an immutable copy read from the database, so the routing engine stays
pure and the accept path never queries the catalog per message. Every catalog change bumps
the ``catalog`` counter; readers compare it to the version of their snapshot and reload
when it moved (``CatalogCache`` on the event loop, ``cases.catalog_state`` in the writer),
so a change applies to the next message without a restart, on every daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.db import Database
from storage.models import (
    Area,
    Category,
    Counter,
    Priority,
    Severity,
    Status,
    Technician,
    TechnicianArea,
)


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
    language: str
    area_ids: tuple[int, ...]
    available: bool


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


CATALOG_VERSION = select(Counter.value).where(Counter.name == "catalog")


class CatalogCache:
    """Holds the current snapshot for the event loop's readers (web form, API validation);
    ``refresh`` after a catalog change here, ``refresh_if_changed`` to see other daemons'."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.current = CatalogSnapshot()
        self.version: int | None = None

    async def refresh(self) -> CatalogSnapshot:
        async with self._db.session() as session:
            version = await session.scalar(CATALOG_VERSION)
            self.current = catalog_from_rows(await _rows_async(session))
            self.version = version
        return self.current

    async def refresh_if_changed(self) -> bool:
        async with self._db.session() as session:
            version = await session.scalar(CATALOG_VERSION)
        if version == self.version:
            return False
        await self.refresh()
        return True


_STATEMENTS = (
    select(Area).order_by(Area.id),
    select(Status).order_by(Status.rank, Status.id),
    select(Priority).order_by(Priority.rank, Priority.id),
    select(Severity).order_by(Severity.rank, Severity.id),
    select(Technician).order_by(Technician.id),
    select(Category).order_by(Category.id),
    select(TechnicianArea.technician_id, TechnicianArea.area_id),
)


async def _rows_async(session: AsyncSession) -> list[list[Any]]:
    rows = [list((await session.scalars(stmt)).all()) for stmt in _STATEMENTS[:-1]]
    rows.append(list((await session.execute(_STATEMENTS[-1])).all()))
    return rows


def _rows_sync(session: Session) -> list[list[Any]]:
    rows = [list(session.scalars(stmt).all()) for stmt in _STATEMENTS[:-1]]
    rows.append(list(session.execute(_STATEMENTS[-1]).all()))
    return rows


async def load_catalog(session: AsyncSession) -> CatalogSnapshot:
    return catalog_from_rows(await _rows_async(session))


def load_catalog_sync(conn: Connection) -> CatalogSnapshot:
    """The catalog as ``conn``'s transaction sees it (the writer's own changes included)."""
    with Session(bind=conn) as session:
        return catalog_from_rows(_rows_sync(session))


def catalog_from_rows(rows: list[list[Any]]) -> CatalogSnapshot:
    areas, statuses, priorities, severities, techs, cats, tech_areas = rows

    def items(found: list[Any]) -> tuple[Item, ...]:
        return tuple(
            Item(
                id=r.id,
                name=r.name,
                is_default=r.is_default,
                kind=getattr(r, "kind", ""),
                rank=getattr(r, "rank", 0),
                colour=getattr(r, "colour", ""),
            )
            for r in found
        )

    areas_of: dict[int, list[int]] = {}
    for tech_id, area_id in tech_areas:
        areas_of.setdefault(tech_id, []).append(area_id)
    return CatalogSnapshot(
        areas=items(areas),
        statuses=items(statuses),
        priorities=items(priorities),
        severities=items(severities),
        technicians=tuple(
            TechnicianItem(
                t.id,
                t.name,
                t.email,
                t.phone,
                t.language,
                tuple(sorted(areas_of.get(t.id, ()))),
                t.available,
            )
            for t in techs
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
