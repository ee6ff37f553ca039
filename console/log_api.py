"""The outbound log's part of the ops API: list, count and export the log, read one
message with its attempts, resend one or many, follow a resend job.

Reads come from ``storage.log_queries``; resends are operations (``notifiers.resend``,
``notifiers.resend_jobs``) on the one write path. Who sees what: ops and admins the whole
log, agents the rows of cases assigned to them, intake tokens nothing; only ops and admins
resend. ``filter=NAME`` applies the caller's saved filter, and parameters given beside it
override its values.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from console import log_schemas as shapes
from console.endpoints import PAGING, Answer, Endpoint, Param, query
from console.http_json import (
    bad_param,
    error,
    ok,
    parse_limit,
    path_id,
    read_model,
    single_params,
)
from console.log_csv import CSV_COLUMNS, csv_lines, csv_row
from console.principal import principal_of
from notifiers.resend import ResendOne, Resent
from notifiers.resend_jobs import CancelJob, JobStarted, StartResendJob
from storage.auth import Principal
from storage.db import Database
from storage.log_filters import FILTER_PARAMS, LogFilters, merged_params, parse_filters
from storage.log_queries import (
    COUNT_CAP,
    count_notifications,
    get_job,
    get_notification,
    get_saved_filter,
    list_notifications,
    notification_scope,
    user_technician,
)
from storage.paging import QueryError
from storage.write_path import WritePath

READ_ROLES = ("ops", "agent")
RESEND_ROLES = ("ops",)  # admin is implied
LIST_PARAMS = frozenset((*FILTER_PARAMS, "filter", "limit", "cursor", "order", "count"))
EXPORT_PARAMS = frozenset((*FILTER_PARAMS, "filter", "format"))
NOBODY = -1  # the technician an agent without one is scoped to: no row matches
ID = Param("id", "path", {"type": "integer", "minimum": 1}, "the notification's id", True, 1)
JOB_ID = Param("id", "path", {"type": "integer", "minimum": 1}, "the job's id", True, 1)
IDEMPOTENCY = Param(
    "Idempotency-Key", "header", {"type": "string", "maxLength": 100},
    "the same key again queues nothing new and answers the first result",
)  # fmt: skip
FILTER_DOCS = (
    query("channel", "email, sms, push or telegram (comma-separated: any of them)"),
    query("status", "pending, sending, sent, failed, dead or suppressed (comma-separated)"),
    query("sent", "true: sent; false: not sent", {"type": "boolean"}),
    query("trigger", "auto or manual"),
    query("template", "the template's name, e.g. ack_email"),
    query("since", "from this ISO date or date-time (inclusive)"),
    query("until", "up to this ISO date-time (exclusive) or date (inclusive)"),
    query("time", "which time since, until and the order use: created (default) or sent"),
    query("case", "a case number"),
    query("customer", "a customer's id", {"type": "integer"}),
    query("recipient", "the exact address, number or chat"),
    query("provider", "the sender it went through, e.g. twilio"),
    query("resend_of", "resends of this notification", {"type": "integer"}),
    query("q", "words in the recipient, subject or text"),
    query("filter", "the name of one of your saved filters"),
)


class LogApi:
    def __init__(self, db: Database, writes: WritePath) -> None:
        self.db = db
        self.writes = writes

    def endpoints(self) -> list[Endpoint]:
        resent = Answer("the new notification, or why none was queued", shapes.ResentOut)
        job = Answer("the job", shapes.JobOut)
        return [
            Endpoint(
                "GET", "/api/v1/notifications", self.list, "The outbound log, newest first",
                "log", {200: Answer("a page of the log", shapes.LogPage)}, READ_ROLES,
                params=(*FILTER_DOCS, *PAGING,
                        query("order", "newest (default) or oldest"),
                        query("count", "true: also count the matches (exact up to 10,000)",
                              {"type": "boolean"})),
            ),
            Endpoint(
                "GET", "/api/v1/notifications/export", self.export,
                "The filtered log as CSV", "log",
                {200: Answer("the rows, newest first", media="text/csv",
                             schema={"type": "string"})},
                READ_ROLES, params=(*FILTER_DOCS, query("format", "csv")),
            ),
            Endpoint(
                "GET", "/api/v1/notifications/{id}", self.show,
                "One message as sent, its attempts and its resends", "log",
                {200: Answer("the notification", shapes.LogDetailOut)}, READ_ROLES,
                params=(ID,),
            ),
            Endpoint(
                "POST", "/api/v1/notifications/{id}/resend", self.resend_one,
                "Resend one message (a new row; the original is kept as it is)", "log",
                {201: resent, 200: resent}, RESEND_ROLES, body=shapes.ResendIn,
                body_required=False, params=(ID, IDEMPOTENCY), errors=(409,),
            ),
            Endpoint(
                "POST", "/api/v1/notifications/resend", self.resend_many,
                "Resend many messages, by ids or by a filter, as a job", "log",
                {202: Answer("the job queuing them", shapes.JobStartedOut,
                             headers=("Location",)),
                 200: Answer("the job a repeated key started", shapes.JobStartedOut,
                             headers=("Location",))},
                RESEND_ROLES, body=shapes.BulkResendIn, params=(IDEMPOTENCY,),
            ),
            Endpoint(
                "GET", "/api/v1/jobs/{id}", self.job, "A resend job's progress", "log",
                {200: job}, RESEND_ROLES, params=(JOB_ID,),
            ),
            Endpoint(
                "POST", "/api/v1/jobs/{id}/cancel", self.cancel,
                "Stop a running resend job after its current step", "log", {200: job},
                RESEND_ROLES, params=(JOB_ID,), errors=(409,),
            ),
        ]  # fmt: skip

    def routes(self) -> list[web.RouteDef]:
        return [ep.route() for ep in self.endpoints()]

    async def filters_for(self, principal: Principal, params: dict[str, str]) -> LogFilters:
        """The filters of a request: the saved filter it names, overridden by the
        parameters given beside it, scoped to an agent's own cases."""
        saved = None
        name = params.get("filter")
        if name:
            saved = await self.db.read(get_saved_filter, user_id=principal.user_id, name=name)
            if saved is None:
                raise bad_param("filter", f"you have no saved filter named {name!r}")
        try:
            filters = parse_filters(merged_params(saved.params if saved else None, params))
        except QueryError as exc:
            raise bad_param(exc.param, str(exc)) from None
        if principal.may(*RESEND_ROLES):
            return filters
        technician = await self.db.read(user_technician, principal.user_id)
        return filters.scoped(technician if technician is not None else NOBODY)

    async def list(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*READ_ROLES)
        params = single_params(request, LIST_PARAMS)
        filters = await self.filters_for(principal, params)
        limit = parse_limit(params.get("limit"))
        order = params.get("order") or "newest"
        if order not in ("newest", "oldest"):
            raise bad_param("order", "order must be newest or oldest")
        counting = (params.get("count") or "false").lower()
        if counting not in ("true", "false"):
            raise bad_param("count", "count must be true or false")
        try:
            page = await self.db.read(
                list_notifications, filters, limit, params.get("cursor") or None, order
            )
            count = await self.db.read(count_notifications, filters) if counting == "true" else None
        except QueryError as exc:
            raise bad_param(exc.param, str(exc)) from None
        body: dict[str, Any] = {
            "items": [shapes.log_item(i) for i in page.items],
            "next_cursor": page.next_cursor,
        }
        if count is not None:
            body["count"] = shapes.count_value(count, COUNT_CAP)
        return ok(body)

    async def export(self, request: web.Request) -> web.StreamResponse:
        principal = principal_of(request).require(*READ_ROLES)
        params = single_params(request, EXPORT_PARAMS)
        if (params.get("format") or "csv") != "csv":
            raise bad_param("format", "format must be csv")
        filters = await self.filters_for(principal, params)
        try:
            first = await self.db.read(list_notifications, filters, 200, None)
        except QueryError as exc:
            raise bad_param(exc.param, str(exc)) from None
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": 'attachment; filename="notifications.csv"',
            }
        )
        await response.prepare(request)
        await response.write(csv_lines([CSV_COLUMNS]))
        page = first
        while True:
            await response.write(csv_lines(csv_row(i) for i in page.items))
            if page.next_cursor is None:
                break
            page = await self.db.read(list_notifications, filters, 200, page.next_cursor)
        await response.write_eof()
        return response

    async def show(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*READ_ROLES)
        single_params(request, frozenset())
        notification_id = path_id(request)
        await self._visible(principal, notification_id)
        detail = await self.db.read(get_notification, notification_id)
        if detail is None:
            raise error(404, "not_found", f"no notification {notification_id}")
        return ok(shapes.log_detail(detail))

    async def _visible(self, principal: Principal, notification_id: int) -> None:
        if principal.may(*RESEND_ROLES):
            return
        technician = await self.db.read(user_technician, principal.user_id)
        owner = await self.db.read(notification_scope, notification_id)
        if technician is None or owner != technician:
            # Not theirs to know about: answered as absent.
            raise error(404, "not_found", f"no notification {notification_id}")

    async def resend_one(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*RESEND_ROLES)
        single_params(request, frozenset())
        body = await read_model(request, shapes.ResendIn, optional=True)
        result: Resent = await self.writes.submit(
            ResendOne(
                path_id(request), principal.name, body.reason, body.as_sent,
                idempotency_key(request),
            )
        )  # fmt: skip
        answer = {
            "original": result.original, "notification": result.notification_id,
            "skipped": result.skipped, "repeated": result.repeated,
        }  # fmt: skip
        return ok(answer, 201 if result.notification_id and not result.repeated else 200)

    async def resend_many(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*RESEND_ROLES)
        single_params(request, frozenset())
        body = await read_model(request, shapes.BulkResendIn)
        selection: dict[str, Any]
        if body.ids is not None:
            selection = {"ids": body.ids}
        elif isinstance(body.filter, str):
            filters = await self.filters_for(principal, {"filter": body.filter})
            selection = {"params": filters.params()}
        else:
            flat = shapes.flat_params(body.filter or {})
            unknown = sorted(set(flat) - set(FILTER_PARAMS))
            if unknown:
                raise error(422, "validation_failed", f"unknown filter {unknown[0]!r}",
                            fields={f"filter.{unknown[0]}": "unknown filter"})  # fmt: skip
            filters = await self.filters_for(principal, flat)
            selection = {"params": filters.params()}
        started: JobStarted = await self.writes.submit(
            StartResendJob(selection, principal.name, body.reason, body.as_sent,
                           idempotency_key(request))
        )  # fmt: skip
        row = await self.db.read(get_job, started.job_id)
        assert row is not None
        location = f"/api/v1/jobs/{started.job_id}"
        return ok({"job": shapes.job(row), "repeated": started.repeated},
                  200 if started.repeated else 202, {"Location": location})  # fmt: skip

    async def job(self, request: web.Request) -> web.Response:
        principal_of(request).require(*RESEND_ROLES)
        single_params(request, frozenset())
        job_id = path_id(request)
        row = await self.db.read(get_job, job_id)
        if row is None:
            raise error(404, "not_found", f"no job {job_id}")
        return ok(shapes.job(row))

    async def cancel(self, request: web.Request) -> web.Response:
        principal_of(request).require(*RESEND_ROLES)
        single_params(request, frozenset())
        job_id = path_id(request)
        await self.writes.submit(CancelJob(job_id))
        row = await self.db.read(get_job, job_id)
        assert row is not None
        return ok(shapes.job(row))


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get("Idempotency-Key", "").strip()
    if len(key) > 100:
        raise error(400, "invalid_header", "Idempotency-Key is at most 100 characters")
    return key or None
