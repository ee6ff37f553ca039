"""The ``ventanilla cases`` commands: list and show cases, and change them as agents do.

``update``, ``note``, ``merge`` and ``clone`` submit the same case operations as the API
(``cases.operations``) to the one write path, recorded with the actor ``--as`` names
(default ``cli:<login name>``); refusals print the field and exit 2 (invalid), 1 (not
found, conflict, stale).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import mimetypes
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from tabulate import tabulate

from cases.operations import AddNote, CaseChanged, CloneCase, MergeCase, ReplyToCase, UpdateCase
from config.app import Services
from config.cli_output import json_out, paging, print_page, short, when
from console import serialize
from storage.operations import OperationRefused
from storage.queries import (
    CaseDetail,
    CaseFilters,
    QueryError,
    TimelineMessage,
    get_case,
    get_event,
    list_cases,
)

# The --options of ``cases update`` (and ``clone``) and the case fields they set.
TEXT_OPTIONS = ("title", "status", "priority", "severity", "category", "subreason", "area",
                "assignee", "solution", "parent")  # fmt: skip
CLEARABLE = ("category", "subreason", "area", "assignee", "reopen_at", "parent", "tags", "cc")


async def cmd_cases_list(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    db = services.db
    filters = CaseFilters(
        q=args.q,
        status=args.status,
        area=args.area,
        assignee=args.assignee,
        channel=args.channel,
        customer=args.customer,
    )
    try:
        page = await db.read(list_cases, filters, args.limit, args.cursor)
    except QueryError as exc:
        print(f"{exc.param}: {exc}", file=out)
        return 2
    return print_page(
        page,
        args,
        out,
        item_json=serialize.case_item,
        empty="no cases match",
        headers=[
            "number",
            "created",
            "status",
            "priority",
            "area",
            "assignee",
            "customer",
            "title",
        ],
        row=lambda c: [
            c.number,
            when(c.created_at),
            c.status,
            c.priority,
            c.area or "",
            c.assignee or "",
            short(c.customer_name or c.contact, 24),
            short(c.title, 50),
        ],
    )


def _case_header(case: CaseDetail) -> list[tuple[str, str]]:
    c = case.row
    idents = ", ".join(f"{i.kind} {i.value}" for i in case.identities)
    fields = [
        ("number", c.number),
        ("title", c.title),
        ("status", f"{c.status} ({case.status_kind})"),
        ("priority", c.priority),
        ("severity", c.severity),
        ("category", " / ".join(x for x in (c.category, c.subreason) if x)),
        ("area", c.area or ""),
        ("assignee", c.assignee or ""),
        ("customer", f"{c.customer_name} (#{c.customer_id}) {idents}".strip()),
        ("contact", c.contact),
        ("channel", c.origin_channel),
        ("created", when(c.created_at)),
        ("updated", when(c.updated_at)),
        ("first response due", when(case.first_response_due)),
        ("resolution due", when(case.resolution_due)),
        ("tags", ", ".join(map(str, case.tags))),
        ("cc", ", ".join(map(str, case.cc))),
        ("parent", case.parent or ""),
        ("merged into", case.merged_into or ""),
        ("closed", when(case.closed_at)),
    ]
    return [(k, v) for k, v in fields if v]


async def cmd_cases_show(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    db = services.db
    case = await db.read(get_case, args.number)
    if case is None:
        print(f"no case {args.number}", file=out)
        return 1
    if args.json:
        json_out(serialize.case_detail(case), out)
        return 0
    print(tabulate(_case_header(case), tablefmt="plain"), file=out)
    if case.description:
        print("\n" + case.description.strip(), file=out)
    print("\ntimeline:", file=out)
    for entry in case.timeline:
        if isinstance(entry, TimelineMessage):
            arrow = "<-" if entry.direction == "in" else "->"
            print(f"  {when(entry.created_at)}  {arrow} {entry.channel} {entry.sender}", file=out)
            if entry.subject:
                print(f"      subject: {entry.subject}", file=out)
            for line in entry.text.strip().splitlines():
                print(f"      {line}", file=out)
            for a in entry.attachments:
                print(f"      [attachment] {a.filename} ({a.content_type}, {a.size} B)", file=out)
        else:
            print(f"  {when(entry.created_at)}  * {entry.kind} ({entry.actor})", file=out)
            for key, value in entry.detail.items():
                if isinstance(value, list):  # routing reasons: one per line
                    print(f"      {key}:", file=out)
                    for item in value:
                        print(f"        - {item}", file=out)
                else:
                    print(f"      {key}: {value}", file=out)
    return 0


def _actor(args: argparse.Namespace) -> str:
    return str(args.actor or f"cli:{getpass.getuser()}")


def _changes(args: argparse.Namespace) -> dict[str, Any] | str:
    """The requested changes from the options, or a usage error."""
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in TEXT_OPTIONS if getattr(args, name) is not None
    }
    for name in ("tags", "cc"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = [v.strip() for v in value.split(",") if v.strip()]
    if args.public is not None:
        changes["is_public"] = args.public
    if args.reopen_at is not None:
        try:
            changes["reopen_at"] = datetime.fromisoformat(args.reopen_at)
        except ValueError:
            return f"--reopen-at: not an ISO 8601 date-time: {args.reopen_at!r}"
    for name in args.clear or ():
        if name not in CLEARABLE:
            return f"--clear: {name!r} cannot be cleared; one of {', '.join(CLEARABLE)}"
        changes[name] = [] if name in ("tags", "cc") else None
    return changes


async def _submit(services: Services, op: object, args: argparse.Namespace, out: TextIO) -> int:
    try:
        changed: CaseChanged = await services.writes.submit(op)
    except OperationRefused as exc:
        where = f"{exc.field}: " if exc.field else ""
        print(f"refused: {where}{exc.message}", file=out)
        return 2 if exc.kind == "invalid" else 1
    event = None
    if changed.event_id is not None:
        event = await services.db.read(get_event, changed.event_id)
    if args.json:
        json_out(serialize.case_change(changed, event), out)
        return 0
    if changed.created:
        print(f"{changed.created} created (a clone of {args.number})", file=out)
    elif event is not None and event.kind == "note":
        print(f"note added to {changed.number}", file=out)
    elif event is not None and event.kind == "replied":
        print(f"reply to {changed.number} queued by {event.detail['channel']} "
              f"to {event.detail['to']}", file=out)  # fmt: skip
    elif event is not None and event.kind == "merged_from":
        print(f"{args.number} merged into {changed.number}", file=out)
    elif not changed.changes:
        print(f"{changed.number}: nothing to change (version {changed.version})", file=out)
    else:
        print(f"{changed.number} updated (version {changed.version}):", file=out)
    for name, (before, after) in changed.changes.items():
        print(f"  {name}: {_show(before)} → {_show(after)}", file=out)
    return 0


def _show(value: Any) -> str:
    if value is None or value == []:
        return "(none)"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


async def cmd_cases_update(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    changes = _changes(args)
    if isinstance(changes, str):
        print(changes, file=out)
        return 2
    if not changes:
        print("nothing to change: give at least one option (see --help)", file=out)
        return 2
    op = UpdateCase(args.number, changes, _actor(args), args.if_version)
    return await _submit(services, op, args, out)


async def cmd_cases_note(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    return await _submit(services, AddNote(args.number, args.text, _actor(args)), args, out)


async def cmd_cases_reply(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    files = []
    for path in args.attach or ():
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            print(f"cannot read {path}: {exc.strerror or exc}", file=out)
            return 2
        limit = services.settings.intake.max_attachment_bytes
        if len(data) > limit:
            print(f"{path} is larger than [intake] max_attachment_bytes ({limit})", file=out)
            return 2
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        files.append(await services.attachments.save(data, path.name, kind))
    op = ReplyToCase(args.number, args.text, _actor(args), args.channel, tuple(files))
    return await _submit(services, op, args, out)


async def cmd_cases_merge(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    return await _submit(services, MergeCase(args.number, args.into, _actor(args)), args, out)


async def cmd_cases_clone(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    changes = _changes(args)
    if isinstance(changes, str):
        print(changes, file=out)
        return 2
    return await _submit(services, CloneCase(args.number, _actor(args), changes), args, out)


def _change_options(parser: argparse.ArgumentParser) -> None:
    for name in TEXT_OPTIONS:
        parser.add_argument(f"--{name}", help=f"new {name} (a name from the catalog)")
    parser.add_argument("--tags", help="comma-separated tags (replaces them)")
    parser.add_argument("--cc", help="comma-separated CC addresses (replaces them)")
    parser.add_argument("--reopen-at", help="ISO 8601 date-time with zone")
    public = parser.add_mutually_exclusive_group()
    public.add_argument("--public", dest="public", action="store_true", default=None)
    public.add_argument("--internal", dest="public", action="store_false")
    parser.add_argument("--clear", action="append", metavar="FIELD",
                        help=f"empty a field ({', '.join(CLEARABLE)}); repeatable")  # fmt: skip


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("number", help="case number, e.g. CAS-000123")
    parser.add_argument("--as", dest="actor", help="who makes the change (default cli:<login>)")
    parser.add_argument("--json", action="store_true", help="print JSON as the API answers")


def add_case_parsers(subparsers: Any) -> None:
    cases = subparsers.add_parser("cases", help="support cases")
    cases_sub = cases.add_subparsers(dest="cases_cmd", required=True)
    listing = cases_sub.add_parser("list", help="list cases, newest first")
    for name in ("status", "area", "assignee", "channel", "customer"):
        listing.add_argument(f"--{name}", help=f"only cases with this {name}")
    listing.add_argument("--q", help="text in the title, description or any message")
    paging(listing)
    listing.set_defaults(handler=cmd_cases_list)
    show = cases_sub.add_parser("show", help="one case and its timeline")
    show.add_argument("number", help="case number, e.g. CAS-000123")
    show.add_argument("--json", action="store_true", help="print JSON as the API answers")
    show.set_defaults(handler=cmd_cases_show)

    update = cases_sub.add_parser("update", help="change fields of a case")
    _common(update)
    _change_options(update)
    update.add_argument("--if-version", type=int, help="refuse unless the case is at this version")
    update.set_defaults(handler=cmd_cases_update)
    note = cases_sub.add_parser("note", help="add an internal note (never sent)")
    _common(note)
    note.add_argument("text", help="the note")
    note.set_defaults(handler=cmd_cases_note)
    reply = cases_sub.add_parser("reply", help="answer the customer (sent on the case's channel)")
    _common(reply)
    reply.add_argument("text", help="the answer")
    reply.add_argument("--channel", choices=("email", "sms", "telegram"), help="another channel")
    reply.add_argument("--attach", type=Path, action="append", metavar="FILE",
                       help="a file to send with it (email only; repeatable)")  # fmt: skip
    reply.set_defaults(handler=cmd_cases_reply)
    merge = cases_sub.add_parser("merge", help="merge a case into another")
    _common(merge)
    merge.add_argument("--into", required=True, help="the case that stays")
    merge.set_defaults(handler=cmd_cases_merge)
    clone = cases_sub.add_parser("clone", help="a new case with the same fields, linked")
    _common(clone)
    _change_options(clone)
    clone.set_defaults(handler=cmd_cases_clone)
