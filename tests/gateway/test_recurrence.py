"""Recurring series fire at the right local times across DST changes and month ends."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.recurrence import Recurrence, RepeatUnit, next_occurrence, occurrences

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def _utc(moments: list[datetime]) -> list[str]:
    return [m.astimezone(UTC).strftime("%Y-%m-%d %H:%M") for m in moments]


def test_daily_keeps_local_time_across_spring_forward() -> None:
    rule = Recurrence(RepeatUnit.DAILY, 1, date(2026, 3, 30))
    got = list(occurrences(datetime(2026, 3, 28, 9, 0), LONDON, rule))
    # 09:00 GMT is 09:00 UTC; from 29 March 09:00 BST is 08:00 UTC
    assert _utc(got) == ["2026-03-28 09:00", "2026-03-29 08:00", "2026-03-30 08:00"]
    assert all(m.hour == 9 for m in got)


def test_time_skipped_by_dst_is_sent_after_the_gap() -> None:
    rule = Recurrence(RepeatUnit.DAILY, 1, date(2026, 3, 30))
    got = list(occurrences(datetime(2026, 3, 28, 1, 30), LONDON, rule))
    # 01:30 does not exist on 29 March in London: it goes out at 02:30 BST (01:30 UTC)
    assert _utc(got) == ["2026-03-28 01:30", "2026-03-29 01:30", "2026-03-30 00:30"]
    assert got[1].hour == 2


def test_time_repeated_by_dst_fires_once_at_first_occurrence() -> None:
    rule = Recurrence(RepeatUnit.DAILY, 1, date(2026, 11, 2))
    got = list(occurrences(datetime(2026, 10, 31, 1, 30), NEW_YORK, rule))
    # 1 Nov 2026 01:30 happens twice in New York (EDT then EST): sent once, at the EDT one
    assert _utc(got) == ["2026-10-31 05:30", "2026-11-01 05:30", "2026-11-02 06:30"]


def test_monthly_clamps_to_month_end_without_drifting() -> None:
    rule = Recurrence(RepeatUnit.MONTHLY, 1, date(2026, 5, 31))
    got = list(occurrences(datetime(2026, 1, 31, 10, 0), LONDON, rule))
    assert [m.date().isoformat() for m in got] == [
        "2026-01-31",
        "2026-02-28",
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
    ]


def test_yearly_from_leap_day() -> None:
    rule = Recurrence(RepeatUnit.YEARLY, 1, date(2032, 12, 31))
    got = list(occurrences(datetime(2028, 2, 29, 8, 0), LONDON, rule))
    assert [m.date().isoformat() for m in got] == [
        "2028-02-29",
        "2029-02-28",
        "2030-02-28",
        "2031-02-28",
        "2032-02-29",
    ]


def test_weekly_frequency_and_until_inclusive() -> None:
    rule = Recurrence(RepeatUnit.WEEKLY, 2, date(2026, 12, 29))
    got = list(occurrences(datetime(2026, 12, 1, 18, 0), LONDON, rule))
    assert [m.date().isoformat() for m in got] == ["2026-12-01", "2026-12-15", "2026-12-29"]


def test_next_occurrence_after_an_instant() -> None:
    rule = Recurrence(RepeatUnit.DAILY, 3, date(2026, 12, 10))
    start = datetime(2026, 12, 1, 12, 0)
    after = datetime(2026, 12, 4, 12, 0, tzinfo=LONDON)
    assert next_occurrence(start, LONDON, rule, after) == datetime(
        2026, 12, 7, 12, 0, tzinfo=LONDON
    )
    assert next_occurrence(start, LONDON, rule, datetime(2026, 12, 10, 13, tzinfo=LONDON)) is None


@pytest.mark.parametrize("frequency", [0, 31])
def test_frequency_bounds(frequency: int) -> None:
    with pytest.raises(ValueError, match="frequency must be 1-30"):
        Recurrence(RepeatUnit.DAILY, frequency, date(2027, 1, 1))
