"""One measured drain of the dispatch benchmark, in a fresh process: the daemon's dispatcher
emptying a queue of notifications, or a bare client sending the same messages (the ceiling).

    .venv/bin/python bench/dispatch_drain.py --channel email --mode dispatcher \
        --port 8025 --count 10000 --workdir /tmp/w [--peer-pid PID] [--profile FILE]

The messages are the product's own: each is an acknowledgement rendered and shaped by
``Outbox.row``, as intake queues them (``ack_email``: subject, text and HTML, our
Message-ID, ``Auto-Submitted``; ``ack_sms``), only with no case row behind it.

``--mode dispatcher`` builds what ``ventanilla serve`` builds from ``config/example.toml``
with environment overrides (the notifier pointed at the loopback peer on ``--port``):
``open_services`` migrates a fresh SQLite file in a child process; the rows are inserted
there as ``pending``; then the SQLite writer process starts, the write path runs, and
``build_dispatcher`` (with its commit listener) and ``watch_outbox`` run on uvloop until
every row has its attempt recorded. Every claim and every outcome goes through the writer
process, and each send leaves a ``delivery_attempts`` row, as in the daemon.

``--mode notifier`` drives the channel's notifier alone (``send`` per message, as many at
once as its concurrency, no outbox): what the provider's protocol costs the product.

``--mode bare`` sends the same messages with nothing else: email as pre-serialized bytes
with ``aiosmtplib`` over as many connections as ``[notifiers.email] connections``; SMS as
the Twilio notifier's own forms posted by one aiohttp session with as many requests in
flight as ``[sms.twilio] concurrency``. No database, no rendering.

Prints one JSON line: messages, seconds (the first claim or connection to the last
recorded outcome or answer), rate, and CPU milliseconds per message of this process, of the
writer process and of the peer (``--peer-pid``), plus the dispatcher's write batches.
``--profile`` writes a cProfile (CPU time of the main thread) of the whole process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import gc
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import aiohttp
import aiosmtplib
from intake_http import daemon_env
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from config import event_loop
from config.app import Services, default_providers, open_services
from config.outbound_parts import build_dispatcher, build_notifiers, watch_outbox
from config.settings import Settings, load_settings
from notifiers.base import Outgoing
from notifiers.delivery_ops import ClaimDue, RecordAttempt
from notifiers.email_compose import compose
from notifiers.outbox import OutboundRequest, Outbox
from notifiers.sms_twilio import TwilioNotifier
from notifiers.templates import TemplateRenderer
from storage.bulk import core_insert
from storage.models import DeliveryAttempt, Notification, utcnow

HOST = "127.0.0.1"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "bench-auth-token"
TITLE = "Servicio intermitente por las tardes desde hace tres días"
INSERT_CHUNK = 1000


def settings_for(channel: str, port: int, workdir: Path, config: Path) -> Settings:
    """The daemon's settings: the example config, a fresh SQLite file, the notifier of
    ``channel`` pointed at the loopback peer."""
    env = daemon_env(8080, f"sqlite+aiosqlite:///{workdir / f'{channel}.db'}", workdir)
    if channel == "email":
        env.update(
            VENTANILLA_NOTIFIERS__EMAIL__ENABLED="true",
            VENTANILLA_NOTIFIERS__EMAIL__HOST=HOST,
            VENTANILLA_NOTIFIERS__EMAIL__PORT=str(port),
        )
    else:
        env.update(
            VENTANILLA_SMS__TWILIO__ENABLED="true",
            VENTANILLA_SMS__TWILIO__ACCOUNT_SID=TWILIO_SID,
            VENTANILLA_SMS__TWILIO__AUTH_TOKEN=TWILIO_TOKEN,
            VENTANILLA_SMS__TWILIO__FROM_NUMBER='"+15005550006"',  # quoted: a TOML string
            VENTANILLA_SMS__TWILIO__API_BASE_URL=f"http://{HOST}:{port}",
        )
    return load_settings(config, env)


def recipient(channel: str, n: int) -> str:
    # Buenos Aires mobiles, valid E.164, one per message as acknowledgements are.
    return f"cliente{n}@example.com" if channel == "email" else f"+54911555{n % 100_000:05d}"


def notification_rows(settings: Settings, channel: str, count: int) -> list[dict[str, Any]]:
    """``count`` acknowledgements rendered and shaped by the product's outbox."""
    renderer = TemplateRenderer(default_language=settings.intake.default_language)
    outbox = Outbox(renderer, settings.smtp.hostname, default_providers(settings))
    now = utcnow()
    rows = []
    for n in range(1, count + 1):
        context = {
            "case_number": f"CAS-{n:06d}",
            "title": TITLE,
            "customer_name": f"Cliente {n}",
            "category": "Problema menor",
        }
        request = OutboundRequest(channel, f"ack_{channel}", "es", recipient(channel, n), context)
        rows.append(outbox.row(request, now))
    return rows


