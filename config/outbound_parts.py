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
from collections.abc import Sequence
from typing import Any, NoReturn

from config.app import Services
from config.settings import Settings
from notifiers.base import Notifier
from notifiers.delivery_ops import ClaimDue, RecordAttempt, ReleaseClaims, outbox_depth
from notifiers.dispatcher import OutboxDispatcher
from notifiers.email import EmailConfig, EmailNotifier
from notifiers.metrics import DispatchMetrics
from notifiers.retry import RetryPolicy
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
    return found


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
    )

    def wake(ops: Sequence[Any]) -> None:
        # Anything but the dispatcher's own writes may have queued a notification.
        if any(not isinstance(op, DISPATCH_OPS) for op in ops):
            dispatcher.poke()

    services.writes.listeners.append(wake)
    return dispatcher


async def watch_outbox(services: Services, dispatcher: OutboxDispatcher) -> NoReturn:
    """Refresh the outbox gauges (due rows, oldest due) every few seconds."""
    while True:
        with contextlib.suppress(Exception):
            now = utcnow()
            rows = await services.db.read(outbox_depth, now)
            dispatcher.metrics.depth(rows, now)
        await asyncio.sleep(dispatcher.poll_seconds)
