"""Operator commands of the ``ventanilla`` CLI: tokens, cases, the inbound log and retries.

Each ``cmd_*`` takes the database, the parsed arguments and an output stream and returns
the exit code (0 ok, 1 not found / still failing, 2 bad usage); ``cmd_inbound_retry`` also
takes the running intake writer, since a replay must go through the one write path.
``add_ops_parsers`` registers them; ``config.cli`` opens the services and calls
``args.handler``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any, TextIO

from tabulate import tabulate

from config.app import Services
from console import serialize
from storage.auth import ROLES, CreateToken, new_token
from storage.db import StorageUnavailable
from storage.operations import OperationRefused
from storage.queries import (
    DEFAULT_LIMIT,
    CaseDetail,
    CaseFilters,
    QueryError,
    TimelineMessage,
    failed_inbound_ids,
    get_case,
    list_cases,
    list_inbound,
)


def _short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def _json_out(body: Any, out: TextIO) -> None:
    print(json.dumps(body, ensure_ascii=False, indent=2), file=out)


def _print_page(
    page: Any,
    args: argparse.Namespace,
    out: TextIO,
    *,
    item_json: Callable[[Any], Any],
    empty: str,
    headers: list[str],
    row: Callable[[Any], list[Any]],
) -> int:
    """A listing's page as JSON (``--json``) or a table, with the cursor of the next one."""
    if args.json:
        _json_out(serialize.page(page, item_json), out)
        return 0
    if not page.items:
        print(empty, file=out)
        return 0
    print(tabulate([row(item) for item in page.items], headers=headers), file=out)
    if page.next_cursor:
        print(f"\nmore: --cursor {page.next_cursor}", file=out)
    return 0


# --- token ---------------------------------------------------------------------------------


