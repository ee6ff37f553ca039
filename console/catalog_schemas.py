"""Bodies of the catalog API (seed 004's fields), one create and one change model per kind.

A create names every field it wants (``name`` is required, the rest have the defaults of
the product); a change (PATCH) names only what changes. References to other catalog items
are by name (``area``, ``technician``, ``areas``), as in the TOML export.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

Name = Field(min_length=1, max_length=200)
Colour = Field(pattern=r"^#[0-9a-fA-F]{6}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AreaIn(Strict):
    name: str = Name
    is_default: bool = False


class StatusIn(Strict):
    name: str = Name
    kind: Literal["open", "pending", "closed"] = "open"
    rank: int = Field(0, ge=-1_000_000, le=1_000_000)
    is_default: bool = False


class PriorityIn(Strict):
    name: str = Name
    colour: str = Field("#808080", pattern=r"^#[0-9a-fA-F]{6}$")
    rank: int = Field(0, ge=-1_000_000, le=1_000_000)
    is_default: bool = False


class SeverityIn(Strict):
    name: str = Name
    rank: int = Field(0, ge=-1_000_000, le=1_000_000)
    is_default: bool = False


class CategoryIn(Strict):
    name: str = Name
    comment: str = Field("", max_length=10_000)
    price: float | None = Field(None, ge=0, lt=1e10)
    area: str | None = None
    technician: str | None = None
    in_use: bool = True
    available_technician_app: bool = True
    available_customer_app: bool = True
    available_web_portal: bool = True
    customer_description: str = Field("", max_length=10_000)
    colour: str = Field("#808080", pattern=r"^#[0-9a-fA-F]{6}$")
    # A list, or seed 004's one text with the items separated by semicolons.
    subreasons: list[str] | str = []
    is_default: bool = False


class TechnicianIn(Strict):
    name: str = Name
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)
    language: Literal["es", "en"] = "es"
    areas: list[str] = []
    available: bool = True


def _patch_of(model: type[BaseModel]) -> type[BaseModel]:
    """The same fields, every one optional and without a default (PATCH)."""
    fields: dict[str, Any] = {
        name: (Optional[info.annotation], Field(None, **_constraints(info)))  # noqa: UP045
        for name, info in model.model_fields.items()
    }
    patch: type[BaseModel] = create_model(
        model.__name__.replace("In", "Change"), __base__=Strict, **fields
    )
    return patch


def _constraints(info: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in info.metadata:
        for key in ("min_length", "max_length", "pattern", "ge", "le", "lt"):
            value = getattr(meta, key, None)
            if value is not None:
                found[key] = value
    return found


CREATE: dict[str, type[BaseModel]] = {
    "areas": AreaIn,
    "statuses": StatusIn,
    "priorities": PriorityIn,
    "severities": SeverityIn,
    "categories": CategoryIn,
    "technicians": TechnicianIn,
}
CHANGE: dict[str, type[BaseModel]] = {kind: _patch_of(model) for kind, model in CREATE.items()}


def _out_of(model: type[BaseModel]) -> type[BaseModel]:
    """What the API answers: the id and every field, without the input's constraints (the
    database may hold values from before a constraint existed)."""
    fields: dict[str, Any] = {"id": (int, ...)}
    fields.update({name: (info.annotation, ...) for name, info in model.model_fields.items()})
    if "subreasons" in fields:
        fields["subreasons"] = (list[str], ...)  # always answered as a list
    out: type[BaseModel] = create_model(model.__name__.replace("In", "Out"), **fields)
    return out


OUT: dict[str, type[BaseModel]] = {kind: _out_of(model) for kind, model in CREATE.items()}
PAGE: dict[str, type[BaseModel]] = {
    kind: create_model(
        f"{model.__name__.replace('Out', '')}Page",
        items=(list[model], ...),  # type: ignore[valid-type]
        next_cursor=(str | None, ...),
    )
    for kind, model in OUT.items()
}
