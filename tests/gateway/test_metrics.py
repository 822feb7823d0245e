"""/metrics on the emulator: exact counter deltas as SIMs send, fail (+CMS ERROR) and receive;
names that promtool and prometheus-client's parser accept; no number or text in any label."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gateway.accounts import create_account
from gateway.config import Config
from gateway.metrics import build_registry
from gateway.models import ThrottlePolicy
from modem.emulator import EmulatorPool
from tests.emulated import serving
from tests.gateway.watch import StoreWatch

DEADLINE = 45.0
SECRET = "metrics-must-never-show-this-text"
LONG = "Two parts: " + "x" * 160  # 171 GSM-7 characters -> 2 parts
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition by (name, labels), through prometheus-client's parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def sim_value(samples: Samples, name: str, sim_id: int) -> float:
    """The value of a per-SIM metric for one SIM."""
    (value,) = [
        v for (n, labels), v in samples.items() if n == name and ("sim", str(sim_id)) in labels
    ]
    return value


def total(samples: Samples, name: str, **match: str) -> float:
    """The sum of a metric's samples whose labels include `match`."""
    want = set(match.items())
    return sum(v for (n, labels), v in samples.items() if n == name and want <= labels)


async def _scenario(emu: EmulatorPool, tmp_path: Path) -> tuple[str, str, list[str]]:
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0)
    async with serving(config, [i.path for i in emu.info()], frontends=[]) as gateway:
        watch = StoreWatch(gateway)
        store, service = gateway.store, gateway.service
        (a, b) = [w.sim_id for w in gateway.workers.values()]
        assert a is not None and b is not None
        for sim in (a, b):  # no need to wait a second between parts here
            gateway.pool.set_policy(sim, ThrottlePolicy(interval=0.01))
        number_a = store.sim(a)["msisdn"]
        number_b = store.sim(b)["msisdn"]
        account = create_account(store, "shop", now=datetime.now(UTC), unlimited=True).account_id
        registry = build_registry(service)
        before = generate_latest(registry).decode()

        # SIM A: a 1-part and a 2-part message, both delivered.
        one = service.submit(account, ["+15005550000"], SECRET, sender=number_a).message_ids[0]
        two = service.submit(account, ["+15005550000"], LONG, sender=number_a).message_ids[0]
        await watch.until(lambda: all(store.message(m)["state"] == "delivered" for m in (one, two)))
        # SIM B: the network refuses it (+CMS ERROR: 21, "short message transfer rejected").
        bad = service.submit(account, ["+15005551021"], SECRET, sender=number_b).message_ids[0]
        await watch.until(lambda: store.message(bad)["state"] == "failed")
        # SIM A receives a text from the outside world.
        emu.inject_sms(number_a, SECRET, sender="+15551230001")
        await watch.until(lambda: store.sim(a)["received_count"] == 1)
        after = generate_latest(registry).decode()

        old, new = parse(before), parse(after)
        delta = {
            (name, sim): sim_value(new, name, sim) - sim_value(old, name, sim)
            for name in (
                "smsgw_sim_parts_sent_total",
                "smsgw_sim_parts_failed_total",
                "smsgw_sim_messages_received_total",
                "smsgw_sim_cms_errors_total",
            )
            for sim in (a, b)
        }
        assert delta == {
            ("smsgw_sim_parts_sent_total", a): 3,
            ("smsgw_sim_parts_sent_total", b): 0,
            ("smsgw_sim_parts_failed_total", a): 0,
            ("smsgw_sim_parts_failed_total", b): 1,
            ("smsgw_sim_messages_received_total", a): 1,
            ("smsgw_sim_messages_received_total", b): 0,
            ("smsgw_sim_cms_errors_total", a): 0,
            ("smsgw_sim_cms_errors_total", b): 1,
        }
        # Latency histograms count each observation point once per event.
        assert total(new, "smsgw_modem_command_seconds_count", kind="cmgs") == 4  # 3 + 1 parts
        assert total(new, "smsgw_accept_to_first_at_seconds_count") == 3  # three messages
        assert total(new, "smsgw_report_match_lag_seconds_count") == 3  # three parts delivered
        assert total(new, "smsgw_sqlite_commit_seconds_count") > total(
            old, "smsgw_sqlite_commit_seconds_count"
        )
        assert total(new, "smsgw_queue_messages") == 0
        assert total(new, "smsgw_modem_up") == 2
        assert total(new, "smsgw_sim_state", state="ready") == 2
        assert sim_value(new, "smsgw_sim_signal_rssi_dbm", a) < 0  # polled at connect
        assert total(new, "process_resident_memory_bytes") > 10_000_000
        return after, SECRET, [number_a, number_b, "+15005550000", "+15005551021"]