def outgoing(n: int, row: dict[str, Any]) -> Outgoing:
    """What the dispatcher hands the notifier for this row (``OutboxDispatcher.outgoing``)."""
    headers = dict(row["headers"])
    if row["message_id"]:
        headers.setdefault("Message-ID", f"<{row['message_id']}>")
    return Outgoing(
        notification_id=n,
        channel=row["channel"],
        provider=row["provider"],
        recipient=row["recipient"],
        subject=row["subject"],
        text=row["body"],
        html=row["html"],
        headers=headers,
        idempotency_key=f"ventanilla-{n}",
    )


# --- CPU accounting ---------------------------------------------------------------------------


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


def pid_cpu(pid: int | None) -> float | None:
    """User + system seconds of another process, from /proc (None once it is gone)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuClock:
    """CPU seconds of this process and of the others named, from ``start`` to ``stop``."""

    pids: dict[str, int | None]
    started: dict[str, float | None] = field(default_factory=dict)
    spent: dict[str, float | None] = field(default_factory=dict)

    def read(self) -> dict[str, float | None]:
        return {"bench": own_cpu(), **{k: pid_cpu(p) for k, p in self.pids.items()}}

    def start(self) -> None:
        self.started = self.read()

    def stop(self) -> None:
        ended = self.read()
        for key, begin in self.started.items():
            end = ended[key]
            self.spent[key] = None if begin is None or end is None else end - begin

    def per_message_ms(self, count: int) -> dict[str, float | None]:
        return {
            key: None if spent is None else round(spent * 1000 / max(count, 1), 3)
            for key, spent in self.spent.items()
        }


# --- the dispatcher ---------------------------------------------------------------------------


@dataclass
class Outcomes:
    """What the write path committed for the dispatcher, counted by a commit listener."""

    expected: int
    outcomes: Counter[str] = field(default_factory=Counter)
    claims: int = 0
    batches: int = 0
    batch_ops: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def listen(self, ops: Sequence[Any]) -> None:
        self.batches += 1
        self.batch_ops += len(ops)
        for op in ops:
            if isinstance(op, RecordAttempt):
                self.outcomes[op.status] += 1
            elif isinstance(op, ClaimDue):
                self.claims += 1
        # A transient outcome goes back to pending and waits out its backoff: count it
        # done here too, and let the check below say the run was not clean.
        if sum(self.outcomes.values()) >= self.expected:
            self.done.set()


def stored_counts(conn: Connection) -> dict[str, Any]:
    statuses = dict(
        conn.execute(select(Notification.status, func.count()).group_by(Notification.status)).all()
    )
    attempts = conn.execute(select(func.count()).select_from(DeliveryAttempt)).scalar_one()
    return {"statuses": {str(k): int(v) for k, v in statuses.items()}, "attempts": int(attempts)}


async def insert_pending(services: Services, rows: list[dict[str, Any]]) -> None:
    async with services.db.engine.begin() as conn:
        for start in range(0, len(rows), INSERT_CHUNK):
            await conn.run_sync(
                core_insert, Notification.__table__, rows[start : start + INSERT_CHUNK]
            )


async def run_dispatcher(settings: Settings, channel: str, count: int, args: Any) -> dict[str, Any]:
    rows = notification_rows(settings, channel, count)
    services = await open_services(settings, migrate_in_child=True)
    try:
        await insert_pending(services, rows)
        del rows
        await services.start_writer_process()
        writes = asyncio.create_task(services.writes.run())
        await services.writes.wait_started()
        try:
            return await drain(services, settings, count, args)
        finally:
            await services.writes.close()
            await writes
    finally:
        await services.close()


async def drain(services: Services, settings: Settings, count: int, args: Any) -> dict[str, Any]:
    dispatcher = build_dispatcher(settings, services)
    outcomes = Outcomes(count)
    services.writes.listeners.append(outcomes.listen)
    process = services.writes.process
    writer_pid = process.state()["pid"] if process is not None else None
    clock = CpuClock(
        {"writer": writer_pid if isinstance(writer_pid, int) else None, "peer": args.peer_pid}
    )
    await dispatcher.start_notifiers()
    gc.freeze()  # as the daemon does once it is up
    timed_out = False
    clock.start()
    started = time.perf_counter()
    running = asyncio.create_task(dispatcher.run())
    watching = asyncio.create_task(watch_outbox(services, dispatcher))
    try:
        await asyncio.wait_for(outcomes.done.wait(), args.timeout)
    except TimeoutError:
        timed_out = True
    seconds = time.perf_counter() - started
    clock.stop()
    await dispatcher.stop()
    await running
    watching.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watching
    await dispatcher.stop_notifiers()
    stored = await services.db.read(stored_counts)
    sent = stored["statuses"].get("sent", 0)
    return {
        "messages": sent,
        "seconds": round(seconds, 3),
        "per_s": round(sent / seconds, 1) if seconds else 0.0,
        "cpu_ms_per_message": clock.per_message_ms(count),
        "concurrency": {
            "dispatch_slots": dispatcher.slots,
            "provider": {n: x.concurrency for n, x in dispatcher.notifiers.items()},
        },
        "write_path": {
            "claims": outcomes.claims,
            "rows_per_claim": round(count / max(outcomes.claims, 1), 2),
            "batches": outcomes.batches,
            "ops_per_batch": round(outcomes.batch_ops / max(outcomes.batches, 1), 2),
        },
        "outcomes": dict(outcomes.outcomes),
        "stored": stored,
        "timed_out": timed_out,
    }


# --- the bare clients -------------------------------------------------------------------------


def shared(items: list[Any]) -> Iterator[Any]:
    """One iterator the workers take from: each message is sent once, by whichever is free."""
    return iter(items)


async def bare_email(settings: Settings, count: int, args: Any) -> dict[str, Any]:
    email = settings.notifiers.email
    sender = parseaddr(email.sender)[1]
    messages = [
        (row["recipient"], compose(email.sender, settings.smtp.hostname, outgoing(n, row)).data)
        for n, row in enumerate(notification_rows(settings, "email", count), 1)
    ]
    work = shared(messages)
    answered = Counter[str]()

    async def connection() -> None:
        client = aiosmtplib.SMTP(
            hostname=email.host, port=email.port, timeout=email.timeout_seconds
        )
        await client.connect()
        for to, raw in work:
            _errors, _reply = await client.sendmail(sender, [to], raw)
            answered["250"] += 1
        await client.quit()

    return await timed(
        [connection() for _ in range(email.connections)],
        answered,
        count,
        args,
        {"connections": email.connections},
    )


async def bare_sms(settings: Settings, count: int, args: Any) -> dict[str, Any]:
    notifier = build_notifiers(settings)["twilio"]
    assert isinstance(notifier, TwilioNotifier)
    forms = [
        notifier.form(outgoing(n, row))
        for n, row in enumerate(notification_rows(settings, "sms", count), 1)
    ]
    work = shared(forms)
    answered = Counter[str]()
    twilio = settings.sms.twilio
    credentials = base64.b64encode(f"{twilio.account_sid}:{twilio.auth_token}".encode()).decode()
    auth = {"Authorization": f"Basic {credentials}"}  # as the notifier sends it

    async def worker(session: aiohttp.ClientSession) -> None:
        for form in work:
            async with session.post(notifier.url, data=form, headers=auth) as response:
                await response.read()
                answered[str(response.status)] += 1

    connector = aiohttp.TCPConnector(limit=twilio.concurrency)
    timeout = aiohttp.ClientTimeout(total=twilio.timeout_seconds)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        return await timed(
            [worker(session) for _ in range(twilio.concurrency)],
            answered,
            count,
            args,
            {"requests_in_flight": twilio.concurrency},
        )


async def notifier_alone(settings: Settings, channel: str, count: int, args: Any) -> dict[str, Any]:
    """The channel's notifier as the dispatcher drives it (``send`` per message, as many at
    once as its concurrency), without the outbox: no claims, no recorded outcomes."""
    notifier = build_notifiers(settings)["email" if channel == "email" else "twilio"]
    messages = [
        outgoing(n, row) for n, row in enumerate(notification_rows(settings, channel, count), 1)
    ]
    work = shared(messages)
    answered = Counter[str]()

    async def worker() -> None:
        for message in work:
            delivered = await notifier.send(message)
            answered[delivered.code or "?"] += 1

    await notifier.start()
    try:
        return await timed(
            [worker() for _ in range(notifier.concurrency)],
            answered,
            count,
            args,
            {"in_flight": notifier.concurrency},
        )
    finally:
        await notifier.stop()


async def timed(
    workers: list[Any], answered: Counter[str], count: int, args: Any, concurrency: dict[str, int]
) -> dict[str, Any]:
    clock = CpuClock({"peer": args.peer_pid})
    gc.freeze()
    clock.start()
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*workers), args.timeout)
    seconds = time.perf_counter() - started
    clock.stop()
    ok = answered["250"] + answered["201"]
    return {
        "messages": ok,
        "seconds": round(seconds, 3),
        "per_s": round(ok / seconds, 1) if seconds else 0.0,
        "cpu_ms_per_message": clock.per_message_ms(count),
        "concurrency": concurrency,
        "answers": dict(answered),
        "timed_out": False,
    }


# --- main -------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    settings = settings_for(args.channel, args.port, args.workdir, args.config)
    if args.mode == "dispatcher":
        result = await run_dispatcher(settings, args.channel, args.count, args)
    elif args.mode == "notifier":
        result = await notifier_alone(settings, args.channel, args.count, args)
    elif args.channel == "email":
        result = await bare_email(settings, args.count, args)
    else:
        result = await bare_sms(settings, args.count, args)
    return {"channel": args.channel, "mode": args.mode, "count": args.count, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--channel", choices=("email", "sms"), required=True)
    parser.add_argument("--mode", choices=("dispatcher", "notifier", "bare"), required=True)
    parser.add_argument("--port", type=int, required=True, help="the loopback peer's port")
    parser.add_argument("--count", type=int, required=True, help="messages to send")
    parser.add_argument("--workdir", type=Path, required=True, help="database, attachments")
    parser.add_argument(
        "--config",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "config" / "example.toml",
    )
    parser.add_argument("--peer-pid", type=int, help="the peer's pid, for its CPU time")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the drain")
    parser.add_argument("--profile", type=Path, help="write a cProfile of this process here")
    args = parser.parse_args(argv)
    profile = cProfile.Profile(time.thread_time) if args.profile else None
    if profile is not None:
        profile.enable()
    result = event_loop.run(measure(args))
    if profile is not None:
        profile.disable()
        profile.dump_stats(args.profile)
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
