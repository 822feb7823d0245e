"""The operator's view through GatewayService: overview counts, SIM settings that reach the running
pool, and the dashboard's admin password."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from gateway.cli import main
from gateway.models import PartState, ThrottlePolicy
from gateway.operator import LiveModem
from gateway.pool import SimPool
from gateway.service import GatewayService, InvalidRequestError
from gateway.store import Store

T0 = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
ICCID = "8944000000000000011"


class Mono:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def env(store_url: str):
    store = Store.open(store_url)
    account = create_account(store, "shop", now=T0, credits=100).account_id
    sim = store.bind_sim(iccid=ICCID, imsi=None, msisdn="+447700900011", now=T0)
    pool = SimPool()
    pool.upsert(sim, "+447700900011", ThrottlePolicy(interval=1.0))
    mono = Mono()
    service = GatewayService(store, wall=lambda: T0, pool=pool, monotonic=mono)
    yield store, service, pool, mono, account, sim
    store.close()


def _send(store: Store, account: int, sim: int, state: PartState, at: datetime) -> int:
    """A one-part message taken through the lifecycle to `state`, at `at`."""
    (part,) = store.accept_message(
        account_id=account, recipient="+15005550000", body="hi", encoding="gsm7", parts=1, now=at
    ).part_ids
    store.transition_part(part, PartState.QUEUED, PartState.SENDING, now=at, fields={"sim_id": sim})
    if state is PartState.FAILED:
        store.transition_part(
            part, PartState.SENDING, PartState.FAILED, now=at, fields={"cms_error": 21}
        )
        return part
    store.transition_part(part, PartState.SENDING, PartState.SENT, now=at, fields={"tp_mr": 1})
    if state is PartState.DELIVERED:
        store.transition_part(part, PartState.SENT, PartState.DELIVERED, now=at)
    return part


def test_overview_counts_today_the_last_24_hours_and_the_queue(env) -> None:
    store, service, _, _, account, sim = env
    midnight = T0.replace(hour=0, minute=0)
    _send(store, account, sim, PartState.DELIVERED, T0 - timedelta(minutes=10))  # 09:20
    _send(store, account, sim, PartState.SENT, T0 - timedelta(hours=2))  # 07:30
    _send(store, account, sim, PartState.FAILED, T0 - timedelta(hours=2))
    _send(store, account, sim, PartState.DELIVERED, midnight - timedelta(hours=1))  # yesterday
    _send(store, account, sim, PartState.DELIVERED, T0 - timedelta(hours=30))  # off the chart
    store.insert_inbound(
        {
            "account_id": account,
            "sim_id": sim,
            "originator": "+15551230001",
            "body": "yo",
            "encoding": "gsm7",
            "parts_received": 1,
            "parts_total": 1,
            "complete": 1,
        },
        [],
        now=T0 - timedelta(minutes=5),
    )
    store.accept_message(
        account_id=account,
        recipient="+15005550000",
        body="later",
        encoding="gsm7",
        parts=1,
        send_at=T0 + timedelta(hours=1),
        now=T0,
    )
    store.accept_message(
        account_id=account, recipient="+15005550000", body="now", encoding="gsm7", parts=1, now=T0
    )

    overview = service.overview(zone=UTC)
    assert (overview.sent_today, overview.failed_today, overview.received_today) == (2, 1, 1)
    assert dict(overview.queue) == {"accepted": 1, "queued": 1, "sending": 0, "uncertain": 0}
    assert overview.queued == 2
    hours = overview.throughput
    assert len(hours) == 24
    assert hours[-1].start == datetime(2026, 11, 22, 9, tzinfo=UTC)
    assert hours[0].start == datetime(2026, 11, 21, 10, tzinfo=UTC)
    by_hour = {
        h.start.hour: (h.sent, h.failed, h.received)
        for h in hours
        if h.sent or h.failed or h.received
    }
    assert by_hour == {9: (1, 0, 1), 7: (1, 1, 0), 23: (1, 0, 0)}
    (status,) = overview.sims
    assert (status.sent, status.failed, status.received, status.cms_errors) == (4, 1, 1, 1)
    assert status.state == "ready" and status.live


def test_modems_merge_the_store_with_the_running_workers(env) -> None:
    store, service, _, _, _, sim = env
    ready = store.bind_modem(
        imei="350000000000001",
        manufacturer="ACME",
        model="M1",
        revision="1",
        port="/dev/ttyUSB0",
        sim_id=sim,
        now=T0,
    )
    store.bind_modem(
        imei="350000000000002",
        manufacturer="ACME",
        model="M1",
        revision="1",
        port="/dev/ttyUSB1",
        sim_id=None,
        now=T0,
    )
    service.live_modems = lambda: [
        LiveModem("/dev/ttyUSB0", "ready", modem_id=ready, sim_id=sim),
        LiveModem("/dev/ttyUSB7", "backoff", "SIM PIN required"),
    ]
    modems = {m.port: m for m in service.modem_statuses()}
    assert modems["/dev/ttyUSB0"].up and modems["/dev/ttyUSB0"].sim_id == sim
    assert modems["/dev/ttyUSB1"].state == "gone"  # in the store as ready, but no worker has it
    assert not modems["/dev/ttyUSB7"].up
    assert modems["/dev/ttyUSB7"].last_error == "SIM PIN required"


def test_new_limits_reach_the_running_pool_at_once(env) -> None:
    store, service, pool, mono, _, sim = env
    throttle = pool.get(sim).throttle
    throttle.record(mono.now, "+15005550000")
    assert throttle.check(mono.now + 1.0).allowed  # 1 s interval

    policy = service.set_sim_limits(sim, {"throttle_interval": 7, "cap_per_hour": 100})
    assert policy == ThrottlePolicy(interval=7.0, per_hour=100)
    assert pool.get(sim).throttle.policy == policy  # no reconnect, no restart
    decision = throttle.check(mono.now + 1.0)
    assert not decision.allowed and decision.not_before == mono.now + 7.0
    (status,) = service.sim_statuses()
    assert status.throttle_interval == 7.0 and status.cap_per_hour == 100
    assert status.throttle_wait == 7.0
    assert store.sim(sim)["throttle_interval"] == 7.0  # durable for the next start

    service.set_sim_limits(sim, {"cap_per_hour": None})  # a cap is lifted with None
    assert pool.get(sim).throttle.policy == ThrottlePolicy(interval=7.0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"throttle_interval": 0.5}, "1-60 seconds"),
        ({"throttle_interval": None}, "1-60 seconds"),
        ({"cap_per_day": 0}, "at least 1"),
        ({"cap_per_day": 2.5}, "whole number"),
        ({"colour": 1}, "limits are among"),
        ({}, "limits are among"),
    ],
)
def test_bad_limits_are_refused_and_change_nothing(env, changes, message) -> None:
    store, service, pool, *_ = env
    sim = env[5]
    with pytest.raises(InvalidRequestError, match=message):
        service.set_sim_limits(sim, changes)
    assert pool.get(sim).throttle.policy == ThrottlePolicy(interval=1.0)
    assert store.sim(sim)["cap_per_day"] is None


def test_a_number_is_normalised_unique_and_reaches_the_pool(env) -> None:
    store, service, pool, *_ = env
    sim = env[5]
    other = store.bind_sim(iccid="8944000000000000012", imsi=None, msisdn="+447700900012", now=T0)
    assert service.set_sim_number(sim, "+44 7700 900099") == "+447700900099"
    assert pool.get(sim).msisdn == "+447700900099"
    assert pool.by_number("+447700900099") is pool.get(sim)  # senders route by number
    with pytest.raises(InvalidRequestError, match=f"SIM {other} already has that number"):
        service.set_sim_number(sim, "+447700900012")
    with pytest.raises(InvalidRequestError, match="not a phone number"):
        service.set_sim_number(sim, "call me")
    with pytest.raises(InvalidRequestError, match="no SIM 999"):
        service.set_sim_number(999, "+447700900098")
    assert store.sim(sim)["msisdn"] == "+447700900099"


def test_limits_set_from_the_cli_reach_a_running_daemon_at_its_next_housekeeping(
    env, tmp_path: Path, store_url: str
) -> None:
    _, service, pool, *_ = env
    sim = env[5]
    # On PostgreSQL the CLI finds the daemon's database as the daemon would: the URL.
    fleet = {"SMSGW_DATABASE_URL": store_url} if store_url.startswith("postgresql") else {}
    result = CliRunner(env=fleet).invoke(
        main, ["sims", "set-limits", ICCID, "--interval", "9", "--data-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert pool.get(sim).throttle.policy.interval == 1.0  # another process wrote the store
    assert service.reload_sim_settings() == 1
    assert pool.get(sim).throttle.policy.interval == 9.0
    assert service.reload_sim_settings() == 0


def test_admin_password_is_hashed_and_a_new_one_ends_every_session(env) -> None:
    store, service, *_ = env
    assert not service.has_admin_password()
    assert not service.check_admin_password("")
    key = service.session_key()
    assert service.session_key() == key  # made once
    with pytest.raises(InvalidRequestError, match="at least 8"):
        service.set_admin_password("short")
    service.set_admin_password("correct horse")
    assert service.check_admin_password("correct horse")
    assert not service.check_admin_password("correct horse ")
    stored = store.setting("admin_password_hash")
    assert stored is not None and stored.startswith("scrypt$") and "correct" not in stored
    assert service.session_key() != key
