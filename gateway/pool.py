"""SIMs as long codes: rotation, sticky routing, per-SIM throttle and health (clock passed in)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.models import ThrottlePolicy
from gateway.throttle import Throttle


class SimAvailability(StrEnum):
    """Why a SIM is or is not in rotation."""

    READY = "ready"
    COOLING = "cooling"  # too many recent send errors; comes back when the cool-down ends
    UNREGISTERED = "unregistered"
    WEAK_SIGNAL = "weak_signal"
    GONE = "gone"  # its modem is unplugged or not answering
    DISABLED = "disabled"  # taken out by the operator


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """Thresholds that take a SIM out of rotation and bring it back."""

    error_window: float = 600.0
    errors_to_cool: int = 3
    first_cooldown: float = 60.0
    max_cooldown: float = 1800.0
    min_signal_dbm: int = -109  # +CSQ 2: below this, sends mostly fail with CMS 38/42


@dataclass(slots=True)
class PooledSim:
    """Run-time state of one SIM in the pool."""

    sim_id: int
    msisdn: str
    throttle: Throttle
    present: bool = True
    enabled: bool = True
    registered: bool = True
    signal_dbm: int | None = None
    registration: str = ""  # the +CREG status by name (home, roaming, searching, denied, ...)
    operator: str = ""
    cooldown_until: float = 0.0
    cooldowns_in_a_row: int = 0
    cooldowns: int = 0  # since the daemon started (a /metrics counter)
    errors: deque[float] = field(default_factory=deque)


def policy_of(row: Mapping[str, Any]) -> ThrottlePolicy:
    """The throttle policy stored on a `sims` row."""
    return ThrottlePolicy(
        interval=float(row.get("throttle_interval") or 1.0),
        per_minute=row.get("cap_per_minute"),
        per_hour=row.get("cap_per_hour"),
        per_day=row.get("cap_per_day"),
        recipients_per_day=row.get("cap_recipients_per_day"),
    )


@dataclass(frozen=True, slots=True)
class Route:
    """The pool's answer for one send: which SIM, and the earliest time it may start."""

    sim_id: int | None
    not_before: float
    reason: str = ""


