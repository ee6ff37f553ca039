"""One email in, one accept(): the path shared by the SMTP/LMTP server, IMAP and imports.

Parsing runs off the event loop (parser processes when a pool is given, so every core
parses under load; else a thread). Attachments are written to the store before accept() so a
committed row never points at a missing file. Bytes that cannot be parsed at all are still
committed, as a failed inbound row with their raw bytes: nothing accepted is lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from intake.accept import IntakeWriter
from intake.attachments import AttachmentStore
from intake.email.mailboxes import Mailbox, MailboxDirectory
from intake.email.parse import EmailParseError, ParsedEmail, ParseLimits, parse_email
from intake.email.parse_groups import ParseGroups
from intake.email.parser_pool import ParserPool
from intake.email.prepare import (
    Outcome,
    ParserCrashed,
    ParserSetup,
    parse_and_store_each,
)
from intake.message import (
    AcceptResult,
    Attachment,
    Channel,
    InboundMessage,
    content_fingerprint,
)


@dataclass(frozen=True, slots=True)
class EmailSource:
    """Where a mail came from, for the record and for acknowledgement policy."""

    kind: str  # smtp | lmtp | imap:<account> | import
    suppress_ack: str | None = None  # e.g. "imported archive"


def raw_message_id(raw: bytes) -> str:
    """The dedup key of a mail without a usable Message-ID: a hash of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


class EmailIngest:
    def __init__(
        self,
        writer: IntakeWriter,
        store: AttachmentStore,
        mailboxes: MailboxDirectory,
        limits: ParseLimits,
        own_domain: str,
        *,
        parser_pool: ParserPool | None = None,
        default_language: str = "es",
        case_per_area: bool = False,
    ) -> None:
        self.writer = writer
        self.store = store
        self.mailboxes = mailboxes
        self.limits = limits
        self.own_domain = own_domain
        self.pool = parser_pool
        self.default_language = default_language
        self.case_per_area = case_per_area
        self._groups: ParseGroups[Outcome] = ParseGroups(
            lambda raws: self.prepare(raws),  # looked up per call: tests wrap ``prepare``
            # one call per parser process; in threads parsing holds the interpreter lock,
            # so one at a time there
            lambda: self.pool.workers if self.pool is not None else 1,
        )

    def parser_setup(self) -> ParserSetup:
        """What a parser process needs to know to work for this ingest."""
        return ParserSetup(self.limits, self.own_domain, self.store.root)

    async def parse(self, raw: bytes) -> ParsedEmail:
        if self.pool is not None:
            return await self.pool.parse(raw)
        return await asyncio.to_thread(parse_email, raw, self.limits, self.own_domain)

    async def prepare(self, raws: Sequence[bytes]) -> list[Outcome]:
        """Parse these mails and write their attachments, all in one worker call, so the
        attachment bytes never travel back to the event loop's process (pickled) and a
        batch pays one round trip to a parser (an import hands over several at a time)."""
        if self.pool is not None:
            return await self.pool.prepare(raws)
        args = (list(raws), self.limits, self.own_domain, self.store)
        return await asyncio.to_thread(parse_and_store_each, *args)

    async def prepare_one(self, raw: bytes) -> Outcome:
        """``prepare`` for one mail: sent at once when a worker is free, else together with
        the mails that wait for one (``parse_groups``)."""
        return await self._groups.prepare(raw)

    def close(self) -> None:
        self._groups.cancel()

    async def ingest(
        self,
        raw: bytes,
        source: EmailSource,
        envelope_to: Sequence[str] = (),
        *,
        before_accept: Callable[[], Awaitable[object]] | None = None,
        prepared: Outcome | None = None,
    ) -> AcceptResult:
        """Parse, store attachments, accept. Raises StorageUnavailable like accept().

        ``prepared`` is this mail's result from ``prepare`` when the caller parsed a group
        of mails at once. ``before_accept`` is awaited between parsing and accepting (an
        import holds a reply there until the mail it answers is committed).
        """
        if prepared is None:
            # Alone, at once: a sender waits for the 250, and a group-mate's parse would
            # be added to its wait (imports, which want throughput, come with ``prepared``).
            (prepared,) = await self.prepare([raw])
        if isinstance(prepared, EmailParseError | ParserCrashed):
            return await self.writer.record_failed(
                Channel.EMAIL, raw_message_id(raw), raw, f"parse: {prepared}"
            )
        parsed, stored = prepared
        message = self.message(parsed, raw, source, envelope_to, stored)
        if before_accept is not None:
            await before_accept()
        first = await self.writer.accept(message)
        if self.case_per_area and first.case_number and first.outcome == "created":
            await self._other_areas(message, first.case_number)
        return first

    async def _other_areas(self, message: InboundMessage, parent: str) -> None:
        """Policy ``case_per_area``: one more case, linked to the first, for each other area
        among the mailboxes the mail was sent to. Each has its own dedup key, so a resent
        mail creates none of them twice."""
        areas: dict[str, Mailbox] = {}
        for _address, mailbox in self.mailboxes.matching(message.recipients):
            if mailbox.area and mailbox.area != message.area:
                areas.setdefault(mailbox.area, mailbox)
        for area, mailbox in areas.items():
            await self.writer.accept(
                dataclasses.replace(
                    message,
                    external_id=f"{message.external_id}#area:{area}",
                    area=area,
                    category=mailbox.category or message.category,
                    priority=mailbox.priority or message.priority,
                    parent_case=parent,
                    suppress_ack_reason="the customer was acknowledged on " + parent,
                )
            )

    async def reparse(self, raw: bytes) -> InboundMessage:
        """For ``ventanilla inbound retry``: the message these bytes make now (the parser
        may have been fixed since). Raises EmailParseError if they still don't parse."""
        (prepared,) = await self.prepare([raw])
        if isinstance(prepared, Exception):
            raise prepared
        parsed, stored = prepared
        return self.message(parsed, raw, EmailSource("retry"), (), stored)

    def message(
        self,
        parsed: ParsedEmail,
        raw: bytes,
        source: EmailSource,
        envelope_to: Sequence[str],
        stored: tuple[Attachment, ...],
    ) -> InboundMessage:
        recipients = tuple(envelope_to) or parsed.to + parsed.cc
        ours = self.mailboxes.matching(recipients)
        preset: Mailbox | None = ours[0][1] if ours else None
        return InboundMessage(
            channel=Channel.EMAIL,
            external_id=parsed.message_id,
            sender=parsed.sender,
            raw=raw,
            subject=parsed.subject,
            text=parsed.text,
            html=parsed.html,
            recipients=tuple(address for address, _ in ours) or tuple(recipients),
            cc=parsed.cc,
            attachments=stored,
            in_reply_to=parsed.in_reply_to,
            auto_submitted=parsed.auto_submitted,
            auto_reason=parsed.auto_reason,
            reply_text=parsed.reply_text,
            reports_on=parsed.reports_on,
            report_error=parsed.report_error,
            category=preset.category if preset else None,
            area=preset.area if preset else None,
            priority=preset.priority if preset else None,
            language=self.default_language,
            suppress_ack_reason=source.suppress_ack,
            # What the sender wrote, not how it travelled (Received headers differ between
            # an SMTP and an IMAP copy of one mail): tells a reused Message-ID.
            fingerprint=content_fingerprint(
                parsed.sender.email or "",
                parsed.date.isoformat() if parsed.date else "",
                parsed.subject,
                parsed.text,
                *(a.sha256 for a in stored),
            ),
        )
