"""Composition root: builds every part from one ``Settings`` and wires them together.

``open_services`` prepares storage (migrations on SQLite, catalog seed, secret key) and
constructs the parts; ``build_http_app`` assembles the aiohttp application from the parts'
routes. The daemon and the tests both use these two, so what is tested is what runs.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from aiohttp import web
from prometheus_client import CollectorRegistry

from cases.lookups import attachment_digests
from config.http import BearerAuth, ReadinessCheck, health_routes, json_errors
from config.seed import seed_catalog
from config.settings import Settings
from config.sms_intake_parts import sms_webhooks
from config.telegram_parts import telegram_replay
from config.writer_wiring import WriterSpec, process_runner
from console.api import OpsApi
from console.pages import Console, ConsoleConfig
from console.reply_files import ReplyFiles
from intake.accept import IntakeWriter
from intake.api import ApiIntake
from intake.attachments import AttachmentStore
from intake.email.ingest import EmailIngest
from intake.email.mailboxes import Mailbox, MailboxDirectory
from intake.email.parse import ParseLimits
from intake.email.parser_pool import ParserPool
from intake.metrics import IntakeMetrics
from intake.sms import SmsMetrics
from intake.webform import WebFormConfig, WebFormIntake
from notifiers.sms_callbacks import (
    SmsStatusCallbacks,
    TwilioCallbackConfig,
    VonageCallbackConfig,
)
from notifiers.templates import TemplateRenderer
from routing.catalog import CatalogCache
from storage.db import Database
from storage.migrate_child import upgrade_in_child
from storage.models import AppState
from storage.operations import TransactionRunner
from storage.wal import register_wal_metrics
from storage.write_path import WritePath
from storage.writer_process import WriterProcess


@dataclass
class Services:
    settings: Settings
    db: Database
    registry: CollectorRegistry
    catalog: CatalogCache
    renderer: TemplateRenderer
    attachments: AttachmentStore
    intake_metrics: IntakeMetrics
    runner: TransactionRunner  # the in-thread / PostgreSQL registry (the process has its own)
    writes: WritePath
    writer: IntakeWriter
    secret_key: bytes
    email: EmailIngest
    parser_pool: ParserPool | None = None
    sms_metrics: SmsMetrics | None = None  # registered by the first app that mounts SMS
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)

    async def start_parser_pool(self) -> None:
        """MIME parsing in processes of their own, started now, before the first mail (the
        daemon and imports; tests parse in threads). See intake.email.parser_pool."""
        if self.parser_pool is None:
            intake = self.settings.intake
            workers = intake.parse_workers or os.cpu_count() or 1
            setup = replace(self.email.parser_setup(), fast_mime_parser=intake.fast_mime_parser)
            self.parser_pool = ParserPool(workers, setup, timeout=intake.parse_timeout_seconds)
            self.email.pool = self.parser_pool
        await self.parser_pool.start()

    async def start_writer_process(self) -> None:
        """On SQLite, move every transaction to a process of its own (the daemon, the CLI
        and the storage and API tests; other tests write in a thread so they can reach
        into the executors)."""
        if self.settings.database.is_sqlite and self.settings.intake.writer_process:
            if self.writes.process is None:
                self.writes.process = WriterProcess(
                    self.settings.database.url, process_runner, writer_spec(self.settings)
                )
            await self.writes.process.start()

    async def close(self) -> None:
        self.email.close()
        if self.writes.process is not None:
            await self.writes.process.close()
        if self.parser_pool is not None:
            await self.parser_pool.close()
        await self.db.close()


async def ensure_secret_key(db: Database, configured: str) -> bytes:
    """The configured key, else one generated once and kept in the database, so every
    daemon sharing the database signs CSRF tokens alike and restarts keep them valid."""
    if configured:
        return configured.encode("utf-8")
    async with db.session() as session, session.begin():
        row = await session.get(AppState, "secret_key")
        if row is None:
            row = AppState(key="secret_key", value=secrets.token_hex(32))
            session.add(row)
    return row.value.encode("utf-8")


async def prepare_database(
    settings: Settings, db: Database, *, migrate_in_child: bool = False
) -> None:
    if db.is_sqlite and settings.database.auto_migrate:
        if migrate_in_child:  # the daemon: Alembic stays out of the long-running process
            await upgrade_in_child(settings.database.url)
        else:
            from storage import migrate

            await migrate.upgrade(settings.database.url)
    async with db.session() as session, session.begin():
        await seed_catalog(session, settings.catalog)


async def open_services(
    settings: Settings,
    *,
    registry: CollectorRegistry | None = None,
    migrate_in_child: bool = False,
) -> Services:
    db = Database(
        settings.database.url, pool_size=settings.database.pool_size, echo=settings.database.echo
    )
    try:
        await prepare_database(settings, db, migrate_in_child=migrate_in_child)
        catalog = CatalogCache(db)
        await catalog.refresh()
        secret_key = await ensure_secret_key(db, settings.http.secret_key)
    except BaseException:
        await db.close()
        raise
    # Taking no state from outside (no default registry) keeps several instances per
    # process possible, which the tests rely on.
    registry = registry or CollectorRegistry()
    register_wal_metrics(registry, settings.database.url)
    renderer = TemplateRenderer(default_language=settings.intake.default_language)
    metrics = IntakeMetrics(registry)
    store = AttachmentStore(settings.intake.attachments_dir)
    runner = writer_spec(settings).runner(renderer)

    async def flush_attachments(ops: Sequence[object]) -> None:
        # The files a batch references reach the disk before its commit (see
        # intake.attachments): one thread hop per batch.
        digests = attachment_digests(ops)
        if digests:
            await asyncio.to_thread(store.sync, digests, missing_ok=True)

    writes = WritePath(
        db,
        runner,
        batch_max=settings.intake.batch_max,
        queue_max=settings.intake.queue_max,
        writers=settings.intake.writers,
        before_write=flush_attachments,
    )
    writer = IntakeWriter(db, writes, metrics)
    email = EmailIngest(
        writer,
        store,
        mailbox_directory(settings),
        ParseLimits(
            max_attachments=settings.intake.max_attachments,
            max_attachment_bytes=settings.intake.max_attachment_bytes,
            max_total_attachment_bytes=settings.intake.max_total_attachment_bytes,
        ),
        settings.smtp.hostname,
        default_language=settings.intake.default_language,
        case_per_area=settings.smtp.multi_mailbox == "case_per_area",
    )
    writer.reparsers["email"] = email.reparse
    if settings.telegram.enabled and settings.telegram.intake:
        writer.reparsers["telegram"] = telegram_replay(settings, store)
    return Services(
        settings=settings,
        db=db,
        registry=registry,
        catalog=catalog,
        renderer=renderer,
        attachments=store,
        intake_metrics=metrics,
        runner=runner,
        writes=writes,
        writer=writer,
        secret_key=secret_key,
        email=email,
    )


def writer_spec(settings: Settings) -> WriterSpec:
    """The batch writer's settings; the writer process builds its own from the same."""
    return WriterSpec(
        default_language=settings.intake.default_language,
        message_id_domain=settings.smtp.hostname,
        number_prefix=settings.cases.number_prefix,
        number_width=settings.cases.number_width,
        same_subject_days=settings.cases.same_subject_days,
        chat_window_hours=settings.cases.chat_window_hours,
        reply_to_closed=settings.cases.reply_to_closed,
        reopen_status=settings.cases.reopen_status,
        merged_status=settings.cases.merged_status,
        own_mailboxes=tuple(m.address for m in settings.mailboxes),
        providers=tuple(default_providers(settings).items()),
        acks_per_sender_per_day=settings.loop_protection.acks_per_sender_per_day,
        attachments_dir=settings.intake.attachments_dir,
    )


