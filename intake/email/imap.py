"""The IMAP poller: reads one account's folder into ``EmailIngest``, IDLE or polling.

Per message, in UID order: fetch without setting \\Seen, ingest (which commits), advance
the stored checkpoint, then acknowledge on the server (move, flag or delete). The server
only hears about a message after it is committed, so nothing is lost; a crash between two
steps re-reads at most that one message, which ingest deduplicates.

imapclient blocks, so each account drives its connection from one worker thread of its own
(never the event loop, DESIGN §5). A dedicated thread rather than the shared default
executor: an IDLE wait occupies its thread, and parsers and other accounts must not queue
behind it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from intake.email.imap_session import After, ImapError, ImapSession, Security
from intake.email.ingest import EmailIngest, EmailSource
from storage.checkpoints import CheckpointStore
from storage.db import StorageUnavailable, is_unavailable_error
from storage.models import utcnow

log = logging.getLogger(__name__)

T = TypeVar("T")

# RFC 2177 §3: servers may drop a client idle for 30 minutes, so IDLE is re-issued well
# within 29 minutes.
IDLE_REFRESH_MAX_SECONDS = 29 * 60
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


@dataclass(frozen=True, slots=True)
class ImapAccountConfig:
    """One ``[imap.<name>]`` account, as the poller needs it (built from Settings)."""

    host: str
    username: str
    password: str = field(repr=False)
    port: int = 993
    security: Security = "tls"
    folder: str = "INBOX"
    after: After = "flag"
    move_to: str = "Processed"
    poll_seconds: float = 60.0
    idle: bool = True
    # Not in the config file: tuning for tests and unusual servers.
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 300.0
    idle_refresh_seconds: float = 25 * 60
    idle_check_seconds: float = 1.0  # how soon a stop is noticed while IDLE
    timeout_seconds: float = 60.0  # socket timeout of every command
    ssl_context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.after == "move" and self.move_to == self.folder:
            raise ValueError(f"move_to must differ from folder ({self.folder!r})")
        if not 0 < self.idle_refresh_seconds <= IDLE_REFRESH_MAX_SECONDS:
            raise ValueError("idle_refresh_seconds must be within (0, 1740] (RFC 2177)")
        if self.idle_check_seconds <= 0 or self.poll_seconds <= 0:
            raise ValueError("poll_seconds and idle_check_seconds must be positive")


@dataclass
class ImapStatus:
    """What /readyz and /metrics show of one account."""

    connected: bool = False
    idle: bool = False
    last_success: datetime | None = None
    last_error: str | None = None  # kept after recovery; ``failures`` says if current
    last_error_at: datetime | None = None
    last_uid: int | None = None
    uidvalidity: int | None = None
    failures: int = 0  # consecutive; 0 once a round succeeds
    errors: int = 0  # total since start
    messages: dict[str, int] = field(default_factory=dict)  # by ingest outcome


class Backoff:
    """Exponential backoff with jitter: initial, 2x, 4x … capped at ``maximum``."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.attempt = 0

    def next_delay(self) -> float:
        self.attempt += 1
        ceiling = min(self.maximum, self.initial * 2 ** min(self.attempt - 1, 30))
        # Jitter so accounts on the same failed server do not retry in lockstep.
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class ImapPoller:
    """Reads one IMAP account until cancelled. ``run`` never returns on its own."""

    def __init__(
        self,
        name: str,
        config: ImapAccountConfig,
        ingest: EmailIngest,
        checkpoints: CheckpointStore,
    ) -> None:
        self.name = name
        self.config = config
        self.ingest = ingest
        self.checkpoints = checkpoints
        self.status = ImapStatus()
        self.source = EmailSource(kind=f"imap:{name}")
        self._backoff = Backoff(config.backoff_initial_seconds, config.backoff_max_seconds)
        self._thread: ThreadPoolExecutor | None = None
        self._session: ImapSession | None = None
        self._busy: tuple[Callable[..., Any], Future[Any]] | None = None  # the last call
        self._uidvalidity = 0
        self._last_uid = 0

    @property
    def ready(self) -> bool:
        return self.status.connected

    def state(self) -> dict[str, object]:
        s = self.status
        return {
            "connected": s.connected,
            "idle": s.idle,
            "last_success": s.last_success.isoformat() if s.last_success else None,
            "last_error": s.last_error,
            "last_error_at": s.last_error_at.isoformat() if s.last_error_at else None,
            "last_uid": s.last_uid,
            "uidvalidity": s.uidvalidity,
            "failures": s.failures,
        }

    async def run(self) -> None:
        if self.config.security == "none" and self.config.host not in LOOPBACK:
            log.warning("imap %s: security = none sends the password unencrypted", self.name)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"imap-{self.name}")
        try:
            while True:
                try:
                    await self._connected_rounds()
                except ImapError as exc:
                    self._failed(f"IMAP: {exc}")
                except StorageUnavailable as exc:
                    self._failed(f"storage: {exc}")
                except Exception as exc:  # a bug must not stop the account for good
                    log.exception("imap %s: unexpected error", self.name)
                    self._failed(f"{type(exc).__name__}: {exc}")
                await self._disconnect()
                await asyncio.sleep(self._backoff.next_delay())
        finally:
            self.status.connected = self.status.idle = False
            session, self._session = self._session, None
            if session is not None:
                busy = self._busy
                if busy is not None and busy[1].running() and busy[0] != session.idle_wait:
                    # A command is blocked on the server (a hung peer, a huge FETCH): end it
                    # now rather than after the socket timeout. An IDLE check ends by itself
                    # within idle_check_seconds, and then DONE and LOGOUT go out politely.
                    session.abort()
                # Queued behind the call still running, not awaited: a stop never waits on
                # the server.
                self._thread.submit(session.close)
            self._thread.shutdown(wait=False)

    # --- one connection ------------------------------------------------------------------

    async def _connected_rounds(self) -> None:
        session = await self._connect()
        while True:
            try:
                await self._drain(session)
            except StorageUnavailable as exc:
                # The database is down: the message stays unacknowledged in the folder.
                # Keep the connection and retry the same message after the backoff.
                self._failed(f"storage: {exc}")
                await asyncio.sleep(self._backoff.next_delay())
                continue
            self._succeeded()
            if self.config.idle and session.has("IDLE"):
                await self._idle(session)
            else:
                await asyncio.sleep(self.config.poll_seconds)

    async def _connect(self) -> ImapSession:
        cfg = self.config
        session = ImapSession(
            cfg.host, cfg.port, cfg.security, cfg.timeout_seconds, cfg.ssl_context
        )
        self._session = session
        await self._call(session.open, cfg.username, cfg.password)
        if cfg.after == "move":
            # Created up front so the first MOVE/COPY does not fail with [TRYCREATE].
            await self._call(session.ensure_folder, cfg.move_to)
        uidvalidity = await self._call(session.select, cfg.folder)
        await self._load_checkpoint(uidvalidity)
        self.status.connected = True
        log.info(
            "imap %s: connected to %s:%s, folder %r, UIDVALIDITY %d, last UID %d",
            self.name,
            cfg.host,
            cfg.port,
            cfg.folder,
            uidvalidity,
            self._last_uid,
        )
        await self._finish_acknowledgements(session)
        return session

    async def _load_checkpoint(self, uidvalidity: int) -> None:
        cfg = self.config
        stored = await self.checkpoints.load(self.name, cfg.folder)
        if stored is not None and stored.uidvalidity == uidvalidity:
            last_uid = stored.last_uid
        else:
            if stored is not None:
                # RFC 3501 §2.3.1.1: the old UIDs mean nothing now (folder recreated or
                # rebuilt). Read it all again; ingest dedups what was already taken.
                log.warning(
                    "imap %s: UIDVALIDITY of %r changed from %d to %d; re-reading the folder "
                    "(messages already taken are deduplicated by Message-ID)",
                    self.name,
                    cfg.folder,
                    stored.uidvalidity,
                    uidvalidity,
                )
            last_uid = 0
            await self.checkpoints.save(self.name, cfg.folder, uidvalidity, last_uid)
        self._uidvalidity, self._last_uid = uidvalidity, last_uid
        self.status.uidvalidity, self.status.last_uid = uidvalidity, last_uid

    async def _finish_acknowledgements(self, session: ImapSession) -> None:
        """Acknowledge messages committed before a crash or disconnect cut in.

        The checkpoint only passes a UID after its message is committed, so anything at or
        below it that is still here (or still unseen, for ``flag``) is committed and only
        missed its move/flag/delete.
        """
        cfg = self.config
        pending = await self._call(session.uids_up_to, self._last_uid, cfg.after == "flag")
        if pending:
            log.info("imap %s: acknowledging %d committed message(s)", self.name, len(pending))
            await self._call(session.after, pending, cfg.after, cfg.move_to)

    async def _drain(self, session: ImapSession) -> None:
        """Ingest every message above the checkpoint, then search again until none is left.

        Some servers (Cyrus) announce mail that arrives during a batch only in the untagged
        ``EXISTS`` of their FETCH/MOVE replies and not again once IDLE starts; RFC 3501 §7
        lets a server send such data with any response, and RFC 2177 leaves acting on
        it to the client. Searching until a search comes back empty takes that mail in
        this round instead of leaving it until the next push or reconnect.
        """
        while uids := await self._call(session.new_uids, self._last_uid):
            await self._take(session, uids)

    async def _take(self, session: ImapSession, uids: list[int]) -> None:
        """Ingest ``uids`` one at a time, in UID order, each committed before acknowledged."""
        cfg = self.config
        for uid in uids:
            raw = await self._call(session.fetch, uid)
            if raw is not None:
                await self._ingest(uid, raw)
            # Committed (or expunged by someone else meanwhile; UIDs are never reused within
            # a UIDVALIDITY). A crash right here re-reads this message on restart: ingest
            # finds its Message-ID (or, unparsed, its sha256) and answers "duplicate", so it
            # is still one message.
            await self.checkpoints.save(self.name, cfg.folder, self._uidvalidity, uid)
            self._last_uid = self.status.last_uid = uid
            if raw is not None:
                # Only now does the server learn we have it (DESIGN §2: persist first).
                await self._call(session.after, [uid], cfg.after, cfg.move_to)

    async def _ingest(self, uid: int, raw: bytes) -> None:
        try:
            result = await self.ingest.ingest(raw, self.source)
        except StorageUnavailable:
            raise
        except Exception as exc:
            if is_unavailable_error(exc):
                raise StorageUnavailable(str(exc)) from exc
            # Not committed either: the round ends, the message stays unacknowledged and is
            # read again after the backoff.
            raise
        # "failed" is committed too (raw bytes kept for ``inbound retry``): acknowledge it
        # like any other, so one bad message never blocks the folder.
        counts = self.status.messages
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
        level = logging.WARNING if result.outcome == "failed" else logging.INFO
        log.log(
            level,
            "imap %s: UID %d → %s (inbound %d%s)",
            self.name,
            uid,
            result.outcome,
            result.inbound_id,
            f", case {result.case_number}" if result.case_number else "",
        )

    async def _idle(self, session: ImapSession) -> None:
        """IDLE until the server reports new mail, or for ``poll_seconds`` at most.

        Leaving IDLE every ``poll_seconds`` to search bounds the delay of a message whose
        notification was missed for any reason (a server that announced it in an earlier
        reply, a lost push) by ``poll_seconds``; ``idle_refresh_seconds`` keeps each IDLE
        within RFC 2177's 29 minutes even if ``poll_seconds`` is longer.
        """
        cfg = self.config
        loop = asyncio.get_running_loop()
        await self._call(session.idle_start)
        self.status.idle = True
        deadline = loop.time() + min(cfg.poll_seconds, cfg.idle_refresh_seconds)
        try:
            while loop.time() < deadline:
                if await self._call(session.idle_wait, cfg.idle_check_seconds):
                    break
        finally:
            self.status.idle = False
        await self._call(session.idle_stop)

    async def _disconnect(self) -> None:
        self.status.connected = self.status.idle = False
        session, self._session = self._session, None
        if session is not None:
            await self._call(session.close)

    # --- helpers -----------------------------------------------------------------------

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run one blocking session call on the account's thread."""
        assert self._thread is not None, "run() owns the worker thread"
        future = self._thread.submit(fn, *args)
        self._busy = (fn, future)
        return await asyncio.wrap_future(future)

    def _succeeded(self) -> None:
        self.status.last_success = utcnow()
        self.status.failures = 0
        self._backoff.reset()

    def _failed(self, error: str) -> None:
        self.status.last_error = error
        self.status.last_error_at = utcnow()
        self.status.failures += 1
        self.status.errors += 1
        log.warning("imap %s: %s (attempt %d)", self.name, error, self.status.failures)
