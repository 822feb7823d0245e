"""The outbox: sends queued messages part by part, durably, at each SIM's pace."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from gateway.models import PartState
from gateway.pool import SimPool
from gateway.store import StaleStateError, Store, StoreUnavailableError, utc_iso
from gateway.telemetry import Telemetry
from modem.pdu import Address, SmsSubmit, build_submits

log = logging.getLogger(__name__)

# Retries for temporary errors (CMS 38 network out of order, 42 congestion, timeouts), then fail.
MAX_ATTEMPTS = 5
# Short, because the retry usually fails over to another SIM; a SIM that keeps failing is cooled
# down as a whole by the pool (gateway.pool.HealthPolicy), which is what protects the network.
BACKOFF_BASE = timedelta(seconds=2)
# Longer than any retry's back-off: a retry put off further ahead than this was put off before
# the wall clock was stepped back (NTP, an RTC-less box setting its date), and is due now.
RETRY_HORIZON = BACKOFF_BASE * 2**MAX_ATTEMPTS
SEND_TIMEOUT = 60.0
# What a message to be sent is read with; any of it changed during the throttle wait holds it.
_AS_READ = ("updated_at", "state", "body", "units", "sender", "send_at")
# A refused commit (disk full, DB locked) of an AT+CMGS outcome is tried again at this pace,
# doubling up to the cap: the outcome stays in memory until it is durable.
RECORD_RETRY_FIRST = 0.5
RECORD_RETRY_CAP = 30.0


class OutcomeKind(StrEnum):
    """How one AT+CMGS exchange ended."""

    SENT = "sent"  # +CMGS: <mr> then OK
    TEMPORARY = "temporary"  # the network refused it for now: retry later, maybe elsewhere
    PERMANENT = "permanent"  # will never work (bad number, barred): fail the part
    UNKNOWN = "unknown"  # interrupted after the PDU left: it may or may not have gone out


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The result of handing one part to a modem."""

    kind: OutcomeKind
    tp_mr: int | None = None
    error: str = ""
    cms_error: int | None = None


# +CMS ERROR codes after which the same part may succeed later (TS 27.005 3.2.5: 0-127 are
# TS 24.011 RP-causes, 128-255 TS 23.040 TP-FCS, 300+ ME/SIM/network conditions). Everything
# else (unassigned number, barred, invalid PDU, ...) fails the part for good.
TEMPORARY_CMS_ERRORS: frozenset[int] = frozenset(
    {27, 38, 41, 42, 47, 81, 127}  # out of service, network out of order, temporary, congestion
    | {0xC0, 0xC2, 0xD0, 0xD2}  # SC busy, SC system failure, SIM storage full, error in MS
    | {300, 301, 310, 311, 313, 314, 331, 332, 500}  # ME/SIM failure or busy, no network, unknown
    | set(range(512, 1024))  # manufacturer specific (e.g. SIMCom 515 busy): assume transient
)


def concat_reference(message_id: int) -> int:
    """The concatenation reference of a message's parts (TS 23.040 9.2.3.24.1): derived from
    the message, so a part sent again after a temporary error, or after a restart, joins the
    parts that already went out; consecutive messages differ."""
    return message_id % 256


# States of a part that has been handed to a SIM: the rest of its message keeps to that SIM,
# or the recipient's phone could not join the parts (it reassembles per sender and reference).
STARTED_STATES = frozenset({"sending", "sent", "delivered"})


def is_temporary_cms(code: int | None) -> bool:
    """Whether a part refused with +CMS ERROR `code` should be retried (None: not refused)."""
    return code is None or code in TEMPORARY_CMS_ERRORS


class PartSender(Protocol):
    """What the outbox needs from a modem worker: submit one part, report how it went."""

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        """Run one AT+CMGS exchange for `submit` and report the outcome."""
        ...


@dataclass(frozen=True, slots=True)
class Clock:
    """Injected time: monotonic seconds for pacing, wall time for the store, and a sleep.

    `timer` (default: `sleep`) is the sleep of periodic bookkeeping such as renewing SIM
    leases: the same clock, but a test's virtual one may refuse to move time for it alone."""

    monotonic: Callable[[], float]
    wall: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[None]]
    timer: Callable[[float], Awaitable[None]] | None = None

    def timer_sleep(self, delay: float) -> Awaitable[None]:
        """Wait `delay` seconds with `timer`, else `sleep`."""
        return (self.timer or self.sleep)(delay)


