"""Saved filters ("Mis filtros") in the ops API: each user lists, creates, renames,
changes and deletes their own; an admin sees and may change everyone's. The log's list,
export and bulk resend take one by name (``filter=NAME``)."""

from __future__ import annotations

from aiohttp import web

from console import log_schemas as shapes
from console.endpoints import Answer, Endpoint, Param
from console.http_json import error, ok, path_id, read_model, single_params
from console.principal import principal_of
from storage.db import Database
from storage.log_queries import get_saved_filter, list_saved_filters
from storage.saved_filters import DeleteFilter, SaveFilter
from storage.write_path import WritePath

ROLES = ("ops", "agent")
FILTER_ID = Param("id", "path", {"type": "integer", "minimum": 1}, "the filter's id", True, 1)


class FiltersApi:
    def __init__(self, db: Database, writes: WritePath) -> None:
        self.db = db
        self.writes = writes

    def endpoints(self) -> list[Endpoint]:
        one = Answer("the saved filter", shapes.FilterOut)
        return [
            Endpoint(
                "GET", "/api/v1/filters", self.list, "Your saved filters (an admin: all)",
                "log", {200: Answer("the filters", shapes.FilterList)}, ROLES,
            ),
            Endpoint(
                "POST", "/api/v1/filters", self.create, "Save a selection of the log by name",
                "log", {201: Answer("the saved filter", shapes.FilterOut,
                                    headers=("Location",))},
                ROLES, body=shapes.FilterIn, errors=(409,),
            ),
            Endpoint(
                "GET", "/api/v1/filters/{id}", self.show, "One saved filter", "log",
                {200: one}, ROLES, params=(FILTER_ID,),
            ),
            Endpoint(
                "PATCH", "/api/v1/filters/{id}", self.change,
                "Rename a saved filter or change what it selects", "log", {200: one}, ROLES,
                body=shapes.FilterPatch, params=(FILTER_ID,), errors=(409,),
            ),
            Endpoint(
                "DELETE", "/api/v1/filters/{id}", self.delete, "Delete a saved filter", "log",
                {200: Answer("the deleted filter", shapes.FilterOut)},
                ROLES, params=(FILTER_ID,),
            ),
        ]  # fmt: skip

    async def list(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*ROLES)
        single_params(request, frozenset())
        owner = None if principal.role == "admin" else principal.user_id
        rows = await self.db.read(list_saved_filters, owner)
        return ok({"items": [shapes.saved_filter(r) for r in rows], "next_cursor": None})

    async def create(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*ROLES)
        single_params(request, frozenset())
        body = await read_model(request, shapes.FilterIn)
        filter_id: int = await self.writes.submit(
            SaveFilter(principal.user_id, body.name, shapes.flat_params(body.params))
        )
        return await self._one(filter_id, 201, {"Location": f"/api/v1/filters/{filter_id}"})

    async def show(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*ROLES)
        single_params(request, frozenset())
        filter_id = path_id(request)
        row = await self.db.read(get_saved_filter, filter_id=filter_id)
        if row is None or (row.user_id != principal.user_id and principal.role != "admin"):
            raise error(404, "not_found", f"no saved filter {filter_id}")
        return ok(shapes.saved_filter(row))

    async def change(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*ROLES)
        single_params(request, frozenset())
        body = await read_model(request, shapes.FilterPatch)
        params = shapes.flat_params(body.params) if body.params is not None else None
        filter_id: int = await self.writes.submit(
            SaveFilter(principal.user_id, body.name, params, path_id(request),
                       admin=principal.role == "admin")
        )  # fmt: skip
        return await self._one(filter_id)

    async def delete(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*ROLES)
        single_params(request, frozenset())
        filter_id = path_id(request)
        row = await self.db.read(get_saved_filter, filter_id=filter_id)
        await self.writes.submit(
            DeleteFilter(principal.user_id, filter_id, admin=principal.role == "admin")
        )
        assert row is not None  # the delete would have been refused
        return ok(shapes.saved_filter(row))

    async def _one(
        self, filter_id: int, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        row = await self.db.read(get_saved_filter, filter_id=filter_id)
        if row is None:
            raise error(404, "not_found", f"no saved filter {filter_id}")
        return ok(shapes.saved_filter(row), status, headers)
