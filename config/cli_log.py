"""The ``ventanilla log`` commands: the outbound log from the shell.

``log list`` pages through the log with every filter as an option (a table, ``--json`` in
the API's shape, or ``--csv`` with every matching row as the API exports it); ``log show``
prints one message as sent with its attempts and resend chain (``config.cli_log_show``);
``log resend`` resends by ids or by a selection as a job and follows it
(``config.cli_log_resend``); ``log filters`` keeps the user's saved filters
(``config.cli_log_filters``). ``add_log_parsers`` registers them all; exit codes are those
of every ops command: 0 ok, 1 not found or failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import csv
from typing import Any, TextIO

from tabulate import tabulate

from config.app import Services
from config.cli_log_filters import cmd_log_filters, cmd_log_filters_delete, cmd_log_filters_save
from config.cli_log_resend import cmd_log_resend
from config.cli_log_select import (
    UsageError,
    add_filter_options,
    add_user_option,
    selected_filters,
    usage,
)
from config.cli_log_show import cmd_log_show
from config.cli_output import colour_on, json_out, limit_arg, short, status_text, when
from console.log_csv import CSV_COLUMNS, csv_row
from console.log_schemas import count_value, log_item
from storage.log_filters import LogFilters
from storage.log_queries import (
    COUNT_CAP,
    LogItem,
    Order,
    count_notifications,
    list_notifications,
)
from storage.paging import DEFAULT_LIMIT, MAX_LIMIT, QueryError


def count_text(count: int) -> str:
    if count > COUNT_CAP:
        return f"more than {COUNT_CAP:,} messages"
    return f"{count} message{'' if count == 1 else 's'}"


def _row(item: LogItem, filters: LogFilters, colour: bool) -> list[Any]:
    at = item.sent_at if filters.time == "sent" else item.created_at
    customer = item.customer_name or (f"#{item.customer_id}" if item.customer_id else "")
    return [
        item.id,
        when(at),
        item.channel,
        short(item.recipient, 32),
        short(customer, 20),
        item.case_number or "",
        short(item.subject, 44),
        status_text(item.status, colour),
        item.trigger,
    ]


async def cmd_log_list(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    db = services.db
    order: Order = "oldest" if args.oldest else "newest"
    try:
        filters = await selected_filters(services, args)
        if args.csv:
            await _write_csv(services, filters, order, out)
            return 0
        page = await db.read(list_notifications, filters, args.limit, args.cursor, order)
        count = await db.read(count_notifications, filters) if args.count else None
    except UsageError as exc:
        print(exc, file=out)
        return 2
    except QueryError as exc:
        print(usage(exc), file=out)
        return 2
    if args.json:
        body: dict[str, Any] = {
            "items": [log_item(i) for i in page.items],
            "next_cursor": page.next_cursor,
        }
        if count is not None:
            body["count"] = count_value(count, COUNT_CAP)
        json_out(body, out)
        return 0
    if page.items:
        colour = colour_on(out)
        headers = ["id", "sent" if filters.time == "sent" else "created", "channel",
                   "recipient", "customer", "case", "subject", "status", "trigger"]  # fmt: skip
        rows = [_row(i, filters, colour) for i in page.items]
        # Phone numbers stay text (tabulate would align "+54911…" as a number).
        print(tabulate(rows, headers=headers, disable_numparse=[3, 4, 5]), file=out)
    else:
        print("no messages match", file=out)
    if count is not None:
        print(f"{count_text(count)} match", file=out)
    if page.next_cursor:
        print(f"\nmore: --cursor {page.next_cursor}", file=out)
    return 0


async def _write_csv(services: Services, filters: LogFilters, order: Order, out: TextIO) -> None:
    """Every matching row, a page at a time, written as it is read."""
    page = await services.db.read(list_notifications, filters, MAX_LIMIT, None, order)
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    while True:
        writer.writerows(csv_row(i) for i in page.items)
        if page.next_cursor is None:
            return
        page = await services.db.read(
            list_notifications, filters, MAX_LIMIT, page.next_cursor, order
        )


# --- argparse ------------------------------------------------------------------------------


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON as the API answers")


def add_log_parsers(subparsers: Any) -> None:
    """Register ``log list|show|resend|filters``; each sets ``handler``."""
    log = subparsers.add_parser("log", help="the outbound log: every message queued or sent")
    log_sub = log.add_subparsers(dest="log_cmd", required=True)

    listing = log_sub.add_parser("list", help="list messages, newest first")
    add_filter_options(listing)
    listing.add_argument("--limit", type=limit_arg, default=DEFAULT_LIMIT, help="rows (1-200)")
    listing.add_argument("--cursor", help="continue from a previous page's cursor")
    listing.add_argument("--oldest", action="store_true", help="oldest first")
    listing.add_argument("--count", action="store_true",
                         help="also count the matches (exact up to 10,000)")  # fmt: skip
    output = listing.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print JSON as the API answers")
    output.add_argument("--csv", action="store_true",
                        help="every matching row as CSV (the API export's columns)")  # fmt: skip
    add_user_option(listing)
    listing.set_defaults(handler=cmd_log_list)

    show = log_sub.add_parser("show", help="one message as sent, its attempts and resends")
    show.add_argument("id", type=int, help="the notification's id")
    show.add_argument("--html", action="store_true", help="also print the HTML part")
    _json(show)
    show.set_defaults(handler=cmd_log_show)

    resend = log_sub.add_parser(
        "resend", help="resend messages by id or by filter (new rows; the originals stay)"
    )
    resend.add_argument("ids", nargs="*", type=int, metavar="ID", help="notification ids")
    add_filter_options(resend)
    resend.add_argument("--reason", help="why (kept on every new row)")
    resend.add_argument("--as-sent", action="store_true",
                        help="the original text, not rendered again from the case")  # fmt: skip
    resend.add_argument("-y", "--yes", action="store_true", help="do not ask to confirm")
    resend.add_argument("--key", help="idempotency key: the same key again resends nothing new")
    add_user_option(resend)
    resend.set_defaults(handler=cmd_log_resend)

    filters = log_sub.add_parser("filters", help="your saved filters (save, delete)")
    filters.add_argument("--all", action="store_true", help="every user's saved filters")
    _json(filters)
    add_user_option(filters)
    filters.set_defaults(handler=cmd_log_filters)
    filters_sub = filters.add_subparsers(dest="filters_cmd")
    save = filters_sub.add_parser("save", help="save the filter options under a name")
    save.add_argument("name", help="the filter's name")
    save.add_argument("--replace", action="store_true", help="overwrite a filter of that name")
    add_filter_options(save, saved=False)
    # SUPPRESS: a --user given before ``save`` is not overwritten by this one's default.
    add_user_option(save, default=argparse.SUPPRESS)
    save.set_defaults(handler=cmd_log_filters_save)
    delete = filters_sub.add_parser("delete", help="delete one of your saved filters")
    delete.add_argument("name", help="the filter's name")
    add_user_option(delete, default=argparse.SUPPRESS)
    delete.set_defaults(handler=cmd_log_filters_delete)
