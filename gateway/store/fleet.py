"""Fleet mode: SIM leases (which daemon may send through a SIM) and claims on queued messages
(which of those SIMs works on a message), so several boxes share one queue without ever working
on the same message, and a box that dies leaves its in-flight parts `uncertain`, never resent.

A lease row names its holder: the box (`box_id`, from the config) and the daemon process
(`incarnation`, a token made at start), live while `expires_at` is ahead. A claim names the SIM
and the holder's incarnation; it is live while that incarnation still holds that SIM's live
lease, so a claim outlives neither the process that made it nor the lease it was made under.
Both engines run the same SQL; on PostgreSQL claiming locks candidate rows `FOR UPDATE SKIP
LOCKED` (SQLite has one writer: BEGIN IMMEDIATE alone).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.models import PartState
from gateway.store.base import utc_iso
from gateway.store.messages import MessageStore

TAKEOVER_REASON = "its SIM's lease was taken over during AT+CMGS"
UNLEASED_REASON = "its SIM's lease expired during AT+CMGS"


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds (or wants) a lease: a box, and the daemon process running there now."""

    box_id: str
    incarnation: str


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The answer to one acquire_lease: granted or not, who held the SIM before, and the parts
    the takeover made uncertain (they were on the wire under the previous holder)."""

    acquired: bool
    holder: LeaseHolder  # who holds it now (the asker when acquired)
    previous: LeaseHolder | None  # the last holder before this call (None: never leased)
    expires_at: datetime
    uncertain: tuple[int, ...] = ()

    @property
    def moved(self) -> bool:
        """Whether another box held the SIM last (its throttle history here is out of date)."""
        return (
            self.acquired
            and self.previous is not None
            and self.previous.box_id != (self.holder.box_id)
        )


@dataclass(frozen=True, slots=True)
class BoxBeat:
    """A box_id's row: the daemon process that took it, where it runs, its last heartbeat."""

    holder: LeaseHolder
    host: str  # the kernel boot and PID namespace it runs in ('' when unknown)
    pid: int
    heartbeat_at: datetime
    left_at: datetime | None  # set by a clean stop


