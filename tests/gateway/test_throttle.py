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
