"""Fleet mode's SIM leases, as this daemon holds them: a SIM sends from one box at a time.

The dispatcher acquires a SIM's lease when a worker attaches it, renews every lease it holds
every ttl/3 and releases it at a clean detach. A box that dies (kill -9, power cut, cable) stops
renewing: after ttl its leases have expired, and the box that next binds one of its SIMs (or
the same box, restarted, at once) takes it over, its `sending` parts made `uncertain` in that
same transaction. A box that cannot reach the store to renew counts a lease as lost once its
own clock says it ran out, so it never sends on a SIM another box may already have taken.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.config import DEFAULT_LEASE_TTL
from gateway.store import LeaseGrant, LeaseHolder, Store

log = logging.getLogger(__name__)


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
    ) -> None:
        self.store = store
        self.settings = settings
        self.wall = wall
        self.holder = LeaseHolder(settings.box_id, incarnation or secrets.token_hex(8))
        # SIM -> until when its lease is ours by the last acquire or renewal that committed.
        self._valid_until: dict[int, datetime] = {}

    @property
    def period(self) -> float:
        """How often the leases are renewed: three chances before one runs out."""
        return self.settings.ttl / 3

    def held(self) -> set[int]:
        """The SIMs this process holds the lease of."""
        return set(self._valid_until)

    def acquire(self, sim_id: int) -> LeaseGrant:
        """Ask for a SIM's lease (see Store.acquire_lease)."""
        now = self.wall()
        grant = self.store.acquire_lease(sim_id, self.holder, ttl=self.settings.ttl, now=now)
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
        its own expiry, then counted lost: another box may take it from then on."""
        held = sorted(self._valid_until)
        if not held:
            return set()
        now = self.wall()
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
