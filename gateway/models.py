"""Domain dataclasses and enums; the message lifecycle as one transition table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class PartState(StrEnum):
    """Lifecycle state of one SMS part (and, rolled up, of a message)."""

    ACCEPTED = "accepted"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    UNCERTAIN = "uncertain"


S = PartState

# Every state change in the outbox goes through this table; anything else is a bug.
ALLOWED_TRANSITIONS: Mapping[PartState, frozenset[PartState]] = {
    # Accepted: durable in the store, waiting for its send time or for the queue.
    S.ACCEPTED: frozenset({S.QUEUED, S.CANCELLED, S.FAILED, S.EXPIRED}),
    # Queued: due; waits for a SIM whose throttle allows it. Rescheduled (a batch modified
    # before any of the message went out) it waits for its new time again.
    S.QUEUED: frozenset({S.SENDING, S.ACCEPTED, S.CANCELLED, S.FAILED, S.EXPIRED}),
    # Sending: AT+CMGS is (about to be) on the wire. A temporary error puts it back in the queue;
    # a crash or an interrupted exchange makes it uncertain, never silently resent.
    S.SENDING: frozenset({S.SENT, S.QUEUED, S.FAILED, S.UNCERTAIN}),
    # Sent: the network gave a TP-MR; a status report settles it.
    S.SENT: frozenset({S.DELIVERED, S.FAILED, S.EXPIRED}),
    # Uncertain: only an explicit opt-in requeues it; a matching status report can still settle it.
    S.UNCERTAIN: frozenset({S.QUEUED, S.SENT, S.DELIVERED, S.FAILED, S.EXPIRED}),
    S.DELIVERED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL_STATES: frozenset[PartState] = frozenset(
    state for state, targets in ALLOWED_TRANSITIONS.items() if not targets
)


class TransitionError(ValueError):
    """A state change that the lifecycle table does not allow."""

    def __init__(self, current: PartState, target: PartState) -> None:
        super().__init__(f"illegal message state change {current.value} -> {target.value}")
        self.current = current
        self.target = target


def check_transition(current: PartState, target: PartState) -> None:
    """Raise TransitionError unless current -> target is in ALLOWED_TRANSITIONS."""
    if target not in ALLOWED_TRANSITIONS[current]:
        raise TransitionError(current, target)


# Roll-up precedence: a failure anywhere fails the message, then uncertainty; otherwise the
# message shows its least advanced part (a message is only as good as its worst part).
_ROLLUP_ORDER: tuple[PartState, ...] = (
    S.FAILED,
    S.UNCERTAIN,
    S.CANCELLED,
    S.EXPIRED,
    S.ACCEPTED,
    S.QUEUED,
    S.SENDING,
    S.SENT,
    S.DELIVERED,
)


def rollup(states: Iterable[PartState]) -> PartState:
    """Return the message state for the given part states."""
    present = set(states)
    if not present:
        raise ValueError("a message has at least one part")
    for state in _ROLLUP_ORDER:
        if state in present:
            return state
    raise AssertionError("unreachable: _ROLLUP_ORDER covers every PartState")


class WebhookKind(StrEnum):
    """What an outgoing webhook reports (one subscriber URL per account and kind)."""

    REPLY = "reply"  # an inbound message was stored for an account (reassembled or surfaced)
    STATUS = "status"  # a message's (or a reported part's) state changed


class WebhookState(StrEnum):
    """Delivery state of one webhook event in the outbox."""

    PENDING = "pending"  # waiting for its (next) attempt
    DELIVERED = "delivered"  # the subscriber answered 2xx
    FAILED = "failed"  # given up: the retry window passed, or it can never be sent


W = WebhookState

# What one delivery attempt may do to a pending event (PENDING: try again later). A manual
# retry puts any event back to PENDING (a delivered one is sent again).
WEBHOOK_TRANSITIONS: Mapping[WebhookState, frozenset[WebhookState]] = {
    W.PENDING: frozenset({W.PENDING, W.DELIVERED, W.FAILED}),
    W.DELIVERED: frozenset({W.PENDING}),
    W.FAILED: frozenset({W.PENDING}),
}


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    """Pacing of one long code: one SMS every `interval` seconds plus optional rolling caps."""

    interval: float = 1.0
    per_minute: int | None = None
    per_hour: int | None = None
    per_day: int | None = None
    recipients_per_day: int | None = None

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("throttle interval must be positive")
        for name in ("per_minute", "per_hour", "per_day", "recipients_per_day"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 when set")


class ModemState(StrEnum):
    """Where one port's supervisor is (GET /v1/health shows it per modem)."""

    CONNECTING = "connecting"  # opening the port and setting the modem up (AT, PIN, SMS ready)
    INITIALISING = "initialising"  # the modem answered: reading its identity, binding its SIM
    REGISTERING = "registering"  # SIM bound, but the modem is not registered on a network
    READY = "ready"  # registered: its SIM sends and receives
    GONE = "gone"  # the modem was lost (or failed to start) and its port closed
    BACKOFF = "backoff"  # waiting before the next attempt
    STOPPED = "stopped"  # supervision ended (shutdown, unplugged)


M = ModemState

# Every state change of a ModemWorker goes through this table.
MODEM_TRANSITIONS: Mapping[ModemState, frozenset[ModemState]] = {
    M.CONNECTING: frozenset({M.INITIALISING, M.GONE, M.STOPPED}),
    M.INITIALISING: frozenset({M.REGISTERING, M.GONE}),
    # Registration comes and goes (coverage, operator barring) while the modem stays connected.
    M.REGISTERING: frozenset({M.READY, M.GONE}),
    M.READY: frozenset({M.REGISTERING, M.GONE}),
    M.GONE: frozenset({M.BACKOFF, M.STOPPED}),
    M.BACKOFF: frozenset({M.CONNECTING, M.STOPPED}),
    M.STOPPED: frozenset({M.CONNECTING}),  # run() again
}