class Outbox:
    """Sends one message at a time per SIM; every state change is durable before the next step."""

    def __init__(
        self,
        store: Store,
        pool: SimPool,
        senders: dict[int, PartSender],
        clock: Clock,
        *,
        on_sent: Callable[[int], object] | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.senders = senders
        self.clock = clock
        # Called with a part id once its TP-MR is recorded (reports that overtook it are matched).
        self.on_sent = on_sent
        self.telemetry = telemetry
        # SIMs with a part between its durable SENDING and its recorded outcome.
        self.on_wire: set[int] = set()
        # When each paced batch last put a part on the wire (any SIM), for its batch_gap.
        self._batch_last: dict[int, float] = {}

    async def send_message(
        self,
        message_id: int,
        *,
        allowed_sims: list[int],
        sender_sim: int | None = None,
        keep_going: Callable[[], bool] | None = None,
    ) -> PartState:
        """Send every queued part of a message from one SIM, in order; return the message's
        state after.

        A message some of whose parts went out keeps to their SIM (and their concatenation
        reference), waiting for it if it is not among `allowed_sims`. `keep_going` is asked
        before each part: a SIM being detached finishes the part on the wire and leaves the
        rest queued. A part put back in the queue (a temporary error) holds the parts after it;
        one that failed, or whose fate is uncertain, ends the message (the store fails the rest
        unsent: MessageStore._fail_stranded).
        """
        message = self.store.message(message_id)
        if message is None:
            raise KeyError(f"no message {message_id}")
        if self.store.is_opted_out(message["account_id"], message["recipient"]):
            return self._fail_unsent(message_id, "recipient opted out (STOP)")
        parts = self.store.parts(message_id)
        started_on = next((p["sim_id"] for p in parts if p["state"] in STARTED_STATES), None)
        if started_on is not None:
            if started_on not in allowed_sims:
                return PartState(message["state"])  # its SIM is away: the rest waits for it
            sender_sim = started_on
        route = self.pool.route(
            account_id=message["account_id"],
            allowed=allowed_sims,
            recipient=message["recipient"],
            now=self.clock.monotonic(),
            sender_sim=sender_sim,
        )
        if route.sim_id is None:
            log.warning("message %d: no SIM can send it now (%s)", message_id, route.reason)
            return PartState(message["state"])
        sim_id = route.sim_id
        submits = build_submits(
            Address.parse(message["recipient"]),
            message["body"],
            reference=concat_reference(message_id),
            status_report=bool(message["status_report"]),
        )
        if len(submits) != len(parts):
            raise RuntimeError(
                f"message {message_id}: stored {len(parts)} parts but the text needs {len(submits)}"
            )
        state = PartState(message["state"])
        # A batch may ask for a slower pace than its SIMs' own (UltraSMS `throttle`), and for
        # a pace of the whole batch across every SIM (Zoom Connect `messagesPerMinute`).
        batch = self.store.batch(message["batch_id"]) if message["batch_id"] is not None else None
        pace = float(batch["throttle_interval"] or 0.0) if batch is not None else 0.0
        gap = float(batch["batch_gap"] or 0.0) if batch is not None else 0.0
        started = False
        for part, submit in zip(parts, submits, strict=True):
            if part["state"] != PartState.QUEUED.value:
                continue
            if keep_going is not None and not keep_going():
                break
            # Until its first part leaves, the message may still be held: its batch paused
            # or cancelled, or the message itself changed (modified, rescheduled, cancelled),
            # while it waited for the throttle. Once started it is finished: a torn message is
            # worse than a late one.
            hold = None if started else functools.partial(self._held, message, batch)
            try:
                sent = await self._send_part(
                    part, submit, sim_id, message, pace, gap=gap, hold=hold
                )
            except StaleStateError:
                # Changed under us (modified, rescheduled, cancelled) while waiting for the
                # throttle: nothing was sent; the dispatcher takes it up again as it now is.
                log.info("message %d changed before sending; left to the dispatcher", message_id)
                current = self.store.message(message_id)
                return PartState(current["state"]) if current is not None else state
            if sent is None:
                return PartState(message["state"])
            part_state, state = sent
            started = True
            if part_state is PartState.QUEUED:
                break  # to be tried again: the parts after it wait their turn, on this SIM
            if state in (PartState.FAILED, PartState.UNCERTAIN):
                # A torn message is worse than a late one: the rest is not sent (the store
                # failed it unsent, unless the account resends uncertain parts).
                break
        return state

    def _held(self, message: Mapping[str, Any], batch: Mapping[str, Any] | None) -> bool:
        current = self.store.message(message["id"])
        if current is None or any(current[k] != message[k] for k in _AS_READ):
            return True  # what was read before the wait is not what would be sent now
        if batch is None:
            return False
        now = self.store.batch(batch["id"])
        return now is None or now["state"] not in ("active", "done")

    def _fail_unsent(self, message_id: int, reason: str) -> PartState:
        """Fail every part that has not left yet (they are refunded by the store)."""
        state = PartState.FAILED
        for part in self.store.parts(message_id):
            if part["state"] == PartState.QUEUED.value:
                state = self.store.transition_part(
                    part["id"], PartState.QUEUED, PartState.FAILED, now=self.clock.wall(),
                    fields={"error": reason},
                )  # fmt: skip
        return state

    async def _send_part(
        self,
        part: Mapping[str, Any],
        submit: SmsSubmit,
        sim_id: int,
        message: Mapping[str, Any],
        pace: float = 0.0,
        *,
        gap: float = 0.0,
        hold: Callable[[], bool] | None = None,
    ) -> tuple[PartState, PartState] | None:
        """Send one part once the SIM's throttle (and the batch's pace) allows; return the
        part's and its message's state after, or None when `hold` says, after the wait, that
        it must not go now (nothing was sent)."""
        recipient = message["recipient"]
        throttle = self.pool.get(sim_id).throttle
        batch_id = message["batch_id"]
        while True:
            tick = self.clock.monotonic()
            not_before = throttle.check(tick, recipient).not_before
            if pace and throttle.last_send is not None:
                not_before = max(not_before, throttle.last_send + pace)
            last = self._batch_last.get(batch_id) if gap else None
            if last is not None:
                not_before = max(not_before, last + gap)
            if not_before <= tick:
                break
            await self.clock.sleep(not_before - tick)
        if hold is not None and hold():
            return None
        if gap:
            # Claimed before any await: another SIM's loop sees it at once and waits its turn.
            self._batch_last[batch_id] = tick
        now = self.clock.wall()
        # Durable BEFORE the first byte of AT+CMGS: a crash from here on leaves it SENDING,
        # which recovery turns into UNCERTAIN rather than sending it twice.
        self.store.transition_part(
            part["id"],
            PartState.QUEUED,
            PartState.SENDING,
            now=now,
            fields={"sim_id": sim_id, "attempts": part["attempts"] + 1},
        )
        self.pool.record_send(sim_id, message["account_id"], recipient, self.clock.monotonic())
        if self.telemetry is not None and part["seq"] == 1 and part["attempts"] == 0:
            due = datetime.fromisoformat(message["created_at"])
            if message["send_at"] is not None:
                due = max(due, datetime.fromisoformat(message["send_at"]))
            self.telemetry.first_attempt(due, now)
        self.on_wire.add(sim_id)
        try:
            try:
                outcome = await asyncio.wait_for(
                    self.senders[sim_id].send_submit(recipient, submit),
                    timeout=SEND_TIMEOUT,
                )
            except TimeoutError:
                outcome = SendOutcome(OutcomeKind.UNKNOWN, error="no answer to AT+CMGS")
            return await self._record(part, outcome, sim_id)
        finally:
            self.on_wire.discard(sim_id)

    async def _durably(self, part_id: int, write: Callable[[], PartState]) -> PartState:
        """Run a part's outcome write until it commits: the modem has answered, so the outcome
        must not be lost (nor the part failed) because the disk was full for a while."""
        delay = RECORD_RETRY_FIRST
        while True:
            try:
                return write()
            except StoreUnavailableError as exc:
                level = logging.WARNING if delay == RECORD_RETRY_FIRST else logging.DEBUG
                log.log(level, "part %d: outcome not recorded yet (%s); retrying", part_id, exc)
                await self.clock.sleep(delay)
                delay = min(delay * 2, RECORD_RETRY_CAP)

    async def _record(
        self, part: Mapping[str, Any], outcome: SendOutcome, sim_id: int
    ) -> tuple[PartState, PartState]:
        """Record how the exchange went; return the part's and its message's new state."""
        now = self.clock.wall()
        part_id = part["id"]
        fields: dict[str, Any]
        match outcome.kind:
            case OutcomeKind.SENT:
                self.pool.report_success(sim_id)
                target, fields = PartState.SENT, {"tp_mr": outcome.tp_mr}
            case OutcomeKind.TEMPORARY if part["attempts"] + 1 < MAX_ATTEMPTS:
                self.pool.report_error(sim_id, self.clock.monotonic())
                retry_at = now + BACKOFF_BASE * (2 ** part["attempts"])
                target = PartState.QUEUED
                fields = {"error": outcome.error, "cms_error": outcome.cms_error,
                          "next_attempt_at": utc_iso(retry_at)}  # fmt: skip
            case OutcomeKind.TEMPORARY | OutcomeKind.PERMANENT:
                self.pool.report_error(sim_id, self.clock.monotonic())
                target = PartState.FAILED
                fields = {"error": outcome.error, "cms_error": outcome.cms_error}
            case OutcomeKind.UNKNOWN:
                target = PartState.UNCERTAIN
                fields = {"error": outcome.error or "AT+CMGS outcome unknown"}
        state = await self._durably(part_id, lambda: self.store.transition_part(
            part_id, PartState.SENDING, target, now=now, fields=fields,
        ))  # fmt: skip
        if target is PartState.SENT and self.on_sent is not None:
            self.on_sent(part_id)
        return target, state
