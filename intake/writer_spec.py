"""What the intake's batch writer is built from, as plain values that cross a process pipe.

The writer process (``storage.writer_process``) builds its own ``BatchWriter`` from a
``WriterSpec``: plain fields keep the child from importing the configuration layer
(pydantic, the HTTP and mail stacks) just to read eight settings, which kept its memory
at the size of the whole daemon's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Connection

from intake.attachments import AttachmentStore, BackgroundSync
from intake.batch import BatchWriter
from intake.conversation import ThreadingPolicy
from intake.lookups import BatchItem, attachment_digests
from intake.message import AcceptResult
from notifiers.outbox import Outbox
from notifiers.templates import TemplateRenderer
from routing.catalog import CatalogSnapshot
from routing.engine import RuleEngine


@dataclass(frozen=True)
class WriterSpec:
    default_language: str
    message_id_domain: str
    number_prefix: str
    number_width: int
    same_subject_days: int
    reply_to_closed: str
    reopen_status: str
    acks_per_sender_per_day: int
    attachments_dir: Path  # the store whose files the writer process flushes before a commit

    def build(self, renderer: TemplateRenderer | None = None) -> BatchWriter:
        renderer = renderer or TemplateRenderer(default_language=self.default_language)
        return BatchWriter(
            Outbox(renderer, self.message_id_domain),
            RuleEngine(),
            number_prefix=self.number_prefix,
            number_width=self.number_width,
            threading=ThreadingPolicy(
                same_subject_days=self.same_subject_days,
                reply_to_closed=self.reply_to_closed,
                reopen_status=self.reopen_status,
            ),
            acks_per_sender_per_day=self.acks_per_sender_per_day,
        )


class SyncedBatchWrite:
    """``BatchWriter.write`` with the batch's attachment files flushed meanwhile: it
    returns (and the transaction commits) only once they are on disk."""

    def __init__(self, writer: BatchWriter, sync: BackgroundSync) -> None:
        self.writer = writer
        self.sync = sync

    def __call__(
        self, conn: Connection, items: list[BatchItem], catalog: CatalogSnapshot
    ) -> list[AcceptResult]:
        with self.sync.around(attachment_digests(items)):
            return self.writer.write(conn, items, catalog)


def batch_write(spec: WriterSpec) -> Callable[..., list[AcceptResult]]:
    """The writer process's factory: runs once in the child."""
    return SyncedBatchWrite(spec.build(), BackgroundSync(AttachmentStore(spec.attachments_dir)))
