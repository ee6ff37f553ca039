"""Prometheus metrics of outbound delivery, per channel and provider: outcomes (sent,
retried, failed, dead, suppressed), send latency, and the outbox's due rows and the age of
the oldest (refreshed by the dispatcher, which reads them in one query)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# What a recorded status counts as.
OUTCOMES = {"sent": "sent", "pending": "retried", "failed": "failed", "dead": "dead",
            "suppressed": "suppressed"}  # fmt: skip


class DispatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.outcomes = Counter(
            "ventanilla_notifications",
            "Outbound notifications by channel, provider and outcome "
            "(sent, retried, failed, dead, suppressed).",
            ["channel", "provider", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "ventanilla_send_seconds",
            "Time a provider took to take one message (attempts that reached it).",
            ["channel", "provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.due = Gauge(
            "ventanilla_outbox_due",
            "Notifications due to be sent now (pending and due, or held by a lapsed claim).",
            ["channel", "provider"],
            registry=registry,
        )
        self.oldest = Gauge(
            "ventanilla_outbox_oldest_due_seconds",
            "Age of the oldest due notification (0 when none is due).",
            ["channel", "provider"],
            registry=registry,
        )

    def outcome(self, channel: str, provider: str, status: str, duration_ms: int | None) -> None:
        self.outcomes.labels(channel, provider, OUTCOMES.get(status, status)).inc()
        if duration_ms is not None and status in ("sent", "pending", "failed", "dead"):
            self.latency.labels(channel, provider).observe(duration_ms / 1000)

    def depth(self, rows: Iterable[Any], now: datetime) -> None:
        """Set the gauges from ``(channel, provider, count, oldest due)`` rows."""
        seen = set()
        for channel, provider, count, oldest in rows:
            seen.add((channel, provider))
            self.due.labels(channel, provider).set(count)
            age = (now - oldest).total_seconds() if oldest is not None else 0.0
            self.oldest.labels(channel, provider).set(max(0.0, age))
        for labels in list(self.due._metrics):
            if labels not in seen:
                self.due.labels(*labels).set(0)
                self.oldest.labels(*labels).set(0)