def default_providers(settings: Settings) -> dict[str, str]:
    """The sender each channel goes through when a row does not name one."""
    sms = settings.sms
    found = {"email": "email", "telegram": "telegram"}
    for name, enabled in (
        ("twilio", sms.twilio.enabled),
        ("vonage", sms.vonage.enabled),
        ("generic", sms.generic.enabled),
    ):
        if enabled:
            found.setdefault("sms", name)
    found.setdefault("sms", "twilio")
    push = [name for name, p in settings.notifiers.push.items() if p.enabled]
    if push:
        found["push"] = push[0]
    return found


def mailbox_directory(settings: Settings) -> MailboxDirectory:
    return MailboxDirectory(
        Mailbox(m.address, category=m.category, area=m.area, priority=m.priority)
        for m in settings.mailboxes
    )


def webform_config(services: Services) -> WebFormConfig:
    s = services.settings
    return WebFormConfig(
        secret_key=services.secret_key,
        rate_limit_per_minute=s.http.form_rate_limit_per_minute,
        rate_limit_burst=s.http.form_rate_limit_burst,
        trust_forwarded_for=s.http.trust_forwarded_for,
        max_attachment_bytes=s.intake.max_attachment_bytes,
        max_attachments=s.intake.max_attachments,
        max_total_attachment_bytes=s.intake.max_total_attachment_bytes,
        default_language=s.intake.default_language,
        default_region=s.sms.default_region,
    )


