"""One blocking IMAP connection for the poller, with imapclient's errors translated here.

Every method blocks and must run on the account's worker thread, never on the event loop
(DESIGN §5); ``intake.email.imap`` drives it. Anything the library or the socket raises
leaves as ``ImapError``, with the server's words and never the password.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from imapclient import IMAPClient  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
DELETED = b"\\Deleted"
After = Literal["move", "flag", "delete"]
Security = Literal["none", "tls", "starttls"]


class ImapError(Exception):
    """The IMAP server or the connection to it failed; reconnect after a backoff."""


@contextlib.contextmanager
def translated(doing: str) -> Iterator[None]:
    """Turn imapclient/imaplib/socket/TLS errors into ``ImapError`` at this edge."""
    try:
        yield
    except ImapError:
        raise
    except (imaplib.IMAP4.error, OSError, EOFError) as exc:  # ssl.SSLError is an OSError
        raise ImapError(f"{doing}: {type(exc).__name__}: {exc}") from exc


class ImapSession:
    """A logged-in connection with one folder selected."""

    def __init__(
        self,
        host: str,
        port: int,
        security: Security,
        timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.timeout = timeout
        self.ssl_context = ssl_context
        self._client: Any = None
        self.capabilities: frozenset[str] = frozenset()
        self.idling = False

    # --- connection --------------------------------------------------------------------

    def open(self, username: str, password: str) -> None:
        context = self.ssl_context or ssl.create_default_context()
        with translated(f"connect to {self.host}:{self.port}"):
            self._client = IMAPClient(
                self.host,
                port=self.port,
                ssl=self.security == "tls",
                ssl_context=context if self.security == "tls" else None,
                timeout=self.timeout,
            )
        with translated("STARTTLS"):
            if self.security == "starttls":
                # RFC 3501 §6.2.1: upgrade before LOGIN so the password never goes in clear.
                self._client.starttls(context)
        with translated("LOGIN"):
            self._client.login(username, password)
        with translated("CAPABILITY"):
            # Asked again after login: servers may advertise more once authenticated.
            self.capabilities = frozenset(
                c.decode("ascii", "replace").upper() for c in self._client.capabilities()
            )

    def close(self) -> None:
        """Best effort: leave IDLE, log out, drop the socket. Never raises."""
        client, self._client = self._client, None
        if client is None:
            return
        with contextlib.suppress(Exception):
            # Short: a dead peer must not hold up the daemon's stop.
            client.socket().settimeout(5)
        if self.idling:
            self.idling = False
            with contextlib.suppress(Exception):
                client.idle_done()
        try:
            client.logout()
        except Exception:
            with contextlib.suppress(Exception):
                client.shutdown()

    def abort(self) -> None:
        """Unblock a command stuck on another thread (hung server) by shutting the socket.

        The only method safe to call from outside the worker thread.
        """
        client = self._client
        if client is not None:
            with contextlib.suppress(Exception):
                client.socket().shutdown(socket.SHUT_RDWR)

    @property
    def client(self) -> Any:
        if self._client is None:
            raise ImapError("not connected")
        return self._client

    def has(self, capability: str) -> bool:
        return capability.upper() in self.capabilities

    # --- folders -----------------------------------------------------------------------

    def select(self, folder: str) -> int:
        """Select ``folder`` read-write; return its UIDVALIDITY."""
        with translated(f"SELECT {folder}"):
            info = self.client.select_folder(folder)
        try:
            return int(info[b"UIDVALIDITY"])
        except (KeyError, TypeError, ValueError) as exc:
            # RFC 3501 §6.3.1 makes the UIDVALIDITY response code mandatory.
            raise ImapError(f"SELECT {folder}: server sent no UIDVALIDITY") from exc

    def ensure_folder(self, folder: str) -> None:
        with translated(f"CREATE {folder}"):
            if not self.client.folder_exists(folder):
                self.client.create_folder(folder)
                log.info("created IMAP folder %r", folder)

    # --- messages ----------------------------------------------------------------------

    def new_uids(self, after_uid: int) -> list[int]:
        """UIDs above ``after_uid`` in ascending order."""
        with translated("NOOP"):
            # RFC 3501 §6.1.2: NOOP is how a client that is not IDLE polls for new mail.
            self.client.noop()
        with translated("UID SEARCH"):
            found = self.client.search(["UID", f"{after_uid + 1}:*"])
        # "N:*" always matches the highest UID even when it is below N (RFC 3501 §6.4.8,
        # a range is unordered), so the last message comes back every time: filter it.
        return sorted(uid for uid in (int(u) for u in found) if uid > after_uid)

    def uids_up_to(self, last_uid: int, unseen_only: bool = False) -> list[int]:
        """UIDs at or below ``last_uid`` still in the folder (optionally only unseen)."""
        if last_uid < 1:
            return []
        criteria: list[str] = ["UID", f"1:{last_uid}"]
        if unseen_only:
            criteria.append("UNSEEN")
        with translated("UID SEARCH"):
            found = self.client.search(criteria)
        return sorted(uid for uid in (int(u) for u in found) if uid <= last_uid)

    def fetch(self, uid: int) -> bytes | None:
        """The message's exact bytes, or None if it was expunged meanwhile."""
        with translated(f"UID FETCH {uid}"):
            # BODY.PEEK[] rather than BODY[]: reading must not set \\Seen before the
            # message is committed (RFC 3501 §6.4.5).
            data = self.client.fetch([uid], ["BODY.PEEK[]"])
        item = data.get(uid)
        if item is None:
            return None
        body = item.get(b"BODY[]")
        return bytes(body) if body is not None else None

    def after(self, uids: Sequence[int], action: After, move_to: str) -> None:
        """Acknowledge committed messages on the server: move, flag \\Seen or delete."""
        if not uids:
            return
        if action == "flag":
            with translated("UID STORE +FLAGS (\\Seen)"):
                self.client.add_flags(list(uids), [SEEN], silent=True)
        elif action == "move" and self.has("MOVE"):
            with translated(f"UID MOVE {move_to}"):
                # RFC 6851: atomic, no window where the message is in both folders.
                self.client.move(list(uids), move_to)
        else:
            if action == "move":
                with translated(f"UID COPY {move_to}"):
                    self.client.copy(list(uids), move_to)
            self._expunge(uids)

    def _expunge(self, uids: Sequence[int]) -> None:
        with translated("UID STORE +FLAGS (\\Deleted)"):
            self.client.add_flags(list(uids), [DELETED], silent=True)
        with translated("EXPUNGE"):
            if self.has("UIDPLUS"):
                # RFC 4315 §2.1: UID EXPUNGE removes only these messages, not whatever
                # else someone marked \\Deleted in the folder.
                self.client.uid_expunge(list(uids))
            else:
                self.client.expunge()

    # --- IDLE (RFC 2177) ---------------------------------------------------------------

    def idle_start(self) -> None:
        with translated("IDLE"):
            self.client.idle()
        self.idling = True

    def idle_wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` in IDLE; True if the folder may have changed.

        Short waits keep the worker thread answerable: cancellation is honoured once the
        current wait returns.
        """
        started = time.monotonic()
        with translated("IDLE"):
            responses = self.client.idle_check(timeout=seconds)
        for response in responses:
            if len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT"):
                return True
            if response and response[0] == b"BYE":
                raise ImapError(f"server closed the connection: {response[1:]!r}")
        # imapclient swallows EOF inside idle_check and returns nothing at once: an early
        # empty answer means the socket is readable but said nothing, so end IDLE and let
        # the next command find out whether the connection is still alive.
        return not responses and time.monotonic() - started < seconds / 2

    def idle_stop(self) -> None:
        if not self.idling:
            return
        self.idling = False
        with translated("DONE"):
            self.client.idle_done()