class SimPool:
    """All SIMs known to the daemon; pure state, no I/O."""

    def __init__(self, health: HealthPolicy | None = None) -> None:
        self.health = health or HealthPolicy()
        self._sims: dict[int, PooledSim] = {}
        self._sticky: dict[tuple[int, str], int] = {}
        self._last_pick: dict[int, float] = {}

    def upsert(self, sim_id: int, msisdn: str, policy: ThrottlePolicy) -> PooledSim:
        """Add a SIM or update its number and limits, keeping its pacing and health history."""
        sim = self._sims.get(sim_id)
        if sim is None:
            sim = PooledSim(sim_id=sim_id, msisdn=msisdn, throttle=Throttle(policy))
            self._sims[sim_id] = sim
        else:
            sim.msisdn = msisdn
            sim.throttle.policy = policy
        return sim

    def sim_ids(self) -> list[int]:
        """Every SIM known to the pool, present or not, in id order."""
        return sorted(self._sims)

    def get(self, sim_id: int) -> PooledSim:
        """Return the pooled SIM."""
        return self._sims[sim_id]

    def by_number(self, msisdn: str) -> PooledSim | None:
        """Return the SIM whose long code is `msisdn`."""
        for sim in self._sims.values():
            if sim.msisdn and sim.msisdn == msisdn:
                return sim
        return None

    def set_present(self, sim_id: int, present: bool) -> None:
        """Mark a SIM's modem as connected or gone (unplugged, hung)."""
        self._sims[sim_id].present = present

    def set_enabled(self, sim_id: int, enabled: bool) -> None:
        """Take a SIM out of rotation by hand, or put it back."""
        self._sims[sim_id].enabled = enabled

    def set_policy(self, sim_id: int, policy: ThrottlePolicy) -> None:
        """New limits for a SIM, in force from its next send (its pacing history is kept)."""
        self._sims[sim_id].throttle.policy = policy

    def set_number(self, sim_id: int, msisdn: str) -> None:
        """The SIM's long code as the operator set it."""
        self._sims[sim_id].msisdn = msisdn

    def report_radio(
        self,
        sim_id: int,
        *,
        registered: bool,
        signal_dbm: int | None,
        registration: str = "",
        operator: str = "",
    ) -> None:
        """Record the latest registration and signal poll."""
        sim = self._sims[sim_id]
        sim.registered = registered
        sim.signal_dbm = signal_dbm
        sim.registration = registration
        sim.operator = operator

    def report_error(self, sim_id: int, now: float) -> None:
        """Count a send error; enough of them in the window cool the SIM down (doubling)."""
        sim = self._sims[sim_id]
        sim.errors.append(now)
        while sim.errors and sim.errors[0] <= now - self.health.error_window:
            sim.errors.popleft()
        if len(sim.errors) >= self.health.errors_to_cool:
            delay = min(
                self.health.first_cooldown * (2**sim.cooldowns_in_a_row), self.health.max_cooldown
            )
            sim.cooldown_until = now + delay
            sim.cooldowns_in_a_row += 1
            sim.cooldowns += 1
            sim.errors.clear()

    def report_success(self, sim_id: int) -> None:
        """A send worked: the SIM's error streak and cool-down escalation reset."""
        sim = self._sims[sim_id]
        sim.errors.clear()
        sim.cooldowns_in_a_row = 0

    def availability(self, sim_id: int, now: float) -> SimAvailability:
        """Tell whether the SIM is in rotation at `now`, and why not."""
        sim = self._sims[sim_id]
        if not sim.enabled:
            return SimAvailability.DISABLED
        if not sim.present:
            return SimAvailability.GONE
        if not sim.registered:
            return SimAvailability.UNREGISTERED
        if sim.signal_dbm is not None and sim.signal_dbm < self.health.min_signal_dbm:
            return SimAvailability.WEAK_SIGNAL
        if now < sim.cooldown_until:
            return SimAvailability.COOLING
        return SimAvailability.READY

    def free_at(self, sim_id: int, now: float) -> float | None:
        """When the SIM may start its next send by its pace and rolling caps (Throttle.free_at:
        a new recipient may wait longer), or None while it is out of rotation."""
        if self.availability(sim_id, now) is not SimAvailability.READY:
            return None
        return self._sims[sim_id].throttle.free_at(now)

    def route(
        self,
        *,
        account_id: int,
        allowed: Iterable[int],
        recipient: str,
        now: float,
        sender_sim: int | None = None,
        rotate: bool = True,
        backlog: Mapping[int, int] | None = None,
    ) -> Route:
        """Choose the SIM for one part.

        A fixed sender uses its own SIM only. Otherwise the recipient's sticky SIM is kept while
        it is healthy (so replies come back to the number they know), else the ready SIM that
        may send soonest, least recently picked first, so a batch spreads evenly. `backlog`
        counts parts already handed to each SIM but not yet started.
        """
        if sender_sim is not None or not rotate:
            candidates = [sender_sim] if sender_sim is not None else list(allowed)[:1]
        else:
            sticky = self._sticky.get((account_id, recipient))
            allowed_set = set(allowed)
            if (
                sticky is not None
                and sticky in allowed_set
                and self.availability(sticky, now) is SimAvailability.READY
            ):
                candidates = [sticky]
            else:
                candidates = sorted(allowed_set)
        best: tuple[float, float, int] | None = None
        reasons: list[str] = []
        for sim_id in candidates:
            if sim_id is None or sim_id not in self._sims:
                reasons.append(f"sim {sim_id}: unknown")
                continue
            state = self.availability(sim_id, now)
            if state is not SimAvailability.READY:
                reasons.append(f"sim {sim_id}: {state.value}")
                continue
            sim = self._sims[sim_id]
            decision = sim.throttle.check(now, recipient)
            waiting = (backlog or {}).get(sim_id, 0) * sim.throttle.policy.interval
            key = (
                decision.not_before + waiting,
                self._last_pick.get(sim_id, float("-inf")),
                sim_id,
            )
            if best is None or key < best:
                best = key
        if best is None:
            return Route(None, now, "; ".join(reasons) or "no SIM allowed for this account")
        return Route(best[2], best[0])

    def roomiest(
        self, allowed: Iterable[int], now: float, backlog: Mapping[int, int] | None = None
    ) -> int | None:
        """The ready SIM among `allowed` with the most headroom, for a batch that will keep to
        one SIM: the most sends its day caps still allow (uncapped counts as unlimited, parts
        already queued to it are taken off), then the one free soonest, then the least recently
        picked, then the lowest id. None when no allowed SIM is ready."""
        best: tuple[float, float, float, int] | None = None
        for sim_id in sorted(set(allowed)):
            if sim_id not in self._sims:
                continue
            if self.availability(sim_id, now) is not SimAvailability.READY:
                continue
            sim = self._sims[sim_id]
            queued = (backlog or {}).get(sim_id, 0)
            room = sim.throttle.headroom(now)
            left = float("inf") if room is None else float(room - queued)
            free_at = sim.throttle.check(now).not_before + queued * sim.throttle.policy.interval
            key = (-left, free_at, self._last_pick.get(sim_id, float("-inf")), sim_id)
            if best is None or key < best:
                best = key
        return best[3] if best is not None else None

    def record_send(self, sim_id: int, account_id: int, recipient: str, now: float) -> None:
        """Note that `sim_id` started sending to `recipient` at `now` (throttle and stickiness)."""
        self._sims[sim_id].throttle.record(now, recipient)
        self._last_pick[sim_id] = now
        self._sticky[(account_id, recipient)] = sim_id

    def restore_sends(
        self, sim_id: int, sends: Iterable[tuple[float, str | None]], *, replace: bool = False
    ) -> None:
        """Rebuild a SIM's pacing from persisted (monotonic send time, recipient) pairs;
        `replace` forgets the sends the pool remembered first (they are among `sends`)."""
        sim = self._sims[sim_id]
        if replace:
            sim.throttle = Throttle(sim.throttle.policy)
        sim.throttle.restore(sends)

    def restore_sticky(self, routes: Mapping[tuple[int, str], int]) -> None:
        """Load persisted sticky routes (account, recipient) -> SIM."""
        self._sticky.update(routes)
