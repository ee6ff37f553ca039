"""The parser processes: started before the first mail, lean, deaf to a terminal's Ctrl-C,
and a dead one costs the mails it held a failed row each (raw kept), not the mailbox. A
mail that hangs its parser is killed with its process after the deadline and kept as
failed; the sender gets its answer, and the other mails are parsed by the other processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiosmtplib
import pytest

from config.app import Services
from config.settings import DEFAULT_CONFIG, ConfigError, load_settings
from intake.email.ingest import EmailSource
from intake.email.parse import ParsedEmail, ParseLimits
from intake.email.parser_pool import ParserPool
from intake.email.prepare import Outcome, ParserCrashed, ParserSetup, ParseTimedOut
from intake.email.smtp import SmtpConfig, SmtpIntake
from storage.models import Inbound
from tests.email import hanging_parser
from tests.email.test_smtp_support import GOOD, HOST, LIMIT, directory, email_ingest, mail

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


# --- a mail that hangs its parser --------------------------------------------------------


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parser processes that hang on HANG mail and take a second over SLOW mail."""
    monkeypatch.setattr("intake.email.parser_pool.MODULE", hanging_parser.MODULE)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def parsed(outcome: Outcome) -> str:
    assert isinstance(outcome, tuple), outcome
    return outcome[0].message_id


async def test_a_mail_that_hangs_its_parser_is_stored_failed_and_the_sender_answered(
    services: Services, hanging: None
) -> None:
    mailboxes = directory()
    ingest = email_ingest(services, mailboxes)
    pool = ingest.pool = ParserPool(2, ingest.parser_setup(), timeout=1.0)
    await pool.start()
    smtp = SmtpIntake(ingest, mailboxes, SmtpConfig(host=HOST, port=0, max_message_bytes=LIMIT))
    await smtp.start()
    try:
        before = pool.pids
        stuck = hanging_parser.HANG + mail("se cuelga")
        _, reply = await aiosmtplib.send(
            stuck, sender="ana@example.org", recipients=[GOOD], hostname=HOST, port=smtp.port,
            start_tls=False, timeout=30,
        )  # fmt: skip
        # The process that hung was killed.
        gone = set(before) - set(pool.pids)
        assert len(gone) == 1 and not any(alive(pid) for pid in gone)
        # The pool goes on parsing, and the next mail finds a new process in its place.
        _, after = await aiosmtplib.send(
            mail("sigue"), sender="ana@example.org", recipients=[GOOD], hostname=HOST,
            port=smtp.port, start_tls=False, timeout=30,
        )  # fmt: skip
        assert len(pool.pids) == 2 and not set(pool.pids) & gone
    finally:
        await smtp.stop()
        await pool.close()
    assert reply.startswith("2.0.0 Stored as inbound #") and reply.endswith("held for review")
    assert "case CAS-" in after
    inbound_id = int(reply.split("#")[1].split(",")[0])
    async with services.db.session() as session:
        row = await session.get(Inbound, inbound_id)
    assert row is not None and row.status == "failed" and row.raw.endswith(stuck)
    assert row.error == "parse: parse took longer than 1 s; process killed"


def setup(tmp_path: Path) -> ParserSetup:
    return ParserSetup(ParseLimits(), "ventanilla.localdomain", tmp_path / "attachments")


async def test_a_hanging_mail_in_a_group_fails_alone(tmp_path: Path, hanging: None) -> None:
    pool = ParserPool(1, setup(tmp_path), timeout=1.0)
    try:
        good = [MAIL.replace(b"p1@", f"g{i}@".encode()) for i in range(3)]
        outcomes = await pool.prepare([good[0], hanging_parser.HANG + MAIL, good[1], good[2]])
    finally:
        await pool.close()
    assert [parsed(outcomes[i]) for i in (0, 2, 3)] == ["g0@example.com", "g1@example.com",
                                                         "g2@example.com"]  # fmt: skip
    assert isinstance(outcomes[1], ParseTimedOut)


async def test_mail_queued_behind_a_hanging_one_goes_to_another_process(
    tmp_path: Path, hanging: None
) -> None:
    pool = ParserPool(1, setup(tmp_path), timeout=1.0)
    await pool.start()
    try:
        [first] = pool.pids
        # One process: the second mail waits behind the first on the same process.
        stuck = asyncio.create_task(pool.prepare([hanging_parser.HANG + MAIL]))
        queued = asyncio.create_task(pool.prepare([MAIL]))
        [timed_out], [behind] = await asyncio.gather(stuck, queued)
        assert pool.pids != [first] and not alive(first)
    finally:
        await pool.close()
    assert isinstance(timed_out, ParseTimedOut) and parsed(behind) == "p1@example.com"


async def test_the_deadline_counts_from_when_the_process_begins_the_mail(
    tmp_path: Path, hanging: None
) -> None:
    """Three mails of a second each, handed at once to one process with a deadline of 2.5 s:
    the third is answered 3 s after it was sent, but 1 s after the process began it."""
    pool = ParserPool(1, setup(tmp_path), timeout=2.5)
    await pool.start()
    try:
        [pid] = pool.pids
        slow = [hanging_parser.SLOW + MAIL.replace(b"p1@", f"s{i}@".encode()) for i in range(3)]
        outcomes = await asyncio.gather(*(pool.prepare([raw]) for raw in slow))
        assert pool.pids == [pid]  # never killed
    finally:
        await pool.close()
    assert [parsed(o) for (o,) in outcomes] == ["s0@example.com", "s1@example.com",
                                                "s2@example.com"]  # fmt: skip


async def test_the_daemons_pool_takes_the_deadline_from_the_settings(services: Services) -> None:
    await services.start_parser_pool()
    assert services.parser_pool is not None
    assert services.parser_pool.timeout == services.settings.intake.parse_timeout_seconds == 60


@pytest.mark.parametrize("seconds", ["0", "-1", "601", "soon"])
def test_a_parse_deadline_out_of_range_is_a_config_error(seconds: str) -> None:
    with pytest.raises(ConfigError, match=r"intake\.parse_timeout_seconds"):
        load_settings(DEFAULT_CONFIG, {"VENTANILLA_INTAKE__PARSE_TIMEOUT_SECONDS": seconds})
