"""Per-SIM pacing after a busy day: one Throttle.check and free_at with a day of sends at 1/s
to distinct recipients behind them (86,400 of each), with no caps and with every cap set. The
pool asks every SIM for each message it routes, on the event loop."""

from __future__ import annotations

import time

from gateway.models import ThrottlePolicy
from gateway.throttle import Throttle

DAY = 86_400
CALLS = 2_000


def _per_call(policy: ThrottlePolicy) -> float:
    throttle = Throttle(policy)
    for second in range(DAY):
        throttle.record(float(second), f"+1202{second:07d}")
    now = float(DAY)
    started = time.perf_counter()
    for i in range(CALLS):  # the day moves on: old sends and recipients fall out meanwhile
        throttle.check(now + i, "+19995550100")
        throttle.free_at(now + i)
    return (time.perf_counter() - started) / CALLS * 1e6


def main() -> None:
    for name, policy in (
        ("no caps", ThrottlePolicy()),
        ("every cap", ThrottlePolicy(per_minute=60, per_hour=3600, per_day=DAY,
                                     recipients_per_day=DAY)),
    ):  # fmt: skip
        print(f"  {name:10} {_per_call(policy):7.1f} us per check + free_at "
              f"(a day of {DAY:,} sends behind it)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
