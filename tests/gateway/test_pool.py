"""SIM pool: rotation spreads evenly, throttle holds per SIM, stickiness and health."""

import itertools
from collections import defaultdict

from gateway.models import ThrottlePolicy
from gateway.pool import HealthPolicy, SimAvailability, SimPool

ACCOUNT = 1


def _pool(n: int, interval: float = 1.0) -> SimPool:
    pool = SimPool()
    for sim_id in range(1, n + 1):
        pool.upsert(sim_id, f"+4477009000{sim_id:02d}", ThrottlePolicy(interval=interval))
    return pool


def _run_batch(pool: SimPool, recipients: list[str], sims: list[int]) -> dict[int, list[float]]:
    """Drive the pool like the scheduler does, with a virtual clock."""
    now = 0.0
    sends: dict[int, list[float]] = defaultdict(list)
    for recipient in recipients:
        route = pool.route(account_id=ACCOUNT, allowed=sims, recipient=recipient, now=now)
        assert route.sim_id is not None, route.reason
        now = max(now, route.not_before)
        pool.record_send(route.sim_id, ACCOUNT, recipient, now)
        sends[route.sim_id].append(now)
    return sends


def test_rotation_spreads_a_batch_evenly_and_respects_the_throttle() -> None:
    pool = _pool(4, interval=3.0)
    sends = _run_batch(pool, [f"+1555{i:07d}" for i in range(400)], [1, 2, 3, 4])
    assert {sim: len(times) for sim, times in sends.items()} == {1: 100, 2: 100, 3: 100, 4: 100}
    for times in sends.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert min(gaps) >= 3.0
    # four SIMs at one SMS per 3 s: 400 messages take 99 intervals of 3 s, not 399
    assert max(max(t) for t in sends.values()) == 297.0


def test_sticky_recipient_keeps_its_sim() -> None:
    pool = _pool(3)
    first = pool.route(account_id=ACCOUNT, allowed=[1, 2, 3], recipient="+15550001", now=0.0)
    assert first.sim_id is not None
    pool.record_send(first.sim_id, ACCOUNT, "+15550001", 0.0)
    again = pool.route(account_id=ACCOUNT, allowed=[1, 2, 3], recipient="+15550001", now=0.5)
    assert again.sim_id == first.sim_id
    assert again.not_before == 1.0  # waits for its own SIM rather than switching numbers


def test_fixed_sender_uses_only_its_sim() -> None:
    pool = _pool(2)
    route = pool.route(account_id=ACCOUNT, allowed=[1, 2], recipient="+1", now=0, sender_sim=2)
    assert route.sim_id == 2
    pool.set_present(2, False)
    gone = pool.route(account_id=ACCOUNT, allowed=[1, 2], recipient="+1", now=0, sender_sim=2)
    assert gone.sim_id is None
    assert "gone" in gone.reason


def test_errors_cool_a_sim_down_and_it_returns_on_its_own() -> None:
    pool = SimPool(HealthPolicy(errors_to_cool=3, first_cooldown=60, max_cooldown=100))
    for sim_id in (1, 2):
        pool.upsert(sim_id, f"+{sim_id}", ThrottlePolicy())
    for t in (1.0, 2.0, 3.0):
        pool.report_error(1, t)
    assert pool.availability(1, 10.0) is SimAvailability.COOLING
    assert pool.route(account_id=ACCOUNT, allowed=[1, 2], recipient="+9", now=10.0).sim_id == 2
    assert pool.availability(1, 63.0) is SimAvailability.READY
    # a second cool-down in a row doubles, capped at max_cooldown
    for t in (70.0, 71.0, 72.0):
        pool.report_error(1, t)
    assert pool.availability(1, 72.0 + 99) is SimAvailability.COOLING
    assert pool.availability(1, 72.0 + 100) is SimAvailability.READY
    pool.report_success(1)
    for t in (200.0, 201.0, 202.0):
        pool.report_error(1, t)
    assert pool.availability(1, 202.0 + 60) is SimAvailability.READY  # escalation was reset


def test_free_at_is_when_a_sim_in_rotation_may_send_next() -> None:
    pool = _pool(2, interval=3.0)
    assert pool.free_at(1, 10.0) == 10.0
    pool.record_send(1, ACCOUNT, "+15550000001", 10.0)
    assert pool.free_at(1, 11.0) == 13.0  # paced
    for t in (20.0, 21.0, 22.0):
        pool.report_error(2, t)
    assert pool.free_at(2, 23.0) is None  # cooling down: out of rotation, no pace to tell
    pool.set_enabled(1, False)
    assert pool.free_at(1, 20.0) is None


def test_radio_health_takes_sims_out_of_rotation() -> None:
    pool = _pool(2)
    pool.report_radio(1, registered=False, signal_dbm=-70)
    assert pool.availability(1, 0) is SimAvailability.UNREGISTERED
    pool.report_radio(1, registered=True, signal_dbm=-113)
    assert pool.availability(1, 0) is SimAvailability.WEAK_SIGNAL
    sends = _run_batch(pool, [f"+1{i}" for i in range(10)], [1, 2])
    assert set(sends) == {2}
    pool.report_radio(1, registered=True, signal_dbm=-80)
    assert pool.availability(1, 0) is SimAvailability.READY


def test_per_minute_cap_moves_traffic_to_other_sims() -> None:
    pool = SimPool()
    pool.upsert(1, "+1", ThrottlePolicy(interval=1, per_minute=2))
    pool.upsert(2, "+2", ThrottlePolicy(interval=1))
    sends = _run_batch(pool, [f"+1{i}" for i in range(10)], [1, 2])
    assert len(sends[1]) == 2
    assert len(sends[2]) == 8
