"""The outbound log in the browser (seed 004): ``/console/log``, one message as it was
sent (``/console/log/{id}``), and "Mis filtros" (saving and deleting a selection).

Filtering is a GET form, so it works without JavaScript and every view is a link; the
table is newest first, 50 rows a page by keyset cursor, with the count of matches.
Agents see only the rows of their own cases (their user's technician) and no resend
controls; ops and admins see everything. Reads come from ``storage.log_queries``;
saving a filter is ``SaveFilter`` on the write path.
"""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web

from console.html import PageError, Pages, path_number
from console.log_params import FormValues, log_url, request_params
from console.log_schemas import message_headers
from console.principal import console_user_of
from console.sessions import see_other
from storage.console_sessions import SessionUser
from storage.db import Database
from storage.log_filters import CHANNELS, STATUSES, TRIGGERS, LogFilters, parse_filters
from storage.log_queries import (
    COUNT_CAP,
    count_notifications,
    get_notification,
    get_saved_filter,
    list_notifications,
    list_saved_filters,
    notification_scope,
)
from storage.operations import OperationRefused
from storage.paging import QueryError
from storage.saved_filters import DeleteFilter, SaveFilter
from storage.write_path import WritePath

PAGE_SIZE = 50
RESEND_ROLES = ("ops",)  # admin is implied
NOBODY = -1  # the technician an agent without one is scoped to: no row matches
# The sent message's HTML is shown framed, sandboxed, with nothing it could load or run.
HTML_VIEW_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        "frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
}


def scoped(user: SessionUser, filters: LogFilters) -> LogFilters:
    """What the user may see of a selection: an agent, their own cases' rows only."""
    if user.may(*RESEND_ROLES):
        return filters
    return filters.scoped(user.technician_id if user.technician_id is not None else NOBODY)


class LogPage:
    def __init__(self, db: Database, writes: WritePath, pages: Pages) -> None:
        self.db = db
        self.writes = writes
        self.pages = pages

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/console/log", self.show),
            web.get(r"/console/log/{id:\d+}", self.view),
            web.get(r"/console/log/{id:\d+}/html", self.view_html),
            web.post("/console/log/filters", self.save_filter),
            web.post(r"/console/log/filters/{id:\d+}/delete", self.delete_filter),
        ]

    # --- the list ------------------------------------------------------------------------

    async def show(self, request: web.Request) -> web.StreamResponse:
        user = console_user_of(request)
        name = request.query.get("filter", "").strip()
        if name:  # "Mis filtros": open the saved selection as a plain link of its own
            saved = await self.db.read(get_saved_filter, user_id=user.user_id, name=name)
            if saved is None:
                raise PageError(404, "not_found")
            return see_other(log_url(saved.params))
        notice = ""
        if request.query.get("save"):
            notice = "confirm_save"
        return await self.render_list(request, request_params(request.query), notice=notice)

    async def render_list(
        self,
        request: web.Request,
        params: dict[str, str],
        *,
        status: int = 200,
        notice: str = "",
        detail: str = "",
    ) -> web.Response:
        user = console_user_of(request)
        cursor = request.query.get("cursor") or None
        problem: QueryError | None = None
        items: list[Any] = []
        next_cursor = None
        count = 0
        try:
            filters = scoped(user, parse_filters(params))
            page = await self.db.read(list_notifications, filters, PAGE_SIZE, cursor)
            count = await self.db.read(count_notifications, filters)
            items, next_cursor = page.items, page.next_cursor
        except QueryError as exc:
            problem, status = exc, 400
            filters = LogFilters()
        saved = await self.db.read(list_saved_filters, user.user_id)
        normalized = filters.params() if problem is None else None
        saved_name = request.query.get("saved", "")
        return self.pages.render(
            request,
            "log.html",
            status=status,
            section="log",
            wide=True,
            items=items,
            count=count,
            more_than=count > COUNT_CAP,
            cap=COUNT_CAP,
            next_url=log_url(params, cursor=next_cursor) if next_cursor else "",
            first_url=log_url(params) if cursor else "",
            params=params,
            values=FormValues.of(params),
            channels=CHANNELS,
            statuses=STATUSES,
            triggers=TRIGGERS,
            saved=saved,
            current=next((s.name for s in saved if s.params == normalized), ""),
            just_saved=saved_name if any(s.name == saved_name for s in saved) else "",
            problem=problem,
            notice=notice,
            detail=detail,
            save_name=request.query.get("save_name", "").strip()[:200],
            may_resend=user.may(*RESEND_ROLES),
            idempotency_key=secrets.token_urlsafe(16),
        )

    # --- saved filters -------------------------------------------------------------------

    async def save_filter(self, request: web.Request) -> web.StreamResponse:
        user = console_user_of(request)
        posted = await request.post()
        params = request_params(posted)
        name = str(posted.get("save_name") or posted.get("name") or "").strip()
        if not name:
            return await self.render_list(request, params, status=422, notice="name_needed")
        try:
            filter_id: int = await self.writes.submit(SaveFilter(user.user_id, name, params))
        except OperationRefused as exc:
            status = 409 if exc.kind == "conflict" else 422
            return await self.render_list(
                request, params, status=status, notice="not_saved", detail=exc.message
            )
        saved = await self.db.read(get_saved_filter, filter_id=filter_id)
        assert saved is not None
        return see_other(log_url(saved.params, saved=saved.name))

    async def delete_filter(self, request: web.Request) -> web.StreamResponse:
        user = console_user_of(request)
        await self.writes.submit(DeleteFilter(user.user_id, path_number(request)))
        return see_other("/console/log")

    # --- one message ---------------------------------------------------------------------

    async def _visible(self, user: SessionUser, row_id: int) -> None:
        """404 for a row the user may not see, as for one that does not exist."""
        if user.may(*RESEND_ROLES):
            return
        owner = await self.db.read(notification_scope, row_id)
        if user.technician_id is None or owner != user.technician_id:
            raise PageError(404, "not_found")

    async def view(self, request: web.Request) -> web.Response:
        return await self.message_page(request, path_number(request))

    async def message_page(
        self,
        request: web.Request,
        row_id: int,
        *,
        status: int = 200,
        notice: str = "",
        detail: str = "",
    ) -> web.Response:
        """The message as it was sent, its attempts and resends (``notice`` says why the
        page came back after a resend that queued nothing)."""
        user = console_user_of(request)
        await self._visible(user, row_id)
        found = await self.db.read(get_notification, row_id)
        if found is None:
            raise PageError(404, "not_found")
        return self.pages.render(
            request,
            "message.html",
            status=status,
            section="log",
            detail=found,
            item=found.item,
            sent_headers=message_headers(found),
            may_resend=user.may(*RESEND_ROLES),
            idempotency_key=secrets.token_urlsafe(16),
            notice=notice,
            reason=detail,
        )

    async def view_html(self, request: web.Request) -> web.Response:
        user = console_user_of(request)
        row_id = path_number(request)
        await self._visible(user, row_id)
        detail = await self.db.read(get_notification, row_id)
        if detail is None or not detail.html:
            raise PageError(404, "not_found")
        return web.Response(text=detail.html, content_type="text/html", headers=HTML_VIEW_HEADERS)
