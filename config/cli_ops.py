"""Operator commands of the ``ventanilla`` CLI: tokens, the inbound log and retries (the
case commands are ``config.cli_cases``, the outbound log's ``config.cli_log``).

Each ``cmd_*`` takes the running services, the parsed arguments and an output stream and
returns the exit code (0 ok, 1 not found / still failing, 2 bad usage); every change goes
through the one write path. ``add_ops_parsers`` registers them; ``config.cli`` opens the
services and calls ``args.handler``.
"""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from tabulate import tabulate

from config.app import Services
from config.cli_cases import add_case_parsers
from config.cli_log import add_log_parsers
from config.cli_output import json_out, paging, print_page, short, when
from console import serialize
from storage.auth import ROLES, CreateToken, RevokeToken, list_tokens, new_token
from storage.db import StorageUnavailable
from storage.operations import OperationRefused
from storage.queries import (
    QueryError,
    failed_inbound_ids,
    list_inbound,
)

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


async def cmd_token_list(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    async with services.db.session() as session:
        tokens = await list_tokens(session, include_revoked=args.all)
    if args.json:
        json_out({"items": [serialize.token_item(t) for t in tokens], "next_cursor": None}, out)
        return 0
    if not tokens:
        print("no tokens", file=out)
        return 0
    rows = [
        [t.id, t.user, t.role, f"{t.prefix}…", when(t.created_at), when(t.revoked_at)]
        for t in tokens
    ]
    headers = ["id", "user", "role", "token", "created", "revoked"]
    print(tabulate(rows, headers=headers), file=out)
    return 0


async def cmd_token_revoke(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    try:
        info = await services.writes.submit(RevokeToken(args.id))
    except OperationRefused as exc:
        print(str(exc), file=out)
        return 1
    print(f"token {info.id} of {info.user} revoked at {when(info.revoked_at)}", file=out)
    return 0


# --- inbound -------------------------------------------------------------------------------


async def cmd_inbound_list(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    db = services.db
    try:
        page = await db.read(list_inbound, args.status, args.channel, args.limit, args.cursor)
    except QueryError as exc:
        print(f"{exc.param}: {exc}", file=out)
        return 2
    return print_page(
        page,
        args,
        out,
        item_json=serialize.inbound_item,
        empty="no inbound messages match",
        headers=["id", "received", "channel", "external id", "status", "case", "error"],
        row=lambda r: [
            r.id,
            when(r.received_at),
            r.channel,
            short(r.external_id, 40),
            r.status,
            r.case_number or "",
            short(r.error, 60),
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
        ids = await db.read(failed_inbound_ids)
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


def add_ops_parsers(subparsers: Any) -> None:
    """Register token, cases, log and inbound on the ``ventanilla`` subparsers. Each sets
    ``handler``, called with the running services."""
    token = subparsers.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_cmd", required=True)
    create = token_sub.add_parser("create", help="create a token (printed once)")
    create.add_argument("--name", required=True, help="user the token belongs to")
    create.add_argument("--role", required=True, help=f"one of {', '.join(ROLES)}")
    create.set_defaults(handler=cmd_token_create)
    tlist = token_sub.add_parser("list", help="list tokens (not the tokens themselves)")
    tlist.add_argument("--all", action="store_true", help="include revoked tokens")
    tlist.add_argument("--json", action="store_true", help="print JSON as the API answers")
    tlist.set_defaults(handler=cmd_token_list)
    revoke = token_sub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("id", type=int, help="the token's id (see token list)")
    revoke.set_defaults(handler=cmd_token_revoke)

    add_case_parsers(subparsers)
    add_log_parsers(subparsers)

    inbound = subparsers.add_parser("inbound", help="the inbound message log")
    inbound_sub = inbound.add_subparsers(dest="inbound_cmd", required=True)
    ilist = inbound_sub.add_parser("list", help="list inbound messages, newest first")
    ilist.add_argument("--status", choices=("failed", "processed"))
    ilist.add_argument("--channel", help="only this channel (email, web, api, telegram, sms)")
    paging(ilist)
    ilist.set_defaults(handler=cmd_inbound_list)
    retry = inbound_sub.add_parser("retry", help="replay failed inbound messages")
    retry.add_argument("ids", nargs="*", type=int, metavar="ID", help="inbound ids")
    retry.add_argument("--all-failed", action="store_true", help="every failed message")
    retry.set_defaults(handler=cmd_inbound_retry)
