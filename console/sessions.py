"""The console's session cookie and CSRF check: who is signed in, and whether a form came
from one of our pages.

The cookie ``ventanilla_session`` holds 32 random bytes; the database keeps only their
SHA-256 (``storage.console_sessions``), so a leaked table opens no browser session. It is
HttpOnly, SameSite=Strict, limited to /console, Secure when the public URL is https, and
lives 12 hours. Each session has its own CSRF token, which every form carries in the
hidden field ``csrf_token`` and script calls send as ``X-CSRF-Token``; a write without the
right one gets 403. A page asked for without a session is redirected (303) to the sign-in
form, which sends the person back afterwards (local console paths only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Final

from aiohttp import web
from yarl import URL

from console.html import PREFIX, Handler, PageError, is_console
from console.principal import CONSOLE_USER_KEY
from intake.forms import prefers_json
from storage.console_sessions import SessionUser, session_user
from storage.db import Database
from storage.models import utcnow

COOKIE: Final = "ventanilla_session"
SESSION_LIFETIME = timedelta(hours=12)
CSRF_FIELD: Final = "csrf_token"
CSRF_HEADER: Final = "X-CSRF-Token"
LOGIN_PATH: Final = f"{PREFIX}/login"
LANDING: Final = f"{PREFIX}/log"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def hash_session_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_secret() -> str:
    """32 random bytes, URL-safe (a cookie value, a CSRF token)."""
    return secrets.token_urlsafe(32)


def same_secret(given: object, expected: str) -> bool:
    if not isinstance(given, str) or not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def local_next(value: object) -> str | None:
    """``value`` if it is a path inside the console (no scheme, host or ``//``), else
    None: a sign-in link must never send anyone to another site."""
    if not isinstance(value, str) or not value.startswith(PREFIX + "/") or "\\" in value:
        return None
    if value.startswith("//") or any(ord(c) < 0x20 for c in value):
        return None
    url = URL(value)
    if url.scheme or url.host or url.path.startswith(LOGIN_PATH):
        return None
    return value


def login_url(next_path: str | None) -> str:
    return str(URL(LOGIN_PATH).with_query({"next": next_path} if next_path else {}))


class ConsoleAuth:
    """Middleware for /console/: a live session or the sign-in form; CSRF on writes."""

    def __init__(self, db: Database, *, secure_cookie: bool) -> None:
        self.db = db
        self.secure_cookie = secure_cookie

    async def current(self, request: web.Request) -> SessionUser | None:
        token = request.cookies.get(COOKIE)
        if not token or len(token) > 100:
            return None
        return await self.db.read(session_user, hash_session_token(token), utcnow())

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path=PREFIX,
            secure=self.secure_cookie,
            httponly=True,
            samesite="Strict",
        )

    def clear_cookie(self, response: web.StreamResponse) -> None:
        response.del_cookie(
            COOKIE, path=PREFIX, secure=self.secure_cookie, httponly=True, samesite="Strict"
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if not is_console(request) or _is_open(request.path):
            return await handler(request)
        user = await self.current(request)
        if user is None:
            return self._sign_in_first(request)
        request[CONSOLE_USER_KEY] = user
        if request.method not in SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER)
            if given is None and request.content_type in FORM_TYPES:
                given = (await request.post()).get(CSRF_FIELD)  # type: ignore[assignment]
            if not same_secret(given, user.csrf_token):
                raise PageError(403, "csrf")
        return await handler(request)

    def _sign_in_first(self, request: web.Request) -> web.StreamResponse:
        if prefers_json(request.headers.get("Accept")):  # a script's call, not a page
            body = {"error": {"code": "unauthorized", "message": "sign in again"}}
            return web.json_response(body, status=401)
        # Only a page can be come back to; a form posted without a session cannot.
        target = local_next(request.path_qs) if request.method in SAFE_METHODS else None
        response = see_other(login_url(target))
        if request.cookies.get(COOKIE):
            self.clear_cookie(response)  # expired or closed elsewhere: forget it
        return response


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _is_open(path: str) -> bool:
    """Paths that need no session: the sign-in form and the console's static files."""
    return path == LOGIN_PATH or path.startswith(f"{PREFIX}/static/")
