"""The cases part of the ops API: list, read, change, annotate, merge and clone cases.

Reads come from ``storage.queries``; every change is a case operation (``cases.operations``)
submitted to the one write path, recorded as an event with the caller as actor. A case's
version is its ETag; a PATCH with a stale ``If-Match`` gets 412 and changes nothing.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from cases.operations import (
    AddNote,
    CaseChanged,
    CloneCase,
    MergeCase,
    ReplyToCase,
    UpdateCase,
)
from console import schemas, serialize
from console.endpoints import PAGING, Answer, Endpoint, Param, query
from console.http_json import BODY_MAX_BYTES, error, ok, parse_limit, read_model, single_params
from console.principal import principal_of
from console.reply_files import ReplyFiles
from intake.message import Attachment
from storage.db import Database
from storage.queries import CaseFilters, QueryError, get_case, get_event, list_cases
from storage.write_path import WritePath

READ_ROLES = ("ops", "agent")  # admin is implied by Principal.may
WRITE_ROLES = ("ops", "agent")
CASE_FILTERS = ("q", "status", "area", "assignee", "channel", "customer")
CASE_LIST_PARAMS = frozenset((*CASE_FILTERS, "limit", "cursor"))
NUMBER = Param(
    "number", "path", {"type": "string"}, "case number, e.g. CAS-000123", True, "CAS-000001"
)


def etag(version: int) -> str:
    return f'"{version}"'


def if_match(request: web.Request) -> int | None:
    """The version an ``If-Match`` names (None when absent or ``*``); 412 when it names
    no version of ours (RFC 9110 §13.1.1: a failed match, so nothing changes)."""
    header = request.headers.get("If-Match")
    if header is None or header.strip() == "*":
        return None
    value = header.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 18:
        raise error(412, "precondition_failed", f"If-Match {header!r} matches no version")
    return int(value)


class CasesApi:
    def __init__(self, db: Database, writes: WritePath, files: ReplyFiles | None = None) -> None:
        """``files`` stores the attachments of agents' replies."""
        self.db = db
        self.writes = writes
        self.files = files

    def endpoints(self) -> list[Endpoint]:
        case_answer = Answer("the case", schemas.CaseDetail, headers=("ETag",))
        state_answer = Answer("the case's fields after the change", schemas.CaseState,
                              headers=("ETag",))  # fmt: skip
        change = Answer("what changed", schemas.CaseChangeOut)
        return [
            Endpoint(
                "GET", "/api/v1/cases", self.list_cases, "List cases, newest first", "cases",
                {200: Answer("a page of cases", schemas.CasePage)},
                READ_ROLES,
                params=(*(query(f, f"only cases with this {f}") for f in CASE_FILTERS), *PAGING),
            ),
            Endpoint(
                "GET", "/api/v1/cases/{number}", self.get_case, "One case and its timeline",
                "cases", {200: case_answer}, READ_ROLES, params=(NUMBER,),
            ),
            Endpoint(
                "PATCH", "/api/v1/cases/{number}", self.patch_case, "Change a case's fields",
                "cases", {200: state_answer}, WRITE_ROLES, body=schemas.CaseChanges,
                params=(NUMBER, Param("If-Match", "header", {"type": "string"},
                                      "the ETag last read: refused (412) if the case changed")),
                errors=(409, 412),
            ),
            Endpoint(
                "POST", "/api/v1/cases/{number}/notes", self.add_note,
                "Add an internal note (never sent to the customer)", "cases",
                {201: change}, WRITE_ROLES, body=schemas.NoteIn, params=(NUMBER,),
                errors=(409,),
            ),
            Endpoint(
                "POST", "/api/v1/cases/{number}/replies", self.reply,
                "Answer the customer on the case's channel (or the one named)", "cases",
                {201: change}, WRITE_ROLES, body=schemas.ReplyIn, params=(NUMBER,),
                errors=(409,),
            ),
            Endpoint(
                "POST", "/api/v1/cases/{number}/merge", self.merge,
                "Merge this case into another", "cases", {200: change}, WRITE_ROLES,
                body=schemas.MergeIn, params=(NUMBER,), errors=(409,),
            ),
            Endpoint(
                "POST", "/api/v1/cases/{number}/clone", self.clone,
                "Open a new case with the same fields, linked to this one", "cases",
                {201: Answer("the new case", schemas.CaseChangeOut, headers=("Location",))},
                WRITE_ROLES, body=schemas.CaseChanges, body_required=False, params=(NUMBER,),
                errors=(409,),
            ),
        ]  # fmt: skip

    async def list_cases(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        params = single_params(request, CASE_LIST_PARAMS)
        filters = CaseFilters(**{k: params[k] for k in CASE_FILTERS if params.get(k)})
        limit = parse_limit(params.get("limit"))
        try:
            result = await self.db.read(list_cases, filters, limit, params.get("cursor") or None)
        except QueryError as exc:
            raise error(400, "invalid_parameter", str(exc), param=exc.param) from None
        return ok(serialize.page(result, serialize.case_item))

    async def get_case(self, request: web.Request) -> web.Response:
        principal_of(request).require(*READ_ROLES)
        single_params(request, frozenset())
        return await self._case(request.match_info["number"])

    async def _case(self, number: str, *, timeline: bool = True) -> web.Response:
        case = await self.db.read(get_case, number, timeline=timeline)
        if case is None:
            raise error(404, "not_found", f"no case {number}")
        body = serialize.case_detail(case, timeline=timeline)
        return ok(body, headers={"ETag": etag(case.version)})

    async def patch_case(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*WRITE_ROLES)
        single_params(request, frozenset())
        number = request.match_info["number"]
        expected = if_match(request)
        body = await read_model(request, schemas.CaseChanges)
        changed: CaseChanged = await self.writes.submit(
            UpdateCase(number, body.model_dump(exclude_unset=True), principal.name, expected)
        )
        # The fields only: the timeline is a GET away, and a change does not touch it.
        return await self._case(changed.number, timeline=False)

    async def add_note(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*WRITE_ROLES)
        single_params(request, frozenset())
        body = await read_model(request, schemas.NoteIn)
        changed = await self.writes.submit(
            AddNote(request.match_info["number"], body.text, principal.name)
        )
        return ok(await self._change(changed), 201)

    async def reply(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*WRITE_ROLES)
        single_params(request, frozenset())
        limit = self.files.max_body_bytes if self.files else BODY_MAX_BYTES
        body = await read_model(request, schemas.ReplyIn, max_bytes=limit)
        stored: tuple[Attachment, ...] = ()
        if body.attachments:
            if self.files is None:
                raise error(422, "validation_failed", "attachments are not accepted here",
                            fields={"attachments": "not accepted"})  # fmt: skip
            stored = await self.files.save(body.attachments)
        changed = await self.writes.submit(
            ReplyToCase(
                request.match_info["number"], body.text, principal.name, body.channel, stored
            )
        )
        return ok(await self._change(changed), 201)

    async def merge(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*WRITE_ROLES)
        single_params(request, frozenset())
        body = await read_model(request, schemas.MergeIn)
        changed = await self.writes.submit(
            MergeCase(request.match_info["number"], body.into, principal.name)
        )
        return ok(await self._change(changed))

    async def clone(self, request: web.Request) -> web.Response:
        principal = principal_of(request).require(*WRITE_ROLES)
        single_params(request, frozenset())
        body = await read_model(request, schemas.CaseChanges, optional=True)
        changes = body.model_dump(exclude_unset=True)
        changed = await self.writes.submit(
            CloneCase(request.match_info["number"], principal.name, changes)
        )
        location = f"/api/v1/cases/{changed.created}"
        return ok(await self._change(changed), 201, {"Location": location})

    async def _change(self, changed: CaseChanged) -> dict[str, Any]:
        event = None
        if changed.event_id is not None:
            event = await self.db.read(get_event, changed.event_id)
        return serialize.case_change(changed, event)
