"""Fleet mode's SIM leases, as this daemon holds them: a SIM sends from one box at a time.

The dispatcher acquires a SIM's lease when a worker attaches it, renews every lease it holds
every ttl/3 and releases it at a clean detach. A box that dies (kill -9, power cut, cable) stops
renewing: after ttl its leases have expired, and the box that next binds one of its SIMs (or
the same box, restarted, at once) takes it over, its `sending` parts made `uncertain` in that
same transaction. A box that cannot reach the store to renew counts a lease as lost once its
own clock says it ran out, so it never sends on a SIM another box may already have taken.

That fast takeover trusts one daemon per box_id, so a daemon takes its box_id at start (a
row naming its incarnation, its heartbeat renewed with the leases). A box_id whose row shows
another incarnation with a fresh heartbeat is watched for WATCH_PERIODS renewal periods: if
that process renews, it runs, and this one refuses to start (BoxInUseError); if not, it is
dead and its box_id and leases are taken over. A row left by a process on this same machine
whose pid is gone (kill -9, then a restart) is taken at once, as is one left by a clean stop
or not renewed for a whole ttl. A running daemon that finds its box_id taken by another
process gives up its SIMs and asks for no lease again rather than fight over them, and stops
(BoxTakenError, exit status EXIT_BOX_TAKEN): serving on without a SIM would hide the clash.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gateway.config import DEFAULT_LEASE_TTL
from gateway.store import BoxBeat, LeaseGrant, LeaseHolder, Store

log = logging.getLogger(__name__)

# How long a starting daemon watches a box_id with a fresh heartbeat for the next one, in
# renewal periods (ttl/3): a running holder renews within one, with half a period to spare.
WATCH_PERIODS = 1.5
WATCH_LOOKS = 6  # how many times the box's row is read meanwhile (a live holder is seen early)


# sysexits' EX_CONFIG: two daemons share a box_id, which only the operator can fix (refused at
# start, or deposed while running); the unit says RestartPreventExitStatus= for it (a restart
# would wait and be refused again).
EXIT_BOX_TAKEN = 78


class BoxInUseError(RuntimeError):
    """Another running daemon has this box_id: this one must not start (nothing was sent)."""


class BoxTakenError(RuntimeError):
    """Another daemon took this box_id while this one ran: it gave up its SIMs and stopped."""


def this_host() -> str:
    """This kernel boot and PID namespace ('' when unknown): processes with the same one see
    each other's pids (a clone of the SD card, another container, a reboot: another host)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""
    return f"{boot} {namespace}"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs here (another one than this process)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it runs
    return True


@dataclass(frozen=True, slots=True)
class Host:
    """Where this process runs: `key` (this_host), its pid, and how to tell whether a pid runs."""

    key: str
    pid: int
    alive: Callable[[int], bool] = pid_alive

    @classmethod
    def here(cls) -> Host:
        """This process."""
        return cls(this_host(), os.getpid())


@dataclass(frozen=True, slots=True)
class LeaseSettings:
    """Whose leases these are (`box_id`, one per box) and how long one lasts unrenewed."""

    box_id: str
    ttl: float = DEFAULT_LEASE_TTL

    def __post_init__(self) -> None:
        if not self.box_id:
            raise ValueError("a box needs a box_id to hold leases")
        if not self.ttl > 0:
            raise ValueError("the lease ttl must be positive")


