"""``/api/v1/openapi.json``: the OpenAPI 3.1 document, built from the endpoints themselves.

Every ``Endpoint`` contributes its operation: parameters, the request body's JSON Schema
(pydantic's, which is JSON Schema 2020-12 as OpenAPI 3.1 expects), every answer and the
errors it can give, all in the house error shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from console.endpoints import Endpoint
from console.schemas import ErrorBody

REF = "#/components/schemas/{model}"
ERROR_TEXT = {
    400: "a query parameter or the body is malformed",
    401: "no valid bearer token",
    403: "the token's role may not do this",
    404: "not found",
    405: "method not allowed",
    409: "conflicts with the current state",
    412: "the case changed since it was read (If-Match)",
    413: "the body is too large",
    415: "the body is not of the expected media type",
    422: "some fields are not valid (each is named)",
    429: "too many requests; retry after Retry-After seconds",
    503: "storage is temporarily unavailable; retry after Retry-After seconds",
}
_PATH_PARAM = re.compile(r"\{(\w+)\}")


def _models(endpoints: Sequence[Endpoint]) -> list[tuple[type[BaseModel], Any]]:
    wanted: list[tuple[type[BaseModel], Any]] = [(ErrorBody, "serialization")]
    for ep in endpoints:
        if ep.body is not None:
            wanted.append((ep.body, "validation"))
        wanted += [(a.model, "serialization") for a in ep.answers.values() if a.model]
    return list(dict.fromkeys(wanted))


def _errors(ep: Endpoint) -> list[int]:
    codes = {503, *ep.errors}
    if ep.roles is not None:
        codes |= {401, 403}
    if ep.params:
        codes.add(400)
    if _PATH_PARAM.search(ep.path):
        codes.add(404)
    if ep.body is not None or ep.body_schema is not None:
        codes |= {400, 413, 415, 422}
    return sorted(codes - set(ep.answers))


def _operation_id(ep: Endpoint) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", f"{ep.method} {ep.path}".lower().replace("api/v1", ""))
    return words.strip("_")


def _operation(ep: Endpoint, refs: Mapping[Any, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": ep.operation_id or _operation_id(ep),
        "summary": ep.summary,
        "tags": [ep.tag],
    }
    params = [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required or p.where == "path",
            "description": p.description,
            "schema": dict(p.schema),
            **({"example": p.example} if p.example is not None else {}),
        }
        for p in ep.params
    ]
    if params:
        op["parameters"] = params
    if ep.body is not None:
        op["requestBody"] = {
            "required": ep.body_required,
            "content": {ep.body_media: {"schema": refs[(ep.body, "validation")]}},
        }
    elif ep.body_schema is not None:
        op["requestBody"] = {
            "required": ep.body_required,
            "content": {ep.body_media: {"schema": dict(ep.body_schema)}},
        }
    responses: dict[str, Any] = {}
    for status, answer in ep.answers.items():
        entry: dict[str, Any] = {"description": answer.description}
        if answer.model is not None:
            entry["content"] = {answer.media: {"schema": refs[(answer.model, "serialization")]}}
        elif answer.schema is not None:
            entry["content"] = {answer.media: {"schema": dict(answer.schema)}}
        if answer.headers:
            entry["headers"] = {h: {"schema": {"type": "string"}} for h in answer.headers}
        responses[str(status)] = entry
    error_ref = refs[(ErrorBody, "serialization")]
    for status in _errors(ep):
        content = {
            media: {"schema": error_ref if media == "application/json" else {"type": "string"}}
            for media in ep.error_media
        }
        entry = {"description": ERROR_TEXT.get(status, "error"), "content": content}
        if status in (429, 503):
            entry["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        responses[str(status)] = entry
    op["responses"] = responses
    op["security"] = [] if ep.roles is None else [{"bearer": []}]
    if ep.roles:
        op["description"] = "Roles: " + ", ".join(("admin", *ep.roles)) + "."
    op.update(ep.extra)
    return op


def document(endpoints: Iterable[Endpoint], *, version: str, server: str) -> dict[str, Any]:
    eps = list(endpoints)
    refs, schemas = models_json_schema(_models(eps), ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for ep in eps:
        paths.setdefault(ep.path, {})[ep.method.lower()] = _operation(ep, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ventanilla",
            "version": version,
            "description": "Support cases from every channel: intake, cases, catalog, tokens.",
        },
        "servers": [{"url": server}],
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
