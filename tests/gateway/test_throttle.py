"""Per-SIM pacing with an injected clock."""

from gateway.models import ThrottlePolicy
from gateway.throttle import Throttle


def test_interval_spaces_sends() -> None:
    t = Throttle(ThrottlePolicy(interval=3))
    assert t.check(100.0).allowed
    t.record(100.0)
    decision = t.check(101.0)
    assert not decision.allowed
    assert decision.not_before == 103.0
    assert decision.reason == "interval"
    assert t.check(103.0).allowed


def test_rolling_minute_cap() -> None:
    t = Throttle(ThrottlePolicy(interval=1, per_minute=3))
    for now in (0.0, 1.0, 2.0):
        assert t.check(now).allowed
        t.record(now)
    decision = t.check(3.0)
    assert not decision.allowed
    assert decision.reason == "per_minute"
    assert decision.not_before == 60.0  # the first send leaves the window
    assert t.check(60.0).allowed


def test_day_cap_and_distinct_recipients() -> None:
    t = Throttle(ThrottlePolicy(interval=1, recipients_per_day=2))
    t.record(0.0, "a")
    t.record(10.0, "b")
    assert t.check(20.0, "a").allowed  # a known recipient is not a new one
    blocked = t.check(20.0, "c")
    assert not blocked.allowed
    assert blocked.reason == "recipients_per_day"
    assert blocked.not_before == 86400.0
    assert t.check(86400.0, "c").allowed


def test_restore_rebuilds_pacing_after_restart() -> None:
    t = Throttle(ThrottlePolicy(interval=6, per_hour=2))
    t.restore([(50.0, None), (10.0, None)])
    assert t.last_send == 50.0
    decision = t.check(52.0)
    assert not decision.allowed
    # interval ends at 56, but the hourly cap holds until the send at 10 s leaves the hour
    assert decision.not_before == 3610.0
    assert decision.reason == "per_hour"


def test_restore_rebuilds_the_days_distinct_recipients() -> None:
    t = Throttle(ThrottlePolicy(interval=1, recipients_per_day=2))
    t.restore([(100.0, "+15550000002"), (10.0, "+15550000001"), (50.0, "+15550000001")])
    assert t.headroom(200.0) == 0
    assert t.check(200.0, "+15550000001").allowed  # already one of today's two
    blocked = t.check(200.0, "+15550000003")
    assert (blocked.allowed, blocked.reason) == (False, "recipients_per_day")
    assert blocked.not_before == 10.0 + 86400.0  # the first recipient's day ends


def test_headroom_is_what_the_day_caps_leave() -> None:
    assert Throttle(ThrottlePolicy(interval=1, per_minute=5)).headroom(0.0) is None
    t = Throttle(ThrottlePolicy(interval=1, per_day=10, recipients_per_day=4))
    for i in range(3):
        t.record(float(i), "+1555000000" + str(i % 2))
    assert t.headroom(10.0) == 2  # per day 10 - 3 = 7, recipients 4 - 2 = 2
    assert t.headroom(86400.0 + 5) == 4  # the day has rolled on past all three


def test_free_at_is_the_pace_and_rolling_caps_without_the_recipient_cap() -> None:
    t = Throttle(ThrottlePolicy(interval=2, per_minute=2, recipients_per_day=1))
    assert t.free_at(0.0) == 0.0  # never sent: free now
    t.record(0.0, "+15550000001")
    assert t.free_at(1.0) == 2.0  # the interval
    t.record(2.0, "+15550000001")
    assert t.free_at(3.0) == 60.0  # the minute's two sends: until the first leaves it
    # A new recipient waits a day, but any send may start at 60: that is what free_at tells.
    assert t.check(60.0, "+15550000002").not_before == 86400.0
    assert t.free_at(60.0) == 60.0 == t.check(60.0).not_before


class _Naive:
    """The rules written out plainly (every send and first-send kept, walked at each check):
    the oracle the bisected, pruned Throttle must agree with."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self.sends: list[float] = []
        self.first: dict[str, float] = {}

    def record(self, now: float, recipient: str) -> None:
        if recipient in self.first and self.first[recipient] <= now - 86400.0:
            del self.first[recipient]  # a new day for them
        self.first.setdefault(recipient, now)
        self.sends.append(now)

    def not_before(self, now: float, recipient: str) -> float:
        p = self.policy
        day = {r: t for r, t in self.first.items() if t > now - 86400.0}
        start = max(now, self.sends[-1] + p.interval) if self.sends else now
        for cap, window in ((p.per_minute, 60.0), (p.per_hour, 3600.0), (p.per_day, 86400.0)):
            inside = [t for t in self.sends if t > now - window]
            if cap is not None and len(inside) >= cap:
                start = max(start, inside[0] + window)
        cap = p.recipients_per_day
        if cap is not None and recipient not in day and len(day) >= cap:
            start = max(start, min(day.values()) + 86400.0)
        return start


def test_a_busy_day_agrees_with_the_plain_rules_at_every_check() -> None:
    # Four days of bursts and lulls over 2,000 recipients, every cap binding now and then:
    # the windows' edges, each recipient's day ending and the bulk cut-off of old sends all
    # come by many times. A mistake in any of them makes a decision differ.
    import random

    rng = random.Random(7)
    policy = ThrottlePolicy(
        interval=2, per_minute=5, per_hour=150, per_day=2500, recipients_per_day=1200
    )
    fast, plain = Throttle(policy), _Naive(policy)
    now = 0.0
    checks = 0
    reasons: set[str] = set()
    while now < 4 * 86400.0:
        now += rng.expovariate(1 / 5) if rng.random() < 0.998 else rng.uniform(600, 3600)
        recipient = f"+1202555{rng.randrange(2000):04d}"
        if rng.random() < 0.05:  # spot checks: the plain walk is slow
            expected = plain.not_before(now, recipient)
            assert fast.check(now, recipient).not_before == expected, now
            checks += 1
        decision = fast.check(now, recipient)
        reasons.add(decision.reason)
        if decision.allowed:
            fast.record(now, recipient)
            plain.record(now, recipient)
    assert checks > 1000
    assert reasons == {"", "interval", "per_minute", "per_hour", "per_day", "recipients_per_day"}
    assert len(plain.sends) > 3 * 2500 - 100  # days of sends: the bulk cut-off has run


def test_a_clock_that_steps_back_keeps_the_windows_in_order() -> None:
    t = Throttle(ThrottlePolicy(interval=1, per_minute=2))
    t.record(100.0)
    t.record(50.0)  # the caller's clock went back
    assert not t.check(100.0).allowed
    assert t.check(100.0).not_before == 110.0  # 50 leaves the minute at 110, not 160