async def cmd_token_create(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    if args.role not in ROLES:
        print(f"invalid role {args.role!r}; choose one of: {', '.join(ROLES)}", file=out)
        return 2
    token, digest, prefix = new_token()
    try:
        await services.writes.submit(CreateToken(args.name, args.role, digest, prefix))
    except OperationRefused as exc:
        print(f"{exc.field}: {exc}", file=out)
        return 2
    print(f"token for {args.name} (role {args.role}):", file=out)
    print(token, file=out)
    print("Keep it now: it is stored hashed and will not be shown again.", file=out)
    return 0


# --- cases ---------------------------------------------------------------------------------


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
        async with db.session() as session:
            page = await list_cases(session, filters, args.limit, args.cursor)
    except QueryError as exc:
        print(f"{exc.param}: {exc}", file=out)
        return 2
    return _print_page(
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
            _when(c.created_at),
            c.status,
            c.priority,
            c.area or "",
            c.assignee or "",
            _short(c.customer_name or c.contact, 24),
            _short(c.title, 50),
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
        ("created", _when(c.created_at)),
        ("updated", _when(c.updated_at)),
        ("first response due", _when(case.first_response_due)),
        ("resolution due", _when(case.resolution_due)),
        ("tags", ", ".join(map(str, case.tags))),
        ("cc", ", ".join(map(str, case.cc))),
        ("parent", case.parent or ""),
        ("merged into", case.merged_into or ""),
        ("closed", _when(case.closed_at)),
    ]
    return [(k, v) for k, v in fields if v]


async def cmd_cases_show(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    db = services.db
    async with db.session() as session:
        case = await get_case(session, args.number)
    if case is None:
        print(f"no case {args.number}", file=out)
        return 1
    if args.json:
        _json_out(serialize.case_detail(case), out)
        return 0
    print(tabulate(_case_header(case), tablefmt="plain"), file=out)
    if case.description:
        print("\n" + case.description.strip(), file=out)
    print("\ntimeline:", file=out)
    for entry in case.timeline:
        if isinstance(entry, TimelineMessage):
            arrow = "<-" if entry.direction == "in" else "->"
            print(f"  {_when(entry.created_at)}  {arrow} {entry.channel} {entry.sender}", file=out)
            if entry.subject:
                print(f"      subject: {entry.subject}", file=out)
            for line in entry.text.strip().splitlines():
                print(f"      {line}", file=out)
            for a in entry.attachments:
                print(f"      [attachment] {a.filename} ({a.content_type}, {a.size} B)", file=out)
        else:
            print(f"  {_when(entry.created_at)}  * {entry.kind} ({entry.actor})", file=out)
            for key, value in entry.detail.items():
                if isinstance(value, list):  # routing reasons: one per line
                    print(f"      {key}:", file=out)
                    for item in value:
                        print(f"        - {item}", file=out)
                else:
                    print(f"      {key}: {value}", file=out)
    return 0


# --- inbound -------------------------------------------------------------------------------


async def cmd_inbound_list(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    db = services.db
    try:
        async with db.session() as session:
            page = await list_inbound(session, args.status, args.channel, args.limit, args.cursor)
    except QueryError as exc:
        print(f"{exc.param}: {exc}", file=out)
        return 2
    return _print_page(
        page,
        args,
        out,
        item_json=serialize.inbound_item,
        empty="no inbound messages match",
        headers=["id", "received", "channel", "external id", "status", "case", "error"],
        row=lambda r: [
            r.id,
            _when(r.received_at),
            r.channel,
            _short(r.external_id, 40),
            r.status,
            r.case_number or "",
            _short(r.error, 60),
        ],
    )


async def cmd_inbound_retry(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    """Replay failed inbound rows through the writer; exit 1 if any is still failing."""
    db, writer = services.db, services.writer
    if bool(args.ids) == bool(args.all_failed):
        print("give inbound ids or --all-failed (not both)", file=out)
        return 2
    ids: list[int] = list(args.ids)
    if args.all_failed:
        async with db.session() as session:
            ids = await failed_inbound_ids(session)
        if not ids:
            print("no failed inbound messages", file=out)
            return 0
    still_failing = 0
    for inbound_id in ids:
        try:
            result = await writer.retry(inbound_id)
        except (LookupError, ValueError, StorageUnavailable) as exc:
            print(f"inbound {inbound_id}: not retried: {exc}", file=out)
            still_failing += 1
            continue
        if result.outcome == "failed":
            print(f"inbound {inbound_id}: still failed: {result.error}", file=out)
            still_failing += 1
        else:
            print(f"inbound {inbound_id}: {result.outcome} {result.case_number or ''}", file=out)
    print(f"{len(ids) - still_failing} of {len(ids)} replayed", file=out)
    return 1 if still_failing else 0


# --- argparse ------------------------------------------------------------------------------


def _limit(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if not 1 <= limit <= 200:
        raise argparse.ArgumentTypeError("must be between 1 and 200")
    return limit


def _paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT, help="rows (1-200)")
    parser.add_argument("--cursor", help="continue from a previous page's cursor")
    parser.add_argument("--json", action="store_true", help="print JSON as the API answers")


def add_ops_parsers(subparsers: Any) -> None:
    """Register token, cases and inbound on the ``ventanilla`` subparsers. Each sets
    ``handler``, called with the running services."""
    token = subparsers.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_cmd", required=True)
    create = token_sub.add_parser("create", help="create a token (printed once)")
    create.add_argument("--name", required=True, help="user the token belongs to")
    create.add_argument("--role", required=True, help=f"one of {', '.join(ROLES)}")
    create.set_defaults(handler=cmd_token_create)

    cases = subparsers.add_parser("cases", help="support cases")
    cases_sub = cases.add_subparsers(dest="cases_cmd", required=True)
    listing = cases_sub.add_parser("list", help="list cases, newest first")
    for name in ("status", "area", "assignee", "channel", "customer"):
        listing.add_argument(f"--{name}", help=f"only cases with this {name}")
    listing.add_argument("--q", help="text in the title, description or any message")
    _paging(listing)
    listing.set_defaults(handler=cmd_cases_list)
    show = cases_sub.add_parser("show", help="one case and its timeline")
    show.add_argument("number", help="case number, e.g. CAS-000123")
    show.add_argument("--json", action="store_true", help="print JSON as the API answers")
    show.set_defaults(handler=cmd_cases_show)

    inbound = subparsers.add_parser("inbound", help="the inbound message log")
    inbound_sub = inbound.add_subparsers(dest="inbound_cmd", required=True)
    ilist = inbound_sub.add_parser("list", help="list inbound messages, newest first")
    ilist.add_argument("--status", choices=("failed", "processed"))
    ilist.add_argument("--channel", help="only this channel (email, web, api, telegram, sms)")
    _paging(ilist)
    ilist.set_defaults(handler=cmd_inbound_list)
    retry = inbound_sub.add_parser("retry", help="replay failed inbound messages")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="inbound ids")
    retry.add_argument("--all-failed", action="store_true", help="every failed message")
    retry.set_defaults(handler=cmd_inbound_retry)
