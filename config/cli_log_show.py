"""``ventanilla log show ID``: one outbound message as it was sent (headers, subject and
text; the HTML part only with ``--html``), every delivery attempt with the provider's
answer, the chain of resends it belongs to, and its case and customer. ``--json`` prints
the API's answer for the same message."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any, TextIO

from tabulate import tabulate

from config.app import Services
from config.cli_output import colour_on, json_out, status_text, when
from console.log_schemas import log_detail, message_headers
from storage.log_queries import AttemptRow, ChainLink, LogDetail, get_notification


def _seconds(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def _fields(detail: LogDetail, colour: bool) -> list[tuple[str, Any]]:
    item = detail.item
    status = status_text(item.status, colour)
    customer = ""
    if item.customer_id is not None:
        customer = f"{item.customer_name or ''} (#{item.customer_id})".strip()
    case = " ".join(x for x in (item.case_number, detail.case_title) if x)
    fields: list[tuple[str, Any]] = [
        ("status", f"{status} ({item.status_reason})" if item.status_reason else status),
        ("channel", f"{item.channel} via {item.provider}"),
        ("recipient", f"{item.recipient} ({item.audience})"),
        ("customer", customer),
        ("case", case),
        ("template", f"{item.template} ({detail.language})"),
        ("trigger", item.trigger),
        ("created", _seconds(item.created_at)),
        ("sent", _seconds(item.sent_at)),
        ("next attempt", _seconds(item.next_attempt_at) if item.status == "pending" else ""),
        ("attempts", item.attempts),
        ("requested by", item.requested_by or ""),
        ("reason", item.reason or ""),
        ("resend of", item.resend_of or ""),
        ("provider id", detail.provider_id or ""),
        ("segments", detail.segments or ""),
        ("last error", detail.last_error or ""),
    ]
    return [(k, v) for k, v in fields if v not in ("", None)]


def _message(detail: LogDetail, html: bool, out: TextIO) -> None:
    print("\nmessage:", file=out)
    headers = message_headers(detail)
    for name, value in headers.items():
        print(f"  {name}: {value}", file=out)
    if headers:
        print(file=out)
    for line in detail.body.rstrip().splitlines() or ["(no text)"]:
        print(f"  {line}".rstrip(), file=out)
    for a in detail.attachments:
        print(f"  [attachment] {a.get('filename')} ({a.get('content_type')}, "
              f"{a.get('size')} B)", file=out)  # fmt: skip
    if detail.html and html:
        print("\nhtml:", file=out)
        for line in detail.html.rstrip().splitlines():
            print(f"  {line}".rstrip(), file=out)
    elif detail.html:
        print("  [HTML part not shown: add --html]", file=out)


def _attempts(attempts: tuple[AttemptRow, ...], colour: bool, out: TextIO) -> None:
    print("\nattempts:", file=out)
    if not attempts:
        print("  none yet", file=out)
    for n, a in enumerate(attempts, 1):
        code = f"  code {a.provider_code}" if a.provider_code else ""
        outcome = status_text(a.outcome, colour)
        print(f"  {n}. {_seconds(a.started_at)}  {outcome}  {a.provider}{code}  "
              f"({a.duration_ms} ms)", file=out)  # fmt: skip
        if a.provider_response:
            print(f"       answer: {a.provider_response}", file=out)
        if a.provider_message_id:
            print(f"       provider message id: {a.provider_message_id}", file=out)
        if a.error:
            print(f"       error: {a.error}", file=out)
        if a.possible_duplicate:
            print("       possible duplicate: the provider may have taken it before the "
                  "failure", file=out)  # fmt: skip


def _chain(chain: tuple[ChainLink, ...], current: int, colour: bool, out: TextIO) -> None:
    if len(chain) < 2:
        return
    print("\nresend chain (original first):", file=out)
    rows = [
        [
            "→" if link.id == current else "",
            link.id,
            when(link.created_at),
            status_text(link.status, colour),
            link.trigger,
            link.requested_by or "",
            link.reason or "",
        ]
        for link in chain
    ]
    print(tabulate(rows, tablefmt="plain"), file=out)


async def cmd_log_show(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    detail = await services.db.read(get_notification, args.id)
    if detail is None:
        print(f"no notification {args.id}", file=out)
        return 1
    if args.json:
        json_out(log_detail(detail), out)
        return 0
    colour = colour_on(out)
    print(f"notification {detail.item.id}", file=out)
    print(tabulate(_fields(detail, colour), tablefmt="plain"), file=out)
    _message(detail, args.html, out)
    _attempts(detail.attempt_log, colour, out)
    _chain(detail.chain, detail.item.id, colour, out)
    return 0
