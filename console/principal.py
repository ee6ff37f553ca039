"""Who is calling: where the bearer-token middleware leaves the caller on an HTTP request.

The ops API and the JSON intake both read it with ``principal_of``; the middleware
(``config.http.BearerAuth``) sets it. A typed request key, as aiohttp recommends.
"""

from __future__ import annotations

from aiohttp import web

from storage.auth import Principal

PRINCIPAL_KEY = web.RequestKey("principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller the HTTP middleware stored on the request."""
    return request[PRINCIPAL_KEY]
