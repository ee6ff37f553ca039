"""Who is calling: where the middlewares leave the caller on an HTTP request.

The ops API and the JSON intake read the bearer token's principal with ``principal_of``
(set by ``config.http.BearerAuth``); the console's pages read the signed-in person with
``console_user_of`` (set by ``console.sessions.ConsoleAuth``). Typed request keys, as
aiohttp recommends.
"""

from __future__ import annotations

from aiohttp import web

from storage.auth import Principal
from storage.console_sessions import SessionUser

PRINCIPAL_KEY = web.RequestKey("principal", Principal)
CONSOLE_USER_KEY = web.RequestKey("console_user", SessionUser)


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller the HTTP middleware stored on the request."""
    return request[PRINCIPAL_KEY]


def console_user_of(request: web.Request) -> SessionUser:
    """The person signed in to the console (pages behind ``ConsoleAuth`` only)."""
    return request[CONSOLE_USER_KEY]
