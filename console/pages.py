"""The web console for people, assembled: its middlewares (HTML errors, then the session
and CSRF check) and its routes (sign-in, the outbound log and its resends, the customer
and case pages the log links to, the static files).

The composition root (``config.app``) adds ``middlewares()`` after the API's and
``routes()`` with every other part's.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Middleware

from console.html import PREFIX, STATIC_DIR, Pages
from console.log_page import LogPage
from console.log_resend import ResendPages
from console.record_pages import RecordPages
from console.sessions import LANDING, ConsoleAuth, see_other
from console.signin import SignIn
from storage.db import Database
from storage.write_path import WritePath


@dataclass(frozen=True, slots=True)
class ConsoleConfig:
    public_url: str
    default_language: str = "es"
    trust_forwarded_for: bool = False

    @property
    def secure_cookie(self) -> bool:
        return self.public_url.lower().startswith("https://")


class Console:
    def __init__(self, db: Database, writes: WritePath, config: ConsoleConfig) -> None:
        self.pages = Pages(config.default_language)
        self.auth = ConsoleAuth(db, secure_cookie=config.secure_cookie)
        self.sign_in = SignIn(
            db, writes, self.pages, self.auth, trust_forwarded_for=config.trust_forwarded_for
        )
        self.log = LogPage(db, writes, self.pages)
        self.resend = ResendPages(db, writes, self.pages, self.log)
        self.records = RecordPages(db, self.pages)

    def middlewares(self) -> list[Middleware]:
        return [self.pages.errors, self.auth.middleware]

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(PREFIX, self.landing),
            web.get(PREFIX + "/", self.landing),
            *self.sign_in.routes(),
            *self.log.routes(),
            *self.resend.routes(),
            *self.records.routes(),
            web.static(PREFIX + "/static", STATIC_DIR, append_version=False),
        ]

    async def landing(self, request: web.Request) -> web.StreamResponse:
        return see_other(LANDING)
