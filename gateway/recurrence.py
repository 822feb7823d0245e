"""Recurring send series in an account's local time: month ends and DST handled, no clock read."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

MAX_FREQUENCY = 30


class RepeatUnit(StrEnum):
    """The period of a recurring series, as the provider APIs name it."""

    DAILY = "Daily"
    WEEKLY = "Weekly"
    MONTHLY = "Monthly"
    YEARLY = "Yearly"


@dataclass(frozen=True, slots=True)
class Recurrence:
    """Every `frequency` units from a local start time until (and including) the `until` date."""

    unit: RepeatUnit
    frequency: int
    until: date

    def __post_init__(self) -> None:
        if not 1 <= self.frequency <= MAX_FREQUENCY:
            raise ValueError(f"frequency must be 1-{MAX_FREQUENCY}, got {self.frequency}")


def _add_months(start: datetime, months: int) -> datetime:
    """Same wall time `months` later, clamped to the month's last day (31 Jan + 1 -> 28/29 Feb)."""
    total = start.month - 1 + months
    year, month = start.year + total // 12, total % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def _nth(start: datetime, rule: Recurrence, n: int) -> datetime:
    """The n-th occurrence as a naive local wall time, always computed from the start (no drift)."""
    step = n * rule.frequency
    match rule.unit:
        case RepeatUnit.DAILY:
            return start + timedelta(days=step)
        case RepeatUnit.WEEKLY:
            return start + timedelta(weeks=step)
        case RepeatUnit.MONTHLY:
            return _add_months(start, step)
        case RepeatUnit.YEARLY:
            return _add_months(start, 12 * step)


def resolve_local(wall: datetime, zone: ZoneInfo) -> datetime:
    """Turn a naive local wall time into an aware instant.

    A time skipped by a DST jump forward (e.g. 02:30 on the spring-forward night) is sent at the
    same offset into the new hour (03:30); a time that occurs twice is sent at its first occurrence.
    """
    candidate = wall.replace(tzinfo=zone, fold=0)
    roundtrip = candidate.astimezone(UTC).astimezone(zone)
    if roundtrip.replace(tzinfo=None) != wall:
        # Nonexistent: fold=0 applies the offset from before the gap (PEP 495), which lands the
        # same distance past the jump; normalise so the result shows the real local time.
        return roundtrip
    return candidate


def occurrences(start_local: datetime, zone: ZoneInfo, rule: Recurrence) -> Iterator[datetime]:
    """Yield every occurrence (aware, in `zone`) from the start up to the end of `rule.until`."""
    if start_local.tzinfo is not None:
        start_local = start_local.astimezone(zone).replace(tzinfo=None)
    n = 0
    while True:
        wall = _nth(start_local, rule, n)
        if wall.date() > rule.until:
            return
        yield resolve_local(wall, zone)
        n += 1


def next_occurrence(
    start_local: datetime, zone: ZoneInfo, rule: Recurrence, after: datetime
) -> datetime | None:
    """Return the first occurrence strictly after the aware instant `after`, or None when done."""
    for moment in occurrences(start_local, zone, rule):
        if moment > after:
            return moment
    return None
