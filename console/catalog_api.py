"""The catalog part of the ops API: areas, statuses, priorities, severities, categories and
technicians (seed 004), read by operators and agents, edited by admins.

Every edit is a catalog operation on the one write path (``cases.catalog_edit`` keeps the
catalog whole: one default per kind, unique names, nothing in use deleted without a
replacement); this daemon's cache is refreshed before the answer, so the next message is
routed with the change, and other daemons notice the version move.
"""

from __future__ import annotations

import functools

from aiohttp import web

from cases.catalog_fields import KINDS, SINGULAR, item_view
from cases.operations import CatalogSaved, DeleteCatalogItem, SaveCatalogItem
from console.catalog_schemas import CHANGE, CREATE, OUT, PAGE
from console.endpoints import PAGING, Answer, Endpoint, Param, query
from console.http_json import error, int_param, ok, parse_limit, path_id, read_model, single_params
from console.principal import principal_of
from routing.catalog import CatalogCache
from storage.write_path import WritePath

READ_ROLES = ("ops", "agent")
ID = Param("id", "path", {"type": "integer"}, "the item's id", True, 1)


class CatalogApi:
    def __init__(self, catalog: CatalogCache, writes: WritePath) -> None:
        self.catalog = catalog
        self.writes = writes

    def endpoints(self) -> list[Endpoint]:
        found: list[Endpoint] = []
        for kind in KINDS:
            one, base = SINGULAR[kind], f"/api/v1/catalog/{kind}"
            item = Answer(f"the {one}", OUT[kind])
            found += [
                Endpoint(
                    "GET", base, functools.partial(self.list_items, kind=kind),
                    f"List {kind}", "catalog", {200: Answer(f"a page of {kind}", PAGE[kind])},
                    READ_ROLES, params=PAGING, operation_id=f"list_{kind}",
                ),
                Endpoint(
                    "POST", base, functools.partial(self.create, kind=kind), f"Create a {one}",
                    "catalog", {201: item}, ("admin",), body=CREATE[kind], errors=(409,),
                    operation_id=f"create_{one}",
                ),
                Endpoint(
                    "GET", f"{base}/{{id}}", functools.partial(self.get_item, kind=kind),
                    f"One {one}", "catalog", {200: item}, READ_ROLES, params=(ID,),
                    operation_id=f"get_{one}",
                ),
                Endpoint(
                    "PATCH", f"{base}/{{id}}", functools.partial(self.change, kind=kind),
                    f"Change a {one}", "catalog", {200: item}, ("admin",), body=CHANGE[kind],
                    params=(ID,), errors=(409,), operation_id=f"change_{one}",
                ),
                Endpoint(
                    "DELETE", f"{base}/{{id}}", functools.partial(self.delete, kind=kind),
                    f"Delete a {one} (one in use needs replace_with)", "catalog",
                    {204: Answer("deleted")}, ("admin",),
                    params=(ID, query("replace_with", f"the id of the {one} that takes its "
                                      "place wherever it is used", {"type": "integer"})),
                    errors=(409, 422), operation_id=f"delete_{one}",
                ),
            ]  # fmt: skip
        return found

    async def list_items(self, request: web.Request, *, kind: str) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        params = single_params(request, frozenset({"limit", "cursor"}))
        limit = parse_limit(params.get("limit"))
        after = int_param(params, "cursor") or 0
        catalog = self.catalog.current
        items = sorted((i for i in getattr(catalog, kind) if i.id > after), key=lambda i: i.id)
        more = len(items) > limit
        return ok(
            {
                "items": [item_view(kind, i, catalog) for i in items[:limit]],
                "next_cursor": str(items[limit - 1].id) if more else None,
            }
        )

    async def get_item(self, request: web.Request, *, kind: str) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        single_params(request, frozenset())
        return self._item(kind, path_id(request))

    def _item(self, kind: str, item_id: int, status: int = 200) -> web.Response:
        catalog = self.catalog.current
        item = catalog.get(kind, item_id)
        if item is None:
            raise error(404, "not_found", f"no {SINGULAR[kind]} {item_id}")
        return ok(item_view(kind, item, catalog), status)

    async def create(self, request: web.Request, *, kind: str) -> web.Response:
        principal = principal_of(request).require("admin")
        single_params(request, frozenset())
        body = await read_model(request, CREATE[kind])
        saved: CatalogSaved = await self.writes.submit(
            SaveCatalogItem(kind, body.model_dump(), principal.name)
        )
        await self.catalog.refresh()
        return self._item(kind, saved.item_id, 201)

    async def change(self, request: web.Request, *, kind: str) -> web.Response:
        principal = principal_of(request).require("admin")
        single_params(request, frozenset())
        item_id = path_id(request)
        body = await read_model(request, CHANGE[kind])
        saved: CatalogSaved = await self.writes.submit(
            SaveCatalogItem(kind, body.model_dump(exclude_unset=True), principal.name, item_id)
        )
        await self.catalog.refresh()
        return self._item(kind, saved.item_id)

    async def delete(self, request: web.Request, *, kind: str) -> web.Response:
        principal = principal_of(request).require("admin")
        params = single_params(request, frozenset({"replace_with"}))
        item_id = path_id(request)
        replacement = int_param(params, "replace_with")
        await self.writes.submit(DeleteCatalogItem(kind, item_id, principal.name, replacement))
        await self.catalog.refresh()
        return web.Response(status=204)
