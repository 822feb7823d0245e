"""ModemClient: one modem over AT, async, one command in flight, every wait named and bounded."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from asyncio import FIRST_COMPLETED
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar

from modem.at import commands as cmds
from modem.at.commands import Command
from modem.at.identity import (
    IdentityValue,
    parse_iccid_value,
    parse_imei_value,
    parse_imsi_value,
    parse_own_number_value,
    parse_revision_value,
)
from modem.at.parsers import (
    CnmiSupport,
    Operator,
    Registration,
    ServiceCentre,
    SignalQuality,
    StorageUsage,
    StoredPdu,
    UssdResponse,
    parse_cmgl,
    parse_cmgr,
    parse_cmgs,
    parse_cnmi,
    parse_cnmi_test,
    parse_cops,
    parse_cpin,
    parse_cpms,
    parse_cpms_test,
    parse_creg,
    parse_csca,
    parse_csms,
    parse_csq,
    parse_text,
)
from modem.at.results import FinalKind, FinalResult
from modem.at.session import PromptReady, Response, Session, StaleResult, UnexpectedLine
from modem.at.urc import (
    BootIndication,
    DeliverPdu,
    NewMessageIndication,
    ReadyIndication,
    ReadyKind,
    RestartWatch,
    SimIndication,
    StatusReportIndication,
    StatusReportPdu,
    StorageFullIndication,
    Urc,
    UssdIndication,
)
from modem.errors import (
    AtParseError,
    CmeError,
    CmsError,
    CommandError,
    ModemDesync,
    ModemError,
    ModemGone,
    ModemRestarted,
    ModemTimeout,
    SimLockedError,
)
from modem.pdu import (
    Address,
    PduError,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    build_submits,
    decode_pdu,
    encode_pdu,
)
from modem.pdu.gsm7 import encode_septets, pack_septets
from modem.quirks import (
    CnmiValues,
    VendorProfile,
    choose_storages,
    cnmi_candidates,
    readable_storages,
    report_storage,
    select_profile,
)
from modem.transport import ByteTransport, open_transport

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Every wait the client does, by name (seconds)."""

    command: float = 5.0  # an ordinary command's final result
    wakeup: float = 1.0  # one AT during wake-up or resync
    prompt: float = 10.0  # AT+CMGS -> "> "
    submit: float = 60.0  # PDU written -> +CMGS (network round trip)
    cpin_no_ok: float = 1.0  # Wavecom/Sierra: the OK after +CPIN that never comes
    readiness: float = 60.0  # SMS commands accepted after boot
    transient_retry: float = 1.0  # back-off after +CME ERROR 14/515
    ussd: float = 30.0  # the network's +CUSD answer
    drain_quiet: float = 0.3  # silence that ends a resync drain
    lock: float = 300.0  # waiting for the port behind other commands
    scan_interval: float = 300.0  # periodic storage scan (and look that routing is still on)
    # After a +CNMA that failed: when to look whether the modem stopped routing new messages
    # to us, as TS 27.005 3.4.4 has it do once its acknowledgement timer runs out.
    routing_check: float = 30.0
    keepalive: float = 60.0  # AT when idle, to notice a hung modem
    close: float = 5.0  # closing the port


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How to treat one modem."""

    pin: str | None = None
    profile: VendorProfile | None = None  # None: chosen from +CGMI/+CGMM (and usb_id)
    usb_id: str | None = None
    max_timeouts: int = 3  # consecutive timeouts -> ModemGone (hang detection)
    wakeup_attempts: int = 10
    resync_attempts: int = 5
    transient_attempts: int = 10
    charset: str = "GSM"
    scan_on_start: bool = True
    timeouts: Timeouts = field(default_factory=Timeouts)


# --- events ----------------------------------------------------------------------------------


class SubmitStatus(StrEnum):
    """Outcome of one AT+CMGS."""

    SENT = "sent"  # +CMGS: <mr> received
    FAILED = "failed"  # the modem refused it, or it was never handed over
    UNKNOWN = "unknown"  # the exchange was interrupted after the PDU was written


@dataclass(frozen=True, slots=True)
class PartResult:
    """The result of submitting one part of a message."""

    part: int
    parts: int
    status: SubmitStatus
    message_reference: int | None
    destination: str
    submitted_at: datetime
    reason: str | None = None
    cms_code: int | None = None


@dataclass(frozen=True, slots=True)
class InboundSms:
    """An SMS-DELIVER from storage (`index` set) or routed directly (+CMT, `index` None)."""

    deliver: SmsDeliver
    smsc: Address | None
    storage: str | None
    index: int | None
    pdu: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class InboundStatusReport:
    """An SMS-STATUS-REPORT from storage (+CDSI, scan) or inline (+CDS)."""

    report: SmsStatusReport
    storage: str | None
    index: int | None
    pdu: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class UndecodableMessage:
    """A stored or routed PDU that could not be decoded (left in storage, never deleted)."""

    storage: str | None
    index: int | None
    pdu: str
    error: str


@dataclass(frozen=True, slots=True)
class ModemRebooted:
    """The modem restarted mid-session; the client re-ran the whole initialisation."""

    reason: str


@dataclass(frozen=True, slots=True)
class ModemLost:
    """The client gave up on the modem (hang, port lost): it must be reopened."""

    reason: str


ClientEvent = (
    Urc
    | PartResult
    | InboundSms
    | InboundStatusReport
    | UndecodableMessage
    | ModemRebooted
    | ModemLost
)
Inbound = InboundSms | InboundStatusReport
# Returns True once the message is stored durably: only then is it deleted from the modem.
InboundHandler = Callable[[Inbound], Awaitable[bool]]
TransportFactory = Callable[
    [Callable[[bytes], None], Callable[[Exception | None], None]], Awaitable[ByteTransport]
]


def _value(answer: IdentityValue | None) -> str | None:
    return None if answer is None else answer.value


@dataclass(frozen=True, slots=True)
class IdentityDetails:
    """Each identity answer as the modem gave it and whether it has the expected shape."""

    revision: IdentityValue | None = None
    imei: IdentityValue | None = None
    imsi: IdentityValue | None = None
    iccid: IdentityValue | None = None
    own_number: IdentityValue | None = None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the modem and its SIM are; a string is None only when the modem gave no answer."""

    manufacturer: str
    model: str
    revision: str | None
    imei: str | None
    imsi: str | None
    iccid: str | None
    own_number: str | None
    details: IdentityDetails = IdentityDetails()

    @property
    def imei_valid(self) -> bool:
        """The serial number is a well-formed IMEI (Luhn checked), IMEI without check or IMEISV."""
        return self.details.imei is not None and self.details.imei.valid


