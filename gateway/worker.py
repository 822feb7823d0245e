"""One supervisor per modem: connecting -> initialising -> registering <-> ready, gone -> backoff;
feeds pool, inbox, reports, and reports its state (models.MODEM_TRANSITIONS) for health checks."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.inbox import Inbox
from gateway.models import MODEM_TRANSITIONS, ModemState
from gateway.numbers import mask
from gateway.operator import LiveModem
from gateway.outbox import OutcomeKind, SendOutcome, is_temporary_cms
from gateway.pool import SimPool, policy_of
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher, restore_throttle
from gateway.store import Store, StoreUnavailableError
from gateway.telemetry import Telemetry
from modem.at.parsers import Registration
from modem.client import (
    ClientConfig,
    ClientEvent,
    Inbound,
    InboundSms,
    InboundStatusReport,
    ModemClient,
    ModemLost,
    ModemMemory,
    PartResult,
    SubmitStatus,
)
from modem.errors import ModemError
from modem.pdu import PduError, SmsSubmit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential reconnect delay."""

    first: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        """Delay before reconnect attempt `attempt` (0-based)."""
        return float(min(self.first * (2 ** min(attempt, 16)), self.cap))


def outcome_of(result: PartResult) -> SendOutcome:
    """Translate the driver's per-part result into the outbox's terms."""
    match result.status:
        case SubmitStatus.SENT:
            return SendOutcome(OutcomeKind.SENT, tp_mr=result.message_reference)
        case SubmitStatus.UNKNOWN:
            return SendOutcome(OutcomeKind.UNKNOWN, error=result.reason or "outcome unknown")
        case SubmitStatus.FAILED:
            kind = (
                OutcomeKind.TEMPORARY
                if is_temporary_cms(result.cms_code)
                else OutcomeKind.PERMANENT
            )
            return SendOutcome(kind, error=result.reason or "", cms_error=result.cms_code)


class ClientSender:
    """Adapts a ModemClient to the outbox's PartSender."""

    def __init__(self, client: ModemClient) -> None:
        self.client = client

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        """Submit one part through the driver."""
        (result,) = await self.client.send_submits(recipient, [submit])
        return outcome_of(result)


