"""Ops HTTP API (``/api/v1``): case list and case detail for admins, operators and agents.

Authentication is the ``BearerAuth`` middleware's job (401); handlers only check roles
(403 via ``PermissionError``). Bad query parameters get a 400 naming the parameter.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from aiohttp import web

from console import serialize
from console.principal import principal_of
from storage.db import Database
from storage.queries import DEFAULT_LIMIT, MAX_LIMIT, CaseFilters, QueryError, get_case, list_cases

READ_ROLES = ("ops", "agent")  # admin is implied by Principal.may
CASE_FILTERS = ("q", "status", "area", "assignee", "channel", "customer")
CASE_LIST_PARAMS = frozenset((*CASE_FILTERS, "limit", "cursor"))

_dumps = functools.partial(json.dumps, ensure_ascii=False)


def bad_param(param: str, message: str) -> web.HTTPBadRequest:
    """A 400 already in the JSON error shape, naming the parameter for clients."""
    body = {"error": {"code": "invalid_parameter", "message": message, "param": param}}
    return web.HTTPBadRequest(text=_dumps(body), content_type="application/json")


def parse_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise bad_param("limit", f"limit must be an integer, got {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_param("limit", f"limit must be between 1 and {MAX_LIMIT}")
    return limit


def single_params(request: web.Request, allowed: frozenset[str]) -> dict[str, str]:
    """Query parameters as a plain dict; unknown or repeated ones are refused, so a typo
    such as ``?stauts=`` is not silently ignored."""
    params: dict[str, str] = {}
    for key, value in request.query.items():
        if key not in allowed:
            raise bad_param(key, f"unknown parameter {key!r}; known: {', '.join(sorted(allowed))}")
        if key in params:
            raise bad_param(key, f"parameter {key!r} given more than once")
        params[key] = value
    return params


class OpsApi:
    def __init__(self, db: Database) -> None:
        self._db = db

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/cases", self.list_cases),
            web.get("/api/v1/cases/{number}", self.get_case),
        ]

    async def list_cases(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        params = single_params(request, CASE_LIST_PARAMS)
        filters = CaseFilters(**{k: params[k] for k in CASE_FILTERS if params.get(k)})
        limit = parse_limit(params.get("limit"))
        try:
            async with self._db.session() as session:
                result = await list_cases(session, filters, limit, params.get("cursor") or None)
        except QueryError as exc:
            raise bad_param(exc.param, str(exc)) from None
        return self._json(serialize.page(result, serialize.case_item))

    async def get_case(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        number = request.match_info["number"]
        async with self._db.session() as session:
            case = await get_case(session, number)
        if case is None:
            raise web.HTTPNotFound(text=f"no case {number}")
        return self._json(serialize.case_detail(case))

    @staticmethod
    def _json(body: dict[str, Any]) -> web.Response:
        return web.json_response(body, dumps=_dumps)
