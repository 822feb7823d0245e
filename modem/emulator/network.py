"""The emulated GSM network: SIM identities, an SMSC routing by MSISDN, the outside world, reports.

Magic destination numbers (like the test numbers cloud SMS providers publish) make the SMSC
misbehave on purpose; see MAGIC_* below and the table in `modem.emulator`'s docstring.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from modem.emulator.clock import Scheduler
from modem.emulator.sms import (
    Submit,
    SubmitFormatError,
    build_deliver,
    build_status_report,
    encode_address,
    encode_scts,
    encode_smsc,
    parse_submit,
)

SMSC_NUMBER = "+447700900000"
COUNTRY_CODE = "44"
# Emulated SIMs get MSISDNs in Ofcom's drama range 07700 900001-900899 (never a real subscriber).
MSISDN_PREFIX = "+447700900"
MSISDN_RANGE = range(1, 900)
# TS 23.040 9.2.3.15 TP-Status values the SMSC reports.
ST_DELIVERED = 0x00
ST_TEMPORARY_CONGESTION = 0x20  # temporary error, SC still trying
ST_PERMANENT_INCOMPATIBLE = 0x41  # permanent error: incompatible destination
ST_PERMANENT_EXPIRED = 0x46  # permanent error: SM validity period expired

# How long the SMSC keeps trying when the SUBMIT gave no TP-VP (TS 23.040 leaves it to the SC).
DEFAULT_VALIDITY = 3 * 86400.0

# Magic destinations (documented in modem/emulator/__init__.py).
MAGIC_DELIVERED = "+15005550000"
MAGIC_PERMANENT_FAILURE = "+15005550001"
MAGIC_TEMPORARY_THEN_DELIVERED = "+15005550002"
MAGIC_EXPIRED = "+15005550003"
MAGIC_NO_REPORT = "+15005550004"
MAGIC_CMS_ERROR_PREFIX = "+15005551"  # +15005551NNN -> rejected with +CMS ERROR: NNN


class SubmitRejectedError(Exception):
    """The SMSC (or the modem on its behalf) refuses an SMS-SUBMIT with a +CMS ERROR code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"+CMS ERROR: {code} ({reason})")
        self.code = code


class ReportOutcome(Enum):
    """What the SMSC will report for a submitted message."""

    DELIVERED = "delivered"
    TEMPORARY_THEN_DELIVERED = "temporary-then-delivered"
    PERMANENT_FAILURE = "permanent-failure"
    EXPIRED = "expired"
    NO_REPORT = "no-report"


MAGIC_OUTCOMES: dict[str, ReportOutcome] = {
    MAGIC_DELIVERED: ReportOutcome.DELIVERED,
    MAGIC_PERMANENT_FAILURE: ReportOutcome.PERMANENT_FAILURE,
    MAGIC_TEMPORARY_THEN_DELIVERED: ReportOutcome.TEMPORARY_THEN_DELIVERED,
    MAGIC_EXPIRED: ReportOutcome.EXPIRED,
    MAGIC_NO_REPORT: ReportOutcome.NO_REPORT,
}


def luhn_digit(digits: str) -> str:
    """The Luhn check digit that IMEIs and ICCIDs end with."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


@dataclass(frozen=True)
class SimIdentity:
    """What is printed on (and stored in) one SIM card, plus the IMEI of the modem it sits in."""

    msisdn: str
    imsi: str
    iccid: str
    imei: str
    pin: str
    puk: str


def make_identities(seed: int | str, count: int) -> list[SimIdentity]:
    """The first `count` SIM identities of a seeded pool: same seed, same identities.

    A pool grown later keeps its first SIMs: MSISDNs come from one seeded shuffle of the range
    and every other field from a generator seeded per SIM index.
    """
    if count > len(MSISDN_RANGE):
        raise ValueError(f"at most {len(MSISDN_RANGE)} emulated SIMs per network")
    numbers = list(MSISDN_RANGE)
    random.Random(f"smsgw-emulator:{seed}:msisdn").shuffle(numbers)
    out = []
    for index, n in enumerate(numbers[:count]):
        rng = random.Random(f"smsgw-emulator:{seed}:sim:{index}")
        imsi = "00101" + "".join(rng.choices("0123456789", k=10))  # MCC 001 / MNC 01: test network
        iccid_body = "8900101" + "".join(rng.choices("0123456789", k=11))
        imei_body = "35" + "".join(rng.choices("0123456789", k=12))
        out.append(
            SimIdentity(
                msisdn=f"{MSISDN_PREFIX}{n:03d}",
                imsi=imsi,
                iccid=iccid_body + luhn_digit(iccid_body),
                imei=imei_body + luhn_digit(imei_body),
                pin=f"{rng.randrange(10000):04d}",
                puk=f"{rng.randrange(10**8):08d}",
            )
        )
    return out


@dataclass
class SimCard:
    """A SIM's mutable state; it survives unplug and reboot (it lives in the card)."""

    identity: SimIdentity
    pin_enabled: bool = False
    pin_attempts_left: int = 3
    puk_attempts_left: int = 10
    next_reference: int = 0
    balance_cents: int = 1000
    address_field: bytes = b""

    def __post_init__(self) -> None:
        self.address_field = encode_address(self.identity.msisdn)

    def take_reference(self) -> int:
        """TP-MR for the next SUBMIT: per SIM, incrementing modulo 256."""
        mr = self.next_reference
        self.next_reference = (mr + 1) & 0xFF
        return mr


