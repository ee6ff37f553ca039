"""The parser processes' work: raw mail → ParsedEmail, its attachments written to the store.

This module is what a parser process imports (``python -m intake.email.prepare``, started
by ``intake.email.parser_pool``): the parser, the attachment store and nothing of the
database, so a process is ready in a fraction of a second. The same functions run in a
thread when there is no pool (tests, ``inbound retry``). A process installs the faster
feedparser (``intake.email.feedparser_fast``) when it starts, unless its setup says not to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intake.attachments import AttachmentStore
from intake.email import feedparser_fast
from intake.email.parse import EmailParseError, ParsedEmail, ParseLimits, parse_email
from intake.message import Attachment
from plumbing.child_process import serve


class ParserCrashed(Exception):
    """The parser raised something other than EmailParseError (a bug), or its process
    died; the message says what, in a form that crosses the process pipe whatever the
    original was."""


class ParseTimedOut(ParserCrashed):
    """The parse ran past its deadline and its process was killed (a mail that makes the
    parser loop or crawl); kept as failed like a crash."""


Prepared = tuple[ParsedEmail, tuple[Attachment, ...]]
Outcome = Prepared | EmailParseError | ParserCrashed


def parse_and_store(
    raw: bytes, limits: ParseLimits, own_domain: str, store: AttachmentStore
) -> Prepared:
    """The parsed mail without its attachment bytes, and the attachments as stored files
    (so the bytes never travel back to the event loop's process)."""
    parsed = parse_email(raw, limits, own_domain)
    stored = tuple(store.save_sync(a.data, a.filename, a.content_type) for a in parsed.attachments)
    return dataclasses.replace(parsed, attachments=()), stored


def parse_and_store_each(
    raws: Sequence[bytes], limits: ParseLimits, own_domain: str, store: AttachmentStore
) -> list[Outcome]:
    """``parse_and_store`` for several mails in one trip to a worker; each one's failure
    is returned in its place, so one bad mail never fails the others."""
    done: list[Outcome] = []
    for raw in raws:
        try:
            done.append(parse_and_store(raw, limits, own_domain, store))
        except EmailParseError as exc:
            done.append(exc)
        except Exception as exc:  # a parser bug must not lose the mail either
            done.append(ParserCrashed(f"{type(exc).__name__}: {exc}"))
    return done


@dataclasses.dataclass(frozen=True, slots=True)
class ParserSetup:
    """What every call of one pool shares, sent once when a process starts."""

    limits: ParseLimits
    own_domain: str
    attachments_root: Path
    fast_mime_parser: bool = True  # install intake.email.feedparser_fast


class _Parser:
    """A parser process's side of the pipe: ``("prepare", raws)`` → outcomes, each in
    its place; ``("parse", raw)`` → ParsedEmail (attachment bytes included);
    ``("fast_mime_parser", None)`` → whether the faster feedparser is in force (``active``,
    ``off`` or ``unsupported``; the pool logs it)."""

    def __init__(self, setup: ParserSetup) -> None:
        self.setup = setup
        self.store = AttachmentStore(setup.attachments_root)
        feedparser_fast.configure(setup.fast_mime_parser)

    def __call__(self, call: tuple[str, Any]) -> Any:
        op, arg = call
        setup = self.setup
        if op == "prepare":
            return parse_and_store_each(arg, setup.limits, setup.own_domain, self.store)
        if op == "parse":
            return parse_email(arg, setup.limits, setup.own_domain)
        if op == "fast_mime_parser":
            if feedparser_fast.active():
                return feedparser_fast.ACTIVE
            return feedparser_fast.UNSUPPORTED if setup.fast_mime_parser else feedparser_fast.OFF
        raise ValueError(f"unknown parser call {op!r}")

    def close(self) -> None:
        pass


if __name__ == "__main__":
    serve(_Parser)
