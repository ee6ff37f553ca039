"""``ventanilla log resend``: resend messages of the outbound log, by their ids or by a
selection (filter options, ``--filter NAME``), as one resend job.

It says how many messages will be resent and asks to confirm (``--yes`` skips the
question; with no terminal to ask on, ``--yes`` is required), starts the job through the
write path and follows it with a progress bar. The command works the job's steps itself
with a runner of its own (``ResendJobRunner(only=...)``), so it ends with the job even
where no daemon runs; a daemon working the same job takes turns with it, as each step
locks the job's row. Interrupted, it stops following and the job goes on in the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from tqdm import tqdm

from config.app import Services
from config.cli_log_select import (
    UsageError,
    acting_user,
    given_params,
    option_of,
    selected_filters,
    usage,
)
from config.cli_output import short
from notifiers.resend_jobs import JobStarted, ResendJobRunner, StartResendJob
from storage.auth import Principal
from storage.log_queries import COUNT_CAP, JobRow, count_notifications, get_job
from storage.operations import OperationRefused
from storage.paging import QueryError

POLL_SECONDS = 0.2  # how often the progress bar reads the job
MAX_KEY = 100  # as the API's Idempotency-Key


def _messages(count: int) -> str:
    if count > COUNT_CAP:
        return f"More than {COUNT_CAP:,} messages"
    return f"{count} message{'' if count == 1 else 's'}"


async def _selection(
    services: Services, args: argparse.Namespace, user: Principal
) -> tuple[dict[str, Any], int]:
    """The job's selection and how many messages it takes (ids: as many as given)."""
    by_filter = bool(given_params(args) or args.filter)
    if args.ids and by_filter:
        raise UsageError("give notification ids or filter options, not both")
    if args.ids:
        ids = sorted(set(args.ids))
        return {"ids": ids}, len(ids)
    if not by_filter:
        raise UsageError(
            "say what to resend: notification ids, --filter NAME or filter options "
            "(e.g. --status failed --since 2026-03-01)"
        )
    filters = await selected_filters(services, args, user)
    try:
        count = await services.db.read(count_notifications, filters)
    except QueryError as exc:
        raise usage(exc) from None
    return {"params": filters.params()}, count


async def _confirmed(out: TextIO) -> bool | None:
    """The answer to "Continue?" on a terminal; None where there is no terminal to ask."""
    stdin = sys.stdin
    if stdin is None or not stdin.isatty():
        return None
    print("Continue? [y/N] ", end="", file=out, flush=True)
    answer = await asyncio.to_thread(stdin.readline)  # the loop keeps the write path going
    return answer.strip().lower() in ("y", "yes")


async def follow(services: Services, job_id: int, out: TextIO) -> JobRow:
    """Work the job through and show its progress until it is no longer running."""
    runner = ResendJobRunner(services.db, services.writes, poll_seconds=1.0, only=job_id)
    working = asyncio.create_task(runner.run())
    bar: tqdm[Any] | None = None
    try:
        while True:
            row = await services.db.read(get_job, job_id)
            assert row is not None  # jobs are never deleted
            if bar is None:
                bar = tqdm(total=row.total, desc=f"job {job_id}", unit="msg", file=out,
                           disable=not out.isatty())  # fmt: skip
            bar.update(row.done - bar.n)
            if row.status != "running":
                return row
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if bar is not None:
            bar.close()
        await runner.stop()
        await working


def summary(row: JobRow, out: TextIO) -> None:
    skipped = sum(row.skipped.values())
    state = "done" if row.status == "done" else f"{row.status} after {row.done} of {row.total}"
    print(f"job {row.id} {state}: {row.queued} queued, {skipped} skipped", file=out)
    for reason, count in sorted(row.skipped.items()):
        print(f"  skipped, {reason}: {count}", file=out)
    if row.queued:
        print("The daemon's dispatcher sends the queued messages.", file=out)


async def cmd_log_resend(services: Services, args: argparse.Namespace, out: TextIO) -> int:
    try:
        if args.key is not None and not 1 <= len(args.key.strip()) <= MAX_KEY:
            raise UsageError(f"--key: 1 to {MAX_KEY} characters")
        user = await acting_user(services, args)
        selection, count = await _selection(services, args, user)
    except UsageError as exc:
        print(exc, file=out)
        return 2
    if count == 0:
        print("No message matches: nothing to resend.", file=out)
        return 0
    print(f"{_messages(count)} will be resent.", file=out)
    if not args.yes:
        answer = await _confirmed(out)
        if answer is None:
            print("Not resent: there is no terminal to confirm on; pass --yes.", file=out)
            return 2
        if not answer:
            print("Nothing resent.", file=out)
            return 1
    key = args.key.strip() if args.key else None
    op = StartResendJob(selection, user.name, args.reason, args.as_sent, key)
    try:
        started: JobStarted = await services.writes.submit(op)
    except OperationRefused as exc:
        where = f"{option_of(exc.field)}: " if exc.field else ""
        print(f"refused: {where}{exc.message}", file=out)
        return 2 if exc.kind == "invalid" else 1
    if started.total != count and not started.repeated:  # capped count, or rows since
        print(f"job {started.job_id} takes {started.total:,} messages", file=out)
    if started.repeated:
        print(f"--key {short(key, 40)} was used before: following job {started.job_id}, "
              "which it started", file=out)  # fmt: skip
    try:
        row = await follow(services, started.job_id, out)
    except asyncio.CancelledError:
        # Ctrl-C: the job is in the database, not in this process.
        print(f"\nStopped following job {started.job_id}: it keeps running in the daemon, "
              "or resumes when the daemon starts (GET /api/v1/jobs/"
              f"{started.job_id} shows its progress).", file=out)  # fmt: skip
        return 130
    summary(row, out)
    # Cancelled, or nothing queued at all (every one skipped): not what was asked for.
    return 0 if row.status == "done" and row.queued else 1