class ModemMemory:
    """What must survive reconnects of one modem (the supervisor keeps it between clients).

    `pin_tried`: the configured PIN was sent once; never again (three tries lock the SIM).
    `pending_delete`: (storage, index) -> PDU handed over whose AT+CMGD has not succeeded yet.
    `seen()`: TPDUs handed over recently (keyed without the SMSC field), so a report or SMS the
    network sends again -- routed first, then stored after a lost +CNMA -- reaches it once.
    """

    def __init__(self, size: int = 2048) -> None:
        self.pin_tried = False
        self.pending_delete: dict[tuple[str | None, int], str] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._size = size

    @staticmethod
    def _key(pdu: str) -> str:
        text = pdu.strip().upper()
        try:
            smsc_octets = int(text[:2], 16)
        except ValueError:
            return text
        return text[2 + 2 * smsc_octets :]

    def seen(self, pdu: str) -> bool:
        """True if this TPDU was handed over recently."""
        return self._key(pdu) in self._recent

    def remember(self, pdu: str) -> None:
        """Record a TPDU the caller confirmed it stored."""
        key = self._key(pdu)
        self._recent[key] = None
        self._recent.move_to_end(key)
        while len(self._recent) > self._size:
            self._recent.popitem(last=False)


# --- one command at a time, recovery first -----------------------------------------------------


