"""Prometheus metrics of the intake path, registered on the registry the daemon builds."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "ventanilla_inbound_messages",
            "Inbound messages by channel and outcome (accepted, duplicate, failed).",
            ["channel", "outcome"],
            registry=registry,
        )
        self.cases_created = Counter(
            "ventanilla_cases_created",
            "Cases opened by inbound messages, by channel.",
            ["channel"],
            registry=registry,
        )
        self.latency = Histogram(
            "ventanilla_accept_seconds",
            "Time from accept() to the caller's answer (queue wait + commit).",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.storage_errors = Counter(
            "ventanilla_inbound_storage_errors",
            "Inbound messages answered with a temporary failure because storage failed.",
            registry=registry,
        )
        self.rejected = Counter(
            "ventanilla_inbound_rejected",
            "Inbound requests refused at the edge (validation, size, rate limit).",
            ["channel", "reason"],
            registry=registry,
        )

    def observe(self, channel: str, outcome: str, seconds: float) -> None:
        if outcome == "created":
            self.cases_created.labels(channel).inc()
        label = "accepted" if outcome in ("created", "continued") else outcome
        self.messages.labels(channel, label).inc()
        self.latency.labels(channel).observe(seconds)
