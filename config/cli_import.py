"""``ventanilla import mbox|maildir PATH``: replay a mail archive, never acknowledging it.

``add_import_parsers`` registers the command; ``config.cli.run_ops`` opens the services,
runs the intake writer and calls ``cmd_import(services, args, out)`` (the command sets
``needs_services``). MIME parsing runs in the services' parser processes
(``intake.email.parser_pool``; ``[intake] parse_workers``, one per core by default). A
progress bar goes to stderr when it is a terminal; the summary goes to ``out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from tqdm import tqdm

from config.app import Services
from intake.email.importer import (
    ARCHIVE_KINDS,
    Archive,
    ArchiveError,
    ArchiveImport,
    ImportReport,
)

DEFAULT_IN_FLIGHT = 128


async def cmd_import(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    """Exit 0 when every message was stored (unparseable ones as failed rows), 1 when some
    could not be read or stored or the run was interrupted, 2 when the path is no archive."""
    opening = asyncio.create_task(asyncio.to_thread(Archive.open, args.archive_kind, args.path))
    # Started before the archive is read, so reading does not wait on them; shut down by
    # services.close().
    await services.start_parser_pool()
    try:
        archive = await opening
    except (ArchiveError, OSError) as exc:
        print(f"cannot import: {exc}", file=out)
        return 2
    bar = tqdm(
        total=len(archive),
        unit="msg",
        desc="parsing" if args.dry_run else "importing",
        file=sys.stderr,
        disable=args.quiet or not sys.stderr.isatty(),
        dynamic_ncols=True,
    )
    run = ArchiveImport(services.email, archive, in_flight=args.in_flight, dry=args.dry_run)
    try:
        if args.dry_run:
            report = await run.dry_run(services.db, bar.update)
        else:
            report = await run.run(bar.update)
    except asyncio.CancelledError:
        bar.close()
        print_report(run.report, out, args.json)
        raise
    finally:
        bar.close()
        archive.close()
    print_report(report, out, args.json)
    return 1 if report.not_stored or report.unreadable or report.interrupted else 0


def report_json(report: ImportReport) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": report.kind,
        "path": report.path,
        "dry_run": report.dry_run,
        "total": report.total,
        "read": report.read,
        "unreadable": report.unreadable,
        "seconds": round(report.seconds, 3),
        "messages_per_s": round(report.per_second, 1),
        "interrupted": report.interrupted,
        "failures": [
            {"message": f.label, "reason": f.reason, "inbound_id": f.inbound_id}
            for f in report.failures
        ],
    }
    if report.dry_run:
        return body | {
            "parseable": report.parseable,
            "failing": report.failing,
            "automatic": report.automatic,
            "already_imported": report.known,
        }
    outcomes = ("created", "continued", "duplicate", "failed")
    return (
        body
        | {name: report.outcomes[name] for name in outcomes}
        | {"not_stored": report.not_stored}
    )


def print_report(report: ImportReport, out: TextIO, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(report_json(report), ensure_ascii=False), file=out)
        return
    rate = f"{report.seconds:.1f} s, {report.per_second:.0f} messages/s"
    if report.interrupted:
        print(f"interrupted after {report.read} of {report.total} messages ({rate})", file=out)
    elif report.dry_run:
        print(f"dry run of {report.kind} {report.path} ({rate}): nothing was written", file=out)
    else:
        print(f"imported {report.kind} {report.path} ({rate})", file=out)
    rows: list[tuple[str, int]] = [("messages read", report.read)]
    if report.dry_run:
        rows += [
            ("parseable", report.parseable),
            ("failing to parse", report.failing),
            ("automatic (bounces, auto-replies)", report.automatic),
            ("already imported (duplicates)", report.known),
        ]
    else:
        rows += [
            ("new cases", report.outcomes["created"]),
            ("follow-ups", report.outcomes["continued"]),
            ("duplicates", report.outcomes["duplicate"]),
            ("failed", report.outcomes["failed"]),
        ]
        if report.not_stored:
            rows.append(("not stored (database unavailable)", report.not_stored))
    if report.unreadable:
        rows.append(("unreadable", report.unreadable))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value:>7}", file=out)
    if report.failures:
        shown = len(report.failures)
        more = f" (first {shown} of {report.failure_count})" if report.failure_count > shown else ""
        print(f"failures{more}:", file=out)
        for failure in report.failures:
            where = f" [inbound {failure.inbound_id}]" if failure.inbound_id else ""
            print(f"  {failure.label}{where}: {failure.reason}", file=out)
    if report.dry_run:
        return
    if report.outcomes["failed"]:
        print(
            "Failed messages are kept with their raw bytes (ventanilla inbound list --status "
            "failed); after a fix, `ventanilla inbound retry --all-failed` replays them.",
            file=out,
        )
    if report.not_stored or report.interrupted:
        print(
            "Run the same import again to finish: messages already stored come back as duplicates.",
            file=out,
        )
    print("No acknowledgements are sent for imported mail.", file=out)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {value!r}") from None
    if not 1 <= number <= 4096:
        raise argparse.ArgumentTypeError("must be between 1 and 4096")
    return number


def add_import_parsers(subparsers: Any) -> None:
    """Register ``import mbox|maildir PATH`` on the ``ventanilla`` subparsers."""
    parser = subparsers.add_parser(
        "import", help="replay an mbox or Maildir archive into cases (no acknowledgements)"
    )
    kinds = parser.add_subparsers(dest="archive_kind", required=True)
    helps = {
        "mbox": "one mbox file (messages in file order)",
        "maildir": "a Maildir folder with cur/ and new/ (messages in delivery order)",
    }
    for kind in ARCHIVE_KINDS:
        sub = kinds.add_parser(kind, help=helps[kind])
        sub.add_argument("path", help="the archive")
        sub.add_argument(
            "--dry-run",
            action="store_true",
            help="parse every message and report what would happen; write nothing",
        )
        sub.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
        sub.add_argument("--json", action="store_true", help="print the summary as JSON")
        sub.add_argument(
            "--in-flight",
            type=_positive,
            default=DEFAULT_IN_FLIGHT,
            help=f"messages in progress at once (default {DEFAULT_IN_FLIGHT})",
        )
        sub.set_defaults(handler=cmd_import, needs_services=True)
