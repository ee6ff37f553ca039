"""IMAP poller under failure: storage down, crashes between steps, missing extensions,
unreachable or refusing servers, stopping; plus its config, backoff, checkpoints, metrics.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Sequence

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from config.app import Services
from intake.email.imap import Backoff, ImapAccountConfig
from intake.email.imap_metrics import ImapCollector
from intake.email.imap_session import ImapSession
from intake.email.ingest import EmailIngest, EmailSource
from intake.message import AcceptResult
from storage.checkpoints import Checkpoint, CheckpointStore
from storage.db import StorageUnavailable
from tests.email.dovecot import (
    DovecotAccount,
    dovecot_fixture,  # noqa: F401 (fixture)
    email_ingest,
    eventually,
    imap_account_fixture,  # noqa: F401 (fixture)
    in_folder,
    inbound_rows,
    mail,
    poller_for,
    running,
)

SEEN = b"\\Seen"


class FlakyIngest(EmailIngest):
    """The first call fails as if the database were down; the retry waits for ``release``."""

    def __init__(self, real: EmailIngest) -> None:
        super().__init__(real.writer, real.store, real.mailboxes, real.limits, real.own_domain)
        self.calls = 0
        self.failed = asyncio.Event()
        self.release = asyncio.Event()

    async def ingest(
        self, raw: bytes, source: EmailSource, envelope_to: Sequence[str] = ()
    ) -> AcceptResult:
        self.calls += 1
        if self.calls == 1:
            self.failed.set()
            raise StorageUnavailable("database is down")
        await self.release.wait()
        return await super().ingest(raw, source, envelope_to)


async def test_storage_failure_leaves_the_mail_unacknowledged_until_retry(
    services: Services, imap_account: DovecotAccount
) -> None:
    raw = mail("durante la caída")
    await asyncio.to_thread(imap_account.append, raw)
    flaky = FlakyIngest(email_ingest(services))
    poller = poller_for(services, imap_account, after="flag", ingest=flaky)
    async with running(poller):
        await asyncio.wait_for(flaky.failed.wait(), 10)

        async def retrying() -> bool:
            return flaky.calls == 2

        await eventually(retrying, what="the retry after the backoff")
        state = poller.state()
        assert str(state["last_error"]).startswith("storage:")
        assert state["failures"] == 1 and state["connected"] is True
        # Not committed, so the server has not heard of it: still there, still unseen.
        box = await in_folder(imap_account)
        assert [(body, SEEN in flags) for body, flags in box.values()] == [(raw, False)]
        assert await inbound_rows(services) == []
        assert poller.state()["last_uid"] == 0
        flaky.release.set()

        async def acknowledged() -> bool:
            box = await in_folder(imap_account)
            seen = all(SEEN in flags for _, flags in box.values())
            return seen and poller.state()["failures"] == 0  # the round has ended well

        await eventually(acknowledged, what="the \\Seen flag after the commit")
    assert [row.raw for row in await inbound_rows(services)] == [raw]
    assert poller.state()["last_uid"] == 1


async def test_mail_committed_before_a_crash_is_read_again_as_a_duplicate(
    services: Services, imap_account: DovecotAccount
) -> None:
    # A crash after ingest committed, before the checkpoint moved: the mail is read again.
    raw = mail("antes del corte")
    await asyncio.to_thread(imap_account.append, raw)
    await email_ingest(services).ingest(raw, EmailSource("imap:soporte"))
    poller = poller_for(services, imap_account, after="flag")
    async with running(poller):

        async def settled() -> bool:
            return poller.state()["last_uid"] == 1 and poller.state()["idle"] is True

        await eventually(settled, what="the poller to read the mail")
    assert poller.status.messages == {"duplicate": 1}
    assert [row.raw for row in await inbound_rows(services)] == [raw]
    box = await in_folder(imap_account)
    assert all(SEEN in flags for _, flags in box.values())


async def test_committed_but_unmoved_mail_is_moved_on_reconnect(
    services: Services, imap_account: DovecotAccount
) -> None:
    # A crash after the checkpoint moved, before the MOVE: the mail is moved, not re-read.
    raw = mail("sin mover")
    uid = await asyncio.to_thread(imap_account.append, raw)
    validity = await asyncio.to_thread(imap_account.uidvalidity)
    await email_ingest(services).ingest(raw, EmailSource("imap:soporte"))
    await CheckpointStore(services.db, services.writes).save("soporte", "INBOX", validity, uid)
    poller = poller_for(services, imap_account, after="move", move_to="Hecho")
    async with running(poller):

        async def moved() -> bool:
            return len(await in_folder(imap_account, "Hecho")) == 1

        await eventually(moved, what="the leftover mail to be moved")
    assert await in_folder(imap_account) == {}
    assert poller.status.messages == {}
    assert [row.raw for row in await inbound_rows(services)] == [raw]


def _without(monkeypatch: pytest.MonkeyPatch, *capabilities: str) -> None:
    """Make Dovecot look like a server without these extensions."""
    original = ImapSession.open

    def open_without(self: ImapSession, username: str, password: str) -> None:
        original(self, username, password)
        self.capabilities = self.capabilities - set(capabilities)

    monkeypatch.setattr(ImapSession, "open", open_without)


@pytest.mark.parametrize("how", ["idle disabled", "server without IDLE"])
async def test_polling_when_idle_is_off_or_missing(
    services: Services,
    imap_account: DovecotAccount,
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    if how == "server without IDLE":
        _without(monkeypatch, "IDLE")
    poller = poller_for(services, imap_account, after="flag", idle=how != "idle disabled")
    registry = CollectorRegistry()
    registry.register(ImapCollector({"soporte": poller}))
    async with running(poller):

        async def connected() -> bool:
            return poller.ready and poller.state()["last_success"] is not None

        await eventually(connected, what="the first round")
        raw = mail("por sondeo")
        await asyncio.to_thread(imap_account.append, raw)

        async def ingested() -> bool:
            assert poller.state()["idle"] is False
            return poller.state()["last_uid"] == 1  # committed, then checkpointed

        await eventually(ingested, within=5.0, what="the poll to find the mail")
        # Later polls search "2:*", which a server answers with UID 1 (the highest): it must
        # be filtered out, not read again.
        rounds = [poller.state()["last_success"]]

        async def two_more_polls() -> bool:
            if poller.state()["last_success"] != rounds[-1]:
                rounds.append(poller.state()["last_success"])
            return len(rounds) >= 3

        await eventually(two_more_polls, what="two more polls")
        assert sum(poller.status.messages.values()) == 1
        assert "duplicate" not in poller.status.messages
        metrics = generate_latest(registry).decode()
    assert [row.raw for row in await inbound_rows(services)] == [raw]
    assert 'ventanilla_imap_connected{account="soporte"} 1.0' in metrics
    assert 'ventanilla_imap_idle{account="soporte"} 0.0' in metrics
    assert 'ventanilla_imap_last_uid{account="soporte"} 1.0' in metrics
    assert "ventanilla_imap_messages_total{" in metrics
    assert "ventanilla_imap_last_success_timestamp_seconds{" in metrics


@pytest.mark.parametrize("missing", [("MOVE",), ("MOVE", "UIDPLUS")], ids=["copy", "plain"])
async def test_move_without_the_move_extension(
    services: Services,
    imap_account: DovecotAccount,
    monkeypatch: pytest.MonkeyPatch,
    missing: tuple[str, ...],
) -> None:
    _without(monkeypatch, *missing)
    sent = [mail("uno"), mail("dos")]
    for raw in sent:
        await asyncio.to_thread(imap_account.append, raw)
    async with running(poller_for(services, imap_account, after="move", move_to="Hecho")):

        async def moved() -> bool:
            done = await in_folder(imap_account, "Hecho")
            copied = sorted(body for body, _ in done.values()) == sorted(sent)
            return copied and await in_folder(imap_account) == {}

        await eventually(moved, what="COPY + \\Deleted + EXPUNGE")
    assert [row.raw for row in await inbound_rows(services)] == sent


async def test_unreachable_server_backs_off_and_says_why(services: Services) -> None:
    closed = DovecotAccount("127.0.0.1", _closed_port(), "nadie", "x")
    poller = poller_for(services, closed)
    async with running(poller) as task:

        async def retried() -> bool:
            return poller.status.failures >= 3

        await eventually(retried, what="several reconnection attempts")
        assert not task.done()
    state = poller.state()
    assert state["connected"] is False and not poller.ready
    assert "connect to 127.0.0.1" in str(state["last_error"])
    assert state["last_success"] is None


async def test_wrong_password_is_reported_not_fatal(
    services: Services, imap_account: DovecotAccount
) -> None:
    wrong = DovecotAccount(imap_account.host, imap_account.port, imap_account.user, "wrong")
    poller = poller_for(services, wrong)
    async with running(poller) as task:

        async def refused() -> bool:
            return "LOGIN" in str(poller.state()["last_error"])

        await eventually(refused, what="the login to be refused")
        assert not task.done()
    assert "wrong" not in str(poller.state()["last_error"])


async def test_stop_while_idle_is_prompt(services: Services, imap_account: DovecotAccount) -> None:
    # The default check interval: a stop must not wait for the IDLE refresh (minutes).
    poller = poller_for(services, imap_account, idle_check_seconds=1.0)
    task = asyncio.create_task(poller.run())

    async def idle() -> bool:
        return poller.state()["idle"] is True

    await eventually(idle, what="IDLE")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2.0
    assert poller.state()["connected"] is False


async def test_stop_does_not_wait_for_a_hung_server(services: Services) -> None:
    """A server that stops answering mid-session: the worker thread ends at once on stop,
    not after the socket timeout."""
    lines: asyncio.Queue[bytes] = asyncio.Queue()

    async def hung(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 IDLE] fake server ready\r\n")
        await writer.drain()
        while line := await reader.readline():
            await lines.put(line)
            tag, _, command = line.partition(b" ")
            if command.upper().startswith((b"CAPABILITY", b"LOGIN")):
                writer.write(b"* CAPABILITY IMAP4rev1 IDLE\r\n" + tag + b" OK done\r\n")
                await writer.drain()
            # Anything else (SELECT) is never answered.
        writer.close()

    server = await asyncio.start_server(hung, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    account = DovecotAccount("127.0.0.1", port, "u", "p")
    poller = poller_for(services, account, name="hung", timeout_seconds=60.0)
    try:
        async with running(poller):
            while b"SELECT" not in (await asyncio.wait_for(lines.get(), 10)).upper():
                pass
        deadline = time.monotonic() + 3
        while any(t.name.startswith("imap-hung") for t in threading.enumerate()):
            assert time.monotonic() < deadline, "the worker thread is still blocked"
            await asyncio.sleep(0.05)
    finally:
        server.close()


async def test_checkpoint_store_round_trip(services: Services) -> None:
    store = CheckpointStore(services.db, services.writes)
    assert await store.load("soporte", "INBOX") is None
    await store.save("soporte", "INBOX", 4_000_000_000, 7)  # UIDVALIDITY is unsigned 32-bit
    await store.save("ventas", "INBOX", 1, 3)
    assert await store.load("soporte", "INBOX") == Checkpoint(4_000_000_000, 7)
    await store.save("soporte", "INBOX", 5, 0)
    assert await store.load("soporte", "INBOX") == Checkpoint(5, 0)
    assert await store.load("ventas", "INBOX") == Checkpoint(1, 3)
    assert await store.load("soporte", "Otra") is None


def test_config_rejects_what_cannot_work() -> None:
    base = {"host": "imap.example.com", "username": "u", "password": "s3cr3t-value"}
    with pytest.raises(ValueError, match="move_to"):
        ImapAccountConfig(**base, after="move", folder="INBOX", move_to="INBOX")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RFC 2177"):
        ImapAccountConfig(**base, idle_refresh_seconds=30 * 60)  # type: ignore[arg-type]
    config = ImapAccountConfig(**base)  # type: ignore[arg-type]
    assert "s3cr3t" not in repr(config)  # the password stays out of logs


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    backoff = Backoff(1.0, 300.0)
    delays = [backoff.next_delay() for _ in range(12)]
    for attempt, delay in enumerate(delays[:8]):
        assert 2**attempt / 2 <= delay <= 2**attempt
    assert all(150.0 <= d <= 300.0 for d in delays[9:])
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
