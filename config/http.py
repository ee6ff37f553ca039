"""The one aiohttp application: middlewares (JSON errors, bearer auth), health and metrics.

Every error leaves as ``{"error": {"code", "message"}}``; handlers raise aiohttp's HTTP
exceptions and this module turns them into that shape, so no traceback ever reaches a
client. Components add their routes; this module only assembles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from console.http_json import refusal
from console.principal import PRINCIPAL_KEY
from storage.auth import Principal, authenticate
from storage.db import Database, StorageUnavailable
from storage.operations import OperationRefused

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ReadinessCheck = Callable[[], Awaitable[tuple[bool, dict[str, object]]]]

# Paths under /api/ that need no token (the spec is public so clients can discover the API).
PUBLIC_API_PATHS = frozenset({"/api/v1/openapi.json"})
TOKEN_CACHE_SECONDS = 30.0


def error_body(status: int, message: str, code: str | None = None) -> dict[str, object]:
    code = code or HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    return {"error": {"code": code, "message": message}}


def json_error(status: int, message: str, code: str | None = None, **extra: object) -> web.Response:
    body = error_body(status, message, code)
    body["error"].update(extra)  # type: ignore[attr-defined]
    return web.json_response(body, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.content_type == "application/json":
            raise  # already in our shape (e.g. 422 with per-field errors)
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        response = json_error(exc.status, message or exc.reason)
        for header in ("Retry-After", "Allow", "WWW-Authenticate", "Location"):
            if header in exc.headers:
                response.headers[header] = exc.headers[header]
        return response
    except PermissionError as exc:  # Principal.require: the role may not do this
        return json_error(403, str(exc), "forbidden")
    except OperationRefused as exc:  # a case, catalog or token operation said no
        return refusal(exc)
    except StorageUnavailable as exc:
        log.warning("storage unavailable for %s %s: %s", request.method, request.path, exc)
        response = json_error(503, "storage is temporarily unavailable; retry later")
        response.headers["Retry-After"] = "5"
        return response
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal error; it has been logged")


class BearerAuth:
    """Middleware for /api/: 401 without a valid token; handlers check roles with
    ``principal_of(request).require(...)`` (403)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, tuple[float, Principal]] = {}

    async def principal_for(self, token: str) -> Principal | None:
        now = time.monotonic()
        hit = self._cache.get(token)
        if hit is not None and now - hit[0] < TOKEN_CACHE_SECONDS:
            return hit[1]
        async with self.db.session() as session:
            principal = await authenticate(session, token)
        if principal is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[token] = (now, principal)
        return principal

    def forget(self, token_id: int) -> None:
        """A revoked token stops working here at once, not after the cache's 30 s."""
        for token, (_, principal) in list(self._cache.items()):
            if principal.token_id == token_id:
                del self._cache[token]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
            return await handler(request)
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        principal = await self.principal_for(token.strip()) if scheme.lower() == "bearer" else None
        if principal is None:
            response = json_error(401, "a valid bearer token is required", "unauthorized")
            response.headers["WWW-Authenticate"] = 'Bearer realm="ventanilla"'
            return response
        request[PRINCIPAL_KEY] = principal
        return await handler(request)


def health_routes(
    db: Database, registry: CollectorRegistry, checks: dict[str, ReadinessCheck]
) -> list[web.RouteDef]:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        detail: dict[str, object] = {"database": "ok" if await db.ping() else "unreachable"}
        ready = detail["database"] == "ok"
        for name, check in checks.items():
            ok, info = await check()
            detail[name] = info
            ready = ready and ok
        return web.json_response(
            {"status": "ready" if ready else "not ready", "checks": detail},
            status=200 if ready else 503,
        )

    async def metrics(_request: web.Request) -> web.Response:
        body = generate_latest(registry)
        response = web.Response(body=body)
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    return [
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/metrics", metrics),
    ]
