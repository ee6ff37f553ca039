"""First-start seeding of the catalog from the config's ``[catalog]`` section.

Runs only when the catalog tables are empty, so edits made later through the API are never
overwritten by a restart. The shipped config carries the Spanish defaults of the seeds.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from config.settings import CatalogSettings
from storage.models import (
    Area,
    Category,
    Priority,
    Severity,
    Status,
    Technician,
    TechnicianArea,
)


async def seed_catalog(session: AsyncSession, catalog: CatalogSettings) -> bool:
    """Insert the configured catalog if no status exists yet. Returns True if it seeded."""
    if await session.scalar(select(func.count()).select_from(Status)):
        return False
    areas = {a.name: Area(name=a.name, is_default=a.default) for a in catalog.areas}
    session.add_all(areas.values())
    session.add_all(
        Status(name=s.name, kind=s.kind, rank=i, is_default=s.default)
        for i, s in enumerate(catalog.statuses)
    )
    session.add_all(
        Priority(name=p.name, colour=p.colour, rank=p.rank, is_default=p.default)
        for p in catalog.priorities
    )
    session.add_all(
        Severity(name=s.name, rank=s.rank, is_default=s.default) for s in catalog.severities
    )
    await session.flush()
    techs = {
        t.name: Technician(
            name=t.name, email=t.email, phone=t.phone, language=t.language, available=t.available
        )
        for t in catalog.technicians
    }
    session.add_all(techs.values())
    await session.flush()
    session.add_all(
        TechnicianArea(technician_id=techs[t.name].id, area_id=areas[name].id)
        for t in catalog.technicians
        for name in t.area_names()
    )
    session.add_all(
        Category(
            name=c.name,
            comment=c.comment,
            price=Decimal(str(c.price)) if c.price is not None else None,
            area_id=areas[c.area].id if c.area else None,
            technician_id=techs[c.technician].id if c.technician else None,
            in_use=c.in_use,
            available_technician_app=c.available_technician_app,
            available_customer_app=c.available_customer_app,
            available_web_portal=c.available_web_portal,
            customer_description=c.customer_description,
            colour=c.colour,
            subreasons=[s.strip() for s in c.subreasons if s.strip()],
            is_default=c.default,
        )
        for c in catalog.categories
    )
    return True
