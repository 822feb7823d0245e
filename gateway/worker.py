"""One supervisor per modem: connect -> init -> ready <-> backoff; feeds pool, inbox, reports."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.inbox import Inbox
from gateway.numbers import mask
from gateway.outbox import OutcomeKind, SendOutcome, is_temporary_cms
from gateway.pool import SimPool, policy_of
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher
from gateway.store import Store
from gateway.telemetry import Telemetry
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
        client_factory: Callable[..., ModemClient] = ModemClient,
        telemetry: Telemetry | None = None,
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
        self.client_factory = client_factory
        self.telemetry = telemetry
        self.sim_id: int | None = None
        self.modem_id: int | None = None
        self.state = "connecting"
        self.last_error = ""
        self.ready = asyncio.Event()  # set while the modem is ready (tests, health checks)
        # Set once this connection's SIM is bound (or the attempt ended): inbound messages the
        # modem hands over before that wait for it, so they are stored as received on this SIM.
        self._bound = asyncio.Event()
        self._bound_sim: int | None = None
        # Survives reconnects: a wrong PIN is never sent twice, and messages the network sends
        # again after a lost acknowledgement reach the inbox once.
        self.memory = ModemMemory()

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
        except (PduError, ValueError):
            log.exception("%s: inbound message could not be stored; left on the modem", self.port)
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Supervise until `stop` is set."""
        attempt = 0
        while not stop.is_set():
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
                await self._bind(client)
                attempt = 0
                self.state = "ready"
                self.ready.set()
                remove = client.add_listener(functools.partial(self._on_event, lost=lost))
                try:
                    await self._watch(client, stop, lost)
                finally:
                    remove()
            except (ModemError, OSError) as exc:
                self.last_error = str(exc)
                log.warning("%s: %s", self.port, exc)
            finally:
                self._bound.set()  # release any inbound handler still waiting for the SIM
                await self._release(client)
            if stop.is_set():
                break
            self.state = "backoff"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.backoff.delay(attempt))
            attempt += 1
        self.state = "stopped"

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
            now_mono = self.dispatcher.outbox.clock.monotonic()
            pooled.throttle.restore(
                (now_mono - (now - sent).total_seconds(), recipient)
                for sent, recipient in self.store.recent_sends(sim_id, now - timedelta(days=1))
            )
        self.sim_id = sim_id
        self._bound_sim = sim_id
        self._bound.set()
        self.dispatcher.attach(sim_id, ClientSender(client))
        log.info(
            "%s: %s %s ready, SIM %d (number ...%s)",
            self.port,
            identity.manufacturer,
            identity.model,
            sim_id,
            mask(row.get("msisdn") or "")[-3:],
        )

    async def _watch(self, client: ModemClient, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Poll signal and registration until the modem is lost or we are told to stop."""
        while not stop.is_set() and not lost.is_set() and client.alive:
            try:
                signal = await client.signal()
                registration = await client.registration()
                operator = await self._operator(client)
                if self.sim_id is not None:
                    status = registration.status
                    name = status.name.lower() if status is not None else str(registration.stat)
                    self.pool.report_radio(
                        self.sim_id,
                        registered=registration.registered,
                        signal_dbm=signal.dbm,
                        registration=name,
                        operator=operator,
                    )
                    # Kept in the store too, so `smsgw top` in another process sees the radio.
                    self.store.record_radio(
                        self.sim_id, signal_dbm=signal.dbm, registration=name, operator=operator,
                        now=self.wall(),
                    )  # fmt: skip
            except ModemError as exc:
                log.info("%s: poll failed: %s", self.port, exc)
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
            try:
                await asyncio.wait(waits, timeout=self.poll_interval, return_when="FIRST_COMPLETED")
            finally:
                for w in waits:
                    w.cancel()

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
        self.state = "gone"
