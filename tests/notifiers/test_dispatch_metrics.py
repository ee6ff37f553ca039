"""The dispatcher's metrics against a real SMTP sink: each outcome (sent, retried, failed,
dead, suppressed) counted per channel and provider, the send latency observed for every
attempt that reached the provider, and the outbox gauges (due rows, age of the oldest)
read from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import update

from config.app import Services
from notifiers.delivery_ops import outbox_depth
from notifiers.dispatcher import OutboxDispatcher
from notifiers.metrics import DispatchMetrics
from notifiers.retry import RetryPolicy
from storage.models import Notification, OptOut, utcnow
from tests.notifiers.dispatch_support import running, until
from tests.notifiers.smtp_sink import smtp_sink
from tests.notifiers.test_dispatch_email import accept, email_to, rows

pytestmark = pytest.mark.writer_process
EMAIL = {"channel": "email", "provider": "email"}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {**EMAIL, **labels}) or 0.0


async def statuses(services: Services, *wanted: str) -> bool:
    return [r.status for r in await rows(services)] == list(wanted)


async def test_every_outcome_is_counted_and_the_outbox_is_measured(services: Services) -> None:
    for n in range(4):
        await accept(services, f"cliente{n}@example.com")
    async with services.db.session() as session, session.begin():
        session.add(OptOut(channel="email", address="cliente3@example.com", source="test"))
    registry = CollectorRegistry()
    metrics = DispatchMetrics(registry)
    later = utcnow() + timedelta(seconds=90)
    metrics.depth(await services.db.read(outbox_depth, later), later)
    assert sample(registry, "ventanilla_outbox_due") == 4
    assert sample(registry, "ventanilla_outbox_oldest_due_seconds") >= 90

    def dispatcher() -> OutboxDispatcher:
        # One at a time: the sink's answers go to the rows in id order.
        return OutboxDispatcher(
            services.writes, {"email": email_to(sink)},
            RetryPolicy(max_attempts=2, base_seconds=30, max_seconds=60), metrics,
            owner="test", slots=1, poll_seconds=0.1,
        )  # fmt: skip

    async with smtp_sink() as sink:
        sink.handler.answers = ["451 4.3.0 try again later", "550 5.1.1 no such user"]
        async with running(dispatcher()):
            await until(lambda: statuses(services, "pending", "failed", "sent", "suppressed"))
        async with services.db.session() as session, session.begin():
            await session.execute(update(Notification).values(next_attempt_at=utcnow()))
        sink.handler.answers = ["452 4.3.1 still busy"]
        async with running(dispatcher()):  # the second of two attempts: dead
            await until(lambda: statuses(services, "dead", "failed", "sent", "suppressed"))

    counted = {
        outcome: sample(registry, "ventanilla_notifications_total", outcome=outcome)
        for outcome in ("sent", "retried", "failed", "dead", "suppressed")
    }
    assert counted == {"sent": 1, "retried": 1, "failed": 1, "dead": 1, "suppressed": 1}
    # Four attempts reached the sink (the suppressed row never left).
    assert sample(registry, "ventanilla_send_seconds_count") == 4
    now = utcnow()
    metrics.depth(await services.db.read(outbox_depth, now), now)
    assert sample(registry, "ventanilla_outbox_due") == 0
    assert sample(registry, "ventanilla_outbox_oldest_due_seconds") == 0