class _PriorityLock:
    """A lock that hands over to the highest-priority waiter first (watchdog/recovery > work)."""

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @property
    def locked(self) -> bool:
        return self._locked

    async def acquire(self, priority: int = 0) -> None:
        if not self._locked and not self._waiters:
            self._locked = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (-priority, next(self._seq), fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # ownership was handed over just as we were cancelled
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # ownership passes on; stays locked
                return
        self._locked = False


# --- the client --------------------------------------------------------------------------------


class ModemClient:
    """An async driver for one modem that makes every quirky modem look the same."""

    def __init__(
        self,
        port: str | None = None,
        *,
        config: ClientConfig | None = None,
        on_inbound: InboundHandler | None = None,
        transport_factory: TransportFactory | None = None,
        now: Callable[[], datetime] | None = None,
        memory: ModemMemory | None = None,
        on_command: Callable[[str, float], None] | None = None,
    ) -> None:
        """`memory` carries PIN use and handed-over messages across reconnects (supervisor);
        `on_command` is told each command line and the seconds until its final result."""
        if port is None and transport_factory is None:
            raise ValueError("give a port or a transport factory")
        self.port = port
        self.config = config or ClientConfig()
        self.t = self.config.timeouts
        self.profile: VendorProfile = self.config.profile or select_profile(
            usb_id=self.config.usb_id
        )
        self._on_inbound = on_inbound
        self._on_command = on_command
        self._factory = transport_factory
        self._now = now or (lambda: datetime.now(UTC))
        self._session = Session()
        self._restart = RestartWatch()  # did the modem restart under the command in flight?
        self._transport: ByteTransport | None = None
        self._lock = _PriorityLock()
        self._pending: asyncio.Future[Response] | None = None
        self._prompt_seen = False
        self._body_written = False
        self._needs_resync = False
        self._timeouts_in_row = 0
        self._gone: ModemGone | None = None
        self._ready = asyncio.Event()
        self._sms_ready = asyncio.Event()
        self._rx = asyncio.Event()  # set whenever bytes arrive (drain detection)
        self._listeners: list[Callable[[ClientEvent], None]] = []
        self._ussd_waiters: list[asyncio.Future[UssdResponse]] = []
        self._jobs: asyncio.Queue[tuple[str, str | None, int | None, str | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._routing: set[asyncio.Task[None]] = set()
        self._routing_timer: asyncio.TimerHandle | None = None  # look at +CNMI after a lost ack
        self._prompt: asyncio.Future[None] | None = None
        self._initialised = False
        self._mem1: str | None = None
        self._concat_ref = random.randrange(256)
        self.memory = memory if memory is not None else ModemMemory()
        self._last_io = 0.0
        self._echo_mark: int | None = None
        self._concatenate = True
        self._closing = False  # AT+CPMS=..;+CMGR=n on one line (V.250 5.4)
        # What initialisation chose (for probe).
        self.manufacturer: str | None = None
        self.model: str | None = None
        self.storages: tuple[tuple[str, ...], ...] = ()
        self.scan_storages: tuple[str, ...] = ("SM",)
        self.preferred: tuple[str, str, str] | None = None
        self.cnmi: CnmiValues | None = None
        self.cnmi_support: CnmiSupport | None = None
        self.ack_required = False
        self.stats: dict[str, int] = {
            "commands": 0,
            "timeouts": 0,
            "resyncs": 0,
            "stale": 0,
            "unexpected": 0,
            "reboots": 0,
        }

    # --- lifecycle -------------------------------------------------------------------------------

    async def open(self, *, initialise: bool = True) -> ModemClient:
        """Open the port and initialise the modem (wake-up, PIN, readiness, SMS settings).

        With initialise=False only wake it up (AT until OK, ATE0): raw access for support.
        """
        self._transport = await self._open_transport()
        try:
            if not initialise:
                await self._wake()
                await self._optional(cmds.ECHO_OFF)
                return self
            await self._initialise()
        except BaseException:
            await self.close()
            raise
        self._tasks.append(asyncio.create_task(self._inbound_worker(), name="modem-inbound"))
        self._tasks.append(asyncio.create_task(self._maintenance(), name="modem-maintenance"))
        if self.config.scan_on_start:
            self._jobs.put_nowait(("scan", None, None, None))
        return self

    async def __aenter__(self) -> ModemClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop background work and close the port (idempotent)."""
        self._closing = True  # from here on, input is dropped and no new work starts
        if self._routing_timer is not None:
            self._routing_timer.cancel()
            self._routing_timer = None
        await self._cancel_background()
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(ModemGone("client closed"))
        for waiter in self._ussd_waiters:
            if not waiter.done():
                waiter.cancel()
        self._ussd_waiters.clear()
        if self._gone is None:
            self._gone = ModemGone("client closed")
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            with contextlib.suppress(TimeoutError, OSError):
                async with asyncio.timeout(self.t.close):
                    await transport.wait_closed()
        await self._cancel_background()

    async def _cancel_background(self) -> None:
        tasks = [*self._tasks, *self._background]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @property
    def alive(self) -> bool:
        """False once the modem is gone or the client closed."""
        return self._gone is None

    async def _open_transport(self) -> ByteTransport:
        if self._factory is not None:
            return await self._factory(self._on_data, self._on_lost)
        assert self.port is not None
        return await open_transport(self.port, self._on_data, self._on_lost)

    # --- events to subscribers -------------------------------------------------------------------

    def add_listener(self, callback: Callable[[ClientEvent], None]) -> Callable[[], None]:
        """Call `callback` for every event; returns a function that removes it."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    @contextlib.asynccontextmanager
    async def events(self) -> AsyncIterator[asyncio.Queue[ClientEvent]]:
        """A queue receiving every event while the context is open."""
        queue: asyncio.Queue[ClientEvent] = asyncio.Queue()
        remove = self.add_listener(queue.put_nowait)
        try:
            yield queue
        finally:
            remove()

    def _emit(self, event: ClientEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    # --- bytes in --------------------------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self._closing:
            return
        self._last_io = asyncio.get_running_loop().time()
        self._rx.set()
        self._session.receive_data(data)
        while (event := self._session.next_event()) is not None:
            self._handle(event)
        if self._echo_mark is not None and self._session.echoes > self._echo_mark:
            # Echo is back after ATE0 took effect: a reset without boot URCs (settings lost).
            self._echo_mark = None
            self._jobs.put_nowait(("reboot?", None, None, "echo came back"))

    def _on_lost(self, exc: Exception | None) -> None:
        self._set_gone(f"port lost: {exc}" if exc else "port closed")

    def _handle(self, event: object) -> None:
        if isinstance(event, Response):
            if self._pending is not None and not self._pending.done():
                self._pending.set_result(event)
        elif isinstance(event, PromptReady):
            # Write the PDU at once, from the callback: no await between prompt and body.
            self._write(self._session.send_body())
            self._body_written = True
            if self._prompt is not None and not self._prompt.done():
                self._prompt.set_result(None)
        elif isinstance(event, StaleResult):
            self.stats["stale"] += 1
            log.debug("stale result %s", event.result)
        elif isinstance(event, UnexpectedLine):
            self.stats["unexpected"] += 1
            if event.text == ">" and self._transport is not None and not self._transport.is_closing:
                # A prompt nobody asked for (late, after its AT+CMGS gave up): leave it, or the
                # modem would swallow our next command as message text.
                self._transport.write(b"\x1b\r")
                self._needs_resync = True
            log.debug("unexpected line (%d chars)", len(event.text))
        elif isinstance(event, Urc):
            self._handle_urc(event)
            self._emit(event)

    def _handle_urc(self, urc: Urc) -> None:
        self._watch_restart(urc)
        if urc.line.strip().upper() in self.profile.readiness_urcs:
            self._sms_ready.set()  # e.g. Cinterion ^SYSSTART: commands may be retried now
        if isinstance(urc, NewMessageIndication):
            if urc.storage is None or urc.index is None or urc.index < self.profile.index_base:
                self._jobs.put_nowait(("scan", None, None, None))  # "+CMTI: ,-1" (SIM7000G)
            else:
                self._jobs.put_nowait(("read", urc.storage, urc.index, None))
        elif isinstance(urc, StatusReportIndication):
            storage = report_storage(self.profile, urc.storage)
            if storage is None or urc.index is None:
                self._jobs.put_nowait(("scan", None, None, None))
            else:
                self._jobs.put_nowait(("read", storage, urc.index, None))
        elif isinstance(urc, DeliverPdu | StatusReportPdu):
            # Not queued behind scans: the +CNMA is due within seconds (TS 27.005 3.4.4).
            # Before +CSMS? is read back the modem may still be in the previous host's +CSMS=1.
            routed = self._routed(urc.pdu, unsure=not self._initialised)
            task = asyncio.get_running_loop().create_task(routed)
            self._background.add(task)
            self._routing.add(task)
            task.add_done_callback(self._background.discard)
            task.add_done_callback(self._routing.discard)
        elif isinstance(urc, UssdIndication):
            if urc.ussd is not None and not _ussd_noise(urc.ussd):
                for waiter in self._ussd_waiters:
                    if not waiter.done():
                        waiter.set_result(urc.ussd)
        elif isinstance(urc, StorageFullIndication):
            self._jobs.put_nowait(("scan", None, None, None))
        elif isinstance(urc, ReadyIndication) and urc.kind in (ReadyKind.SMS, ReadyKind.SIM):
            if urc.kind is ReadyKind.SMS:
                self._sms_ready.set()
            if self._initialised:
                self._jobs.put_nowait(("reboot?", None, None, urc.line))
        elif isinstance(urc, BootIndication) and self._initialised:
            self._jobs.put_nowait(("reboot?", None, None, urc.line))
        elif isinstance(urc, SimIndication) and self._initialised and urc.state == "SIM PIN":
            # The SIM reset under the running modem and wants its PIN again: nothing works
            # until it is entered, and the modem will not ask twice.
            self._jobs.put_nowait(("pin?", None, None, urc.line))

    def _watch_restart(self, urc: Urc) -> None:
        """A restart proven mid-command ends that command now: its answer will never come, and
        waiting out its timeout (60 s for AT+CMGS) only keeps the modem from being set up again.
        Not while initialising: boot URCs then are the modem finishing the start we set up."""
        pending = self._pending
        if pending is None or pending.done() or not self._restart.restarted(urc):
            return
        if not self._initialised:
            return  # still setting up (or up again): the queued "reboot?" looks at it after
        command = self._session.command
        # Nothing new may start on the modem before the re-initialisation queued here ran.
        self._ready.clear()
        self._jobs.put_nowait(("reboot?", None, None, urc.line))
        pending.set_exception(
            ModemRestarted(command.line if command is not None else "a command", urc.line)
        )

    def _write(self, data: bytes) -> None:
        if not data:
            return
        transport = self._transport
        if transport is None or transport.is_closing:
            raise self._gone or ModemGone("port is closed")
        transport.write(data)

    def _set_gone(self, reason: str) -> None:
        if self._gone is not None:
            return
        log.warning("modem on %s gone: %s", self.port or "transport", reason)
        self._gone = ModemGone(reason)
        self._ready.clear()
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(self._gone)
        for waiter in self._ussd_waiters:
            if not waiter.done():
                waiter.set_exception(self._gone)
        if self._transport is not None:
            self._transport.close()
        self._emit(ModemLost(reason))

    def _check_alive(self) -> None:
        if self._gone is not None:
            raise self._gone

    # --- commands --------------------------------------------------------------------------------

    async def execute(
        self,
        command: Command,
        *,
        timeout: float | None = None,
        urgent: bool = False,
        check: bool = True,
    ) -> Response:
        """Run one command (after a resync if one is due); raises the typed error on failure."""
        async with self._port(urgent):
            resp = await self._run(command, timeout or self.t.command)
        return resp.raise_for_error() if check else resp

    async def at(self, text: str, *, timeout: float | None = None) -> Response:
        """A raw command for support (`smsgw modem at`): the response, failed or not."""
        return await self.execute(cmds.raw(text), timeout=timeout, check=False)

    @contextlib.asynccontextmanager
    async def _port(self, urgent: bool = False) -> AsyncIterator[None]:
        self._check_alive()
        try:
            async with asyncio.timeout(self.t.lock):
                await self._lock.acquire(1 if urgent else 0)
        except TimeoutError:
            raise ModemTimeout("the port (other commands in flight)", self.t.lock) from None
        try:
            self._check_alive()
            if self._needs_resync:
                await self._resync()
            yield
        finally:
            self._lock.release()

    async def _run(
        self, command: Command, timeout: float, *, partial_prefix: str | None = None
    ) -> Response:
        """Write a command and wait for its final result; the caller holds the port."""
        self._check_alive()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Response] = loop.create_future()
        self._pending = fut
        self._body_written = False
        self._restart.start()
        self.stats["commands"] += 1
        what, seconds = command.line, timeout
        started = loop.time()
        try:
            self._write(self._session.send(command))
            if command.expects_prompt:
                prompt = self._prompt = loop.create_future()
                what, seconds = f"the > prompt after {command.line}", self.t.prompt
                await asyncio.wait({fut, prompt}, timeout=seconds, return_when=FIRST_COMPLETED)
                if not fut.done() and not prompt.done():
                    raise TimeoutError
                what, seconds = f"the answer to {command.line}", timeout
            async with asyncio.timeout(timeout):
                resp = await fut
        except TimeoutError:
            partial = self._session.partial_lines()
            if partial_prefix and any(line.startswith(partial_prefix) for line in partial):
                # Wavecom: "+CPIN: READY" without OK -- the answer is complete as it is.
                self._session.abort()
                return Response(command, partial, _OK)
            self._abort_command()
            self._count_timeout(what, seconds)
            raise ModemTimeout(what, seconds) from None
        except ModemRestarted:
            self._abort_command()
            raise
        except asyncio.CancelledError:
            self._abort_command()
            raise
        finally:
            self._pending = None
            self._prompt = None
        self._timeouts_in_row = 0
        if self._on_command is not None:
            self._on_command(command.line, loop.time() - started)
        prompt_skipped = command.expects_prompt and resp.ok and not self._body_written
        if prompt_skipped or not command.consistent(resp.lines, resp.ok):
            # A late answer to an earlier command completed this one (SARA-G450-style drift):
            # what we got is not this command's answer; resynchronise before the next one.
            self._needs_resync = True
            raise ModemDesync(command.line)
        return resp

    def _abort_command(self) -> None:
        if self._session.busy:
            escape = self._session.abort()
            if escape and self._transport is not None and not self._transport.is_closing:
                self._transport.write(escape)
        self._needs_resync = True

    def _count_timeout(self, what: str, seconds: float) -> None:
        self.stats["timeouts"] += 1
        self._timeouts_in_row += 1
        log.info("timeout on %s (%d in a row)", what.split("=", 1)[0], self._timeouts_in_row)
        if self._timeouts_in_row >= self.config.max_timeouts:
            self._set_gone(f"{self._timeouts_in_row} consecutive timeouts (last: {what})")
            raise self._gone or ModemGone("hung")

    async def _resync(self) -> None:
        """ESC, then AT until OK, then wait for silence so stale answers are drained."""
        self.stats["resyncs"] += 1
        failures = 0
        for _attempt in range(self.config.resync_attempts):
            # ESC leaves a prompt the modem may still be in; the CR ends the line otherwise
            # (a bare ESC would glue itself to our next command).
            self._write(b"\x1b\r")
            await self._drain()
            # A barrier with its own answer prefix: a late bare OK cannot pass for it.
            barrier = cmds.READ_ERROR_MODE if failures < 2 else cmds.AT
            try:
                resp = await self._run(barrier, self.t.wakeup)
            except (ModemTimeout, ModemDesync):
                continue
            if not resp.ok:
                failures += 1
                continue
            if await self._quiet():
                self._session.flush_input()
                self._needs_resync = False
                return
        self._set_gone("no answer to AT while resynchronising")
        raise self._gone or ModemGone("resync failed")

    async def _quiet(self) -> bool:
        """True if nothing at all arrives for `drain_quiet` seconds."""
        self._rx.clear()
        try:
            async with asyncio.timeout(self.t.drain_quiet):
                await self._rx.wait()
        except TimeoutError:
            return True
        return False

    async def _drain(self, rounds: int = 20) -> None:
        """Let late answers finish arriving, then drop any partial line."""
        for _ in range(rounds):
            if await self._quiet():
                break
        self._session.flush_input()

    async def _retry_transient(self, command: Command, *, timeout: float | None = None) -> Response:
        """Run a command, retrying +CME ERROR 14/515 (SIM/device busy right after start)."""
        for attempt in range(self.config.transient_attempts):
            try:
                return await self.execute(command, timeout=timeout)
            except CmeError as exc:
                if exc.code not in self.profile.transient_cme or attempt + 1 >= (
                    self.config.transient_attempts
                ):
                    raise
                await self._pause(self.t.transient_retry)
        raise AssertionError("unreachable")

    async def _pause(self, seconds: float) -> None:
        """Back off, waking early if the modem announces it is ready."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._sms_ready.wait()

    # --- initialisation --------------------------------------------------------------------------

    async def _initialise(self) -> None:
        self._ready.clear()
        self._initialised = False
        self._echo_mark = None
        self._mem1 = None
        await self._wake()
        await self._optional(cmds.ECHO_OFF)
        await self._optional(cmds.VERBOSE_ERRORS)
        echoes_after_ate0 = self._session.echoes
        if self.config.profile is None or self.manufacturer is None:
            self.manufacturer = parse_text((await self._retry_transient(cmds.MANUFACTURER)).lines)
            self.model = parse_text((await self._retry_transient(cmds.MODEL)).lines)
            if self.config.profile is None:
                self.profile = select_profile(self.manufacturer, self.model, self.config.usb_id)
        log.info("modem %s %s, profile %s", self.manufacturer, self.model, self.profile.name)
        await self._unlock_sim()
        await self._wait_sms_ready()
        await self._optional(cmds.charset(self.config.charset))
        for text in self.profile.init_commands:
            await self._optional(cmds.raw(text))
        if self.profile.ussd_mode_command:
            await self._optional(cmds.raw(self.profile.ussd_mode_command))
        await self._setup_storages()
        await self._setup_indications()
        # Phase 2+ (+CSMS=1): routed +CMT/+CDS must be acknowledged with +CNMA, and the
        # network re-sends what we never acknowledged -- a lost line no longer loses a message.
        await self._optional(cmds.SMS_SERVICE)
        try:
            service = parse_csms((await self.execute(cmds.SMS_SERVICE_READ)).lines)
            self.ack_required = bool(service) and service[0] == 1
        except (CommandError, AtParseError):
            self.ack_required = False
        if self.ack_required:
            await self._refuse_leftover()
        self._initialised = True
        if self._session.echoes == echoes_after_ate0:
            self._echo_mark = self._session.echoes  # echo is off: its return means a reset
        self._ready.set()

    async def _optional(self, command: Command) -> Response | None:
        try:
            return await self.execute(command)
        except (CommandError, AtParseError) as exc:
            log.debug("optional %s failed: %s", command.line.split("=", 1)[0], exc)
            return None

    async def _wake(self) -> None:
        """AT until OK: the first ones may be eaten by auto-baud (SIM7000G answered the 3rd)."""
        async with self._port(urgent=True):
            # A previous owner of the port may have died between AT+CMGS's prompt and the PDU
            # (daemon killed mid-send): the modem then takes our ATs as PDU text. ESC leaves
            # that prompt; the CR ends the line otherwise. Its answer, if any, is drained below.
            self._write(b"\x1b\r")
            for _attempt in range(self.config.wakeup_attempts):
                try:
                    resp = await self._run(cmds.AT, self.t.wakeup)
                except ModemTimeout:
                    continue
                if resp.ok and await self._quiet():
                    self._session.flush_input()
                    self._needs_resync = False
                    self._timeouts_in_row = 0
                    return
        self._set_gone(f"no OK to AT after {self.config.wakeup_attempts} tries")
        raise self._gone or ModemGone("no answer")

    async def _read_pin_state(self) -> str:
        for attempt in range(self.config.transient_attempts):
            try:
                async with self._port():
                    timeout = self.t.cpin_no_ok if self.profile.cpin_without_ok else self.t.command
                    resp = await self._run(cmds.READ_PIN, timeout, partial_prefix="+CPIN")
                resp.raise_for_error()
                return parse_cpin(resp.lines)
            except CmeError as exc:
                # +CME ERROR: 10 = SIM not inserted; 14 = SIM busy (retry).
                if exc.code == 10:
                    raise SimLockedError("SIM not inserted") from None
                if exc.code not in self.profile.transient_cme or attempt + 1 >= (
                    self.config.transient_attempts
                ):
                    raise
                await self._pause(self.t.transient_retry)
        raise AssertionError("unreachable")

    async def _unlock_sim(self) -> None:
        state = await self._read_pin_state()
        if state == "READY":
            return
        if state != "SIM PIN":
            raise SimLockedError(state)
        if self.config.pin is None:
            raise SimLockedError("SIM PIN (no PIN configured)")
        if self.memory.pin_tried:
            # Never retry: three wrong PINs lock the SIM behind the PUK.
            raise SimLockedError("SIM PIN (configured PIN already tried once)")
        self.memory.pin_tried = True
        try:
            await self.execute(cmds.pin(self.config.pin))
        except CommandError as exc:
            raise SimLockedError(f"SIM PIN rejected ({exc.result}); not retried") from None
        for _ in range(self.config.transient_attempts):
            state = await self._read_pin_state()
            if state == "READY":
                # The PIN is known good: after a modem reboot it may be sent again.
                self.memory.pin_tried = False
                return
            if state != "SIM PIN":
                raise SimLockedError(state)
            await self._pause(self.t.transient_retry)
        raise SimLockedError("SIM still locked after the PIN was accepted")

    async def _wait_sms_ready(self) -> None:
        """SMS commands fail until "SMS Ready"/"SMS DONE" (SIMCom, Quectel): retry AT+CMGF=0."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.t.readiness
        while True:
            self._sms_ready.clear()
            try:
                await self.execute(cmds.PDU_MODE)
                return
            except CmsError as exc:
                reason: str = str(exc)
            except CommandError as exc:
                reason = str(exc)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ModemTimeout(f"SMS readiness ({reason})", self.t.readiness)
            await self._pause(min(self.t.transient_retry, remaining))

    async def _setup_storages(self) -> None:
        try:
            self.storages = parse_cpms_test((await self.execute(cmds.STORAGES)).lines)
        except (CommandError, AtParseError):
            self.storages = ()
        self.scan_storages = readable_storages(self.storages)
        mem1, mem2, mem3 = choose_storages(self.storages)
        # All three explicitly (E3372-325 rejects two); Wavecom rejects three: fewer then.
        for mems in ((mem1, mem2, mem3), (mem1, mem2), (mem1,)):
            try:
                await self.execute(cmds.preferred_storage(*mems))
            except CommandError:
                continue
            self.preferred = (mem1, mem2, mem3)
            self._mem1 = mem1
            return
        log.warning("no AT+CPMS form accepted; using the modem's defaults")

    async def _setup_indications(self) -> None:
        try:
            self.cnmi_support = parse_cnmi_test((await self.execute(cmds.CNMI_SUPPORT)).lines)
        except (CommandError, AtParseError):
            self.cnmi_support = None
        self.cnmi = None
        for values in cnmi_candidates(self.profile, self.cnmi_support):
            try:
                await self.execute(cmds.new_message_indications(values))
            except CommandError:
                continue
            self.cnmi = values
            break
        if self.cnmi is None:
            log.warning("no +CNMI setting accepted: polling storages only")

    # --- information -----------------------------------------------------------------------------

    async def identity(self) -> Identity:
        """Manufacturer, model, revision, IMEI, IMSI, ICCID and own number (None if unanswered)."""
        manufacturer = parse_text((await self.execute(cmds.MANUFACTURER)).lines)
        model = parse_text((await self.execute(cmds.MODEL)).lines)
        revision = await self._maybe(cmds.REVISION, parse_revision_value)
        imei = await self._maybe(cmds.IMEI, parse_imei_value)
        imsi = await self._maybe(cmds.IMSI, parse_imsi_value)
        iccid: IdentityValue | None = None
        for text in self.profile.iccid_commands:
            answer = await self._maybe(cmds.raw(text), parse_iccid_value)
            if answer is not None and (iccid is None or (answer.valid and not iccid.valid)):
                iccid = answer  # the first valid answer, else the first answer at all
            if iccid is not None and iccid.valid:
                break
        number = await self._maybe(cmds.OWN_NUMBER, parse_own_number_value)
        return Identity(
            manufacturer,
            model,
            _value(revision),
            _value(imei),
            _value(imsi),
            _value(iccid),
            _value(number),
            IdentityDetails(revision, imei, imsi, iccid, number),
        )

    async def _maybe(self, command: Command, parse: Callable[[Sequence[str]], T]) -> T | None:
        try:
            return parse((await self.execute(command)).lines)
        except (CommandError, AtParseError):
            return None

    async def signal(self) -> SignalQuality:
        """+CSQ."""
        return parse_csq((await self.execute(cmds.SIGNAL)).lines)

    async def registration(self) -> Registration:
        """+CREG? (with LAC/CI when the modem reports them)."""
        resp = await self.execute(cmds.REGISTRATION)
        line = next((x for x in resp.lines if x.upper().startswith("+CREG")), None)
        if line is None:
            raise AtParseError("no +CREG line", " | ".join(resp.lines))
        return parse_creg(line, solicited=True)

    async def operator(self) -> Operator:
        """+COPS? with the long alphanumeric name."""
        await self._optional(cmds.OPERATOR_FORMAT_LONG)
        return parse_cops((await self.execute(cmds.OPERATOR)).lines)

    async def smsc(self) -> ServiceCentre:
        """+CSCA?."""
        return parse_csca((await self._retry_transient(cmds.SMSC)).lines)

    async def storage_usage(self) -> tuple[StorageUsage, ...]:
        """+CPMS? (used/total of the three preferred storages)."""
        return parse_cpms((await self.execute(cmds.STORAGE_USAGE)).lines)

    # --- sending ---------------------------------------------------------------------------------

    async def send_sms(
        self,
        number: str,
        text: str,
        *,
        status_report: bool = True,
        validity: timedelta | None = None,
        message_class: int | None = None,
        allow_national: bool = False,
    ) -> list[PartResult]:
        """Submit a message; one result per part (later parts are skipped once one fails)."""
        self._check_alive()
        self._concat_ref = (self._concat_ref + 1) % 256
        submits = build_submits(
            number,
            text,
            reference=self._concat_ref,
            status_report=status_report,
            validity=validity,
            message_class=message_class,
            allow_national=allow_national,
        )
        return await self.send_submits(number, submits)

    async def send_submits(self, number: str, submits: Sequence[SmsSubmit]) -> list[PartResult]:
        """Submit prepared SMS-SUBMIT TPDUs in order (the gateway builds them for credit counts)."""
        results: list[PartResult] = []
        total = len(submits)
        for seq, submit in enumerate(submits, start=1):
            if results and results[-1].status is not SubmitStatus.SENT:
                results.append(
                    PartResult(
                        seq,
                        total,
                        SubmitStatus.FAILED,
                        None,
                        number,
                        self._now(),
                        reason=f"not submitted: part {seq - 1} was {results[-1].status.value}",
                    )
                )
                continue
            # Shielded: a cancelled caller must not cut an AT+CMGS exchange in half.
            task = asyncio.create_task(self._submit(number, submit, seq, total))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            results.append(await asyncio.shield(task))
        return results

    async def _submit(self, number: str, submit: SmsSubmit, seq: int, total: int) -> PartResult:
        encoded = encode_pdu(submit)
        command = cmds.send_pdu(encoded.tpdu_length, encoded.hex)
        try:
            async with asyncio.timeout(self.t.readiness):
                await self._ready.wait()
        except TimeoutError:
            result = self._part(seq, total, number, SubmitStatus.FAILED, reason="modem not ready")
            self._emit(result)
            return result
        started = False
        try:
            async with self._port():
                started = True
                result = await self._cmgs(command, number, seq, total)
        except ModemError as exc:
            unknown = started and self._body_written
            status = SubmitStatus.UNKNOWN if unknown else SubmitStatus.FAILED
            result = self._part(seq, total, number, status, reason=str(exc))
        self._emit(result)
        return result

    async def _cmgs(self, command: Command, number: str, seq: int, total: int) -> PartResult:
        try:
            resp = await self._run(command, self.t.submit)
        except ModemDesync as exc:
            status = SubmitStatus.UNKNOWN if self._body_written else SubmitStatus.FAILED
            return self._part(seq, total, number, status, reason=str(exc))
        except ModemTimeout as exc:
            if self._body_written:
                return self._part(seq, total, number, SubmitStatus.UNKNOWN, reason=str(exc))
            return self._part(seq, total, number, SubmitStatus.FAILED, reason="no prompt")
        except (ModemGone, ModemRestarted) as exc:
            # A restart after the PDU was written: the network may have taken it before.
            status = SubmitStatus.UNKNOWN if self._body_written else SubmitStatus.FAILED
            return self._part(seq, total, number, status, reason=str(exc))
        if not resp.ok:
            code = resp.result.code if resp.result.kind is FinalKind.CMS_ERROR else None
            return self._part(
                seq, total, number, SubmitStatus.FAILED, reason=str(resp.result), cms_code=code
            )
        try:
            mr = parse_cmgs(resp.lines).message_reference
        except AtParseError as exc:
            # OK without +CMGS: the modem took it, but we cannot match reports to it.
            return self._part(seq, total, number, SubmitStatus.UNKNOWN, reason=str(exc))
        return self._part(seq, total, number, SubmitStatus.SENT, mr=mr)

    def _part(
        self,
        seq: int,
        total: int,
        number: str,
        status: SubmitStatus,
        *,
        mr: int | None = None,
        reason: str | None = None,
        cms_code: int | None = None,
    ) -> PartResult:
        return PartResult(seq, total, status, mr, number, self._now(), reason, cms_code)

    # --- USSD ------------------------------------------------------------------------------------

    async def ussd(self, code: str, *, timeout: float | None = None) -> UssdResponse:
        """Send a USSD code (e.g. a balance request) and return the network's decoded answer."""
        waiter: asyncio.Future[UssdResponse] = asyncio.get_running_loop().create_future()
        self._ussd_waiters.append(waiter)  # registered before the write: +CUSD may precede OK
        try:
            if self.profile.ussd_packed:
                packed = pack_septets(encode_septets(code)).hex().upper()
                await self.execute(cmds.ussd(packed))
            else:
                await self.execute(cmds.ussd(code))
            wait = timeout or self.t.ussd
            try:
                async with asyncio.timeout(wait):
                    return await waiter
            except TimeoutError:
                await self._optional(cmds.ussd_cancel())
                raise ModemTimeout("the +CUSD answer", wait) from None
        finally:
            self._ussd_waiters.remove(waiter)
            if not waiter.done():
                waiter.cancel()

    # --- inbound ---------------------------------------------------------------------------------

    async def scan(self) -> int:
        """Read every readable storage and hand over what is there; returns messages seen."""
        seen = 0
        for storage in self.scan_storages:
            try:
                async with self._port():
                    resp = await self._in_storage(storage, cmds.list_messages(4))
            except CommandError:
                continue
            if not resp.ok:
                continue  # +CMS ERROR: 321 on an empty store (phonesim), or not listable
            try:
                entries = parse_cmgl(resp.lines)
            except AtParseError as exc:
                log.warning("unparseable +CMGL listing of %s: %s", storage, exc)
                continue
            for entry in entries:
                if not isinstance(entry, StoredPdu) or entry.index is None:
                    continue
                if entry.stat in (2, 3):
                    continue  # SMS-SUBMITs someone stored (E3131): not ours to take
                seen += 1
                # Read the slot again: the listing may be stale by now (the slot was taken
                # via +CMTI meanwhile and refilled), and we delete what we read, nothing else.
                await self.read_stored(storage, entry.index)
        return seen

    async def read_stored(self, storage: str, index: int) -> None:
        """Read one stored message (after +CMTI/+CDSI) and hand it over."""
        async with self._port():
            resp = await self._in_storage(storage, cmds.read_message(index))
        if not resp.ok:
            log.info("reading %s/%d failed: %s", storage, index, resp.result)
            return
        stored = parse_cmgr(resp.lines, index)
        if not isinstance(stored, StoredPdu) or not stored.pdu:
            # Quectel EC25: +CDSI "SM" for an SR report -> empty answer; nothing to hand over.
            log.info("%s/%d is empty", storage, index)
            return
        await self._take(storage, index, stored.pdu)

    async def _in_storage(self, storage: str, command: Command) -> Response:
        """Run a read/list/delete on `storage`; the caller holds the port.

        `AT+CPMS=<storage>;+CMGD=n` goes on one line: a reset between a separate AT+CPMS and
        AT+CMGD (settings lost, <mem1> back to the default) would delete another storage's
        unread message. Modems that reject concatenation get the two commands apart.
        """
        if self._concatenate:
            combined = cmds.in_storage(self._storage_command(storage), command)
            resp = await self._run(combined, self.t.command)
            if resp.ok or resp.result.kind is not FinalKind.ERROR or resp.lines:
                self._mem1 = storage
                return resp
            self._concatenate = False
            log.info("modem rejects concatenated commands; selecting storages separately")
        await self._select(storage)
        return await self._run(command, self.t.command)

    def _storage_command(self, storage: str) -> Command:
        if self.preferred is not None:
            return cmds.preferred_storage(storage, self.preferred[1], self.preferred[2])
        return cmds.preferred_storage(storage)

    async def _select(self, storage: str) -> None:
        """Make `storage` <mem1> (reads and deletes act on it); the caller holds the port.

        Always sent, never cached: a reset we have not noticed yet puts <mem1> back to the
        default, and a delete on the wrong storage would destroy an unread message.
        """
        if self.preferred is not None:
            mems = (storage, self.preferred[1], self.preferred[2])
        else:
            mems = (storage, storage, storage)
        resp = await self._run(cmds.preferred_storage(*mems), self.t.command)
        if not resp.ok:
            resp = await self._run(cmds.preferred_storage(storage), self.t.command)
        resp.raise_for_error()
        self._mem1 = storage

    async def _take(self, storage: str | None, index: int, pdu: str) -> None:
        """Decode, hand over, and delete once the handler confirms it stored the message."""
        key = (storage, index)
        if self.memory.pending_delete.get(key) == pdu or self.memory.seen(pdu):
            # Handed over before: the delete failed, or it came inline (+CDS/+CMT) and the
            # network stored it again because our +CNMA never arrived. Only delete it.
            await self._delete(storage, index, key)
            return
        item = self._decode(storage, index, pdu)
        if item is None:
            return
        self._emit(item)
        if self._on_inbound is None:
            return
        try:
            stored = await self._on_inbound(item)
        except Exception:
            log.exception("inbound handler failed; message kept on the modem")
            return
        if stored:
            self.memory.pending_delete[key] = pdu
            self.memory.remember(pdu)
            await self._delete(storage, index, key)

    async def _delete(self, storage: str | None, index: int, key: tuple[str | None, int]) -> None:
        try:
            async with self._port():
                if storage is not None:
                    resp = await self._in_storage(storage, cmds.delete_message(index))
                else:
                    resp = await self._run(cmds.delete_message(index), self.t.command)
            if resp.ok:
                self.memory.pending_delete.pop(key, None)
        except ModemTimeout:
            log.info("delete of %s/%d timed out; retried on the next scan", storage, index)

    def _decode(self, storage: str | None, index: int | None, pdu: str) -> Inbound | None:
        try:
            decoded = decode_pdu(pdu)
        except PduError as exc:
            self._emit(UndecodableMessage(storage, index, pdu, str(exc)))
            log.warning("undecodable PDU at %s/%s kept: %s", storage, index, exc)
            return None
        if decoded.tpdu.anomalies:
            codes = ", ".join(str(a.code) for a in decoded.tpdu.anomalies)
            log.warning("PDU at %s/%s decoded with repairs: %s", storage, index, codes)
        if isinstance(decoded.tpdu, SmsDeliver):
            return InboundSms(decoded.tpdu, decoded.smsc, storage, index, pdu, self._now())
        if isinstance(decoded.tpdu, SmsStatusReport):
            return InboundStatusReport(decoded.tpdu, storage, index, pdu, self._now())
        return None  # SMS-SUBMIT stored by someone (stat 2/3, E3131): not inbound

    async def _routed(self, pdu: str | None, *, unsure: bool = False) -> None:
        """+CMT / +CDS: hand over, then acknowledge with +CNMA when the service needs it (or,
        `unsure`, may need it: it came while initialising, +CSMS not known yet)."""
        if pdu is None:
            return
        if self.memory.seen(pdu):
            stored = True  # a re-send of something the caller has: acknowledge it only
        else:
            item = self._decode(None, None, pdu)
            stored = False  # undecodable: refused below, the SMSC may send it better again
            if item is not None:
                self._emit(item)
                stored = await self._hand_over(item)
            if stored:
                self.memory.remember(pdu)
        if not (self.ack_required or unsure):
            return
        # Not stored (a full disk, a failing handler, an undecodable PDU): RP-ERROR, so the
        # SMSC keeps it and sends it again later. Left unacknowledged instead, the modem would
        # turn its routing off when its timer runs out (TS 27.005 3.4.4) and every later
        # message would wait for the next storage scan.
        # unsure: +CSMS=0 when it came, and 340 says no acknowledgement was expected. A modem
        # gone meanwhile has nothing left to answer (its supervisor sees it go).
        with contextlib.suppress(ModemGone):
            await self._answer_routed(stored, none_expected=unsure)

    async def _answer_routed(self, taken: bool, *, none_expected: bool) -> bool:
        """+CNMA (`taken`) or +CNMA=2 (refused: the SMSC keeps it and sends it again) for the
        +CMT/+CDS the modem waits on; whether the modem took the answer. +CMS ERROR 340 (none
        was waiting) is quiet when `none_expected`; any other failure may leave the modem
        waiting, so the routing is looked at later. ModemGone goes to the caller."""
        command = cmds.ACK_MESSAGE if taken else cmds.REJECT_MESSAGE
        try:
            await self.execute(command, urgent=True)
        except CmsError as exc:
            if none_expected and exc.code == 340:
                return False
            log.info("AT%s failed (%s); looking at the routing later", command.text, exc)
            self._arm_routing_check()
            return False
        except ModemGone:
            raise
        except ModemError as exc:  # a timeout, a garbled answer
            log.info("AT%s failed (%s); looking at the routing later", command.text, exc)
            self._arm_routing_check()
            return False
        return True

    def _arm_routing_check(self) -> None:
        """Look at +CNMI in `routing_check` seconds: a +CMT/+CDS left unacknowledged makes the
        modem set <mt> and <ds> to 0 when its timer runs out (TS 27.005 3.4.4), and new
        messages would be stored without a word to us until someone looks."""
        if self._routing_timer is not None:
            self._routing_timer.cancel()
        self._routing_timer = asyncio.get_running_loop().call_later(
            self.t.routing_check, self._queue_routing_check
        )

    async def _refuse_leftover(self) -> None:
        """Refuse (RP-ERROR) a +CMT/+CDS the modem still waits to have acknowledged by a host
        before us: one a killed daemon never acknowledged, or one written while the port was
        closed (flushed at open). We cannot store what we never read, and left alone it stops
        the routing when the modem's timer runs out; refused, the SMSC sends it again."""
        if self._routing:
            return  # one of ours is being handed over: the modem sends no other before its +CNMA
        if await self._answer_routed(False, none_expected=True):
            log.info("refused a +CMT/+CDS a previous host left unacknowledged; the SMSC resends it")

    async def _hand_over(self, item: Inbound) -> bool:
        stored = True
        if self._on_inbound is not None:
            try:
                stored = await self._on_inbound(item)
            except Exception:
                log.exception("inbound handler failed; routed message not acknowledged")
                stored = False
        return stored

    def _queue_routing_check(self) -> None:
        self._routing_timer = None
        if not self._closing and self._gone is None:
            self._jobs.put_nowait(("routing?", None, None, None))

    async def _check_routing(self) -> None:
        """Put back the +CNMI routing the modem dropped (an unacknowledged +CMT/+CDS makes it
        set <mt> and <ds> to 0, TS 27.005 3.4.4), then scan for what it stored meanwhile."""
        if self.cnmi is None or not self._initialised:
            return
        try:
            current = parse_cnmi((await self.execute(cmds.CNMI_READ)).lines)
        except (CommandError, AtParseError):
            return  # unreadable now: the next look
        if current[1] == self.cnmi[1] and current[3] == self.cnmi[3]:
            return
        log.warning(
            "the modem stopped routing new messages to us (+CNMI: %s): setting %s again",
            ",".join(map(str, current)), ",".join(map(str, self.cnmi)),
        )  # fmt: skip
        await self.execute(cmds.new_message_indications(self.cnmi))
        await self.scan()

    async def _inbound_worker(self) -> None:
        while True:
            kind, storage, index, extra = await self._jobs.get()
            try:
                if kind == "read" and storage is not None and index is not None:
                    await self.read_stored(storage, index)
                elif kind == "scan":
                    await self.scan()
                elif kind == "reboot?":
                    await self._check_reboot(extra or "")
                elif kind == "pin?":
                    await self.ensure_unlocked(extra or "")
                elif kind == "routing?":
                    await self._check_routing()
            except ModemGone:
                return
            except ModemError as exc:
                log.warning("inbound %s failed: %s", kind, exc)
            finally:
                self._jobs.task_done()

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until queued inbound work (reads, scans, re-init) is done."""
        wait = timeout or self.t.lock
        try:
            async with asyncio.timeout(wait):
                while self._routing or self._jobs._unfinished_tasks:  # type: ignore[attr-defined]
                    if self._routing:
                        await asyncio.wait(set(self._routing))
                    await self._jobs.join()
        except TimeoutError:
            raise ModemTimeout("queued inbound work", wait) from None

    async def _check_reboot(self, why: str) -> None:
        """A boot URC mid-session: if our settings are gone, re-run the whole initialisation."""
        rebooted = True
        if self.cnmi is not None:
            try:
                current = parse_cnmi((await self.execute(cmds.CNMI_READ, urgent=True)).lines)
                rebooted = current[:2] != self.cnmi[:2] or current[3] != self.cnmi[3]
            except ModemGone:
                raise
            except ModemError:
                # Refused, garbled, unanswered or cut short by a restart: set it up again
                # rather than leave work held back on a modem nobody knows the state of.
                rebooted = True
        if not rebooted:
            # Huawei repeats ^BOOT periodically without restarting; a modem that restarted
            # under a command (work held back since) may keep its settings in a stored profile.
            if self._initialised:
                self._ready.set()
            return
        self.stats["reboots"] += 1
        log.warning("modem rebooted (%s): re-initialising", why)
        self._needs_resync = True
        await self._initialise()
        self._emit(ModemRebooted(why))
        await self.scan()

    async def ensure_unlocked(self, why: str = "") -> bool:
        """If the SIM asks for its PIN again mid-session (it reset under the modem: a loose
        contact, a brown-out), enter the configured PIN and set the modem up again; True when
        that was needed. A SIM that does not answer yet (still resetting) is left alone."""
        try:
            state = await self._read_pin_state()
        except (SimLockedError, CommandError, AtParseError):
            return False  # not inserted / busy: it tells us again (+CPIN URC) when it is back
        if state != "SIM PIN":
            return False
        log.warning("the SIM asks for its PIN again (%s): unlocking and re-initialising", why)
        await self._initialise()
        await self.scan()
        return True

    async def _maintenance(self) -> None:
        loop = asyncio.get_running_loop()
        next_scan = loop.time() + self.t.scan_interval
        while True:
            now = loop.time()
            wait = min(next_scan - now, self.t.keepalive)
            await asyncio.sleep(max(wait, 0.0))
            now = loop.time()
            if now >= next_scan:
                next_scan = now + self.t.scan_interval
                self._jobs.put_nowait(("routing?", None, None, None))
                self._jobs.put_nowait(("scan", None, None, None))
            if now - self._last_io >= self.t.keepalive and not self._lock.locked:
                try:
                    await self.execute(cmds.AT, timeout=self.t.wakeup, urgent=True)
                except ModemGone:
                    return
                except ModemError as exc:
                    log.info("keepalive failed: %s", exc)


_OK = FinalResult(FinalKind.OK)


def _ussd_noise(ussd: UssdResponse) -> bool:
    """Huawei's extra `+CUSD: 2,"Initiating Release"` around the real answer."""
    return ussd.status == 2 and (ussd.text or "").strip().lower().startswith("initiating release")
