"""Schedulers for the emulator: a virtual clock tests advance, and one on the asyncio loop."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol

# Virtual time starts here so SCTS stamps are the same on every run (2026-01-01T00:00:00Z).
VIRTUAL_EPOCH = 1767225600.0


class Handle(Protocol):
    """A scheduled callback that can be cancelled."""

    def cancel(self) -> None:
        """Stop the callback from running."""


class Scheduler(Protocol):
    """What the network and the modems use to tell time and defer work."""

    def now(self) -> float:
        """Seconds since the Unix epoch (virtual or real)."""

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        """Run callback after delay seconds (delay <= 0: as soon as possible, never inline)."""


class _ManualHandle:
    __slots__ = ("callback", "cancelled")

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class ManualClock:
    """Virtual time that only moves when a test calls advance(); zero delays run via `soon`.

    All methods must be called from the thread that owns the emulator's event loop (the pool's
    facade does that for you).
    """

    def __init__(self, soon: Callable[[Callable[[], None]], object], start: float = VIRTUAL_EPOCH):
        self._soon = soon
        self._now = start
        self._heap: list[tuple[float, int, _ManualHandle]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        handle = _ManualHandle(callback)
        if delay <= 0:
            self._soon(lambda: None if handle.cancelled else handle.callback())
        else:
            heapq.heappush(self._heap, (self._now + delay, next(self._seq), handle))
        return handle

    def pending(self) -> int:
        """How many delayed callbacks are still waiting."""
        return sum(1 for _, _, h in self._heap if not h.cancelled)

    def next_deadline(self) -> float | None:
        """Virtual time of the earliest waiting callback, if any."""
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def advance(self, seconds: float) -> int:
        """Move time forward, running callbacks that fall due, in order; returns how many ran."""
        target = self._now + seconds
        ran = 0
        # A microsecond of slack: 2.9 + 0.1 seconds must reach a deadline set 3 seconds ahead.
        while self._heap and self._heap[0][0] <= target + 1e-6:
            when, _, handle = heapq.heappop(self._heap)
            self._now = max(self._now, when)
            if not handle.cancelled:
                handle.callback()
                ran += 1
        self._now = target
        return ran


class LoopClock:
    """Real time on an asyncio loop, optionally sped up (scale 10 = ten times faster)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, scale: float = 1.0) -> None:
        self._loop = loop
        self._scale = scale

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> Handle:
        if delay <= 0:
            return self._loop.call_soon(callback)
        return self._loop.call_later(delay / self._scale, callback)
