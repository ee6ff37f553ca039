"""'Reenviar' from the log page: one message, the checked rows, or every row the filters
select; then the job's progress.

Nothing is resent before a confirmation that says how many: the page's script asks in a
dialog; without it the post answers a confirmation page first. One message is resent at
once (``ResendOne``) and the browser goes to the new row; more become a job
(``StartResendJob``) whose page shows its progress, polled by the script from
``/console/log/jobs/{id}/progress`` (or refreshed by the page itself without it). Each
confirmation carries an idempotency key, so a double click queues once. Only ops and
admins resend.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console.html import PageError, Pages, path_number
from console.log_page import RESEND_ROLES, LogPage
from console.log_params import log_url, request_params
from console.log_schemas import job as job_json
from console.principal import console_user_of
from console.sessions import see_other
from notifiers.resend import ResendOne, Resent
from notifiers.resend_jobs import MAX_IDS, CancelJob, JobStarted, StartResendJob
from storage.console_sessions import SessionUser
from storage.db import Database
from storage.log_filters import parse_filters
from storage.log_queries import COUNT_CAP, count_notifications, get_job
from storage.operations import OperationRefused
from storage.paging import QueryError
from storage.write_path import WritePath

MAX_KEY = 100


def resender(request: web.Request) -> SessionUser:
    user = console_user_of(request)
    if not user.may(*RESEND_ROLES):
        raise PageError(403, "forbidden")
    return user


def checked_ids(values: list[Any]) -> list[int]:
    ids = [int(v) for v in values if isinstance(v, str) and v.isdigit() and len(v) <= 18]
    if len(ids) > MAX_IDS:
        raise PageError(400, "bad_request", f"at most {MAX_IDS} rows at once")
    return list(dict.fromkeys(ids))


class ResendPages:
    def __init__(self, db: Database, writes: WritePath, pages: Pages, log: LogPage) -> None:
        self.db = db
        self.writes = writes
        self.pages = pages
        self.log = log

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/console/log/resend", self.resend),
            web.get(r"/console/log/jobs/{id:\d+}", self.job_page),
            web.get(r"/console/log/jobs/{id:\d+}/progress", self.progress),
            web.post(r"/console/log/jobs/{id:\d+}/cancel", self.cancel),
        ]

    async def resend(self, request: web.Request) -> web.StreamResponse:
        user = resender(request)
        posted = await request.post()
        params = request_params(posted)
        scope = posted.get("scope")
        reason = str(posted.get("reason") or "").strip()[:2000] or None
        as_sent = posted.get("as_sent") in ("1", "on", "true")
        key = str(posted.get("idempotency_key") or "")[:MAX_KEY] or None
        selection: dict[str, Any]
        if scope == "filtered":
            try:
                filters = parse_filters(params)
                count = await self.db.read(count_notifications, filters)
            except QueryError as exc:
                raise PageError(400, "bad_request", f"{exc.param}: {exc}") from None
            selection = {"params": filters.params()}
        else:
            ids = checked_ids(posted.getall("ids", []))
            if not ids:
                return await self.log.render_list(request, params, status=422, notice="pick")
            selection, count = {"ids": ids}, len(ids)
        if posted.get("confirm") != "1":
            return self.pages.render(
                request,
                "resend_confirm.html",
                section="log",
                count=count,
                more_than=count > COUNT_CAP,
                cap=COUNT_CAP,
                scope="filtered" if scope == "filtered" else "selected",
                ids=selection.get("ids", []),
                params=params,
                reason=reason or "",
                as_sent=as_sent,
                idempotency_key=key or "",
                back=log_url(params),
            )
        if "ids" in selection and len(selection["ids"]) == 1:
            return await self._one(request, user, selection["ids"][0], reason, as_sent, key)
        started: JobStarted = await self.writes.submit(
            StartResendJob(selection, user.name, reason, as_sent, key)
        )
        return see_other(f"/console/log/jobs/{started.job_id}")

    async def _one(
        self,
        request: web.Request,
        user: SessionUser,
        original: int,
        reason: str | None,
        as_sent: bool,
        key: str | None,
    ) -> web.StreamResponse:
        try:
            result: Resent = await self.writes.submit(
                ResendOne(original, user.name, reason, as_sent, key)
            )
        except OperationRefused as exc:
            if exc.kind == "not_found":
                raise PageError(404, "not_found") from None
            raise
        if result.notification_id is None:
            return await self.log.message_page(
                request, original, status=409, notice="skipped", detail=result.skipped or ""
            )
        return see_other(f"/console/log/{result.notification_id}")

    async def job_page(self, request: web.Request) -> web.Response:
        resender(request)
        row = await self.db.read(get_job, path_number(request))
        if row is None:
            raise PageError(404, "not_found")
        return self.pages.render(request, "job.html", section="log", job=row)

    async def progress(self, request: web.Request) -> web.Response:
        """The job as the API shows it, for the page's script (same session, no token)."""
        resender(request)
        row = await self.db.read(get_job, path_number(request))
        if row is None:
            raise PageError(404, "not_found")
        return web.json_response(job_json(row), headers={"Cache-Control": "no-store"})

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        resender(request)
        number = path_number(request)
        try:
            await self.writes.submit(CancelJob(number))
        except OperationRefused as exc:
            if exc.kind != "conflict":  # already finished: the page shows how it ended
                raise
        return see_other(f"/console/log/jobs/{number}")
