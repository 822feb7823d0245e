"""Fleet mode's wake-ups: one LISTEN connection per daemon on the channel the store NOTIFYs at
the COMMIT of queued work (gateway.store.base), so a message accepted on box A is claimed by
box B at once instead of at B's next polling tick.

An asyncio psycopg connection of its own (the store's connection is synchronous and busy with
transactions). It calls `on_work` for every notification and once after each (re)connect,
since whatever was notified while it was away is gone; a lost server (restart, failover, a
killed backend) is reconnected with capped exponential backoff, and a quiet connection is
probed now and then so a silently dead one is noticed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg

from gateway.store.postgres import WORK_CHANNEL

log = logging.getLogger(__name__)


class WorkListener:
    """LISTEN for queued work on a PostgreSQL store; `on_work()` on each notification."""

    def __init__(
        self,
        url: str,
        on_work: Callable[[], None],
        *,
        backoff_first: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float = 10.0,
        probe_after: float = 30.0,
    ) -> None:
        self.url = url
        self.on_work = on_work
        self.backoff_first = backoff_first
        self.backoff_cap = backoff_cap
        self.timeout = timeout  # connecting, LISTEN, and each probe
        self.probe_after = probe_after  # seconds without a notification before a probe
        self.backend_pid: int | None = None  # the server process listening (None: not now)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, reconnecting whenever the connection is lost."""
        attempt = 0
        while not stop.is_set():
            try:
                conn = await asyncio.wait_for(
                    psycopg.AsyncConnection.connect(self.url, autocommit=True), self.timeout
                )
            except (psycopg.Error, OSError, TimeoutError) as exc:
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "work listener: cannot connect (%s); retrying", exc)
            else:
                try:
                    await self._listen(conn, stop)
                    attempt = 0
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    log.warning("work listener: connection lost (%s); reconnecting", exc)
                    attempt = 0  # it was up: the first retry comes soon
                finally:
                    self.backend_pid = None
                    with contextlib.suppress(psycopg.Error, OSError):
                        await asyncio.wait_for(conn.close(), self.timeout)
            if stop.is_set():
                break
            delay = min(self.backoff_first * 2 ** min(attempt, 16), self.backoff_cap)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _listen(self, conn: psycopg.AsyncConnection[object], stop: asyncio.Event) -> None:
        await asyncio.wait_for(conn.execute(f"LISTEN {WORK_CHANNEL}"), self.timeout)
        self.backend_pid = conn.info.backend_pid
        self.on_work()  # what was notified while nobody listened is gone: look once
        stopping = asyncio.ensure_future(stop.wait())
        receiving = asyncio.ensure_future(self._receive(conn))
        try:
            await asyncio.wait({stopping, receiving}, return_when="FIRST_COMPLETED")
            if receiving.done():
                receiving.result()  # the connection's error, if it ended with one
        finally:
            stopping.cancel()
            receiving.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error, OSError):
                await receiving

    async def _receive(self, conn: psycopg.AsyncConnection[object]) -> None:
        while True:
            async for _ in conn.notifies(timeout=self.probe_after):
                self.on_work()
            # Quiet for a while: make sure the server is still there (a dead peer that never
            # said so would leave this box polling only).
            await asyncio.wait_for(conn.execute("SELECT 1"), self.timeout)
