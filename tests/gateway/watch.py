"""Waiting for the store to change (after each commit), instead of polling it on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from gateway.daemon import Gateway


class StoreWatch:
    """Wakes a waiter after every commit, so a test waits for the store to change, not by time."""

    def __init__(self, gateway: Gateway) -> None:
        self.changed = asyncio.Event()
        self._then = gateway.store.on_commit

        def on_commit(seconds: float) -> None:
            if self._then is not None:
                self._then(seconds)
            self.changed.set()

        gateway.store.on_commit = on_commit

    async def until(self, condition: Callable[[], bool]) -> None:
        """Return once `condition` holds (checked after each commit)."""
        while True:
            self.changed.clear()
            if condition():
                return
            await self.changed.wait()