class SimLeases:
    """The leases this daemon process holds (its incarnation is made here, once)."""

    def __init__(
        self,
        store: Store,
        settings: LeaseSettings,
        wall: Callable[[], datetime],
        *,
        incarnation: str | None = None,
        host: Host | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.wall = wall
        self.holder = LeaseHolder(settings.box_id, incarnation or secrets.token_hex(8))
        self.host = host or Host.here()
        # SIM -> until when its lease is ours by the last acquire or renewal that committed.
        self._valid_until: dict[int, datetime] = {}
        self.joined = False  # this process took its box_id (join): it renews a heartbeat
        # Another process took this box_id: no lease is asked for or renewed any more.
        self.deposed = False
        self.taken_by = ""  # that process, once deposed
        # Called once at the deposition (the daemon stops then; see gateway.daemon.serve).
        self.on_deposed: Callable[[], None] | None = None

    @property
    def period(self) -> float:
        """How often the leases are renewed: three chances before one runs out."""
        return self.settings.ttl / 3

    def held(self) -> set[int]:
        """The SIMs this process holds the lease of."""
        return set(self._valid_until)

    async def join(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        """Take this box_id for this process (the daemon, at start, before any lease), or raise
        BoxInUseError when another running daemon has it. Waits (with `sleep`, the injected
        clock's) at most WATCH_PERIODS renewal periods, only when the box's row shows another
        process that may still run."""
        box_id = self.settings.box_id
        seen = self.store.box_beat(box_id)
        if seen is not None and not self._gone(seen):
            log.info(
                "box_id %s: last taken by incarnation %s, seen %.0f s ago; waiting up to %g s"
                " to see whether it still runs",
                box_id, seen.holder.incarnation, self._age(seen), WATCH_PERIODS * self.period,
            )  # fmt: skip
            for _ in range(WATCH_LOOKS):
                await sleep(WATCH_PERIODS * self.period / WATCH_LOOKS)
                if self.store.box_beat(box_id) != seen:
                    raise self._in_use()  # renewed (or taken by yet another process): it runs
        now = self.wall()
        if not self.store.take_box(
            self.holder, seen=seen, host=self.host.key, pid=self.host.pid, now=now
        ):
            raise self._in_use()  # another daemon took it meanwhile (both started at once)
        if seen is not None and seen.left_at is None:
            log.warning("box_id %s: taken over from incarnation %s (gone)",
                        box_id, seen.holder.incarnation)  # fmt: skip
        self.joined = True

    def leave(self) -> None:
        """A clean stop (after every lease is released): the next daemon with this box_id
        starts at once."""
        if self.joined and not self.deposed:
            self.store.leave_box(self.holder, now=self.wall())
            self.joined = False

    def _gone(self, seen: BoxBeat) -> bool:
        """Whether the process in a box's row surely runs no more: it stopped cleanly, its
        heartbeat is a whole ttl old (its leases have run out too), or it ran on this machine
        and its pid is gone."""
        if seen.left_at is not None or self._age(seen) >= self.settings.ttl:
            return True
        return bool(self.host.key) and seen.host == self.host.key and not self.host.alive(seen.pid)

    def _age(self, seen: BoxBeat) -> float:
        return (self.wall() - seen.heartbeat_at).total_seconds()

    def _in_use(self) -> BoxInUseError:
        box_id = self.settings.box_id
        other = self.store.box_beat(box_id)
        who = "gone meanwhile"
        if other is not None:
            age = max(self._age(other), 0.0)
            who = f"incarnation {other.holder.incarnation}, last seen {age:.0f} s ago"
        return BoxInUseError(
            f"box_id {box_id} is in use by another running smsgw ({who});"
            " give each box its own box_id"
        )

    def _who_has_box(self) -> str:
        try:
            other = self.store.box_beat(self.settings.box_id)
        except Exception:  # only for the log line
            other = None
        return f"incarnation {other.holder.incarnation}" if other is not None else "its row is gone"

    def _depose(self, who: str, why: str = "") -> set[int]:
        """Another process (`who`) has this box_id: give up every lease (their SIMs stop here)
        and tell the daemon (on_deposed)."""
        if not self.deposed:
            self.deposed = True
            self.taken_by = who
            log.error(
                "box_id %s was taken by another smsgw (%s%s): this daemon gives up its %d SIM(s)"
                " and sends no more; give each box its own box_id",
                self.settings.box_id, who, why, len(self._valid_until),
            )  # fmt: skip
            if self.on_deposed is not None:
                self.on_deposed()
        lost = set(self._valid_until)
        self._valid_until.clear()
        return lost

    def taken(self) -> BoxTakenError:
        """What a deposed daemon stops with (one line for the operator)."""
        return BoxTakenError(
            f"box_id {self.settings.box_id} was taken by another running smsgw"
            f" ({self.taken_by}) while this one ran: it gave up its SIMs and stopped;"
            " give each box its own box_id"
        )

    def acquire(self, sim_id: int) -> LeaseGrant:
        """Ask for a SIM's lease (see Store.acquire_lease); refused once deposed."""
        now = self.wall()
        if self.deposed:
            return LeaseGrant(False, self.holder, None, now)
        grant = self.store.acquire_lease(sim_id, self.holder, ttl=self.settings.ttl, now=now)
        if not grant.acquired and grant.holder.box_id == self.settings.box_id:
            # Live under another process of this box_id, and the store refused it: the box's
            # row names another process than this one.
            self._depose(self._who_has_box(), f"; SIM {sim_id}'s lease refused here")
            return grant
        if grant.acquired:
            self._valid_until[sim_id] = grant.expires_at
            if grant.previous is not None and grant.previous != self.holder:
                log.info("SIM %d: lease taken over from box %s", sim_id, grant.previous.box_id)
            if grant.uncertain:
                log.warning(
                    "SIM %d: %d part(s) were on the wire under its previous holder: now uncertain",
                    sim_id,
                    len(grant.uncertain),
                )
        return grant

    def release(self, sim_id: int) -> None:
        """Let a SIM's lease go (a clean detach): another box may take it at once."""
        if self._valid_until.pop(sim_id, None) is not None:
            self.store.release_lease(sim_id, self.holder, now=self.wall())

    def renew(self) -> set[int]:
        """Renew every lease held; return the SIMs whose lease is lost (taken over, or run out
        before it could be renewed). While the store cannot be reached a lease is kept until
        its own expiry, then counted lost: another box may take it from then on.

        Once joined, the box's heartbeat is renewed first: found taken by another process,
        every lease is given up (see _depose)."""
        now = self.wall()
        if self.joined and not self.deposed:
            try:
                beaten = self.store.beat_box(self.holder, now=now)
            except Exception as exc:  # as unreachable as the leases: judged by their expiry
                log.warning("box heartbeat not renewed (%s)", exc)
            else:
                if not beaten:
                    return self._depose(self._who_has_box())
        held = sorted(self._valid_until)
        if not held:
            return set()
        try:
            renewed = self.store.renew_leases(held, self.holder, ttl=self.settings.ttl, now=now)
        except Exception as exc:  # the server gone, the disk full: nothing was renewed
            log.warning("leases not renewed (%s)", exc)
            lost = {sim for sim in held if self._valid_until[sim] <= now}
        else:
            expires = now + timedelta(seconds=self.settings.ttl)
            for sim in renewed:
                self._valid_until[sim] = expires
            lost = set(held) - renewed
        for sim in lost:
            del self._valid_until[sim]
        return lost
