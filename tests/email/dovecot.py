"""A real Dovecot IMAP server on loopback for the IMAP poller's tests (DESIGN §6).

``dovecot`` (one per test session) starts ``dovecot -c CONF`` from a temporary directory as
root, with a static passdb that accepts any user name with one password, so each test gets
a fresh, empty mailbox from ``imap_account`` just by choosing a new user name. Where
Dovecot is not installed or we are not root the tests skip and say why; under CI=true that
fails instead. Test modules import ``dovecot_fixture`` and ``imap_account_fixture``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from imapclient import IMAPClient
from sqlalchemy import select

from config.app import Services
from intake.email.imap import ImapAccountConfig, ImapPoller
from intake.email.ingest import EmailIngest
from intake.email.mailboxes import Mailbox, MailboxDirectory
from intake.email.parse import ParseLimits
from storage.checkpoints import CheckpointStore
from storage.models import Inbound

PASSWORD = "test-secret"
INSTALL_HINT = "apt-get install dovecot-imapd (tests/install-system-deps.sh does it as root)"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
# A refused login (the wrong-password test) must not slow every later login from 127.0.0.1:
# no reply delay, no anvil penalty (Dovecot "Authentication Penalty").
auth_failure_delay = 0
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/mail/%u
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def unavailable_reason() -> str | None:
    if _dovecot_binary() is None:
        return f"dovecot is not installed; {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "the Dovecot fixture runs as root (Dovecot switches to its own users)"
    for user in ("dovecot", "dovenull"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"system user {user!r} is missing; {INSTALL_HINT}"
    return None


def _dovecot_binary() -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return shutil.which("dovecot", path=path)


@dataclass(frozen=True)
class DovecotAccount:
    """One user's mailbox, with blocking helpers (call them through asyncio.to_thread)."""

    host: str
    port: int
    user: str
    password: str

    @contextmanager
    def client(self) -> Iterator[IMAPClient]:
        with IMAPClient(self.host, port=self.port, ssl=False, timeout=10) as client:
            client.login(self.user, self.password)
            yield client

    def append(self, raw: bytes, folder: str = "INBOX") -> int:
        """APPEND ``raw``; return its UID (RFC 4315 APPENDUID)."""
        with self.client() as client:
            answer = client.append(folder, raw)
        found = re.search(rb"APPENDUID \d+ (\d+)", answer)
        assert found, answer
        return int(found.group(1))

    def messages(self, folder: str = "INBOX") -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
        """UID → (exact bytes, flags) of every message in ``folder``, read with PEEK.

        A folder that does not exist (yet) reads as empty.
        """
        with self.client() as client:
            if not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL")
            data = client.fetch(uids, ["BODY.PEEK[]", "FLAGS"]) if uids else {}
        return {uid: (item[b"BODY[]"], tuple(item[b"FLAGS"])) for uid, item in data.items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def folder_exists(self, folder: str) -> bool:
        with self.client() as client:
            return bool(client.folder_exists(folder))

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def delete_folder(self, folder: str) -> None:
        with self.client() as client:
            client.delete_folder(folder)


@dataclass(frozen=True)
class DovecotServer:
    host: str
    port: int
    root: Path

    def account(self, user: str | None = None) -> DovecotAccount:
        return DovecotAccount(self.host, self.port, user or f"u{uuid.uuid4().hex[:10]}", PASSWORD)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_greeting(server: DovecotServer, deadline: float) -> None:
    while True:
        try:
            with socket.create_connection((server.host, server.port), timeout=2) as sock:
                if sock.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"Dovecot did not answer on {server.port}:\n{server.log()}")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone for our purposes


