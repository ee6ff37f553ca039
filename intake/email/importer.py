"""Replays an mbox file or a Maildir folder through the email ingest path, many at a time.

Every message goes through ``EmailIngest.ingest`` exactly as mail from the SMTP server
does (dedup, threading, routing, a failed row for what cannot be parsed), with a source
that suppresses acknowledgements: customers must not get a reply for mail they sent
months ago. Up to ``in_flight`` messages are in progress at once, so the parser pool keeps
every core busy and the group-commit writer gets full batches. Importing the same archive
again is harmless: every message comes back as a duplicate.

Concurrency would break threads, because the writer finds the case a reply continues only
among committed rows: a reply written in the same batch as its original would open a
second case. ``ThreadGate`` therefore holds a message back until the earlier archive
messages it refers to (In-Reply-To/References), and the previous one from the same sender
with the same subject (the writer's same-subject rule), are committed; unrelated mail
flows freely.
"""

from __future__ import annotations

import asyncio
import mailbox
import random
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cases.threads import normalize_subject
from intake.email.ingest import EmailIngest, EmailSource, raw_message_id
from intake.email.parse import EmailParseError
from intake.message import AcceptResult, Channel
from storage.db import Database, StorageUnavailable, is_unavailable_error
from storage.models import Inbound

ARCHIVE_KINDS = ("mbox", "maildir")
IMPORT_SOURCE = EmailSource(kind="import", suppress_ack="imported archive")
READ_CHUNK = 32  # messages read per trip to the reading thread
FAILURES_KEPT = 5  # failures quoted in the summary
# A busy or briefly unreachable database is retried (as an SMTP sender would after a 451)
# before the message is reported as not stored.
STORE_ATTEMPTS = 8
STORE_BACKOFF_S = 0.05


class ArchiveError(Exception):
    """The path is not a readable archive of the given kind; the message says why."""


class Archive:
    """The messages of one mbox file or Maildir folder, in a stable order, as raw bytes.

    The ``mailbox`` module does blocking file I/O: ``open`` and ``read`` are meant to run
    in a worker thread. Maildir messages are taken in delivery order (the leading
    timestamp of their file names); mbox messages in file order.
    """

    def __init__(self, kind: str, path: Path, box: mailbox.Mailbox[Any], keys: list[Any]) -> None:
        self.kind = kind
        self.path = path
        self._box = box
        self.keys = keys

    @classmethod
    def open(cls, kind: str, where: str | Path) -> Archive:
        path = Path(where).expanduser()
        box: mailbox.Mailbox[Any]
        if kind == "mbox":
            if not path.is_file():
                raise ArchiveError(f"{path}: no such mbox file")
            box = mailbox.mbox(path, factory=None, create=False)
            keys: list[Any] = sorted(box.iterkeys())
        elif kind == "maildir":
            if not path.is_dir():
                raise ArchiveError(f"{path}: no such folder")
            missing = [sub for sub in ("cur", "new") if not (path / sub).is_dir()]
            if missing:
                raise ArchiveError(f"{path}: not a Maildir (no {' or '.join(missing)}/ folder)")
            box = mailbox.Maildir(path, factory=None, create=False)
            keys = sorted(box.iterkeys(), key=_maildir_order)
        else:
            raise ArchiveError(
                f"unknown archive kind {kind!r}; choose {' or '.join(ARCHIVE_KINDS)}"
            )
        return cls(kind, path, box, keys)

    def __len__(self) -> int:
        return len(self.keys)

    def label(self, index: int) -> str:
        """How a message is named in the summary: its position, or its Maildir file."""
        return f"#{index + 1}" if self.kind == "mbox" else str(self.keys[index])

    def read(self, start: int, stop: int) -> list[bytes | OSError | KeyError]:
        """Raw bytes of messages ``start``..``stop-1``; an unreadable one yields its error."""
        found: list[bytes | OSError | KeyError] = []
        for key in self.keys[start:stop]:
            try:
                found.append(self._box.get_bytes(key))
            except (OSError, KeyError) as exc:  # deleted or unreadable since it was listed
                found.append(exc)
        return found

    def close(self) -> None:
        self._box.close()


def _maildir_order(key: str) -> tuple[int, str]:
    # Maildir unique names start with the delivery time in seconds ("1700000000.M1P2.host").
    head = key.split(".", 1)[0]
    return (int(head) if head.isdigit() else 0, key)


# --- threads -------------------------------------------------------------------------------