def test_counters_move_exactly_as_the_emulator_sends_fails_and_receives(tmp_path: Path) -> None:
    with EmulatorPool(["generic", "huawei"], seed=21) as emu:
        text, secret, numbers = asyncio.run(asyncio.wait_for(_scenario(emu, tmp_path), DEADLINE))
    # No message text and no full phone number, in any label or help text.
    assert secret not in text
    for number in numbers:
        assert number not in text and number.lstrip("+") not in text
        assert number[-7:] not in text  # not even most of it
    assert 'number="**********' in text  # the SIM's number appears masked
    # Prometheus' own linter and prometheus-client's parser both accept the exposition.
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout.strip() == "" and lint.stderr.strip() == ""
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "smsgw_sim_parts_sent",
        "smsgw_sim_parts_failed",
        "smsgw_sim_messages_received",
        "smsgw_sim_throttle_wait_seconds",
        "smsgw_sim_cooldown_remaining_seconds",
        "smsgw_sim_cooldowns",
        "smsgw_sim_state",
        "smsgw_sim_signal_rssi_dbm",
        "smsgw_sim_signal_csq",
        "smsgw_sim_registered",
        "smsgw_sim_info",
        "smsgw_modem_up",
        "smsgw_modem_command_seconds",
        "smsgw_queue_messages",
        "smsgw_accept_to_first_at_seconds",
        "smsgw_report_match_lag_seconds",
        "smsgw_sqlite_commit_seconds",
        "process_resident_memory_bytes",
    } <= names


def test_two_gateways_in_one_process_have_registries_of_their_own(tmp_path: Path) -> None:
    from gateway.service import GatewayService
    from gateway.store import Store

    stores = [Store.open(tmp_path / name) for name in ("one", "two")]
    try:
        now = datetime.now(UTC)
        stores[0].bind_sim(iccid="8944000000000000001", imsi=None, now=now)
        services = [GatewayService(s, wall=lambda: now) for s in stores]
        services[0].telemetry.commit(0.002)
        texts = [generate_latest(build_registry(s)).decode() for s in services]
        texts.append(generate_latest(build_registry(services[0])).decode())  # a second app
    finally:
        for store in stores:
            store.close()
    one, two, again = (parse(t) for t in texts)
    assert total(one, "smsgw_sim_parts_sent_total") == 0
    assert not any(n == "smsgw_sim_parts_sent_total" for n, _ in two)  # no SIM there
    assert total(one, "smsgw_sqlite_commit_seconds_count") == 1
    assert total(two, "smsgw_sqlite_commit_seconds_count") == 0
    assert total(again, "smsgw_sqlite_commit_seconds_count") == 1


def test_webhook_gauges_come_from_the_provider_when_one_is_wired(tmp_path: Path) -> None:
    from gateway.service import GatewayService
    from gateway.store import Store

    store = Store.open(tmp_path)
    try:
        service = GatewayService(store, wall=lambda: datetime.now(UTC))
        counts = {"pending": 4, "failed": 1, "delivered": 9}
        with_hooks = parse(
            generate_latest(build_registry(service, webhook_counts=lambda: counts)).decode()
        )
        without = parse(generate_latest(build_registry(service)).decode())
    finally:
        store.close()
    assert total(with_hooks, "smsgw_webhook_deliveries", state="pending") == 4
    assert total(with_hooks, "smsgw_webhook_deliveries", state="failed") == 1
    assert total(with_hooks, "smsgw_webhook_delivered_total") == 9
    assert not any(n.startswith("smsgw_webhook") for n, _ in without)
