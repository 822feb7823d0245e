"""Per-SIM pacing: one SMS every N seconds plus rolling caps (clock passed in, never read)."""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from gateway.models import ThrottlePolicy

_MINUTE = 60.0
_HOUR = 3600.0
_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class ThrottleDecision:
    """Whether a send may start now, and if not the earliest time it may."""

    allowed: bool
    not_before: float
    reason: str = ""


class Throttle:
    """Pacing state of one long code; `now` is a monotonic time in seconds given by the caller."""

    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self._last_send: float | None = None
        # Send times in order; those before `_first` fell out of the day. They are cut off in
        # bulk, not one at a time: a SIM sending 1/s keeps 86,400 of them, and every check
        # would otherwise move them all. Counting a window is then a bisection, not a walk.
        self._sends: list[float] = []
        self._first = 0
        # recipient -> time of the first send to them inside the current rolling day, oldest
        # first (record's times never go back), so the day's end prunes from the front only.
        self._recipients: OrderedDict[str, float] = OrderedDict()

    @property
    def last_send(self) -> float | None:
        """Time of the most recent send, or None."""
        return self._last_send

    def restore(self, sends: Iterable[tuple[float, str | None]]) -> None:
        """Rebuild the pacing state from persisted (send time, recipient) pairs (after a
        restart or a replug): the interval, the rolling caps and the day's distinct
        recipients all continue where they were."""
        for t, recipient in sorted(sends, key=lambda s: s[0]):
            self.record(t, recipient)

    def headroom(self, now: float) -> int | None:
        """How many more sends the day caps allow from `now` (distinct recipients counted as if
        each send were to a new one); None when no day cap is set."""
        self._prune(now)
        p = self.policy
        room: list[int] = []
        if p.per_day is not None:
            room.append(p.per_day - self._count_since(now - _DAY)[0])
        if p.recipients_per_day is not None:
            room.append(p.recipients_per_day - len(self._recipients))
        return max(min(room), 0) if room else None

    def _prune(self, now: float) -> None:
        self._prune_sends(now)
        recipients = self._recipients
        while recipients and next(iter(recipients.values())) <= now - _DAY:
            recipients.popitem(last=False)

    def _prune_sends(self, now: float) -> None:
        sends = self._sends
        self._first = bisect_right(sends, now - _DAY, self._first)
        if self._first > len(sends) // 2:  # amortised: each time is moved at most once or so
            del sends[: self._first]
            self._first = 0

    def _count_since(self, since: float) -> tuple[int, float]:
        """Sends after `since`, and the oldest of them (for when the window frees up)."""
        sends = self._sends
        first = bisect_right(sends, since, self._first)
        return len(sends) - first, sends[first] if first < len(sends) else since

    def free_at(self, now: float) -> float:
        """The earliest time from `now` a send may start by the interval and the rolling caps;
        a new recipient may have to wait longer (the day's distinct-recipient cap). Cheaper than
        check: the day's recipients are not looked at."""
        self._prune_sends(now)
        return self._paced(now)[0]

    def check(self, now: float, recipient: str | None = None) -> ThrottleDecision:
        """Decide whether a send to `recipient` may start at `now`."""
        self._prune(now)
        p = self.policy
        not_before, reason = self._paced(now)
        if (
            p.recipients_per_day is not None
            and recipient is not None
            and recipient not in self._recipients
            and len(self._recipients) >= p.recipients_per_day
        ):
            not_before = max(not_before, next(iter(self._recipients.values())) + _DAY)
            reason = "recipients_per_day"
        return ThrottleDecision(allowed=not_before <= now, not_before=not_before, reason=reason)

    def _paced(self, now: float) -> tuple[float, str]:
        """The earliest start by the interval and the rolling caps, and which one holds it."""
        p = self.policy
        not_before = now
        reason = ""
        if self._last_send is not None and now < self._last_send + p.interval:
            not_before = self._last_send + p.interval
            reason = "interval"
        for cap, window, name in (
            (p.per_minute, _MINUTE, "per_minute"),
            (p.per_hour, _HOUR, "per_hour"),
            (p.per_day, _DAY, "per_day"),
        ):
            if cap is None:
                continue
            count, oldest = self._count_since(now - window)
            if count >= cap and oldest + window > not_before:
                not_before = oldest + window
                reason = name
        return not_before, reason

    def record(self, now: float, recipient: str | None = None) -> None:
        """Note that a send started at `now`."""
        self._last_send = now
        if self._sends and now < self._sends[-1]:
            insort(self._sends, now, self._first)  # a caller's clock went back: keep the order
        else:
            self._sends.append(now)
        if recipient is not None and recipient not in self._recipients:
            # Oldest first even then: a time before the newest one is kept at the newest's, so
            # that recipient falls out of the day a little late (the cap errs on the strict side).
            self._recipients[recipient] = max(now, next(reversed(self._recipients.values()), now))
