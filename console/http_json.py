"""JSON in and out for the ops API: bodies validated by a model, query parameters checked,
errors in the house shape ``{"error": {"code", "message", ...}}``.

A body with an unknown field, a wrong type or an impossible value gets 422 naming each
field; a query parameter that is unknown, repeated or malformed gets 400 naming it; a
refused operation (``storage.operations.OperationRefused``) gets the status of its kind.
"""

from __future__ import annotations

import functools
import json
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from storage.operations import OperationRefused
from storage.queries import DEFAULT_LIMIT, MAX_LIMIT

M = TypeVar("M", bound=BaseModel)
BODY_MAX_BYTES = 1_048_576

dumps = functools.partial(json.dumps, ensure_ascii=False)

_ERRORS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    409: web.HTTPConflict,
    412: web.HTTPPreconditionFailed,
    413: web.HTTPRequestEntityTooLarge,
    415: web.HTTPUnsupportedMediaType,
    422: web.HTTPUnprocessableEntity,
}
REFUSAL_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "stale": 412, "forbidden": 403}
REFUSAL_CODE = {
    "invalid": "validation_failed",
    "not_found": "not_found",
    "conflict": "conflict",
    "stale": "precondition_failed",
    "forbidden": "forbidden",
}


def error(status: int, code: str, message: str, **extra: Any) -> web.HTTPException:
    """An HTTP error already in the house JSON shape (the middleware passes it on)."""
    body = {"error": {"code": code, "message": message, **extra}}
    return _ERRORS[status](text=dumps(body), content_type="application/json")


def refusal(exc: OperationRefused) -> web.Response:
    status = REFUSAL_STATUS.get(exc.kind, 409)
    extra: dict[str, Any] = {}
    if exc.field is not None:
        extra["fields"] = {exc.field: exc.message}
    code = REFUSAL_CODE.get(exc.kind, exc.kind)
    body = {"error": {"code": code, "message": exc.message, **extra}}
    return web.json_response(body, status=status, dumps=dumps)


def ok(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers, dumps=dumps)


def bad_param(param: str, message: str) -> web.HTTPException:
    return error(400, "invalid_parameter", message, param=param)


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
            known = ", ".join(sorted(allowed)) or "none"
            raise bad_param(key, f"unknown parameter {key!r}; known: {known}")
        if key in params:
            raise bad_param(key, f"parameter {key!r} given more than once")
        params[key] = value
    return params


def int_param(params: dict[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise bad_param(name, f"{name} must be a positive integer, got {raw!r}")
    return int(raw)


def path_id(request: web.Request, name: str = "id") -> int:
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise error(404, "not_found", f"no such {name} {raw!r}")
    return int(raw)


async def read_model(
    request: web.Request,
    model: type[M],
    *,
    optional: bool = False,
    max_bytes: int = BODY_MAX_BYTES,
) -> M:
    """The JSON body validated by ``model``: 415 for another media type, 413 when larger
    than ``max_bytes``, 400 when not JSON, 422 naming every bad or unknown field."""
    if optional and not request.can_read_body:
        return model()
    if request.content_type != "application/json":
        raise error(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise error(413, "too_large", f"the body is larger than {max_bytes} bytes")
    raw = await request.read()
    if len(raw) > max_bytes:
        raise error(413, "too_large", f"the body is larger than {max_bytes} bytes")
    try:
        data = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(400, "invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise error(422, "validation_failed", "the body must be a JSON object", fields={})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(
            422, "validation_failed", "some fields are not valid", fields=field_errors(exc, model)
        ) from None


def field_errors(exc: ValidationError, model: type[BaseModel]) -> dict[str, str]:
    fields: dict[str, str] = {}
    known = ", ".join(model.model_fields)
    for problem in exc.errors():
        name = ".".join(str(part) for part in problem["loc"]) or "(body)"
        if problem["type"] == "extra_forbidden":
            message = f"unknown field; known: {known}"
        else:
            message = problem["msg"]
        fields.setdefault(name, message)
    return fields