class ModemWorker:
    """Keeps one port's modem connected and its SIM in the pool."""

    def __init__(
        self,
        port: str,
        *,
        store: Store,
        pool: SimPool,
        dispatcher: Dispatcher,
        inbox: Inbox,
        reports: ReportMatcher,
        wall: Callable[[], datetime],
        config: ClientConfig | None = None,
        backoff: Backoff | None = None,
        poll_interval: float = 60.0,
        register_poll: float = 2.0,
        client_factory: Callable[..., ModemClient] = ModemClient,
        telemetry: Telemetry | None = None,
        on_status: Callable[[LiveModem], None] | None = None,
    ) -> None:
        self.port = port
        self.store = store
        self.pool = pool
        self.dispatcher = dispatcher
        self.inbox = inbox
        self.reports = reports
        self.wall = wall
        self.config = config or ClientConfig()
        self.backoff = backoff or Backoff()
        self.poll_interval = poll_interval
        # Until the modem is registered its +CREG is read this often, so "ready" follows the
        # network within seconds rather than a whole poll_interval.
        self.register_poll = register_poll
        self.client_factory = client_factory
        self.telemetry = telemetry
        self.on_status = on_status  # called after every change of state or registration
        self.sim_id: int | None = None
        self.modem_id: int | None = None
        self.state = ModemState.CONNECTING
        self.last_error = ""
        self.registration: Registration | None = None
        self.signal_dbm: int | None = None
        self.operator = ""
        self.iccid: str | None = None
        self.number: str | None = None
        self.model: str | None = None
        self.ready = asyncio.Event()  # set while the state is READY (tests, health checks)
        # Set once this connection's SIM is bound (or the attempt ended): inbound messages the
        # modem hands over before that wait for it, so they are stored as received on this SIM.
        self._bound = asyncio.Event()
        self._bound_sim: int | None = None
        # Survives reconnects: a wrong PIN is never sent twice, and messages the network sends
        # again after a lost acknowledgement reach the inbox once.
        self.memory = ModemMemory()

    def status(self) -> LiveModem:
        """What this port's worker knows right now (health checks, the operator's view)."""
        reg = self.registration
        return LiveModem(
            port=self.port,
            state=self.state,
            last_error="" if self.state is ModemState.READY else self.last_error,
            modem_id=self.modem_id,
            sim_id=self.sim_id,
            registration=None if reg is None else registration_name(reg),
            iccid=self.iccid,
            number=self.number,
            signal_dbm=self.signal_dbm,
            model=self.model,
        )

    def _set_state(self, state: ModemState) -> None:
        if state is self.state:
            return
        if state not in MODEM_TRANSITIONS[self.state]:
            raise RuntimeError(f"illegal modem state change {self.state} -> {state}")
        self.state = state
        if state is ModemState.READY:
            self.ready.set()
        else:
            self.ready.clear()
        self._changed()

    def _changed(self) -> None:
        if self.on_status is not None:
            self.on_status(self.status())

    async def _on_inbound(self, item: Inbound) -> bool:
        """Store what the modem received; True lets the driver delete it from the modem."""
        # Messages waiting on the SIM are handed over by the start-up scan while _bind still
        # asks the modem who it is (the driver holds no port lock while handing over).
        await self._bound.wait()
        if self._bound_sim is None:
            return False  # the connection ended before its SIM was known: keep it on the modem
        now = self.wall()
        try:
            if isinstance(item, InboundSms):
                self.inbox.receive(self.sim_id, item.pdu, now=now)
            elif isinstance(item, InboundStatusReport) and self.sim_id is not None:
                self.reports.apply(self.sim_id, item.report, now=now)
            else:
                return False
        except StoreUnavailableError as exc:
            # Disk full or DB locked: the modem keeps its copy (deleted only after a commit) and
            # the next scan hands it over again.
            log.warning("%s: inbound not stored yet (%s); kept on the modem", self.port, exc)
            return False
        except (PduError, ValueError):
            log.exception("%s: inbound message could not be stored; left on the modem", self.port)
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until `stop` is set."""
        attempt = 0
        while not stop.is_set():
            self._set_state(ModemState.CONNECTING)
            lost = asyncio.Event()
            self._bound.clear()
            self._bound_sim = None
            client = self.client_factory(
                self.port,
                config=self.config,
                on_inbound=self._on_inbound,
                memory=self.memory,
                on_command=self._on_command if self.telemetry is not None else None,
            )
            try:
                await client.open()
                self._set_state(ModemState.INITIALISING)
                await self._bind(client)
                attempt = 0
                self.last_error = ""
                self._set_state(ModemState.REGISTERING)
                remove = client.add_listener(functools.partial(self._on_event, lost=lost))
                try:
                    await self._watch(client, stop, lost)
                finally:
                    remove()
            except (ModemError, OSError) as exc:
                self.last_error = str(exc) or type(exc).__name__
                log.warning("%s: %s", self.port, exc)
            finally:
                self._bound.set()  # release any inbound handler still waiting for the SIM
                await self._release(client)
            if stop.is_set():
                break
            self._set_state(ModemState.BACKOFF)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.backoff.delay(attempt))
            attempt += 1
        self._set_state(ModemState.STOPPED)

    def _on_command(self, line: str, seconds: float) -> None:
        if self.telemetry is not None:
            self.telemetry.command(self.port, line, seconds)

    def _on_event(self, event: ClientEvent, lost: asyncio.Event) -> None:
        if isinstance(event, ModemLost):
            lost.set()

    async def _bind(self, client: ModemClient) -> None:
        identity = await client.identity()
        now = self.wall()
        if not identity.iccid and not identity.imsi:
            raise ModemError("the SIM reports neither ICCID nor IMSI")
        sim_id = self.store.bind_sim(
            iccid=identity.iccid, imsi=identity.imsi, msisdn=identity.own_number or "", now=now
        )
        self.modem_id = self.store.bind_modem(
            imei=identity.imei or f"unknown:{self.port}",
            manufacturer=identity.manufacturer,
            model=identity.model,
            revision=identity.revision or "",
            port=self.port,
            sim_id=sim_id,
            now=now,
        )
        row: dict[str, Any] = self.store.sim(sim_id) or {}
        pooled = self.pool.upsert(sim_id, row.get("msisdn") or "", policy_of(row))
        if pooled.throttle.last_send is None:
            # First sight of this SIM since the daemon started: its pace, caps and the day's
            # distinct recipients continue from what it sent before the restart, not from zero.
            # The outbox's clock, the one the throttle is checked against (a test's virtual one).
            restore_throttle(self.store, self.pool, self.dispatcher.outbox.clock, sim_id, now=now)
        self.sim_id = sim_id
        self.iccid = identity.iccid
        self.number = row.get("msisdn") or None
        self.model = f"{identity.manufacturer} {identity.model}".strip()
        self._bound_sim = sim_id
        self._bound.set()
        self.dispatcher.attach(sim_id, ClientSender(client))
        log.info(
            "%s: %s %s bound to SIM %d (number ...%s)",
            self.port,
            identity.manufacturer,
            identity.model,
            sim_id,
            mask(row.get("msisdn") or "")[-3:],
        )

    async def _watch(self, client: ModemClient, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Poll registration and signal until the modem is lost or we are told to stop."""
        while not stop.is_set() and not lost.is_set() and client.alive:
            await self._poll(client)
            ready = self.state is ModemState.READY
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait(
                    waits,
                    timeout=self.poll_interval if ready else self.register_poll,
                    return_when="FIRST_COMPLETED",
                )
            finally:
                for w in waits:
                    w.cancel()

    async def _poll(self, client: ModemClient) -> None:
        """Read +CREG, +CSQ (and +COPS); ready exactly while the modem is registered."""
        before = self.registration
        try:
            self.registration = await client.registration()
        except ModemError as exc:  # AtParseError is one
            log.info("%s: registration poll failed: %s", self.port, exc)
        try:
            self.signal_dbm = (await client.signal()).dbm
        except ModemError as exc:
            log.info("%s: signal poll failed: %s", self.port, exc)
        reg = self.registration
        if reg is None:
            return  # never read: stays registering
        if not reg.registered:
            # A SIM that reset under the modem asks for its PIN again and keeps the modem off
            # the network until it gets it; its +CPIN URC may have been lost on the line.
            try:
                await client.ensure_unlocked("not registered")
            except ModemError as exc:
                log.info("%s: SIM check failed: %s", self.port, exc)
        name = registration_name(reg)
        changed = before is None or before.stat != reg.stat
        # While registering this runs every few seconds: +COPS and the store only on news.
        if reg.registered or changed:
            self.operator = await self._operator(client) if reg.registered else ""
        if self.sim_id is not None:
            self.pool.report_radio(
                self.sim_id, registered=reg.registered, signal_dbm=self.signal_dbm,
                registration=name, operator=self.operator,
            )  # fmt: skip
            if reg.registered or changed:
                # Kept in the store too, so `smsgw top` in another process sees the radio.
                self.store.record_radio(
                    self.sim_id, signal_dbm=self.signal_dbm, registration=name,
                    operator=self.operator, now=self.wall(),
                )  # fmt: skip
        if reg.registered and self.state is not ModemState.READY:
            log.info("%s: registered (%s): ready", self.port, name)
        elif not reg.registered and changed:
            log.warning("%s: not registered on a network (%s)", self.port, name)
        state = self.state
        self._set_state(ModemState.READY if reg.registered else ModemState.REGISTERING)
        if changed and state is self.state:
            self._changed()  # e.g. searching -> denied: still registering, but news

    async def _operator(self, client: ModemClient) -> str:
        """The network's name (+COPS?), or "" when the modem will not say."""
        try:
            return (await client.operator()).name or ""
        except ModemError:  # AtParseError is one
            return ""

    async def _release(self, client: ModemClient) -> None:
        self.ready.clear()
        if self.sim_id is not None:
            await self.dispatcher.detach(self.sim_id)
        if self.modem_id is not None:
            self.store.set_modem_state(self.modem_id, "gone", now=self.wall())
        await client.close()
        self.registration = None
        self.signal_dbm = None
        self._set_state(ModemState.GONE)


def registration_name(registration: Registration) -> str:
    """+CREG's <stat> as a word: "home", "roaming", "searching", "denied", "not_registered"..."""
    status = registration.status
    return str(registration.stat) if status is None else status.name.lower()
