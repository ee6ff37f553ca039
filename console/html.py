"""Rendering the console's pages: the Jinja2 templates, the reader's language, the
security headers every page carries, and errors answered as HTML pages under /console/
(the API's JSON error middleware stays outside: a person gets a page, not a JSON body).

Pages are in Spanish unless the browser ranks English higher (``Accept-Language``); the
words live in ``templates/<lang>/words.html``, the markup once in the page templates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from console.principal import CONSOLE_USER_KEY
from intake.forms import negotiate_language
from storage.db import StorageUnavailable
from storage.operations import OperationRefused

log = logging.getLogger(__name__)

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
STATIC_DIR = Path(__file__).resolve().parent / "static"
PREFIX = "/console"
PAGE_HEADERS = {
    "Cache-Control": "no-store",  # pages show customers' data and carry a CSRF token
    # No inline script or style at all: the console's own files only.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
REFUSAL_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "stale": 409, "forbidden": 403}
ERROR_KEYS = {400: "bad_request", 403: "forbidden", 404: "not_found", 405: "bad_request"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class PageError(Exception):
    """Answered as the error page: ``key`` names its words, ``detail`` adds a line as is."""

    def __init__(self, status: int, key: str, detail: str = "") -> None:
        super().__init__(detail or key)
        self.status = status
        self.key = key
        self.detail = detail


def when(value: datetime | None, seconds: bool = False) -> str:
    """A time as the pages show it: UTC, to the minute (or second)."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def path_number(request: web.Request, name: str = "id") -> int:
    """A numeric id from the path (the route's pattern allows digits only); 404 when it
    is too long to be one of ours."""
    raw = request.match_info[name]
    if not raw.isdigit() or len(raw) > 18:
        raise PageError(404, "not_found")
    return int(raw)


def is_console(request: web.Request) -> bool:
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


class Pages:
    """Renders a template into a response with the console's headers."""

    def __init__(self, default_language: str = "es") -> None:
        self.default_language = default_language
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
            autoescape=True,  # customers' names, subjects and bodies are shown everywhere
            undefined=jinja2.StrictUndefined,
        )
        self.env.filters["when"] = when

    def language(self, request: web.Request) -> str:
        return negotiate_language(request.headers.get("Accept-Language"), self.default_language)

    def render(
        self,
        request: web.Request,
        template: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> web.Response:
        context.setdefault("lang", self.language(request))
        context.setdefault("section", "")
        user = request.get(CONSOLE_USER_KEY)
        context.setdefault("user", user)
        context.setdefault("csrf_token", user.csrf_token if user is not None else "")
        html = self.env.get_template(template).render(**context)
        return web.Response(
            text=html,
            status=status,
            content_type="text/html",
            headers={**PAGE_HEADERS, **(headers or {})},
        )

    def error_page(
        self,
        request: web.Request,
        status: int,
        key: str,
        detail: str = "",
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> web.Response:
        return self.render(
            request,
            "error.html",
            status=status,
            headers=headers,
            status_code=status,
            key=key,
            detail=detail,
            **context,
        )

    @web.middleware
    async def errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every error under /console/ as a page in the reader's language."""
        if not is_console(request):
            return await handler(request)
        try:
            return await handler(request)
        except PageError as exc:
            return self.error_page(request, exc.status, exc.key, exc.detail)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            key = ERROR_KEYS.get(exc.status, "error")
            return self.error_page(request, exc.status, key, headers=headers)
        except PermissionError:
            return self.error_page(request, 403, "forbidden")
        except OperationRefused as exc:
            status = REFUSAL_STATUS.get(exc.kind, 409)
            return self.error_page(request, status, "refused", exc.message)
        except StorageUnavailable as exc:
            log.warning("storage unavailable for %s %s: %s", request.method, request.path, exc)
            return self.error_page(request, 503, "unavailable", headers={"Retry-After": "5"})
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return self.error_page(request, 500, "error")
