"""The ops HTTP API (``/api/v1``): assembles the cases, people and catalog parts, answers
the root with links, and serves the OpenAPI document that describes every route.

Authentication is the ``BearerAuth`` middleware's job (401); handlers check roles (403
via ``PermissionError``); refused operations get the status of their kind (422, 404, 409,
412) from the JSON error middleware.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from cases.catalog_fields import KINDS
from console import public_spec, schemas
from console.cases_api import CasesApi
from console.catalog_api import CatalogApi
from console.endpoints import Answer, Endpoint
from console.filters_api import FiltersApi
from console.http_json import ok, single_params
from console.log_api import LogApi
from console.openapi import document
from console.people_api import PeopleApi
from console.reply_files import ReplyFiles
from console.technicians_api import TechnicianChannelsApi
from routing.catalog import CatalogCache
from storage.db import Database
from storage.write_path import WritePath

VERSION = "1"


class OpsApi:
    def __init__(
        self,
        db: Database,
        writes: WritePath,
        catalog: CatalogCache,
        *,
        forget_token: Callable[[int], None],
        public_url: str,
        sms_region: str = "AR",
        push_kinds: Mapping[str, str] | None = None,
        reply_files: ReplyFiles | None = None,
    ) -> None:
        self.public_url = public_url.rstrip("/")
        self.parts = (
            CasesApi(db, writes, reply_files),
            PeopleApi(db, writes, forget_token, sms_region),
            CatalogApi(catalog, writes),
            TechnicianChannelsApi(db, writes, sms_region, push_kinds or {}),
            LogApi(db, writes),
            FiltersApi(db, writes),
        )
        self._document: dict[str, Any] | None = None

    def endpoints(self) -> list[Endpoint]:
        own = [
            Endpoint(
                "GET", "/api/v1/", self.root, "Links to the API's collections", "api",
                {200: Answer("links", schemas.Links)}, ("ops", "agent", "intake"),
            ),
            Endpoint(
                "GET", "/api/v1/openapi.json", self.openapi, "This document", "api",
                {200: Answer("the OpenAPI 3.1 document", media="application/json",
                             schema={"type": "object"})},
                None,
            ),
        ]  # fmt: skip
        return own + [ep for part in self.parts for ep in part.endpoints()]

    def routes(self) -> list[web.RouteDef]:
        return [ep.route() for ep in self.endpoints()]

    def spec(self) -> dict[str, Any]:
        if self._document is None:
            every = [*self.endpoints(), *public_spec.endpoints()]
            self._document = document(every, version=VERSION, server=self.public_url)
        return self._document

    async def root(self, request: web.Request) -> web.Response:
        single_params(request, frozenset())
        links = {
            "openapi": "/api/v1/openapi.json",
            "cases": "/api/v1/cases",
            "customers": "/api/v1/customers",
            "tokens": "/api/v1/tokens",
            "intake": "/api/v1/intake",
            "notifications": "/api/v1/notifications",
            "filters": "/api/v1/filters",
            **{f"catalog.{kind}": f"/api/v1/catalog/{kind}" for kind in KINDS},
        }
        return ok({"links": links})

    async def openapi(self, request: web.Request) -> web.Response:
        return ok(self.spec())