def start_dovecot() -> DovecotServer:
    binary = _dovecot_binary()
    assert binary is not None
    # Not pytest's tmp_path: its parents are 0700 and Dovecot's own users must get in.
    root = Path(tempfile.mkdtemp(prefix="ventanilla-dovecot-"))
    root.chmod(0o755)
    for name in ("run", "state", "mail"):
        (root / name).mkdir()
    dovecot_user = pwd.getpwnam("dovecot")
    os.chown(root / "mail", dovecot_user.pw_uid, dovecot_user.pw_gid)
    server = DovecotServer("127.0.0.1", _free_port(), root)
    conf = root / "dovecot.conf"
    conf.write_text(CONFIG.format(root=root, port=server.port, password=PASSWORD))
    # Output to a file, not a pipe: the daemonized master keeps its inherited descriptors,
    # so reading a pipe to its end would wait until Dovecot stops.
    with open(root / "start.log", "wb") as output:
        started = subprocess.run(
            [binary, "-c", str(conf)], stdout=output, stderr=output, timeout=30, check=False
        )
    if started.returncode != 0:
        message = (root / "start.log").read_text(errors="replace") + server.log()
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"dovecot -c {conf} failed: {message}")
    try:
        _wait_for_greeting(server, time.monotonic() + 15)
    except BaseException:
        stop_dovecot(server)
        raise
    return server


def stop_dovecot(server: DovecotServer) -> None:
    pid_file = server.root / "run" / "master.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid:
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if not _alive(pid):
                break
    shutil.rmtree(server.root, ignore_errors=True)


# Named, so test modules can import them under other names (an import named like the
# fixture would be shadowed by the test's parameter of the same name).
@pytest.fixture(scope="session", name="dovecot")
def dovecot_fixture() -> Iterator[DovecotServer]:
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    server = start_dovecot()
    try:
        yield server
    finally:
        stop_dovecot(server)


@pytest.fixture(name="imap_account")
def imap_account_fixture(dovecot: DovecotServer) -> DovecotAccount:
    """A new, empty mailbox on the shared server."""
    return dovecot.account()


def mail(label: str, *, sender: str = "cliente@example.com") -> bytes:
    """A small, well-formed support mail with a unique Message-ID (and so unique bytes).

    CRLF line ends: Dovecot serves stored mail with CRLF, so these bytes come back exactly.
    """
    token = uuid.uuid4().hex
    return (
        f"From: Cliente <{sender}>\r\n"
        "To: soporte@example.com\r\n"
        f"Subject: Consulta {label}\r\n"
        f"Message-ID: <{token}@example.com>\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Hola, no funciona el servicio ({label}, {token[:8]}).\r\n"
    ).encode()


# --- helpers for the poller tests ------------------------------------------------------


def email_ingest(services: Services) -> EmailIngest:
    mailboxes = MailboxDirectory([Mailbox("soporte@example.com")])
    return EmailIngest(
        services.writer, services.attachments, mailboxes, ParseLimits(), "example.com"
    )


def poller_for(
    services: Services,
    account: DovecotAccount,
    *,
    name: str = "soporte",
    ingest: EmailIngest | None = None,
    **overrides: object,
) -> ImapPoller:
    """A poller on ``account`` tuned for tests: short polls, backoff and IDLE checks."""
    settings: dict[str, object] = {
        "security": "none",
        "poll_seconds": 0.2,
        "backoff_initial_seconds": 0.05,
        "backoff_max_seconds": 0.5,
        "idle_check_seconds": 0.2,
        "timeout_seconds": 10.0,
        **overrides,
    }
    config = ImapAccountConfig(
        host=account.host,
        port=account.port,
        username=account.user,
        password=account.password,
        **settings,  # type: ignore[arg-type]
    )
    return ImapPoller(
        name,
        config,
        ingest or email_ingest(services),
        CheckpointStore(services.db, services.writes),
    )


@asynccontextmanager
async def running(poller: ImapPoller) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(poller.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(
    check: Callable[[], Awaitable[bool]], within: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def inbound_rows(services: Services) -> list[Inbound]:
    async with services.db.session() as session:
        return list((await session.scalars(select(Inbound).order_by(Inbound.id))).all())


async def in_folder(
    account: DovecotAccount, folder: str = "INBOX"
) -> dict[int, tuple[bytes, tuple[bytes, ...]]]:
    return await asyncio.to_thread(account.messages, folder)