HEADER_SCAN = 65_536  # a header longer than this is not looked at for ordering
_FOLD = re.compile(rb"\r?\n[ \t]+")
_FIELD = re.compile(rb"^(message-id|in-reply-to|references|from|subject)[ \t]*:(.*)$", re.I | re.M)
_MSG_ID = re.compile(rb"<([^<>\s]+)>")
_ANGLE_ADDRESS = re.compile(rb"<([^<>\s@]+@[^<>\s]+)>")
_BARE_ADDRESS = re.compile(rb"[^\s<>\"',;:]+@[^\s<>\"',;:]+")


@dataclass(frozen=True, slots=True)
class ThreadKeys:
    message_id: str | None
    refs: tuple[str, ...]
    conversation: str | None  # sender address + normalized subject


def thread_keys(raw: bytes) -> ThreadKeys:
    """Message-ID, referenced ids, sender and subject, read cheaply from the raw header.

    Only used to order the import; the parser makes the real decisions. Anything misread
    here costs at most concurrency (a needless wait) or a thread it could not order.
    """
    window = raw[:HEADER_SCAN]
    ends = [i for i in (window.find(b"\n\n"), window.find(b"\r\n\r\n")) if i >= 0]
    head = _FOLD.sub(b" ", window[: min(ends)] if ends else window)
    own: str | None = None
    refs: list[str] = []
    sender = subject = ""
    for match in _FIELD.finditer(head):
        name, value = match.group(1).lower(), match.group(2)
        if name == b"message-id":
            ids = _MSG_ID.findall(value)
            own = ids[0].decode("ascii", "replace") if ids else own
        elif name == b"from":
            found = _ANGLE_ADDRESS.search(value) or _BARE_ADDRESS.search(value)
            if found:  # the angle form's group 1, else the bare address (group 0)
                sender = found.group(found.lastindex or 0).decode("ascii", "replace").lower()
        elif name == b"subject":
            subject = normalize_subject(_decoded(value))
        else:
            refs += [ref.decode("ascii", "replace") for ref in _MSG_ID.findall(value)]
    conversation = f"{sender}\n{subject}" if sender and subject else None
    return ThreadKeys(own, tuple(refs), conversation)


def _decoded(value: bytes) -> str:
    """A header value with its RFC 2047 encoded words decoded (raw UTF-8 tolerated)."""
    text = value.decode("utf-8", "replace").strip()
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (ValueError, LookupError, UnicodeError):  # a malformed encoded word
        return text


class ThreadGate:
    """Orders a message after the in-flight archive messages it follows (see module doc)."""

    def __init__(self) -> None:
        self._by_id: dict[str, asyncio.Event] = {}
        self._by_conversation: dict[str, asyncio.Event] = {}

    def enter(self, keys: ThreadKeys) -> tuple[list[asyncio.Event], asyncio.Event]:
        """What to wait for before writing, and the event that marks this one done."""
        waits = [self._by_id[ref] for ref in keys.refs if ref in self._by_id]
        if keys.conversation and keys.conversation in self._by_conversation:
            waits.append(self._by_conversation[keys.conversation])
        done = asyncio.Event()
        if keys.message_id:
            self._by_id[keys.message_id] = done
        if keys.conversation:
            self._by_conversation[keys.conversation] = done
        return waits, done

    def leave(self, keys: ThreadKeys, done: asyncio.Event) -> None:
        done.set()
        # Forget finished messages so the maps hold only what is in flight.
        if keys.message_id and self._by_id.get(keys.message_id) is done:
            del self._by_id[keys.message_id]
        if keys.conversation and self._by_conversation.get(keys.conversation) is done:
            del self._by_conversation[keys.conversation]


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    label: str
    reason: str
    inbound_id: int | None = None


@dataclass
class ImportReport:
    """What an import (or a dry run) did, for the summary."""

    kind: str
    path: str
    dry_run: bool
    total: int = 0
    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  # created, continued, …
    unreadable: int = 0
    not_stored: int = 0  # the database refused even after retries (or an error): run again
    parseable: int = 0  # dry run only, like the three below
    failing: int = 0
    automatic: int = 0
    known: int = 0  # already in the database: would be duplicates
    failures: list[Failure] = field(default_factory=list)
    failure_count: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def fail(self, label: str, reason: str, inbound_id: int | None = None) -> None:
        self.failure_count += 1
        if len(self.failures) < FAILURES_KEPT:
            self.failures.append(Failure(label, reason, inbound_id))

    @property
    def per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


Progress = Callable[[int], object]  # called with 1 as each message is done


# --- the runs ------------------------------------------------------------------------------


