"""The async main: store, pool, workers, dispatcher, webhook sender, HTTP front-ends and
sd_notify."""

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

from gateway.appliance import sdnotify
from gateway.appliance.discovery import Discovery
from gateway.config import Config
from gateway.inbox import Inbox
from gateway.leases import LeaseSettings, SimLeases
from gateway.operator import LiveModem
from gateway.outbox import Clock, Outbox
from gateway.pool import SimPool
from gateway.ratelimit import RateLimiter
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher
from gateway.service import GatewayService
from gateway.store import Store
from gateway.store.listen import WorkListener
from gateway.telemetry import Telemetry
from gateway.webhooks import WebhookWorker
from gateway.worker import ModemWorker
from modem.client import ClientConfig

log = logging.getLogger(__name__)

FRONTEND_GROUP = "smsgw.frontends"
INCOMPLETE_INBOUND_AFTER = timedelta(hours=1)
HOUSEKEEPING_SECONDS = 30.0
# The database file's integrity_check runs in a thread at start and then this often (it reads
# the whole file); health reports its last result.
INTEGRITY_EVERY = 3600.0
INTEGRITY_TIMEOUT = 1800.0
STICKY_MEMORY = timedelta(days=30)  # how long a recipient keeps "their" long code


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
    webhooks: WebhookWorker
    workers: dict[str, ModemWorker] = field(default_factory=dict)
    # Workers started at run time (configured ports and hot-plug): each has its own stop event,
    # so one unplugged modem can be let go without stopping the rest.
    running: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = field(default_factory=dict)
    # Set whenever a worker is added or removed or changes state (see all_ready).
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    # What the last integrity check of the database file found (empty: sound, or not run yet).
    integrity: list[str] = field(default_factory=list)
    # Fleet mode (PostgreSQL): LISTENs for work queued by any box and wakes the dispatcher.
    listener: WorkListener | None = None

    @classmethod
    def build(
        cls, config: Config, *, wall: Callable[[], datetime] = _wall, clock: Clock | None = None
    ) -> Gateway:
        """Open the store (as the one daemon on an SQLite file: DatabaseInUseError while another
        runs; the lock is let go with store.close()), recover from a crash and wire the
        components together.

        `clock` (default: the loop's time, `wall` and asyncio.sleep) paces every SIM, stamps
        the store and times the SIM leases; tests pass a virtual one, and its wall then
        replaces `wall`.

        On PostgreSQL (fleet mode) other boxes may be sending right now: recovery is scoped to
        the SIMs no box holds a live lease on (and, as each of this box's SIMs is attached, to
        that SIM when its lease is taken over), never every `sending` part of the fleet.
        """
        if clock is None:
            clock = Clock(asyncio.get_running_loop().time, wall, asyncio.sleep)
        # daemon=True: on SQLite, refused (DatabaseInUseError) while another daemon runs on the
        # same file, before this one's crash recovery could judge that one's parts on the wire.
        store = Store.open(
            config.database_url or config.data_dir,
            busy_timeout_ms=config.busy_timeout_ms,
            daemon=True,
        )
        try:
            return cls._assemble(config, store, clock)
        except BaseException:
            store.close()  # and its lock: a daemon that failed to start holds nothing
            raise

    @classmethod
    def _assemble(cls, config: Config, store: Store, clock: Clock) -> Gateway:
        """Recover `store` from a crash and wire the components around it."""
        wall = clock.wall
        fleet = store.dialect == "postgresql"
        if fleet:
            uncertain = store.recover_unleased_sending(now=wall())
        else:
            uncertain = store.recover_after_crash(now=wall())
        if uncertain:
            log.warning(
                "%d part(s) were on the wire at the last crash: now uncertain", len(uncertain)
            )
        requeued = store.requeue_uncertain(now=wall())
        if requeued:
            log.warning("%d uncertain part(s) requeued (their accounts opted in)", len(requeued))
        telemetry = Telemetry()
        store.on_commit = telemetry.commit
        pool = SimPool()
        pool.restore_sticky(store.last_sims_by_recipient(wall() - STICKY_MEMORY))
        reports = ReportMatcher(store, telemetry=telemetry)
        outbox = Outbox(
            store,
            pool,
            {},
            clock,
            on_sent=lambda part: reports.reconcile(part, now=wall()),
            telemetry=telemetry,
        )
        inbox = Inbox(store)
        pending = inbox.restore()
        if pending:
            log.info("%d inbound part(s) waiting for the rest of their message", pending)
        service = GatewayService(
            store, wall=wall, pool=pool, telemetry=telemetry, monotonic=clock.monotonic
        )
        leases = None
        if fleet:
            settings = LeaseSettings(config.fleet_box_id(), config.lease_ttl)
            leases = SimLeases(store, settings, wall)
            log.info("fleet mode: box %s, SIM leases of %g s", settings.box_id, settings.ttl)
        dispatcher = Dispatcher(store, outbox, leases=leases)
        service.on_accepted = dispatcher.wake
        # Its own tasks, bounded per host: a slow subscriber never holds up a send.
        service.limiter = RateLimiter(config.limits, clock.monotonic)
        # Claims its attempts under this box and process (the leases' token in fleet mode).
        webhooks = WebhookWorker(
            store, config.webhooks, clock=clock, box_id=config.fleet_box_id(),
            owner=leases.holder.incarnation if leases is not None else None,
        )  # fmt: skip
        store.on_webhook_enqueued = webhooks.wake
        gateway = cls(config, store, service, pool, outbox, dispatcher, inbox, reports, webhooks)
        if fleet:
            gateway.listener = WorkListener(config.database_url, dispatcher.wake)
        service.live_modems = gateway.live_modems
        service.integrity_problems = lambda: gateway.integrity
        return gateway

    async def join_fleet(self) -> None:
        """Fleet mode, before any worker starts: take this box_id for this process, or raise
        BoxInUseError when another running daemon has it (see SimLeases.join; a wait of at
        most WATCH_PERIODS lease renewal periods, on the injected clock)."""
        if self.dispatcher.leases is not None:
            await self.dispatcher.leases.join(self.outbox.clock.sleep)

    def leave_fleet(self) -> None:
        """Fleet mode, at a clean stop once every lease is released: the next daemon with this
        box_id starts at once."""
        if self.dispatcher.leases is None:
            return
        try:
            self.dispatcher.leases.leave()
        except Exception as exc:  # the next start then waits to see this process is gone
            log.warning("box_id not let go (%s)", exc)

    def live_modems(self) -> list[LiveModem]:
        """Every expected modem (configured, --port, emulated, hot-plugged) as its worker sees
        it right now (health checks and the operator's view)."""
        return [w.status() for w in self.workers.values()]

    async def all_ready(self) -> None:
        """Return once there are modems and every one of them is ready at the same moment."""
        while not (self.workers and all(w.ready.is_set() for w in self.workers.values())):
            self.changed.clear()
            await self.changed.wait()

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
            telemetry=self.service.telemetry,
            on_status=lambda _status: self.changed.set(),
        )
        self.workers[port] = worker
        self.changed.set()
        return worker

    def start_worker(self, port: str, *, pin: str | None = None) -> ModemWorker:
        """Add a modem at run time and start supervising it (configured ports, hot-plug)."""
        if port in self.running:
            return self.workers[port]
        worker = self.add_worker(port, pin=pin)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop), name=f"worker {port}")
        self.running[port] = (stop, task)
        return worker

    async def remove_worker(self, port: str) -> list[int]:
        """Stop supervising `port` (unplugged); return the parts its loss made UNCERTAIN.

        The worker releases its SIM (queued messages wait for another SIM or its return) and
        marks the modem gone; a part that was on the wire is judged by the crash rule.
        """
        entry = self.running.pop(port, None)
        worker = self.workers.pop(port, None)
        if entry is None or worker is None:
            return []
        stop, task = entry
        self.changed.set()
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        if worker.sim_id is None:
            return []
        abandoned = self.store.abandon_sending(worker.sim_id, now=self.service.wall())
        if abandoned:
            log.warning("%s: %d part(s) were on the wire when it vanished", port, len(abandoned))
        return abandoned

    async def stop_workers(self) -> None:
        """Stop every run-time worker (daemon shutdown)."""
        for stop, _ in self.running.values():
            stop.set()
        await asyncio.gather(*(task for _, task in self.running.values()), return_exceptions=True)

    def status_line(self) -> str:
        """One line for systemd's STATUS=: how many supervised modems are ready."""
        ready = sum(1 for w in self.workers.values() if w.ready.is_set())
        return f"STATUS={ready}/{len(self.workers)} modem(s) ready"

    async def housekeeping(self, stop: asyncio.Event) -> None:
        """Surface inbound messages whose missing parts never came; pick up SIM numbers and
        limits another process (the CLI) changed in the store."""
        while not stop.is_set():
            try:
                self.inbox.expire(self.service.wall(), INCOMPLETE_INBOUND_AFTER)
                changed = self.service.reload_sim_settings()
                if changed:
                    log.info("%d SIM(s): number or limits changed in the store, applied", changed)
            except Exception:
                log.exception("housekeeping failed; trying again next round")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=HOUSEKEEPING_SECONDS)

    async def check_integrity(self) -> list[str]:
        """Run the database file's integrity_check in a thread (its own read-only connection:
        the loop and the writer go on) and keep the result for health; return it."""
        try:
            problems = await asyncio.wait_for(
                asyncio.to_thread(self.store.check_offline), INTEGRITY_TIMEOUT
            )
        except Exception:
            log.exception("database integrity check could not run; keeping the last result")
            return self.integrity
        if problems and not self.integrity:
            log.error("database integrity check failed: %s", "; ".join(problems[:3]))
        elif self.integrity and not problems:
            log.warning("database integrity check passes again")
        self.integrity = problems
        return problems

    async def integrity_watch(self, stop: asyncio.Event) -> None:
        """Check the database file at start and every INTEGRITY_EVERY seconds."""
        while not stop.is_set():
            await self.check_integrity()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=INTEGRITY_EVERY)

    async def watchdog(self, stop: asyncio.Event) -> None:
        """Ping systemd's watchdog (and refresh STATUS=) from the event loop every WatchdogSec/4.

        A task of its own, so slow housekeeping never delays a ping; pinged from the loop, so a
        blocked loop stops the pings and systemd restarts the daemon.
        """
        period = sdnotify.watchdog_period()
        if period is None:
            return
        while not stop.is_set():
            sdnotify.notify(f"WATCHDOG=1\n{self.status_line()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=period)


async def serve(
    config: Config,
    *,
    stop: asyncio.Event,
    ports: Sequence[tuple[str, str | None]] = (),
    on_ready: Callable[[Gateway], None] | None = None,
    on_modems_ready: Callable[[Gateway], None] | None = None,
    frontends: Sequence[Frontend] | None = None,
    clock: Clock | None = None,
) -> None:
    """Run the gateway until `stop` is set (on `clock`, the real one unless a test injects one);
    `on_ready` once it serves, `on_modems_ready` the first time every expected modem is
    registered (GET /v1/health then says ready).

    Fleet mode: should another daemon take this box_id meanwhile, this one stops as cleanly
    as at `stop` and then raises BoxTakenError (see gateway.leases)."""
    gateway = Gateway.build(config, clock=clock)
    try:
        await gateway.join_fleet()
    except BaseException:
        gateway.store.close()
        raise
    box = gateway.dispatcher.leases
    if box is not None:
        # Serving the API and polling modems with no SIM to send on would hide the clash.
        box.on_deposed = stop.set
    tasks: list[asyncio.Task[None]] = []
    stoppers: list[Callable[[], Awaitable[None]]] = []
    # Leases are renewed until the last worker has let its SIM go: a shutdown waiting for an
    # AT+CMGS answer must not let another box judge that part meanwhile.
    leases_stop = asyncio.Event()
    leases = asyncio.create_task(gateway.dispatcher.keep_leases(leases_stop), name="leases")
    try:
        fixed = [*((m.port, m.pin) for m in config.modems), *ports]
        for port, pin in fixed:
            gateway.start_worker(port, pin=pin)
        tasks.append(asyncio.create_task(gateway.dispatcher.run(stop), name="dispatcher"))
        if gateway.listener is not None:
            tasks.append(asyncio.create_task(gateway.listener.run(stop), name="work listener"))
        tasks.append(asyncio.create_task(gateway.webhooks.run(stop), name="webhooks"))
        tasks.append(asyncio.create_task(gateway.housekeeping(stop), name="housekeeping"))
        tasks.append(asyncio.create_task(gateway.watchdog(stop), name="watchdog"))
        tasks.append(asyncio.create_task(gateway.integrity_watch(stop), name="integrity"))
        if config.discover:
            discovery = Discovery.for_gateway(gateway, config.discover, fixed=[p for p, _ in fixed])
            tasks.append(asyncio.create_task(discovery.run(stop), name="discovery"))
        for frontend in load_frontends() if frontends is None else frontends:
            stoppers.append(await frontend(gateway.service, config))
        sdnotify.notify(f"READY=1\n{gateway.status_line()}")
        if on_ready is not None:
            on_ready(gateway)
        if on_modems_ready is not None:
            tasks.append(
                asyncio.create_task(_when_ready(gateway, stop, on_modems_ready), name="ready")
            )
        await stop.wait()
        sdnotify.notify("STOPPING=1")
    finally:
        stop.set()
        for stopper in stoppers:
            await stopper()
        # Workers finish the AT command in flight (AT+CMGS is shielded) before closing.
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.stop_workers()
        leases_stop.set()
        await asyncio.gather(leases, return_exceptions=True)
        await gateway.dispatcher.close()
        gateway.leave_fleet()
        gateway.store.close()
    if box is not None and box.deposed:
        raise box.taken()


async def _when_ready(
    gateway: Gateway, stop: asyncio.Event, callback: Callable[[Gateway], None]
) -> None:
    waiting = asyncio.ensure_future(gateway.all_ready())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        done, _ = await asyncio.wait([waiting, stopping], return_when="FIRST_COMPLETED")
    finally:
        waiting.cancel()
        stopping.cancel()
    if waiting in done and not stop.is_set():
        callback(gateway)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM / SIGINT set `stop` so the daemon shuts down cleanly; SIGUSR1 logs every task's
    stack (what is the daemon waiting for?) without stopping it."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, log_task_stacks)


def log_task_stacks() -> None:
    """Log the stack of every asyncio task (support diagnostics)."""
    for task in asyncio.all_tasks():
        frames = task.get_stack(limit=8)
        where = " <- ".join(f"{f.f_code.co_name}:{f.f_lineno}" for f in reversed(frames))
        log.warning("task %s: %s", task.get_name(), where or "(not started)")
