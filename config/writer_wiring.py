"""Which executor runs which operation: the write path's registry, built from plain values.

The writer process (``storage.writer_process``) builds its own registry from a
``WriterSpec``: plain fields keep the child from importing the configuration layer
(pydantic, the HTTP and mail stacks) just to read a few settings, which kept its memory at
the size of the whole daemon's. The daemon's event loop builds the same registry for the
in-thread and PostgreSQL paths, so both run the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from cases.catalog_edit import CatalogEditor
from cases.catalog_import import CatalogImporter
from cases.catalog_state import CatalogInTransaction
from cases.chat_notices import ChatNotice, ChatNoticeWriter
from cases.customers import AddIdentity, CustomerMerger, IdentityWriter, MergeCustomers
from cases.edit import CaseUpdater, NoteWriter
from cases.inbound_failures import FailedInboundRecorder
from cases.intake_batch import IntakeBatch
from cases.lookups import attachment_digests
from cases.merge import CaseCloner, CaseMerger
from cases.notices import CurrentCaseContext
from cases.numbering import CaseNumbers
from cases.operations import (
    AcceptMessage,
    AddNote,
    CloneCase,
    DeleteCatalogItem,
    ImportCatalog,
    MergeCase,
    RecordFailedInbound,
    ReplyToCase,
    SaveCatalogItem,
    UpdateCase,
)
from cases.replies import CaseReplier
from cases.sms_opt_outs import OptOutWriter, SetSmsOptOut
from cases.sms_parts import CollectSmsPart, FlushSmsParts, SmsPartCollector, SmsPartFlusher
from cases.technician_channels import ChannelsWriter, SetTechnicianChannels
from cases.threads import ThreadingPolicy
from intake.attachments import AttachmentStore, BackgroundSync
from notifiers.delivery_ops import (
    AttemptRecorder,
    ClaimDue,
    Claimer,
    ClaimReleaser,
    RecordAttempt,
    ReleaseClaims,
)
from notifiers.fallback import NextChannel
from notifiers.outbox import Outbox
from notifiers.receipts import ApplyReceipt, ReceiptRecorder
from notifiers.resend import ResendOne, ResendWriter, SingleResender
from notifiers.resend_jobs import (
    CancelJob,
    JobCanceller,
    JobStarter,
    ResendStep,
    StartResendJob,
    StepRunner,
)
from notifiers.retention_ops import LogPruner, PruneLog
from notifiers.suppression import Suppression
from notifiers.templates import TemplateRenderer
from routing.engine import RuleEngine
from storage.auth import CreateToken, RevokeToken, TokenWriter
from storage.checkpoints import CheckpointWriter, SaveCheckpoint
from storage.console_sessions import (
    CloseSession,
    ConsoleSessionWriter,
    OpenSession,
    SetPassword,
)
from storage.operations import Executor, TransactionRunner
from storage.saved_filters import DeleteFilter, FilterWriter, SaveFilter


@dataclass(frozen=True)
class WriterSpec:
    default_language: str
    message_id_domain: str
    number_prefix: str
    number_width: int
    same_subject_days: int
    reply_to_closed: str
    reopen_status: str
    merged_status: str | None
    acks_per_sender_per_day: int
    attachments_dir: Path  # the store whose files the writer process flushes before a commit
    own_mailboxes: tuple[str, ...] = ()  # never sent to (loop protection)
    providers: tuple[tuple[str, str], ...] = ()  # channel → its default sender
    chat_window_hours: float = 24.0  # chat and SMS: how long a conversation stays one case

    def executors(self, renderer: TemplateRenderer | None = None) -> dict[type, Executor]:
        renderer = renderer or TemplateRenderer(default_language=self.default_language)
        catalogs = CatalogInTransaction()
        numbers = CaseNumbers(self.number_prefix, self.number_width)
        outbox = Outbox(renderer, self.message_id_domain, dict(self.providers))
        intake = IntakeBatch(
            outbox,
            RuleEngine(),
            catalogs,
            numbers,
            threading=ThreadingPolicy(
                same_subject_days=self.same_subject_days,
                reply_to_closed=self.reply_to_closed,
                reopen_status=self.reopen_status,
                chat_window_hours=self.chat_window_hours,
            ),
            acks_per_sender_per_day=self.acks_per_sender_per_day,
            missing_files=AttachmentStore(self.attachments_dir).missing,
        )
        catalog_editor = CatalogEditor(catalogs)
        tokens = TokenWriter()
        console_sessions = ConsoleSessionWriter()
        resends = ResendWriter(outbox, CurrentCaseContext(catalogs))
        filters = FilterWriter()
        return {
            AcceptMessage: intake,
            RecordFailedInbound: FailedInboundRecorder(),
            UpdateCase: CaseUpdater(catalogs, outbox),
            AddNote: NoteWriter(),
            MergeCase: CaseMerger(catalogs, self.merged_status),
            CloneCase: CaseCloner(catalogs, numbers),
            SaveCatalogItem: catalog_editor,
            DeleteCatalogItem: catalog_editor,
            ImportCatalog: CatalogImporter(catalogs),
            CreateToken: tokens,
            RevokeToken: tokens,
            SetPassword: console_sessions,
            OpenSession: console_sessions,
            CloseSession: console_sessions,
            SaveCheckpoint: CheckpointWriter(),
            ClaimDue: Claimer(Suppression(self.own_mailboxes)),
            RecordAttempt: AttemptRecorder(NextChannel(outbox)),
            ReleaseClaims: ClaimReleaser(),
            ReplyToCase: CaseReplier(
                catalogs, outbox, AttachmentStore(self.attachments_dir).missing
            ),
            ApplyReceipt: ReceiptRecorder(NextChannel(outbox)),
            SetTechnicianChannels: ChannelsWriter(),
            ResendOne: SingleResender(resends),
            StartResendJob: JobStarter(),
            ResendStep: StepRunner(resends),
            CancelJob: JobCanceller(),
            AddIdentity: IdentityWriter(),
            MergeCustomers: CustomerMerger(),
            SaveFilter: filters,
            DeleteFilter: filters,
            PruneLog: LogPruner(),
            SetSmsOptOut: OptOutWriter(outbox),
            CollectSmsPart: SmsPartCollector(intake),
            FlushSmsParts: SmsPartFlusher(intake),
            ChatNotice: ChatNoticeWriter(outbox),
        }

    def runner(self, renderer: TemplateRenderer | None = None) -> TransactionRunner:
        return TransactionRunner(self.executors(renderer))


class SyncedRunner:
    """The runner with the batch's attachment files flushed meanwhile: it returns (and the
    transaction commits) only once they are on disk."""

    def __init__(self, runner: TransactionRunner, sync: BackgroundSync) -> None:
        self.runner = runner
        self.sync = sync

    def __call__(self, conn: Connection, ops: Sequence[Any]) -> list[Any]:
        with self.sync.around(attachment_digests(ops)):
            return self.runner(conn, ops)


def process_runner(spec: WriterSpec) -> SyncedRunner:
    """The writer process's factory: runs once in the child."""
    return SyncedRunner(spec.runner(), BackgroundSync(AttachmentStore(spec.attachments_dir)))
