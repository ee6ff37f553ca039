"""Prometheus view of the IMAP pollers, read from their status at scrape time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from intake.email.imap import ImapPoller


class ImapCollector:
    """Register once with ``registry.register(ImapCollector(pollers))``.

    A collector rather than gauges set by the pollers: the values already live in each
    poller's status, and reading them on scrape keeps the two from drifting apart.
    """

    def __init__(self, pollers: Mapping[str, ImapPoller]) -> None:
        self.pollers = pollers

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        connected = GaugeMetricFamily(
            "ventanilla_imap_connected", "1 while the account is logged in.", labels=["account"]
        )
        idle = GaugeMetricFamily(
            "ventanilla_imap_idle", "1 while the account waits in IDLE.", labels=["account"]
        )
        last_success = GaugeMetricFamily(
            "ventanilla_imap_last_success_timestamp_seconds",
            "When the account last read its folder without error (Unix time).",
            labels=["account"],
        )
        last_uid = GaugeMetricFamily(
            "ventanilla_imap_last_uid", "The checkpoint's last UID.", labels=["account"]
        )
        failures = GaugeMetricFamily(
            "ventanilla_imap_consecutive_failures",
            "Errors since the last successful round (0 when healthy).",
            labels=["account"],
        )
        errors = CounterMetricFamily(
            "ventanilla_imap_errors", "IMAP or storage errors by account.", labels=["account"]
        )
        messages = CounterMetricFamily(
            "ventanilla_imap_messages",
            "Messages fetched and committed, by account and ingest outcome.",
            labels=["account", "outcome"],
        )
        for name, poller in self.pollers.items():
            status = poller.status
            connected.add_metric([name], float(status.connected))
            idle.add_metric([name], float(status.idle))
            if status.last_success is not None:
                last_success.add_metric([name], status.last_success.timestamp())
            if status.last_uid is not None:
                last_uid.add_metric([name], float(status.last_uid))
            failures.add_metric([name], float(status.failures))
            errors.add_metric([name], float(status.errors))
            for outcome, count in sorted(status.messages.items()):
                messages.add_metric([name, outcome], float(count))
        yield from (connected, idle, last_success, last_uid, failures, errors, messages)
