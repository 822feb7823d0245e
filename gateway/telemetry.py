"""Latency observations the running gateway makes, for /metrics: one `Telemetry` per service.

Counters of events (parts sent, failed, received per SIM) live on the SIM rows; what needs an
observation point is latency, so the few places that see a start and an end call these hooks.
The histograms are prometheus-client objects registered nowhere: each /metrics registry adds
them itself, so tests can build several gateways in one process.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Histogram
from prometheus_client.registry import Collector

COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
QUEUE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
REPORT_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def command_kind(line: str) -> str:
    """The label an AT command is counted under: AT+CMGS waits for the network, the rest for
    the modem alone (one label per command would multiply the series by ~30 per modem)."""
    return "cmgs" if line.upper().startswith("AT+CMGS") else "at"


class Telemetry:
    """Histograms fed by the modem workers, the outbox, the report matcher and the store."""

    def __init__(self) -> None:
        self.command_seconds = Histogram(
            "smsgw_modem_command_seconds",
            "Time from writing an AT command to its final result, per modem port.",
            ["port", "kind"],
            buckets=COMMAND_BUCKETS,
            registry=None,
        )
        self.accept_to_first_at_seconds = Histogram(
            "smsgw_accept_to_first_at_seconds",
            "Time from a message being accepted (or its scheduled time) to its first AT+CMGS.",
            buckets=QUEUE_BUCKETS,
            registry=None,
        )
        self.report_match_lag_seconds = Histogram(
            "smsgw_report_match_lag_seconds",
            "Time from a part's AT+CMGS to the status report that settled it being matched.",
            buckets=REPORT_BUCKETS,
            registry=None,
        )
        self.commit_seconds = Histogram(
            "smsgw_sqlite_commit_seconds",
            "Duration of each SQLite COMMIT (the fsync that makes a change durable).",
            buckets=COMMIT_BUCKETS,
            registry=None,
        )

    def collectors(self) -> Sequence[Collector]:
        """Every histogram, for a registry to register."""
        return (
            self.command_seconds,
            self.accept_to_first_at_seconds,
            self.report_match_lag_seconds,
            self.commit_seconds,
        )

    def command(self, port: str, line: str, seconds: float) -> None:
        """One AT command on `port` got its final result after `seconds`."""
        self.command_seconds.labels(port=port, kind=command_kind(line)).observe(seconds)

    def first_attempt(self, due: datetime, now: datetime) -> None:
        """A message due since `due` got its first AT+CMGS at `now`."""
        self.accept_to_first_at_seconds.observe(max((now - due).total_seconds(), 0.0))

    def report_matched(self, sending_at: datetime, now: datetime) -> None:
        """A status report for a part sent at `sending_at` was matched at `now`."""
        self.report_match_lag_seconds.observe(max((now - sending_at).total_seconds(), 0.0))

    def commit(self, seconds: float) -> None:
        """A COMMIT took `seconds`."""
        self.commit_seconds.observe(seconds)
