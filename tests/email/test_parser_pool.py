"""The parser processes: started before the first mail, lean, deaf to a terminal's Ctrl-C,
and a dead one costs the mails it held a failed row each (raw kept), not the mailbox."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from config.app import Services
from intake.email.ingest import EmailSource
from intake.email.parse import ParsedEmail
from intake.email.prepare import ParserCrashed
from storage.models import Inbound

MAIL = (
    b"From: Ana <ana@example.com>\r\nSubject: Hola\r\nMessage-ID: <p1@example.com>\r\n\r\nTexto\r\n"
)


async def test_processes_are_running_before_the_first_mail(services: Services) -> None:
    await services.start_parser_pool()
    assert services.parser_pool is not None
    pids = services.parser_pool.pids
    assert len(pids) == (services.settings.intake.parse_workers or os.cpu_count())
    assert os.getpid() not in pids
    first = await services.email.prepare_one(MAIL)
    assert isinstance(first, tuple) and isinstance(first[0], ParsedEmail)
    assert services.parser_pool.pids == pids  # no process was started for the mail


def test_a_parser_process_imports_no_database_or_web_code() -> None:
    probe = (
        "import sys, intake.email.prepare; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'aiosqlite', 'asyncpg', 'aiohttp', 'jinja2', 'config', 'routing'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


async def test_parser_processes_ignore_interrupts_until_the_pool_shuts_down(
    services: Services,
) -> None:
    await services.start_parser_pool()
    assert services.parser_pool is not None
    pids = services.parser_pool.pids
    for pid in pids:
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
    await asyncio.sleep(0.2)
    again = await services.email.prepare_one(MAIL.replace(b"p1@", b"p2@"))
    assert isinstance(again, tuple) and again[0].message_id == "p2@example.com"
    assert services.parser_pool.pids == pids  # the same processes, still alive


async def test_a_killed_parser_fails_its_mails_only_and_is_replaced(services: Services) -> None:
    await services.start_parser_pool()
    pool = services.parser_pool
    assert pool is not None
    # Every process handed a mail that takes seconds to parse, and killed at once: none
    # can have answered.
    slow = MAIL + b"x" * 40_000_000
    parsing = [asyncio.create_task(services.email.prepare([slow])) for _ in pool.pids]
    await asyncio.sleep(0.05)
    old = pool.pids
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    outcomes = [o for batch in await asyncio.gather(*parsing) for o in batch]
    assert all(isinstance(o, ParserCrashed) and "died" in str(o) for o in outcomes)
    # The next mails are parsed by new processes, and a mail whose parser died is kept.
    result = await services.email.ingest(MAIL, EmailSource("smtp"))
    assert result.outcome == "created"
    assert not set(pool.pids) & set(old) and len(pool.pids) == len(old)
    failed = await services.email.ingest(slow, EmailSource("smtp"), prepared=outcomes[0])
    async with services.db.session() as session:
        row = await session.get(Inbound, failed.inbound_id)
    assert row is not None and row.status == "failed" and row.raw == slow
    assert row.error is not None and "parser process died" in row.error


async def test_a_parser_that_cannot_start_fails_start(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("intake.email.parser_pool.MODULE", "intake.email.no_such_module")
    with pytest.raises(Exception, match="exited"):
        await services.start_parser_pool()
