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

With `virtual_loop=True` the loop's own clock is the virtual one too: every asyncio timer (I/O
timeouts, polls, back-offs, ticks) runs on it, and time jumps to the next timer or sleeper
whenever the gateway's loop would block AND the emulator has answered everything it was sent
(one round trip to its thread, and a millisecond for the kernel to pass PTY bytes on). A modem
that answers is never timed out however loaded the machine is; one that does not answer (hung,
rebooted under a command) is timed out at the driver's real deadline, in virtual seconds. Time
never jumps past the emulator's own next timer either (boot URCs, a slow radio's answer): what
it sends then arrives before a later timeout of the loop's runs. No
hold is needed then (hold_while is ignored): an AT+CMGS that is answered takes no virtual time.
Nor does work the loop handed to a thread (the accept path's fsync): time waits for it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import select
import selectors
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any, TypeVar

from gateway.outbox import Clock
from modem.emulator import EmulatorPool
from modem.emulator.clock import ManualClock

T = TypeVar("T")


class LockstepClock:
    """Virtual seconds shared by the gateway (monotonic, wall, sleep) and an EmulatorPool."""

    def __init__(self, emu: EmulatorPool, *, virtual_loop: bool = False) -> None:
        if not isinstance(emu.clock, ManualClock):
            raise TypeError("LockstepClock needs EmulatorPool(clock='manual')")
        self.virtual_loop = virtual_loop
        self.threads = 0  # executor jobs of the loop in flight (a virtual loop waits for them)
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

    def on_idle(self, timeout: float | None = None) -> bool:
        """The gateway's loop is about to block (for `timeout` seconds of its own clock): jump
        to the next wake-up if nothing can still happen at this virtual time; True when time
        moved or sleepers were woken."""
        while self._sleepers and self._sleepers[0][2].done():  # cancelled (shutdown)
            heapq.heappop(self._sleepers)
        now = self._manual.now()
        if self.virtual_loop and self.threads:
            return False  # a thread is working for the loop: its answer comes in real time
        if self.virtual_loop:
            wakes = [d for d, _, f, moves in self._sleepers if moves and not f.done()]
            if timeout is not None:
                wakes.append(now + timeout)
            # The emulator's own timers too (boot URCs after a reboot, a slow radio's answer):
            # jumping past one would run the loop's timeouts before the bytes it sends arrive.
            emulated = self._emu.call(self._manual.next_deadline)
            if emulated is not None:
                wakes.append(emulated)
            if not wakes:
                return False  # nothing is due ever: only outside I/O can wake the loop
            # Never past a bookkeeping timer, and at least one step of the float: a timer a
            # rounding error ahead must come due.
            earliest = self._sleepers[0][0] if self._sleepers else math.inf
            deadline = min(*wakes, earliest)
            deadline = max(deadline, math.nextafter(now, math.inf))
        elif self._busy() or not any(moves and not f.done() for _, _, f, moves in self._sleepers):
            return False
        else:
            deadline = self._sleepers[0][0]
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

    def settled(self) -> None:
        """Wait until the emulator has handled everything already sent to it."""
        self._emu.sync()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """asyncio.run(coro), on a fresh loop that calls on_idle() whenever it would block."""
        with asyncio.Runner(loop_factory=lambda: _IdleLoop(self)) as runner:
            return runner.run(coro)


# How long the virtual loop waits for bytes the emulator already wrote to reach the PTY's other
# end (the kernel hands them on in a work item of its own) before it calls the loop idle.
_SETTLE_SECONDS = 0.001
_SETTLE_ROUNDS = 2


class _IdleSelector(selectors.DefaultSelector):
    def __init__(self, clock: LockstepClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)  # callbacks are ready: not idle
        ready = super().select(0)
        if ready:
            return ready
        if self._clock.virtual_loop:
            # Twice: bytes the gateway wrote reach the emulator's end of the PTY in a kernel
            # work item of their own, which a busy machine may run after the first settle.
            for _ in range(_SETTLE_ROUNDS):
                self._clock.settled()
                self._pull()
                ready = super().select(_SETTLE_SECONDS)
                if ready:
                    return ready  # the emulator's answer: not idle
        if self._clock.on_idle(timeout):
            return []  # time moved: due timers and woken sleepers run now
        return super().select(timeout)

    def _pull(self) -> None:
        """Wait for the bytes the emulator already wrote to reach the gateway's end of each
        PTY: poll(2) on a tty waits for the kernel's work item that hands them on, which
        epoll does not (under load it ran later than both settles, and a timeout fired)."""
        poller = select.poll()
        for key in self.get_map().values():
            if key.events & selectors.EVENT_READ:
                poller.register(key.fd, select.POLLIN)
        poller.poll(0)


class _IdleLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: LockstepClock) -> None:
        super().__init__(_IdleSelector(clock))
        self._lockstep = clock
        # Virtual seconds since the start, like a monotonic clock: at Unix-epoch magnitudes the
        # loop's clock resolution (1 ns) would vanish in rounding and a due timer never run.
        self._origin = clock.monotonic()

    def time(self) -> float:
        if self._lockstep.virtual_loop:
            return self._lockstep.monotonic() - self._origin
        return super().time()

    def run_in_executor(  # type: ignore[override]
        self, executor: Executor | None, func: Callable[..., T], *args: Any
    ) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._lockstep.threads += 1

        def done(_: object) -> None:
            self._lockstep.threads -= 1

        future.add_done_callback(done)
        return future
