"""Prometheus metrics: collectors that read the service's current state at scrape time.

Nothing here counts events as they happen: per-SIM sent/failed/received come from the counters
on the SIM rows (so they survive restarts), states and gauges are read when scraped, and the
latency histograms are the ones `gateway.telemetry` feeds. Each `build_registry()` makes its own
registry (no global state): tests build as many gateways as they like in one process.

No label holds a full phone number or any message text: SIMs are labelled by id and ICCID, and
their numbers appear only masked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gateway.numbers import mask
from gateway.operator import SimStatus
from gateway.pool import SimAvailability
from gateway.service import GatewayService
from gateway.store import is_unavailable

WebhookCounts = Callable[[], Mapping[str, int]]

SIM_LABELS = ["sim", "iccid"]
# +CREG statuses (by name, as the worker records them) in which a SIM can send.
REGISTERED = frozenset(
    {
        "home",
        "roaming",
        "sms_only_home",
        "sms_only_roaming",
        "csfb_not_preferred_home",
        "csfb_not_preferred_roaming",
    }
)


def _version() -> str:
    try:
        return version("smsgw")
    except PackageNotFoundError:
        return "unknown"


def _sim_labels(sim: SimStatus) -> list[str]:
    return [str(sim.sim_id), sim.iccid]


class GatewayCollector(Collector):
    """SIMs, modems, the queue and webhook deliveries, read from the service when scraped."""

    def __init__(self, service: GatewayService, webhook_counts: WebhookCounts | None = None):
        self.service = service
        # The webhook engine's counts (pending, failed, ...); None until one is wired in.
        self.webhook_counts = webhook_counts

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: names come with each scrape (no scrape at registration)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """One consistent read of the service per scrape; while the store refuses reads, only
        what needs no store (smsgw_store_up 0, the build, the histograms, the process)."""
        try:
            read = [*self._sims(), *self._modems(), *self._queue(), *self._webhooks()]
            locked = self.service.store.write_locked()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            read, locked = [], False
        up = GaugeMetricFamily(
            "smsgw_store_up", "1 while the database answers reads; 0 while it refuses them."
        )
        up.add_metric([], 1 if read else 0)
        yield up
        write_locked = GaugeMetricFamily(
            "smsgw_store_write_locked",
            "1 while another process holds the database's write lock (writes refused, 503).",
        )
        write_locked.add_metric([], 1 if locked else 0)
        yield write_locked
        refusals = CounterMetricFamily(
            "smsgw_store_lock_refusals",
            "Writes refused because another process held the database's write lock.",
        )
        refusals.add_metric([], self.service.store.lock_refusals)
        yield refusals
        yield from read
        build = InfoMetricFamily("smsgw_build", "The running smsgw.")
        build.add_metric([], {"version": _version()})
        yield build

    def _queue(self) -> Iterable[Metric]:
        queue = GaugeMetricFamily(
            "smsgw_queue_messages",
            "Messages without a verdict yet, by state.",
            labels=["state"],
        )
        for state, n in self.service.queue_depth().items():
            queue.add_metric([state], n)
        yield queue

    def _webhooks(self) -> Iterable[Metric]:
        if self.webhook_counts is not None:
            counts = self.webhook_counts()
            hooks = GaugeMetricFamily(
                "smsgw_webhook_deliveries",
                "Outgoing webhook deliveries waiting (pending) or given up (failed).",
                labels=["state"],
            )
            for state in ("pending", "failed"):
                hooks.add_metric([state], counts.get(state, 0))
            yield hooks
            if "delivered" in counts:
                delivered = CounterMetricFamily(
                    "smsgw_webhook_delivered", "Outgoing webhook deliveries that succeeded."
                )
                delivered.add_metric([], counts["delivered"])
                yield delivered

    def _sims(self) -> Iterable[Metric]:
        sims = self.service.sim_statuses()
        fleet = self.service.store.dialect == "postgresql"  # which box sends through it
        info = InfoMetricFamily(
            "smsgw_sim",
            "A SIM: masked number, operator, registration (and box).",
            labels=SIM_LABELS,
        )
        sent = CounterMetricFamily(
            "smsgw_sim_parts_sent",
            "SMS parts the network accepted from this SIM.",
            labels=SIM_LABELS,
        )
        failed = CounterMetricFamily(
            "smsgw_sim_parts_failed",
            "SMS parts from this SIM that failed for good (refused, or reported failed).",
            labels=SIM_LABELS,
        )
        received = CounterMetricFamily(
            "smsgw_sim_messages_received",
            "Inbound messages received on this SIM.",
            labels=SIM_LABELS,
        )
        cms = CounterMetricFamily(
            "smsgw_sim_cms_errors",
            "+CMS ERROR answers to AT+CMGS on this SIM (retried or not).",
            labels=SIM_LABELS,
        )
        state = GaugeMetricFamily(
            "smsgw_sim_state",
            "1 for the SIM's rotation state: ready, or why it is out (cooling, gone, ...).",
            labels=[*SIM_LABELS, "state"],
        )
        interval = GaugeMetricFamily(
            "smsgw_sim_throttle_interval_seconds",
            "Seconds the SIM waits between two SMS.",
            labels=SIM_LABELS,
        )
        wait = GaugeMetricFamily(
            "smsgw_sim_throttle_wait_seconds",
            "Seconds until the SIM's throttle and caps let its next SMS go (0: free now).",
            labels=SIM_LABELS,
        )
        cooldown = GaugeMetricFamily(
            "smsgw_sim_cooldown_remaining_seconds",
            "Seconds left of the SIM's cool-down after repeated send errors (0: none).",
            labels=SIM_LABELS,
        )
        cooldowns = CounterMetricFamily(
            "smsgw_sim_cooldowns",
            "Cool-downs after repeated send errors since the daemon started.",
            labels=SIM_LABELS,
        )
        signal = GaugeMetricFamily(
            "smsgw_sim_signal_rssi_dbm",
            "Received signal strength (+CSQ rssi) in dBm.",
            labels=SIM_LABELS,
        )
        csq = GaugeMetricFamily(
            "smsgw_sim_signal_csq", "Signal quality as +CSQ reports it (0-31).", labels=SIM_LABELS
        )
        registered = GaugeMetricFamily(
            "smsgw_sim_registered",
            "1 while the SIM is registered on a network (home, roaming).",
            labels=SIM_LABELS,
        )
        for sim in sims:
            labels = _sim_labels(sim)
            info.add_metric(
                labels,
                {
                    "number": mask(sim.msisdn) if sim.msisdn else "",
                    "operator": sim.operator,
                    "registration": sim.registration,
                    "modem_port": sim.modem_port,
                    **({"box": sim.box} if fleet else {}),
                },
            )
            sent.add_metric(labels, sim.sent)
            failed.add_metric(labels, sim.failed)
            received.add_metric(labels, sim.received)
            cms.add_metric(labels, sim.cms_errors)
            for value in SimAvailability:
                state.add_metric([*labels, value.value], 1 if sim.state == value.value else 0)
            interval.add_metric(labels, sim.throttle_interval)
            wait.add_metric(labels, sim.throttle_wait)
            cooldown.add_metric(labels, sim.cooldown_remaining)
            cooldowns.add_metric(labels, sim.cooldowns)
            if sim.signal_dbm is not None:
                signal.add_metric(labels, sim.signal_dbm)
                csq.add_metric(labels, sim.csq or 0)
            registered.add_metric(labels, 1 if sim.registration in REGISTERED else 0)
        yield from (
            info,
            sent,
            failed,
            received,
            cms,
            state,
            interval,
            wait,
            cooldown,
            cooldowns,
            signal,
            csq,
            registered,
        )

    def _modems(self) -> Iterable[Metric]:
        up = GaugeMetricFamily(
            "smsgw_modem_up",
            "1 while the modem answers and its SIM is bound; 0 while connecting, away or gone.",
            labels=["imei", "model", "port"],
        )
        for modem in self.service.modem_statuses():
            up.add_metric([modem.imei, modem.model, modem.port], 1 if modem.up else 0)
        yield up


def build_registry(
    service: GatewayService, *, webhook_counts: WebhookCounts | None = None
) -> CollectorRegistry:
    """A registry of its own: the gateway's collectors, its latency histograms and the process's
    own metrics (resident memory, CPU, open fds)."""
    registry = CollectorRegistry()
    registry.register(GatewayCollector(service, webhook_counts))
    for histogram in service.telemetry.collectors():
        registry.register(histogram)
    ProcessCollector(registry=registry)
    return registry
