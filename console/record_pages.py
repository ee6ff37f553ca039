"""The pages a log row links to: the customer's page with their whole history (seed 004's
"Interna cliente", opened in a new tab) and a case with its timeline.

Both are read-only views of what the ops API serves (``storage.customer_queries``,
``storage.queries``), for every console role, as the API allows agents to read cases
and customers.
"""

from __future__ import annotations

from aiohttp import web
from yarl import URL

from console.html import PageError, Pages, path_number
from console.principal import console_user_of
from storage.customer_queries import customer_timeline, get_customer
from storage.db import Database
from storage.paging import QueryError
from storage.queries import TimelineEvent, get_case

TIMELINE_PAGE = 50


class RecordPages:
    def __init__(self, db: Database, pages: Pages) -> None:
        self.db = db
        self.pages = pages

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(r"/console/customers/{id:\d+}", self.customer),
            web.get("/console/cases/{number}", self.case),
        ]

    async def customer(self, request: web.Request) -> web.Response:
        console_user_of(request)
        customer_id = path_number(request)
        cursor = request.query.get("cursor") or None
        found = await self.db.read(get_customer, customer_id)
        if found is None:
            raise PageError(404, "not_found")
        try:
            page = await self.db.read(customer_timeline, customer_id, TIMELINE_PAGE, cursor)
        except QueryError:
            raise PageError(400, "bad_request") from None
        assert page is not None
        path = f"/console/customers/{customer_id}"
        more = str(URL(path).with_query(cursor=page.next_cursor)) if page.next_cursor else ""
        return self.pages.render(
            request,
            "customer.html",
            customer=found.row,
            open_cases=found.open,
            interactions=page.items,
            next_url=more,
            first_url=path if cursor else "",
        )

    async def case(self, request: web.Request) -> web.Response:
        console_user_of(request)
        number = request.match_info["number"]
        found = await self.db.read(get_case, number) if len(number) <= 40 else None
        if found is None:
            raise PageError(404, "not_found")
        entries = [
            ("event" if isinstance(entry, TimelineEvent) else "message", entry)
            for entry in found.timeline
        ]
        return self.pages.render(request, "case.html", case=found, row=found.row, entries=entries)
