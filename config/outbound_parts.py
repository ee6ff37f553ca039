"""Builds outbound delivery from the settings: the notifiers (one per configured provider,
keyed by the provider name rows carry) and the dispatcher that drives them.

A provider named on a row but not configured here fails that row with the reason, rather
than holding it forever; a daemon with ``[dispatch] enabled = false`` only queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Sequence
from typing import Any, NoReturn

from config.app import Services
from config.settings import PushProviderSettings, Settings
from notifiers.base import Notifier
from notifiers.delivery_ops import ClaimDue, RecordAttempt, ReleaseClaims, outbox_depth
from notifiers.dispatcher import OutboxDispatcher
from notifiers.email import EmailConfig, EmailNotifier
from notifiers.metrics import DispatchMetrics
from notifiers.push_fcm import FcmConfig, FcmNotifier
from notifiers.push_ntfy import NtfyConfig, NtfyNotifier
from notifiers.push_webpush import WebPushConfig, WebPushNotifier
from notifiers.resend_jobs import ResendJobRunner, StartResendJob
from notifiers.retry import RetryPolicy
from notifiers.sms_generic import GenericSmsConfig, GenericSmsNotifier
from notifiers.sms_twilio import STATUS_CALLBACK_PATH, TwilioConfig, TwilioNotifier
from notifiers.sms_vonage import RECEIPT_PATH, VonageConfig, VonageNotifier
from notifiers.telegram import TelegramConfig, TelegramNotifier
from storage.models import utcnow

log = logging.getLogger(__name__)
DISPATCH_OPS = (ClaimDue, RecordAttempt, ReleaseClaims)


def build_notifiers(settings: Settings) -> dict[str, Notifier]:
    found: dict[str, Notifier] = {}
    email = settings.notifiers.email
    if email.enabled:
        found["email"] = EmailNotifier(
            EmailConfig(
                host=email.host,
                port=email.port,
                sender=email.sender,
                security=email.security,
                username=email.username,
                password=email.password,
                concurrency=email.connections,
                timeout_seconds=email.timeout_seconds,
                message_id_domain=settings.smtp.hostname,
                ssl_context=(
                    ssl.create_default_context(cafile=str(email.tls_ca_file))
                    if email.tls_ca_file
                    else None
                ),
            )
        )
    telegram = settings.telegram
    if telegram.enabled:
        found["telegram"] = TelegramNotifier(
            TelegramConfig(
                token=telegram.token,
                api_base_url=telegram.api_base_url,
                concurrency=telegram.concurrency,
                timeout_seconds=telegram.timeout_seconds,
            )
        )
    for name, push in settings.notifiers.push.items():
        if push.enabled:
            if name in found:
                raise ValueError(f"notifiers.push.{name}: the name of another notifier")
            found[name] = push_notifier(name, push)
    found.update(build_sms_notifiers(settings))
    return found


def build_sms_notifiers(settings: Settings) -> dict[str, Notifier]:
    """The enabled SMS providers, keyed by the names rows carry: twilio, vonage, generic."""
    sms, public = settings.sms, settings.http.public_url.rstrip("/")
    found: dict[str, Notifier] = {}
    if sms.twilio.enabled:
        t = sms.twilio
        found["twilio"] = TwilioNotifier(
            TwilioConfig(
                account_sid=t.account_sid,
                auth_token=t.auth_token,
                from_number=t.from_number,
                api_base_url=t.api_base_url,
                status_callback_url=public + STATUS_CALLBACK_PATH if t.status_callback else None,
                default_region=sms.default_region,
                concurrency=t.concurrency,
                timeout_seconds=t.timeout_seconds,
            )
        )
    if sms.vonage.enabled:
        v = sms.vonage
        found["vonage"] = VonageNotifier(
            VonageConfig(
                api_key=v.api_key,
                api_secret=v.api_secret,
                from_number=v.from_number,
                api_base_url=v.api_base_url,
                receipt_url=public + RECEIPT_PATH if v.delivery_receipts else None,
                default_region=sms.default_region,
                concurrency=v.concurrency,
                timeout_seconds=v.timeout_seconds,
            )
        )
    if sms.generic.enabled:
        g = sms.generic
        found["generic"] = GenericSmsNotifier(
            GenericSmsConfig(
                url=g.url,
                body_template=g.body_template,
                from_number=g.from_number,
                method=g.method,
                headers=dict(g.headers),
                content_type=g.content_type,
                auth_token=g.auth_token,
                success_codes=tuple(g.success_codes),
                message_id_path=g.message_id_path,
                default_region=sms.default_region,
                concurrency=g.concurrency,
                timeout_seconds=g.timeout_seconds,
            )
        )
    return found


def push_notifier(name: str, push: PushProviderSettings) -> Notifier:
    """One ``[notifiers.push.<name>]`` provider, by its kind (validated with the settings)."""
    if push.kind == "webpush":
        return WebPushNotifier(name, WebPushConfig(
            push.vapid_private_key, push.vapid_subject, ttl_seconds=push.ttl_seconds,
            concurrency=push.concurrency, timeout_seconds=push.timeout_seconds,
        ))  # fmt: skip
    if push.kind == "fcm":
        return FcmNotifier(name, FcmConfig(
            push.service_account, push.base_url, project_id=push.project_id,
            token_uri=push.token_uri, concurrency=push.concurrency,
            timeout_seconds=push.timeout_seconds,
        ))  # fmt: skip
    return NtfyNotifier(name, NtfyConfig(
        push.base_url, push.token, concurrency=push.concurrency,
        timeout_seconds=push.timeout_seconds,
    ))  # fmt: skip


def build_dispatcher(settings: Settings, services: Services) -> OutboxDispatcher:
    d = settings.dispatch
    dispatcher = OutboxDispatcher(
        services.writes,
        build_notifiers(settings),
        RetryPolicy(d.max_attempts, d.retry_base_seconds, d.retry_max_seconds),
        DispatchMetrics(services.registry),
        owner=f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
        slots=d.concurrency,
        lease_seconds=d.lease_seconds,
        poll_seconds=d.poll_seconds,
        grace_seconds=settings.daemon.shutdown_timeout_seconds,
        file_path=services.attachments.path_of,
    )

    def wake(ops: Sequence[Any]) -> None:
        # Anything but the dispatcher's own writes may have queued a notification.
        if any(not isinstance(op, DISPATCH_OPS) for op in ops):
            dispatcher.poke()

    services.writes.listeners.append(wake)
    return dispatcher


def build_resend_jobs(services: Services) -> ResendJobRunner:
    """The runner that works bulk resends through, woken when one is started."""
    jobs = ResendJobRunner(services.db, services.writes)

    def wake(ops: Sequence[Any]) -> None:
        if any(isinstance(op, StartResendJob) for op in ops):
            jobs.poke()

    services.writes.listeners.append(wake)
    return jobs


async def watch_outbox(services: Services, dispatcher: OutboxDispatcher) -> NoReturn:
    """Refresh the outbox gauges (due rows, oldest due) every few seconds."""
    while True:
        with contextlib.suppress(Exception):
            now = utcnow()
            rows = await services.db.read(outbox_depth, now)
            dispatcher.metrics.depth(rows, now)
        await asyncio.sleep(dispatcher.poll_seconds)
