"""One virtual clock for the gateway and the emulated network, with real PTY I/O between them.

The gateway's throttle sleeps on it and the network stamps every submit with it (it *is* the
emulator's ManualClock). It moves only when the gateway's event loop has nothing left to run,
no AT+CMGS is on the wire and a sleeper is waiting; then it jumps straight to the earliest
wake-up. So the network records a submit at exactly the virtual time the throttle let it start,
however loaded the machine, and a run lasts as long as its I/O, not as long as its throttles.

The host's wall clock may be stepped (`step_wall`: NTP correcting a box without an RTC, or an
operator setting the date): the gateway's wall time jumps, its monotonic time and the network's
clock (the SCTS of every message and report) do not.

Real timers (I/O timeouts, the dispatcher's tick, radio polls) stay on the loop's own clock.
So work that waits only on the store's clock (a retry's backoff, a scheduled send) becomes due
only while some throttle keeps virtual time moving; with none waiting, time stands still.
Bookkeeping timers (the gateway's `Clock.timer`: SIM lease renewals) never move time by
themselves, but time never jumps past one either: a lease is renewed at its virtual moment.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import selectors
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.outbox import Clock
from modem.emulator import EmulatorPool
from modem.emulator.clock import ManualClock

T = TypeVar("T")


class LockstepClock:
    """Virtual seconds shared by the gateway (monotonic, wall, sleep) and an EmulatorPool."""

    def __init__(self, emu: EmulatorPool) -> None:
        if not isinstance(emu.clock, ManualClock):
            raise TypeError("LockstepClock needs EmulatorPool(clock='manual')")
        self._emu = emu
        self._manual = emu.clock
        # (deadline, order, future, whether it may make time move)
        self._sleepers: list[tuple[float, int, asyncio.Future[None], bool]] = []
        self._seq = itertools.count()
        self._holds: list[Callable[[], bool]] = []
        self.wall_offset = 0.0  # seconds the host's wall clock was stepped by, in all

    def hold_while(self, busy: Callable[[], bool]) -> None:
        """Never move while `busy()` (e.g. a part is on the wire: `bool(outbox.on_wire)`);
        with several (two daemons on one clock), while any of them is busy."""
        self._holds.append(busy)

    def _busy(self) -> bool:
        return any(busy() for busy in self._holds)

    def monotonic(self) -> float:
        """Virtual seconds; the same number the network stamps submits with."""
        return self._manual.now()

    def wall(self) -> datetime:
        """Virtual wall time: the network's clock, plus every step of the host's clock."""
        return datetime.fromtimestamp(self._manual.now() + self.wall_offset, UTC)

    def step_wall(self, seconds: float) -> None:
        """Step the host's wall clock by `seconds` (back if negative); nothing else moves."""
        self.wall_offset += seconds

    async def sleep(self, delay: float, *, moves: bool = True) -> None:
        """Wait until virtual time has moved `delay` seconds on (`moves=False`: a timer that
        is no reason for time to move, woken when something else moves it that far)."""
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        deadline = self._manual.now() + delay
        heapq.heappush(self._sleepers, (deadline, next(self._seq), future, moves))
        await future

    async def timer(self, delay: float) -> None:
        """A bookkeeping timer: sleep(delay, moves=False)."""
        await self.sleep(delay, moves=False)

    def clock(self) -> Clock:
        """The gateway's injected clock."""
        return Clock(self.monotonic, self.wall, self.sleep, self.timer)

    def on_idle(self) -> bool:
        """The gateway's loop is about to block: jump to the next wake-up if nothing can still
        happen at this virtual time; True when sleepers were woken."""
        while self._sleepers and self._sleepers[0][2].done():  # cancelled (shutdown)
            heapq.heappop(self._sleepers)
        if self._busy() or not any(moves and not f.done() for _, _, f, moves in self._sleepers):
            return False
        deadline = self._sleepers[0][0]
        now = self._manual.now()
        if deadline > now:
            # Blocking is right here: the gateway's loop has nothing else to do, and the
            # network's own timers (reports, expiry) must fall due before anyone wakes.
            self._emu.advance(deadline - now)
        now = self._manual.now()
        while self._sleepers and self._sleepers[0][0] <= now:
            _, _, future, _ = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)
        return True

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """asyncio.run(coro), on a fresh loop that calls on_idle() whenever it would block."""
        with asyncio.Runner(loop_factory=lambda: _IdleLoop(self.on_idle)) as runner:
            return runner.run(coro)


class _IdleSelector(selectors.DefaultSelector):
    def __init__(self, on_idle: Callable[[], bool]) -> None:
        super().__init__()
        self._on_idle = on_idle

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)  # callbacks are ready: not idle
        ready = super().select(0)
        if ready or self._on_idle():
            return ready  # woken sleepers' callbacks are queued; the loop runs them now
        return super().select(timeout)


class _IdleLoop(asyncio.SelectorEventLoop):
    def __init__(self, on_idle: Callable[[], bool]) -> None:
        super().__init__(_IdleSelector(on_idle))