class ArchiveImport:
    """One pass over an archive: ``run`` ingests every message, ``dry_run`` only parses."""

    def __init__(
        self, ingest: EmailIngest, archive: Archive, *, in_flight: int = 128, dry: bool = False
    ) -> None:
        self.ingest = ingest
        self.archive = archive
        self.in_flight = max(1, in_flight)
        self.report = ImportReport(archive.kind, str(archive.path), dry, total=len(archive))
        self._gate = ThreadGate()
        self._jitter = random.Random()
        self._ids: list[str] = []  # dry run: the ids to look up

    async def run(self, progress: Progress | None = None) -> ImportReport:
        return await self._each(self._store, progress)

    async def dry_run(self, db: Database, progress: Progress | None = None) -> ImportReport:
        await self._each(self._parse_only, progress)
        self.report.known = await count_known(db, self._ids)
        return self.report

    async def _each(
        self, handle: Callable[[int, bytes], Awaitable[None]], progress: Progress | None
    ) -> ImportReport:
        slots = asyncio.Semaphore(self.in_flight)

        async def one(index: int, raw: bytes) -> None:
            try:
                await handle(index, raw)
            finally:
                slots.release()
                if progress is not None:
                    progress(1)

        started = time.perf_counter()
        try:
            async with asyncio.TaskGroup() as group:
                total = len(self.archive)
                for start in range(0, total, READ_CHUNK):
                    chunk = await asyncio.to_thread(
                        self.archive.read, start, min(start + READ_CHUNK, total)
                    )
                    for index, raw in enumerate(chunk, start):
                        await slots.acquire()
                        if isinstance(raw, bytes):
                            self.report.read += 1
                            group.create_task(one(index, raw))
                            continue
                        slots.release()
                        self.report.unreadable += 1
                        self.report.fail(self.archive.label(index), f"read: {raw}")
                        if progress is not None:
                            progress(1)
        except asyncio.CancelledError:
            self.report.interrupted = True
            raise
        finally:
            self.report.seconds = time.perf_counter() - started
        return self.report

    async def _store(self, index: int, raw: bytes) -> None:
        keys = thread_keys(raw)
        waits, done = self._gate.enter(keys)

        async def in_turn() -> None:  # parsed meanwhile; written only after what it follows
            for event in waits:
                await event.wait()

        try:
            result = await self._ingest(raw, in_turn)
        except Exception as exc:  # the database stayed away, or a bug: report it, go on
            self.report.not_stored += 1
            reason = str(exc) if isinstance(exc, _NotStored) else f"{type(exc).__name__}: {exc}"
            self.report.fail(self.archive.label(index), f"not stored: {reason}")
            return
        finally:
            self._gate.leave(keys, done)
        self.report.outcomes[result.outcome] += 1
        if result.outcome == "failed":
            label = self.archive.label(index)
            self.report.fail(label, result.error or "unknown error", result.inbound_id)

    async def _ingest(self, raw: bytes, in_turn: Callable[[], Awaitable[None]]) -> AcceptResult:
        """``ingest`` with retries while the database is busy or away (parsed once)."""
        prepared = await self.ingest.prepare_one(raw)
        delay = STORE_BACKOFF_S
        for attempt in range(1, STORE_ATTEMPTS + 1):
            try:
                return await self.ingest.ingest(
                    raw, IMPORT_SOURCE, before_accept=in_turn, prepared=prepared
                )
            except Exception as exc:
                if not (isinstance(exc, StorageUnavailable) or is_unavailable_error(exc)):
                    raise
                if attempt == STORE_ATTEMPTS:
                    raise _NotStored(f"{type(exc).__name__}: {exc}") from exc
            # Jittered, so messages that collided on a SQLite lock do not collide again.
            await asyncio.sleep(delay * (0.5 + self._jitter.random()))
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    async def _parse_only(self, index: int, raw: bytes) -> None:
        try:
            parsed = await self.ingest.parse(raw)
        except Exception as exc:  # EmailParseError, or a parser bug: both would fail
            self.report.failing += 1
            prefix = "" if isinstance(exc, EmailParseError) else f"{type(exc).__name__}: "
            self.report.fail(self.archive.label(index), f"parse: {prefix}{exc}")
            self._ids.append(raw_message_id(raw))
            return
        self.report.parseable += 1
        self.report.automatic += parsed.auto_submitted
        self._ids.append(parsed.message_id)


class _NotStored(Exception):
    """The database stayed unavailable for one message through every retry."""


async def count_known(db: Database, external_ids: Iterable[str], chunk: int = 500) -> int:
    """How many of these email ids already have an inbound row (read only)."""
    wanted = sorted(set(external_ids))
    found = 0
    async with db.session() as session:
        for start in range(0, len(wanted), chunk):
            rows = await session.scalars(
                select(Inbound.external_id).where(
                    Inbound.channel == Channel.EMAIL.value,
                    Inbound.external_id.in_(wanted[start : start + chunk]),
                )
            )
            found += len(rows.all())
    return found