def console_config(settings: Settings) -> ConsoleConfig:
    return ConsoleConfig(
        public_url=settings.http.public_url,
        default_language=settings.intake.default_language,
        trust_forwarded_for=settings.http.trust_forwarded_for,
    )


def sms_callbacks(services: Services) -> SmsStatusCallbacks:
    """The status webhooks of the SMS providers that are enabled."""
    s = services.settings
    twilio, vonage = s.sms.twilio, s.sms.vonage
    twilio_check = vonage_check = None
    if twilio.enabled:
        twilio_check = TwilioCallbackConfig(twilio.auth_token, s.http.public_url)
    if vonage.enabled:
        vonage_check = VonageCallbackConfig(
            vonage.api_key, vonage.signature_secret, vonage.signature_method
        )
    return SmsStatusCallbacks(services.writes, twilio=twilio_check, vonage=vonage_check)


def build_http_app(services: Services) -> web.Application:
    auth = BearerAuth(services.db)
    console = Console(services.db, services.writes, console_config(services.settings))
    app = web.Application(
        # The console's own (HTML errors, session and CSRF) run inside the API's, so a
        # page under /console/ never answers with the API's JSON errors.
        middlewares=[json_errors, auth.middleware, *console.middlewares()],
        client_max_size=services.settings.http.max_body_bytes,
    )
    form_config = webform_config(services)
    parts = (
        WebFormIntake(
            services.writer,
            services.catalog,
            services.attachments,
            services.intake_metrics,
            form_config,
        ),
        ApiIntake(services.writer, services.catalog, services.intake_metrics, form_config),
        OpsApi(
            services.db,
            services.writes,
            services.catalog,
            forget_token=auth.forget,
            public_url=services.settings.http.public_url,
            sms_region=services.settings.sms.default_region,
            reply_files=ReplyFiles(
                services.attachments,
                services.settings.intake.max_attachment_bytes,
                services.settings.intake.max_total_attachment_bytes,
                services.settings.http.max_body_bytes,
            ),
            push_kinds={
                name: push.kind
                for name, push in services.settings.notifiers.push.items()
                if push.enabled
            },
        ),
        sms_callbacks(services),
        console,
    )
    app.add_routes(health_routes(services.db, services.registry, services.readiness))
    for part in parts:
        app.add_routes(part.routes())
    for webhook in sms_webhooks(services, app):
        app.add_routes(webhook.routes())
    return app