class FleetStore(MessageStore):
    """SIM leases, message claims, and the recovery scoped to SIMs nobody holds."""

    def box_beat(self, box_id: str) -> BoxBeat | None:
        """The process a box_id is taken by and its last heartbeat (None: never taken)."""
        row = self.conn.execute(
            "SELECT incarnation, host, pid, heartbeat_at, left_at FROM fleet_boxes"
            " WHERE box_id = ?",
            (box_id,),
        ).fetchone()
        if row is None:
            return None
        left = datetime.fromisoformat(str(row[4])) if row[4] is not None else None
        return BoxBeat(LeaseHolder(box_id, str(row[0])), str(row[1]), int(row[2]),
                       datetime.fromisoformat(str(row[3])), left)  # fmt: skip

    def take_box(
        self, holder: LeaseHolder, *, seen: BoxBeat | None, host: str, pid: int, now: datetime
    ) -> bool:
        """Compare-and-set: make `holder` the process of its box_id if the box's row is still
        as `seen` (None: no row yet); False when another process changed it meanwhile."""
        stamp = utc_iso(now)
        with self.transaction(exclusive=False):
            if seen is None:
                cursor = self.conn.execute(
                    "INSERT OR IGNORE INTO fleet_boxes (box_id, incarnation, host, pid,"
                    " started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (holder.box_id, holder.incarnation, host, pid, stamp, stamp),
                )
            else:
                cursor = self.conn.execute(
                    "UPDATE fleet_boxes SET incarnation = ?, host = ?, pid = ?, started_at = ?,"
                    " heartbeat_at = ?, left_at = NULL WHERE box_id = ? AND incarnation = ?"
                    " AND heartbeat_at = ?",
                    (holder.incarnation, host, pid, stamp, stamp, holder.box_id,
                     seen.holder.incarnation, utc_iso(seen.heartbeat_at)),
                )  # fmt: skip
        return cursor.rowcount == 1

    def beat_box(self, holder: LeaseHolder, *, now: datetime) -> bool:
        """Renew `holder`'s heartbeat on its box_id; False when another process took the box."""
        with self.transaction(durable=False, exclusive=False):
            cursor = self.conn.execute(
                "UPDATE fleet_boxes SET heartbeat_at = ? WHERE box_id = ? AND incarnation = ?"
                " AND left_at IS NULL",
                (utc_iso(now), holder.box_id, holder.incarnation),
            )
        return cursor.rowcount == 1

    def leave_box(self, holder: LeaseHolder, *, now: datetime) -> bool:
        """A clean stop: the next daemon with this box_id may take it at once."""
        stamp = utc_iso(now)
        with self.transaction(exclusive=False):
            cursor = self.conn.execute(
                "UPDATE fleet_boxes SET heartbeat_at = ?, left_at = ? WHERE box_id = ?"
                " AND incarnation = ? AND left_at IS NULL",
                (stamp, stamp, holder.box_id, holder.incarnation),
            )
        return cursor.rowcount == 1

    def acquire_lease(
        self, sim_id: int, holder: LeaseHolder, *, ttl: float, now: datetime
    ) -> LeaseGrant:
        """Take (or refresh) a SIM's lease for `holder` unless another process holds it live.

        Taken over from anyone else (another box whose lease expired, this box's previous
        incarnation after a crash, a released lease), the SIM's `sending` parts become
        `uncertain` in the same transaction: they went on the wire under a holder that can no
        longer say how it ended, so they are never resent silently."""
        stamp, expires = utc_iso(now), now + timedelta(seconds=ttl)
        lock = " FOR UPDATE" if self._pg is not None else ""
        with self.transaction():
            row = self.conn.execute(
                f"SELECT box_id, incarnation, expires_at FROM sim_leases WHERE sim_id = ?{lock}",
                (sim_id,),
            ).fetchone()
            previous = LeaseHolder(str(row[0]), str(row[1])) if row is not None else None
            # Live under another box: refused. Live under another incarnation of this box:
            # that process is dead (one daemon per box_id), so its leases are taken at once,
            # unless the box's row names another process than the asker: the asker lost its
            # box_id to a daemon that runs (take_box), and must not take that one's leases.
            live = row is not None and str(row[2]) > stamp
            if (live and previous is not None and previous != holder and (
                previous.box_id != holder.box_id
                or self._box_owner(holder.box_id) not in (None, holder.incarnation)
            )):  # fmt: skip
                return LeaseGrant(False, previous, previous, datetime.fromisoformat(str(row[2])))
            if row is None:
                self.conn.execute(
                    "INSERT INTO sim_leases (sim_id, box_id, incarnation, acquired_at,"
                    " renewed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (sim_id, holder.box_id, holder.incarnation, stamp, stamp, utc_iso(expires)),
                )
            else:
                self.conn.execute(
                    "UPDATE sim_leases SET box_id = ?, incarnation = ?, renewed_at = ?,"
                    " expires_at = ?, acquired_at = CASE WHEN incarnation = ? AND expires_at > ?"
                    " THEN acquired_at ELSE ? END WHERE sim_id = ?",
                    (holder.box_id, holder.incarnation, stamp, utc_iso(expires),
                     holder.incarnation, stamp, stamp, sim_id),
                )  # fmt: skip
            uncertain: list[int] = []
            if previous != holder or str(row[2]) <= stamp:
                # Not held without a break by this very process: whatever is `sending` on the
                # SIM was left there by a holder that is gone (or was cut off).
                uncertain = self._sending_to_uncertain(sim_id, TAKEOVER_REASON, now, within=True)
            return LeaseGrant(True, holder, previous, expires, tuple(uncertain))

    def _box_owner(self, box_id: str) -> str | None:
        """The incarnation a box_id's row names while taken (None: no row, or left cleanly);
        on PostgreSQL the row is share-locked, so a take_box under way is waited for."""
        lock = " FOR SHARE" if self._pg is not None else ""
        row = self.conn.execute(
            f"SELECT incarnation FROM fleet_boxes WHERE box_id = ? AND left_at IS NULL{lock}",
            (box_id,),
        ).fetchone()
        return str(row[0]) if row is not None else None

    def renew_leases(
        self, sim_ids: Sequence[int], holder: LeaseHolder, *, ttl: float, now: datetime
    ) -> set[int]:
        """Push the expiry of `holder`'s live leases on `sim_ids` to now + ttl; return the SIMs
        renewed (a SIM left out is lost: taken over, released, or expired before renewal)."""
        if not sim_ids:
            return set()
        stamp = utc_iso(now)
        marks = ", ".join("?" * len(sim_ids))
        # One statement, guarded by its own row locks: no fleet-wide writer lock, so a renewal
        # never waits behind other boxes' traffic.
        with self.transaction(exclusive=False):
            rows = self.conn.execute(
                f"UPDATE sim_leases SET renewed_at = ?, expires_at = ? WHERE sim_id IN ({marks})"
                " AND box_id = ? AND incarnation = ? AND expires_at > ? RETURNING sim_id",
                (stamp, utc_iso(now + timedelta(seconds=ttl)), *sim_ids,
                 holder.box_id, holder.incarnation, stamp),
            ).fetchall()  # fmt: skip
        return {int(r[0]) for r in rows}

    def release_lease(self, sim_id: int, holder: LeaseHolder, *, now: datetime) -> bool:
        """Let a SIM go at a clean detach (the row stays, expired, naming its last holder);
        False when `holder` did not hold it."""
        stamp = utc_iso(now)
        with self.transaction(exclusive=False):
            cursor = self.conn.execute(
                "UPDATE sim_leases SET expires_at = ?, renewed_at = ? WHERE sim_id = ?"
                " AND box_id = ? AND incarnation = ? AND expires_at > ?",
                (stamp, stamp, sim_id, holder.box_id, holder.incarnation, stamp),
            )
        return cursor.rowcount == 1

    def lease(self, sim_id: int) -> dict[str, Any] | None:
        """A SIM's lease row (live or not), or None if it was never leased."""
        row = self.conn.execute("SELECT * FROM sim_leases WHERE sim_id = ?", (sim_id,)).fetchone()
        return dict(row) if row is not None else None

    def live_leases(self, now: datetime) -> dict[int, LeaseHolder]:
        """Every SIM leased right now, and by whom (the operator's view of the fleet)."""
        rows = self.conn.execute(
            "SELECT sim_id, box_id, incarnation FROM sim_leases WHERE expires_at > ?"
            " ORDER BY sim_id",
            (utc_iso(now),),
        ).fetchall()
        return {int(r[0]): LeaseHolder(str(r[1]), str(r[2])) for r in rows}

    def recover_unleased_sending(self, *, now: datetime) -> list[int]:
        """Fleet mode's crash recovery: `sending` parts of SIMs that no process holds a live
        lease on become `uncertain` (their box died or lost the SIM mid-send); parts on SIMs
        live elsewhere are left to their holder. Return the part ids."""
        stamp = utc_iso(now)
        select = (
            "SELECT p.id FROM parts p WHERE p.state = ? AND NOT EXISTS (SELECT 1 FROM"
            " sim_leases l WHERE l.sim_id = p.sim_id AND l.expires_at > ?)",
            (PartState.SENDING.value, stamp),
        )
        # Read first: the usual answer is none, and then no writer lock is taken at all.
        if self.conn.execute(select[0] + " LIMIT 1", select[1]).fetchone() is None:
            return []
        return self._move_parts(
            select, PartState.SENDING, PartState.UNCERTAIN, UNLEASED_REASON, now,
            stamp_done=True,
        )  # fmt: skip

    def claim_messages(
        self,
        now: datetime,
        *,
        sims: Sequence[int],
        owner: str,
        limit: int,
        choose: Callable[[dict[str, Any]], int | None],
        horizon: timedelta | None = None,
    ) -> list[tuple[dict[str, Any], int]]:
        """Claim queued messages for this daemon's SIMs (`sims`, their leases held by `owner`),
        oldest first; return (message, SIM) per claim.

        Only messages one of `sims` could send are read (a fixed sender that is one of them or
        no SIM's number; a SIM granted to the account, or no grants; a batch without rotation
        not pinned to another SIM), unclaimed or claimed under a lease that is gone (claims of
        `owner` itself come back too, for the caller to skip those it is working on). Each row
        is locked (PostgreSQL: FOR UPDATE SKIP LOCKED, so another box's claim never waits for
        or takes the same row) while `choose(row)` picks its SIM, or None to leave it. Each row
        carries `batch_rotate`, `batch_pin`, `sender_sim` (the SIM whose number the message's
        sender is) and `started_sim` (the SIM its parts already went to: a message partly out is
        only read by the box of that SIM, which must finish it). A message of a batch without
        rotation is claimed only if its batch's pin could be set to the chosen SIM
        (compare-and-set: two boxes never split such a batch).

        With `horizon` (longer than any retry back-off), a part put off further ahead than that
        is due now: it was put off before the wall clock was stepped back.
        """
        if not sims or limit <= 0:
            return []
        stamp = utc_iso(now)
        stepped, later = "", []
        if horizon is not None:
            stepped, later = " OR p.next_attempt_at > ?", [utc_iso(now + horizon)]
        ours = ", ".join("?" * len(sims))
        granted = "SELECT 1 FROM account_sims g WHERE g.account_id = m.account_id"
        started = (
            "SELECT s.sim_id FROM parts s WHERE s.message_id = m.id"
            " AND s.state IN ('sending', 'sent', 'delivered') LIMIT 1"
        )
        lock = " FOR UPDATE OF m SKIP LOCKED" if self._pg is not None else ""
        query = (
            "SELECT m.*, b.rotate AS batch_rotate, b.pin_sim AS batch_pin, ss.id AS sender_sim,"
            f" ({started}) AS started_sim"
            " FROM messages m LEFT JOIN batches b ON b.id = m.batch_id"
            " LEFT JOIN sims ss ON m.sender != '' AND ss.msisdn = m.sender"
            " WHERE m.state = 'queued' AND (b.state IS NULL OR b.state = 'active') AND EXISTS ("
            " SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.state = 'queued'"
            " AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= ?" + stepped + "))"
            " AND (m.claim_sim IS NULL OR m.claim_owner = ? OR NOT EXISTS (SELECT 1 FROM"
            " sim_leases l WHERE l.sim_id = m.claim_sim AND l.incarnation = m.claim_owner"
            " AND l.expires_at > ?))"
            f" AND (ss.id IS NULL OR ss.id IN ({ours}))"
            f" AND (({started}) IS NULL OR ({started}) IN ({ours}))"
            f" AND (NOT EXISTS ({granted}) OR EXISTS ({granted} AND g.sim_id IN ({ours})"
            " AND (ss.id IS NULL OR g.sim_id = ss.id)))"
            f" AND (b.rotate IS NULL OR b.rotate != 0 OR b.pin_sim IS NULL OR b.pin_sim IN ({ours})"
            f" OR (EXISTS ({granted}) AND NOT EXISTS ({granted} AND g.sim_id = b.pin_sim)))"
            f" ORDER BY m.id LIMIT ?{lock}"
        )
        args = (stamp, *later, owner, stamp, *sims, *sims, *sims, *sims, limit)
        claimed: list[tuple[dict[str, Any], int]] = []
        # On SQLite a claim protects nothing across a power cut (one box, no other claimer),
        # so it is not worth an fsync; on PostgreSQL another box relies on it.
        with self.transaction(durable=self._pg is not None, exclusive=False):
            for row in self.conn.execute(query, args).fetchall():
                message = dict(row)
                sim_id = choose(message)
                if sim_id is None:
                    continue
                if message["batch_rotate"] == 0 and message["batch_pin"] != sim_id:
                    pinned = self.conn.execute(
                        "UPDATE batches SET pin_sim = ? WHERE id = ? AND pin_sim IS ?",
                        (sim_id, message["batch_id"], message["batch_pin"]),
                    )
                    if pinned.rowcount != 1:
                        continue  # another box pinned it meanwhile: the batch keeps to that SIM
                    message["batch_pin"] = sim_id
                claimed.append((message, sim_id))
            if claimed:
                self.conn.executemany(
                    "UPDATE messages SET claim_sim = ?, claim_owner = ? WHERE id = ?",
                    [(sim_id, owner, message["id"]) for message, sim_id in claimed],
                )
        return claimed

    def release_claims(self, message_ids: Sequence[int], *, owner: str) -> int:
        """Give back `owner`'s claims on messages it did not finish (parts still queued: every
        box is told there is work); return how many were released."""
        if not message_ids:
            return 0
        marks = ", ".join("?" * len(message_ids))
        # Not fsynced: a release lost in a power cut leaves a claim whose owner is gone with
        # the lease it was made under (stale, taken by the next claimer), or that the owner,
        # still alive, takes back itself.
        with self.transaction(durable=False, exclusive=False):
            cursor = self.conn.execute(
                "UPDATE messages SET claim_sim = NULL, claim_owner = NULL"
                f" WHERE id IN ({marks}) AND claim_owner = ?",
                (*message_ids, owner),
            )
            released = cursor.rowcount
            if released:
                self._queued_work()
        return released
