"""Signing in to the console and out of it: ``GET|POST /console/login``,
``POST /console/logout``.

A wrong name, a wrong password, a user without a password and a user whose role may not
use the console all get the same answer (401, the form again), after the same argon2 work
(``console.passwords``), so the form does not tell which names exist. The form carries
a CSRF token before there is a session: the same random value in a cookie scoped to the
form and in a hidden field (double submit), which a cross-site page can neither read nor
set. Attempts are limited per client address.
"""

from __future__ import annotations

from aiohttp import web

from console.html import Pages
from console.passwords import Passwords
from console.principal import console_user_of
from console.sessions import (
    COOKIE,
    CSRF_FIELD,
    LANDING,
    LOGIN_PATH,
    SESSION_LIFETIME,
    ConsoleAuth,
    hash_session_token,
    local_next,
    new_secret,
    same_secret,
    see_other,
)
from intake.ratelimit import RateLimiter, client_key
from storage.console_sessions import CONSOLE_ROLES, CloseSession, OpenSession, sign_in_record
from storage.db import Database
from storage.models import utcnow
from storage.operations import OperationRefused
from storage.write_path import WritePath

LOGIN_CSRF_COOKIE = "ventanilla_login_csrf"
LOGIN_CSRF_MAX_AGE = 2 * 60 * 60
ATTEMPTS_PER_MINUTE = 10
ATTEMPTS_BURST = 10
MAX_NAME_LENGTH = 200


class SignIn:
    def __init__(
        self,
        db: Database,
        writes: WritePath,
        pages: Pages,
        auth: ConsoleAuth,
        *,
        trust_forwarded_for: bool = False,
        passwords: Passwords | None = None,
    ) -> None:
        self.db = db
        self.writes = writes
        self.pages = pages
        self.auth = auth
        self.trust_forwarded_for = trust_forwarded_for
        self.passwords = passwords or Passwords()
        self.limiter = RateLimiter(ATTEMPTS_PER_MINUTE, ATTEMPTS_BURST)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(LOGIN_PATH, self.show),
            web.post(LOGIN_PATH, self.submit),
            web.post("/console/logout", self.logout),
        ]

    async def show(self, request: web.Request) -> web.StreamResponse:
        target = local_next(request.query.get("next"))
        if await self.auth.current(request) is not None:
            return see_other(target or LANDING)
        return self._form(request, target)

    async def submit(self, request: web.Request) -> web.StreamResponse:
        posted = await request.post()
        target = local_next(posted.get("next"))
        name = posted.get("name")
        name = name.strip()[:MAX_NAME_LENGTH] if isinstance(name, str) else ""
        if not same_secret(posted.get(CSRF_FIELD), request.cookies.get(LOGIN_CSRF_COOKIE, "")):
            return self._form(request, target, name, status=403, notice="expired")
        wait = self.limiter.take(client_key(request, self.trust_forwarded_for))
        if wait:
            return self._form(request, target, name, status=429, notice="slow_down", wait=wait)
        password = posted.get("password")
        password = password if isinstance(password, str) else ""
        record = await self.db.read(sign_in_record, name) if name else None
        may_sign_in = record is not None and record.role in CONSOLE_ROLES
        stored = record.password_hash if record is not None and may_sign_in else None
        if not await self.passwords.verify(stored, password) or record is None:
            return self._form(request, target, name, status=401, notice="wrong")
        token, csrf = new_secret(), new_secret()
        try:
            await self.writes.submit(
                OpenSession(
                    user_id=record.id,
                    token_hash=hash_session_token(token),
                    csrf_token=csrf,
                    expires_at=utcnow() + SESSION_LIFETIME,
                    password_hash=stored or "",
                )
            )
        except OperationRefused:  # the password or role changed a moment ago
            return self._form(request, target, name, status=401, notice="wrong")
        response = see_other(target or LANDING)
        self.auth.set_cookie(response, token)
        response.del_cookie(LOGIN_CSRF_COOKIE, path=LOGIN_PATH)
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        console_user_of(request)  # ConsoleAuth checked the session and the CSRF token
        token = request.cookies.get(COOKIE, "")
        await self.writes.submit(CloseSession(hash_session_token(token)))
        response = see_other(LOGIN_PATH)
        self.auth.clear_cookie(response)
        return response

    def _form(
        self,
        request: web.Request,
        target: str | None,
        name: str = "",
        *,
        status: int = 200,
        notice: str = "",
        wait: int = 0,
    ) -> web.Response:
        # One token per browser, kept while the form is open in several tabs.
        token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not 40 <= len(token) <= 64:
            token = new_secret()
        headers = {"Retry-After": str(wait)} if wait else None
        response = self.pages.render(
            request,
            "login.html",
            status=status,
            headers=headers,
            login_csrf=token,
            next_path=target or "",
            name=name,
            notice=notice,
            wait=wait,
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE,
            token,
            max_age=LOGIN_CSRF_MAX_AGE,
            path=LOGIN_PATH,
            secure=self.auth.secure_cookie,
            httponly=True,
            samesite="Strict",
        )
        return response
