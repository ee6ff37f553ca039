"""Routes that describe themselves: each ``Endpoint`` is both an aiohttp route and the
OpenAPI operation that documents it (``console.openapi``), so the document cannot leave a
route out or describe a body the handler does not check.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Param:
    name: str
    where: Literal["query", "path", "header"]
    schema: Mapping[str, Any]
    description: str = ""
    required: bool = False
    example: Any = None


@dataclass(frozen=True)
class Answer:
    """One documented response: a JSON model, or another media type with a plain schema."""

    description: str
    model: type[BaseModel] | None = None
    media: str = "application/json"
    schema: Mapping[str, Any] | None = None
    headers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler | None  # None: served elsewhere, described here
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    roles: tuple[str, ...] | None = ()  # who may call it; None: no token needed
    body: type[BaseModel] | None = None
    body_media: str = "application/json"
    body_schema: Mapping[str, Any] | None = None  # a body described without a model
    body_required: bool = True
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()  # documented error statuses beyond the usual
    error_media: tuple[str, ...] = ("application/json",)  # browsers' pages answer in HTML
    operation_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def route(self) -> web.RouteDef:
        assert self.handler is not None, f"{self.method} {self.path} is only described"
        return web.route(self.method, self.path, self.handler)


def query(name: str, description: str, schema: Mapping[str, Any] | None = None) -> Param:
    return Param(name, "query", schema or {"type": "string"}, description)


PAGING = (
    query("limit", "rows per page (1-200, default 50)", {"type": "integer", "minimum": 1}),
    query("cursor", "the next_cursor of the previous page"),
)
