"""The async main: store, pool, workers, dispatcher, HTTP front-ends and sd_notify."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from typing import Protocol

from gateway import sdnotify
from gateway.config import Config
from gateway.inbox import Inbox
from gateway.outbox import Clock, Outbox
from gateway.pool import SimPool
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher
from gateway.service import GatewayService
from gateway.store import Store
from gateway.worker import ModemWorker
from modem.client import ClientConfig

log = logging.getLogger(__name__)

FRONTEND_GROUP = "smsgw.frontends"
INCOMPLETE_INBOUND_AFTER = timedelta(hours=1)
HOUSEKEEPING_SECONDS = 30.0


class Frontend(Protocol):
    """An HTTP (or other) front-end: started with the service, returns its stop function."""

    def __call__(
        self, service: GatewayService, config: Config
    ) -> Awaitable[Callable[[], Awaitable[None]]]:
        """Start serving; return a coroutine function that stops it."""
        ...


def load_frontends() -> list[Frontend]:
    """Front-ends registered under the `smsgw.frontends` entry point group (api/ registers its
    aiohttp app there, so the gateway never imports the layer above it)."""
    found: list[Frontend] = []
    for ep in entry_points(group=FRONTEND_GROUP):
        found.append(ep.load())
    return found


def _wall() -> datetime:
    return datetime.now(UTC)


@dataclass
class Gateway:
    """Every long-lived piece of a running gateway."""

    config: Config
    store: Store
    service: GatewayService
    pool: SimPool
    outbox: Outbox
    dispatcher: Dispatcher
    inbox: Inbox
    reports: ReportMatcher
    workers: dict[str, ModemWorker] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Config, *, wall: Callable[[], datetime] = _wall) -> Gateway:
        """Open the store, recover from a crash and wire the components together."""
        store = Store.open(config.data_dir)
        uncertain = store.recover_after_crash(now=wall())
        if uncertain:
            log.warning(
                "%d part(s) were on the wire at the last crash: now uncertain", len(uncertain)
            )
        requeued = store.requeue_uncertain(now=wall())
        if requeued:
            log.warning("%d uncertain part(s) requeued (their accounts opted in)", len(requeued))
        loop = asyncio.get_running_loop()
        pool = SimPool()
        reports = ReportMatcher(store)
        outbox = Outbox(
            store,
            pool,
            {},
            Clock(loop.time, wall, asyncio.sleep),
            on_sent=lambda part: reports.reconcile(part, now=wall()),
        )
        inbox = Inbox(store)
        pending = inbox.restore()
        if pending:
            log.info("%d inbound part(s) waiting for the rest of their message", pending)
        service = GatewayService(store, wall=wall)
        return cls(config, store, service, pool, outbox, Dispatcher(store, outbox), inbox, reports)

    def add_worker(self, port: str, *, pin: str | None = None) -> ModemWorker:
        """Supervise a modem on `port` (a path, PTY or socket:// URL)."""
        worker = ModemWorker(
            port,
            store=self.store,
            pool=self.pool,
            dispatcher=self.dispatcher,
            inbox=self.inbox,
            reports=self.reports,
            wall=self.service.wall,
            config=ClientConfig(pin=pin),
        )
        self.workers[port] = worker
        return worker

    async def housekeeping(self, stop: asyncio.Event) -> None:
        """Surface inbound messages whose missing parts never came; ping the watchdog."""
        interval = sdnotify.watchdog_interval()
        period = min(HOUSEKEEPING_SECONDS, interval) if interval else HOUSEKEEPING_SECONDS
        while not stop.is_set():
            self.inbox.expire(self.service.wall(), INCOMPLETE_INBOUND_AFTER)
            if interval:
                # Pinged from the event loop itself: a stuck loop stops the pings and systemd
                # restarts us.
                sdnotify.notify("WATCHDOG=1")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)


async def serve(
    config: Config,
    *,
    stop: asyncio.Event,
    ports: Sequence[tuple[str, str | None]] = (),
    on_ready: Callable[[Gateway], None] | None = None,
    frontends: Sequence[Frontend] | None = None,
) -> None:
    """Run the gateway until `stop` is set."""
    gateway = Gateway.build(config)
    tasks: list[asyncio.Task[None]] = []
    stoppers: list[Callable[[], Awaitable[None]]] = []
    try:
        for port, pin in [*((m.port, m.pin) for m in config.modems), *ports]:
            worker = gateway.add_worker(port, pin=pin)
            tasks.append(asyncio.create_task(worker.run(stop), name=f"worker {port}"))
        tasks.append(asyncio.create_task(gateway.dispatcher.run(stop), name="dispatcher"))
        tasks.append(asyncio.create_task(gateway.housekeeping(stop), name="housekeeping"))
        for frontend in load_frontends() if frontends is None else frontends:
            stoppers.append(await frontend(gateway.service, config))
        sdnotify.notify(f"READY=1\nSTATUS=serving {len(gateway.workers)} modem port(s)")
        if on_ready is not None:
            on_ready(gateway)
        await stop.wait()
        sdnotify.notify("STOPPING=1")
    finally:
        stop.set()
        for stopper in stoppers:
            await stopper()
        # Workers finish the AT command in flight (AT+CMGS is shielded) before closing.
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.dispatcher.close()
        gateway.store.close()


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM / SIGINT set `stop` so the daemon shuts down cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
