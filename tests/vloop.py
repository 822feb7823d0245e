"""A virtual-time asyncio loop: sleeps and timeouts complete instantly, in order, deterministically.

When no callback is ready, the loop jumps its clock to the next timer instead of blocking, so
tests exercise real asyncio.sleep / wait_for code paths without waiting and without sleeps.
Only for code that does no real I/O.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

T = TypeVar("T")
EPOCH = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: VirtualTimeLoop) -> None:
        super().__init__()
        self._vloop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if ready or timeout is None or timeout <= 0:
            if timeout is None and not ready:
                raise RuntimeError("virtual loop deadlock: nothing scheduled and nothing ready")
            return ready
        self._vloop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """Event loop whose time() is virtual."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds

    def wall(self) -> datetime:
        return EPOCH + timedelta(seconds=self._virtual_now)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on a fresh virtual-time loop."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()
