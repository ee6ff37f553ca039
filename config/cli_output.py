"""What the CLI's operator commands share: short cells, times, JSON, paged tables and the
outbox statuses' colours on a terminal."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any, TextIO

from tabulate import tabulate

from console import serialize
from storage.paging import DEFAULT_LIMIT


def short(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


# SGR codes of the outbox statuses and delivery attempts' outcomes: sent green, failed,
# dead and permanent red, still on their way (or to be tried again) yellow, suppressed dim.
STATUS_COLOURS = {
    "sent": "32", "failed": "31", "dead": "31", "permanent": "31", "pending": "33",
    "sending": "33", "transient": "33", "suppressed": "2",
}  # fmt: skip


def colour_on(out: TextIO) -> bool:
    """Colours only for a person at a terminal, and never when NO_COLOR is set (no-color.org)."""
    return out.isatty() and not os.environ.get("NO_COLOR")


def status_text(status: str, colour: bool) -> str:
    code = STATUS_COLOURS.get(status)
    return f"\x1b[{code}m{status}\x1b[0m" if colour and code else status


def json_out(body: Any, out: TextIO) -> None:
    print(json.dumps(body, ensure_ascii=False, indent=2), file=out)


def print_page(
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
        json_out(serialize.page(page, item_json), out)
        return 0
    if not page.items:
        print(empty, file=out)
        return 0
    print(tabulate([row(item) for item in page.items], headers=headers), file=out)
    if page.next_cursor:
        print(f"\nmore: --cursor {page.next_cursor}", file=out)
    return 0


def limit_arg(value: str) -> int:
    try:
        limit = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if not 1 <= limit <= 200:
        raise argparse.ArgumentTypeError("must be between 1 and 200")
    return limit


def paging(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=limit_arg, default=DEFAULT_LIMIT, help="rows (1-200)")
    parser.add_argument("--cursor", help="continue from a previous page's cursor")
    parser.add_argument("--json", action="store_true", help="print JSON as the API answers")