class Subscriber(Protocol):
    """A modem attached to the network."""

    sim: SimCard

    def receive_sms(self, tpdu: bytes) -> bool:
        """Take an SMS-DELIVER; False when it cannot now (off, unregistered, memory full)."""

    def receive_status_report(self, tpdu: bytes) -> bool:
        """Take an SMS-STATUS-REPORT; False when it cannot now."""


@dataclass(frozen=True)
class OutboundSms:
    """One SMS-SUBMIT that left the emulated network for the outside world."""

    sender: str
    destination: str
    message_reference: int
    tpdu: bytes
    time: float


@dataclass
class _Held:
    kind: str  # "sms" | "report"
    tpdu: bytes
    on_delivered: Callable[[], None] | None = None  # the sender's final status report
    expired: bool = False


@dataclass
class NetworkStats:
    """Counters for benchmarks and the CLI."""

    submitted: int = 0
    delivered: int = 0
    reports: int = 0
    to_outside: int = 0
    rejected: int = 0


@dataclass
class Network:
    """An SMSC and the outside world. Not thread-safe: use it from the emulator's loop thread."""

    scheduler: Scheduler
    report_delay: float = 0.0
    delivery_delay: float = 0.0
    smsc: str = SMSC_NUMBER
    # Re-send +CMT/+CDS a modem lost (power) before the host's +CNMA, as real SMSCs do; the host
    # then sees a duplicate. Off by default so "exactly once" soak invariants hold.
    resend_unacknowledged: bool = False
    subscribers: dict[str, Subscriber] = field(default_factory=dict)
    outside: list[OutboundSms] = field(default_factory=list)
    stats: NetworkStats = field(default_factory=NetworkStats)
    on_outside: list[Callable[[OutboundSms], None]] = field(default_factory=list)
    # What the SMSC will report for a submit to the outside world, by destination (a soak draws
    # it per recipient); None: the magic numbers' outcomes, "delivered" for every other number.
    report_outcome: Callable[[str], ReportOutcome] | None = None

    def __post_init__(self) -> None:
        self.smsc_field = encode_smsc(self.smsc)
        self._held: dict[str, deque[_Held]] = {}
        self._scts_second = -1
        self._scts = b""

    # -- attachment -----------------------------------------------------------------------------
    def attach(self, subscriber: Subscriber) -> None:
        """Register a modem under its SIM's MSISDN."""
        self.subscribers[subscriber.sim.identity.msisdn] = subscriber

    def detach(self, subscriber: Subscriber) -> None:
        """Forget a modem (messages for it are held)."""
        self.subscribers.pop(subscriber.sim.identity.msisdn, None)

    def held(self, msisdn: str) -> int:
        """How many messages wait at the SMSC for this subscriber."""
        return len(self._held.get(msisdn, ()))

    def hold(self, msisdn: str, kind: str, tpdu: bytes) -> None:
        """Take back a message the modem lost before acknowledging it (it will be re-sent)."""
        self._held.setdefault(msisdn, deque()).appendleft(_Held(kind, tpdu))

    def retry(self, msisdn: str) -> None:
        """The subscriber became reachable or freed memory (SMMA): hand over what is held."""
        queue = self._held.get(msisdn)
        sub = self.subscribers.get(msisdn)
        while queue and sub is not None:
            item = queue[0]
            if item.expired:
                queue.popleft()
                continue
            ok = (
                sub.receive_sms(item.tpdu)
                if item.kind == "sms"
                else sub.receive_status_report(item.tpdu)
            )
            if not ok:
                return
            queue.popleft()
            if item.kind == "sms":
                self.stats.delivered += 1
            if item.on_delivered is not None:
                item.on_delivered()

    # -- time -----------------------------------------------------------------------------------
    def scts(self) -> bytes:
        """Service-centre timestamp for now (cached per second: the hot path calls it per SMS)."""
        second = int(self.scheduler.now())
        if second != self._scts_second:
            self._scts_second = second
            self._scts = encode_scts(second)
        return self._scts

    # -- mobile-originated ----------------------------------------------------------------------
    def submit(self, sender: Subscriber, tpdu: bytes) -> int:
        """Accept an SMS-SUBMIT from a modem; returns the TP-MR, or raises SubmitRejectedError."""
        try:
            sub = parse_submit(tpdu, COUNTRY_CODE)
        except SubmitFormatError as exc:
            self.stats.rejected += 1
            raise SubmitRejectedError(304, str(exc)) from exc
        dest = sub.destination
        if dest.startswith(MAGIC_CMS_ERROR_PREFIX) and len(dest) == len(MAGIC_CMS_ERROR_PREFIX) + 3:
            self.stats.rejected += 1
            raise SubmitRejectedError(int(dest[-3:]), "magic number")
        sim = sender.sim
        mr = sim.take_reference()
        sim.balance_cents = max(0, sim.balance_cents - 5)
        self.stats.submitted += 1
        target = self.subscribers.get(dest)
        if target is not None:
            deliver = build_deliver(sub, sim.address_field, self.scts())
            self.scheduler.call_later(
                self.delivery_delay, lambda: self._deliver(sim, sub, mr, dest, deliver)
            )
        else:
            out = OutboundSms(sim.identity.msisdn, dest, mr, tpdu, self.scheduler.now())
            self.outside.append(out)
            self.stats.to_outside += 1
            for cb in self.on_outside:
                cb(out)
            if sub.status_report_request:
                self._schedule_report(sim, sub, mr, self.outcome_for(dest))
        return mr

    def outcome_for(self, destination: str) -> ReportOutcome:
        """The status report outcome of a submit to `destination` in the outside world."""
        if self.report_outcome is not None:
            return self.report_outcome(destination)
        return MAGIC_OUTCOMES.get(destination, ReportOutcome.DELIVERED)

    def _deliver(self, origin: SimCard, sub: Submit, mr: int, dest: str, deliver: bytes) -> None:
        target = self.subscribers.get(dest)
        queue = self._held.get(dest)
        if target is not None and not queue and target.receive_sms(deliver):
            self.stats.delivered += 1
            if sub.status_report_request:
                self._schedule_report(origin, sub, mr, ReportOutcome.DELIVERED)
            return
        held = _Held("sms", deliver)
        self._held.setdefault(dest, deque()).append(held)
        if sub.status_report_request:
            # A held message is still "being tried": tell the sender so, like real SMSCs do,
            # and send the final report when it gets through (or its validity runs out).
            self._schedule_report(origin, sub, mr, ReportOutcome.NO_REPORT, temporary_only=True)
            held.on_delivered = lambda: self._schedule_report(
                origin, sub, mr, ReportOutcome.DELIVERED
            )

        def expire() -> None:
            queue = self._held.get(dest)
            if queue is None or not any(h is held for h in queue):
                return  # delivered in time
            held.expired = True
            self._held[dest] = deque(h for h in queue if h is not held)
            if sub.status_report_request:
                self._schedule_report(origin, sub, mr, ReportOutcome.EXPIRED)

        self.scheduler.call_later(sub.validity_seconds or DEFAULT_VALIDITY, expire)

    def _schedule_report(
        self,
        origin: SimCard,
        sub: Submit,
        mr: int,
        outcome: ReportOutcome,
        *,
        temporary_only: bool = False,
    ) -> None:
        if outcome is ReportOutcome.NO_REPORT and not temporary_only:
            return
        msisdn = origin.identity.msisdn
        recipient = sub.destination_field
        submitted = self.scts()

        def send(status: int) -> None:
            report = build_status_report(mr, recipient, submitted, self.scts(), status)
            self.stats.reports += 1
            self.send_report(msisdn, report)

        if temporary_only or outcome is ReportOutcome.TEMPORARY_THEN_DELIVERED:
            self.scheduler.call_later(self.report_delay, lambda: send(ST_TEMPORARY_CONGESTION))
            if temporary_only:
                return
            self.scheduler.call_later(2 * self.report_delay, lambda: send(ST_DELIVERED))
            return
        status = {
            ReportOutcome.DELIVERED: ST_DELIVERED,
            ReportOutcome.PERMANENT_FAILURE: ST_PERMANENT_INCOMPATIBLE,
            ReportOutcome.EXPIRED: ST_PERMANENT_EXPIRED,
        }[outcome]
        self.scheduler.call_later(self.report_delay, lambda: send(status))

    def send_report(self, msisdn: str, report: bytes) -> None:
        """Hand a status report to a subscriber, holding it while the modem cannot take it."""
        target = self.subscribers.get(msisdn)
        queue = self._held.get(msisdn)
        if target is not None and not queue and target.receive_status_report(report):
            return
        self._held.setdefault(msisdn, deque()).append(_Held("report", report))

    # -- mobile-terminated from the outside world -----------------------------------------------
    def inject_tpdus(self, msisdn: str, tpdus: Iterable[bytes]) -> None:
        """Deliver ready-made SMS-DELIVER TPDUs to an emulated SIM, in the order given."""
        if msisdn not in self.subscribers and msisdn not in self._held:
            raise KeyError(f"no emulated SIM with MSISDN {msisdn}")
        for tpdu in tpdus:
            target = self.subscribers.get(msisdn)
            queue = self._held.get(msisdn)
            if target is not None and not queue and target.receive_sms(tpdu):
                self.stats.delivered += 1
            else:
                self._held.setdefault(msisdn, deque()).append(_Held("sms", tpdu))
