"""Builds the email channel's long-running parts from Settings: the SMTP/LMTP server and
one IMAP poller per ``[imap.<name>]`` account, with their readiness checks and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from config.http import ReadinessCheck
from config.settings import Settings
from intake.email.imap import ImapAccountConfig, ImapPoller
from intake.email.imap_metrics import ImapCollector
from intake.email.ingest import EmailIngest
from intake.email.mailboxes import MailboxDirectory
from intake.email.smtp import SmtpConfig, SmtpIntake, auth_users_from_pairs
from storage.checkpoints import CheckpointStore
from storage.db import Database
from storage.write_path import WritePath


@dataclass
class EmailParts:
    smtp: SmtpIntake | None = None
    pollers: dict[str, ImapPoller] = field(default_factory=dict)

    def readiness(self) -> dict[str, ReadinessCheck]:
        checks: dict[str, ReadinessCheck] = {}
        if self.smtp is not None:
            smtp = self.smtp

            async def smtp_ready() -> tuple[bool, dict[str, object]]:
                state = smtp.state()
                return state.listening, {
                    "listening": state.listening,
                    "protocol": state.protocol,
                    "port": state.port,
                    "sessions": state.sessions,
                }

            checks["smtp"] = smtp_ready
        for name, poller in self.pollers.items():
            checks[f"imap.{name}"] = _poller_check(poller)
        return checks


def _poller_check(poller: ImapPoller) -> ReadinessCheck:
    async def check() -> tuple[bool, dict[str, object]]:
        return poller.ready, poller.state()

    return check


def smtp_config(settings: Settings) -> SmtpConfig:
    s = settings.smtp
    return SmtpConfig(
        host=s.host,
        port=s.port,
        protocol=s.protocol,
        max_message_bytes=s.max_message_bytes,
        hostname=s.hostname,
        tls_cert_file=s.tls_cert_file,
        tls_key_file=s.tls_key_file,
        require_tls=s.require_tls,
        auth_users=auth_users_from_pairs(s.auth_users),
        auth_required=s.auth_required,
        stop_timeout_seconds=settings.daemon.shutdown_timeout_seconds,
    )


def build_email_parts(
    settings: Settings,
    ingest: EmailIngest,
    mailboxes: MailboxDirectory,
    db: Database,
    writes: WritePath,
    registry: CollectorRegistry,
) -> EmailParts:
    parts = EmailParts()
    if settings.smtp.enabled:
        parts.smtp = SmtpIntake(ingest, mailboxes, smtp_config(settings))
    checkpoints = CheckpointStore(db, writes)
    for name, account in settings.imap.items():
        config = ImapAccountConfig(
            host=account.host,
            username=account.username,
            password=account.password,
            port=account.port,
            security=account.security,
            folder=account.folder,
            after=account.after,
            move_to=account.move_to,
            poll_seconds=float(account.poll_seconds),
            idle=account.idle,
        )
        parts.pollers[name] = ImapPoller(name, config, ingest, checkpoints)
    if parts.pollers:
        registry.register(ImapCollector(parts.pollers))
    return parts
