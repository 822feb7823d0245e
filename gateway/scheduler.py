"""The dispatcher: claims due messages for per-SIM send loops, spreading batches across SIMs.

Claiming goes through the store (Store.claim_messages), so several daemons on one PostgreSQL
store share one queue: each claims only what its own SIMs can send, never a message another
box has claimed. In fleet mode the dispatcher also holds this box's SIM leases (gateway.leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import secrets
from collections import Counter
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.leases import SimLeases
from gateway.models import PartState
from gateway.outbox import RETRY_HORIZON, SEND_TIMEOUT, Clock, Outbox, PartSender
from gateway.pool import SimPool
from gateway.recurrence import Recurrence, RepeatUnit, next_occurrence
from gateway.store import Store, StoreUnavailableError
from modem.pdu import count

log = logging.getLogger(__name__)

# How many messages may wait in one SIM's queue: enough to keep it busy between ticks, few
# enough that a SIM that falls ill strands little work.
QUEUE_DEPTH = 2
# A full tick (scheduled messages promoted, due series run) comes at least this often; the
# wake-ups in between (an accepted group, a freed queue slot, a SIM's pace ending) only claim.
TICK_SECONDS = 0.5
# A SIM free this soon counts as free now, and a full tick due this soon is made now: the
# dispatcher wakes up half of it early for a paced SIM, so its message is in the queue when
# the pace ends (not racing the SIM's own loop, which starts its next send at that moment).
MARGIN = 0.01
# A SIM's loop pauses this long after the store refused a write (disk full, DB locked).
STORE_RETRY_SECONDS = 2.0
# How long detach() lets a send that is under way finish: longer than the outbox's own bound on
# one AT+CMGS exchange, so the part ends recorded as sent, failed or uncertain.
DETACH_GRACE = SEND_TIMEOUT + 5.0
# Batches whose SIM is remembered in memory; an older one is looked up in the store again.
MAX_PINS = 4096


def restore_throttle(
    store: Store,
    pool: SimPool,
    clock: Clock,
    sim_id: int,
    *,
    replace: bool = False,
    now: datetime | None = None,
) -> None:
    """Rebuild a SIM's pace, caps and the day's distinct recipients from the sends the store
    has of it (the last day before `now`, by default the clock's), on `clock`'s monotonic time
    (the one its throttle is checked against). `replace` forgets what the pool remembered
    first: the SIM sent from another box meanwhile."""
    now = clock.wall() if now is None else now
    now_mono = clock.monotonic()
    sends = [
        (now_mono - (now - sent).total_seconds(), recipient)
        for sent, recipient in store.recent_sends(sim_id, now - timedelta(days=1))
    ]
    pool.restore_sends(sim_id, sends, replace=replace)


def run_due_series(store: Store, now: datetime) -> list[int]:
    """Accept (and charge) the occurrence of every recurring series that is due; return ids.

    Each occurrence is claimed and its messages accepted in one transaction of the store (a
    compare-and-set on the series' next run): in fleet mode every box's dispatcher reads the
    same due series, and exactly one of them runs each occurrence."""
    created: list[int] = []
    for batch in store.due_series(now):
        rule_data = json.loads(batch["recurrence"])
        rule = Recurrence(
            RepeatUnit(rule_data["unit"]),
            int(rule_data["frequency"]),
            date.fromisoformat(rule_data["until"]),
        )
        zone = ZoneInfo(batch["timezone"])
        start_local = datetime.fromisoformat(batch["start_local"])
        template = json.loads(batch["template"])
        this_run = datetime.fromisoformat(batch["next_run"])
        following = next_occurrence(start_local, zone, rule, this_run)
        cost = count(template["text"])
        messages = [
            {
                "account_id": batch["account_id"],
                "recipient": number,
                "body": template["text"],
                "encoding": cost.encoding.value,
                "parts": cost.parts,
                "sender": template["sender"],
                "status_report": bool(template["status_report"]),
                "flash": bool(template["flash"]),
                "charge": cost.parts,
                "extra": {**template["extra"], "occurrence": this_run.isoformat()},
            }
            for number in template["recipients"]
        ]
        needed = cost.parts * len(messages)
        run = store.run_series_occurrence(
            batch["id"], occurrence=batch["next_run"], following=following, messages=messages,
            units=needed, now=now,
        )  # fmt: skip
        if run is None:
            log.debug("series %d: the run of %s was made elsewhere", batch["id"], this_run)
        elif run.skipped:
            log.warning("series %d: run skipped, %d credits needed", batch["id"], needed)
        else:
            created.extend(run.message_ids)
    return created


class Dispatcher:
    """Assigns each due message to a SIM and runs one send loop per attached SIM."""

    def __init__(self, store: Store, outbox: Outbox, *, leases: SimLeases | None = None) -> None:
        self.store = store
        self.outbox = outbox
        self.pool = outbox.pool
        # Fleet mode: a SIM's loop runs only while this daemon holds its lease.
        self.leases = leases
        # Whose claims this dispatcher makes: the leases' holder (fleet mode); without leases
        # (one box) a token of its own, and a claim protects nothing but costs nothing either.
        self.owner = leases.holder.incarnation if leases is not None else secrets.token_hex(8)
        # Every SIM a worker attached and did not detach, with its sender (leased or waiting).
        self._bound: dict[int, PartSender] = {}
        # SIMs whose lease was lost, while their loop stops.
        self._losing: dict[int, asyncio.Task[None]] = {}
        self._queues: dict[int, asyncio.Queue[int]] = {}
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._inflight: set[int] = set()
        self._backlog: Counter[int] = Counter()
        self._wake = asyncio.Event()
        self._stopping: set[int] = set()
        # batch id -> the SIM a batch without rotation keeps to (most recently used last)
        self._pins: dict[int, int] = {}
        self._store_down = False  # the last tick or send found the store refusing writes
        self._schedule = True  # the next tick is a full one (set by wake(schedule=True))
        # After a tick that left its claim out: the earliest a SIM with room may send (run()
        # wakes up then, so a message waits for no tick once its SIM is free).
        self.free_at: float | None = None

    def attach(self, sim_id: int, sender: PartSender) -> bool:
        """A SIM's modem is ready: start its send loop; True once it runs.

        In fleet mode only once this daemon holds the SIM's lease: while another box holds it
        the SIM waits here, and the lease is asked for again at every renewal. Taken from
        another box, the SIM's throttle history is rebuilt from the store first (it sent from
        there meanwhile)."""
        self._bound[sim_id] = sender
        if self.leases is not None and sim_id not in self._loops:
            try:
                grant = self.leases.acquire(sim_id)
            except Exception as exc:  # the store unreachable: asked for again next renewal
                self.pool.set_present(sim_id, False)
                log.warning("SIM %d: lease not acquired (%s); it waits", sim_id, exc)
                return False
            if not grant.acquired and self.leases.deposed:
                self.pool.set_present(sim_id, False)
                log.warning("SIM %d: not used: another smsgw has this box_id", sim_id)
                return False
            if not grant.acquired:
                self.pool.set_present(sim_id, False)
                log.warning(
                    "SIM %d: leased to box %s until %s; it waits for that lease",
                    sim_id, grant.holder.box_id, grant.expires_at.isoformat(timespec="seconds"),
                )  # fmt: skip
                return False
            if grant.moved:
                restore_throttle(self.store, self.pool, self.outbox.clock, sim_id, replace=True)
        self.outbox.senders[sim_id] = sender
        self.pool.set_present(sim_id, True)
        if sim_id not in self._loops:
            self._queues[sim_id] = asyncio.Queue()
            self._loops[sim_id] = asyncio.create_task(
                self._send_loop(sim_id), name=f"send-loop-sim{sim_id}"
            )
            self._wake.set()  # room for work: claim some now, not at the next tick
        return True

    async def detach(self, sim_id: int, *, grace: float = DETACH_GRACE) -> None:
        """A SIM's modem is gone or the daemon stops: no new work goes to it; a message whose
        AT+CMGS is under way may finish (bounded by `grace`, longer than the outbox's own send
        timeout) so its part is recorded, not left `sending`; then the loop is stopped, the
        messages still waiting in its queue go back (their claims released) and, in fleet
        mode, the SIM's lease is released for another box to take at once."""
        self._bound.pop(sim_id, None)
        await self._stop(sim_id, grace)
        if self.leases is not None:
            try:
                self.leases.release(sim_id)
            except Exception as exc:  # it runs out on its own after ttl
                log.warning("SIM %d: lease not released (%s)", sim_id, exc)

    async def _stop(self, sim_id: int, grace: float = DETACH_GRACE) -> None:
        """Stop a SIM's loop (see detach) and give back the claims of its queue."""
        self.pool.set_present(sim_id, False)
        task = self._loops.pop(sim_id, None)
        queue = self._queues.pop(sim_id, None)
        if task is not None:
            self._stopping.add(sim_id)
            if sim_id in self.outbox.on_wire:
                # Cancelling now would leave the part `sending` (uncertain at the next start)
                # although the modem is about to tell us how it went.
                await asyncio.wait({task}, timeout=grace)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._stopping.discard(sim_id)
        returned = []
        while queue is not None and not queue.empty():
            message_id = queue.get_nowait()
            self._inflight.discard(message_id)
            returned.append(message_id)
        self._release_claims(returned)
        self._backlog.pop(sim_id, None)
        self.outbox.senders.pop(sim_id, None)

    def _release_claims(self, message_ids: list[int]) -> None:
        if not message_ids:
            return
        try:
            self.store.release_claims(message_ids, owner=self.owner)
        except Exception as exc:
            # Still ours: this dispatcher takes them up again itself; should it die first,
            # they are stale with its lease and any box takes them.
            log.warning("claims of %d message(s) not released (%s)", len(message_ids), exc)

    async def close(self) -> None:
        """Stop every send loop."""
        for task in list(self._losing.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sim_id in list(self._loops):
            await self.detach(sim_id)

    def renew_leases(self) -> None:
        """Fleet mode, every ttl/3: renew this daemon's leases (a SIM whose lease is lost stops
        sending here at once, its queue given back), ask again for the SIMs bound here whose
        lease another box held, and make `sending` parts of SIMs that nobody holds a live
        lease on `uncertain` (their box died mid-send; requeued for accounts that opted in)."""
        if self.leases is None:
            return
        for sim_id in sorted(self.leases.renew()):
            log.warning("SIM %d: its lease was lost; it stops sending from this box", sim_id)
            self._losing[sim_id] = asyncio.create_task(self._lose(sim_id), name=f"lose-sim{sim_id}")
        for sim_id, sender in list(self._bound.items()):
            # Deposed (another process has this box_id): no lease is asked for again.
            if sim_id not in self._loops and sim_id not in self._losing and not self.leases.deposed:
                self.attach(sim_id, sender)
        now = self.outbox.clock.wall()
        uncertain = self.store.recover_unleased_sending(now=now)
        if uncertain:
            log.warning("%d part(s) were on the wire on SIMs no box holds: now uncertain",
                        len(uncertain))  # fmt: skip
            self.store.requeue_uncertain(now=now)

    async def _lose(self, sim_id: int) -> None:
        try:
            await self._stop(sim_id)
        finally:
            self._losing.pop(sim_id, None)

    async def keep_leases(self, stop: asyncio.Event) -> None:
        """Run renew_leases every ttl/3 of the outbox's clock until `stop` is set."""
        if self.leases is None:
            return
        while not stop.is_set():
            waiters = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self.outbox.clock.timer_sleep(self.leases.period)),
            ]
            try:
                # The period itself bounds this wait (on the outbox's clock, maybe virtual).
                await asyncio.wait(waiters, return_when="FIRST_COMPLETED")
            finally:
                for waiter in waiters:
                    waiter.cancel()
            if stop.is_set():
                break
            try:
                self.renew_leases()
            except Exception:
                log.exception("leases: renewal round failed; trying again next round")

    def _allowed_sims(self, account_id: int, granted: list[int] | None = None) -> list[int]:
        """Attached SIMs the account may use: those granted to it, or every one if none is."""
        if granted is None:
            granted = self.store.sims_of_account(account_id)
        return [s for s in (granted or list(self._loops)) if s in self._loops]

    def _batch_sim(
        self,
        message: dict[str, Any],
        granted: list[int],
        now: float,
        backlog: Counter[int] | None = None,
    ) -> list[int]:
        """The one SIM a batch sent without rotation keeps to: the one it already started on
        (recorded on the batch by its claims, remembered, or found in the store after a
        restart) while the account may still use it, waiting for it while it is away; else
        the allowed SIM with the most headroom now."""
        batch_id: int | None = message["batch_id"]
        pinned = message.get("batch_pin")
        if pinned is None and batch_id is not None:
            pinned = self._pins.get(batch_id) or self.store.batch_sim(batch_id)
        if pinned is not None and (not granted or pinned in granted):
            self._pin(batch_id, pinned)
            return [pinned]
        allowed = self._allowed_sims(message["account_id"], granted)
        choice = self.pool.roomiest(allowed, now, self._backlog if backlog is None else backlog)
        if choice is None:
            return []
        self._pin(batch_id, choice)
        return [choice]

    def _pin(self, batch_id: int | None, sim_id: int) -> None:
        if batch_id is None:
            return
        self._pins.pop(batch_id, None)
        self._pins[batch_id] = sim_id  # most recent last; the oldest go first (store has them)
        while len(self._pins) > MAX_PINS:
            del self._pins[next(iter(self._pins))]

    def _store_unavailable(self, exc: Exception) -> None:
        """Log the first refusal of an outage at WARNING, the rest at DEBUG: a full disk must
        not fill the journal (often on the same card) twice a second."""
        if not self._store_down:
            self._store_down = True
            log.warning("dispatcher: store unavailable (%s); sending waits until it writes", exc)
        else:
            log.debug("dispatcher: store still unavailable (%s)", exc)

    def wake(self, schedule: bool = False) -> None:
        """New work was queued: assign it now rather than at the next tick. `schedule`: the
        schedule changed (a batch resumed or rescheduled), so the next tick is a full one and
        promotes what is due at once."""
        if schedule:
            self._schedule = True
        self._wake.set()

    def _free_at(self, sim_ids: Iterable[int], now: float) -> float:
        """The earliest time one of `sim_ids` may start a send (by the pool: health, pace and
        caps); math.inf when none is in rotation."""
        times = [t for sim_id in sim_ids if (t := self.pool.free_at(sim_id, now)) is not None]
        return min(times, default=math.inf)

    def tick(self, *, full: bool = True) -> int:
        """Claim queued messages for this daemon's SIMs if one with room in its queue may send
        now; return how many were claimed. A `full` tick first promotes scheduled messages
        that are due and runs due series.

        While every SIM with room is paced (or out of rotation) no claim is made: it could only
        queue messages for a later send, or leave them where they are, at the cost of a locked
        read of the queue (the accept path wakes the dispatcher after every group commit).
        `free_at` then tells when one such SIM may send, for run() to wake up by then."""
        now_wall = self.outbox.clock.wall()
        now = self.outbox.clock.monotonic()
        self.free_at = None
        if full:
            self.store.promote_due(now_wall)
            run_due_series(self.store, now_wall)
        room = {
            sim_id: QUEUE_DEPTH - queue.qsize()
            for sim_id, queue in self._queues.items()
            if queue.qsize() < QUEUE_DEPTH
        }
        capacity = sum(room.values())
        if capacity == 0:
            return 0
        free_at = self._free_at(room, now)
        if free_at > now + MARGIN:
            self.free_at = free_at if free_at < math.inf else None
            return 0
        # Decided while the candidates are locked, applied once the claims commit.
        backlog = Counter(self._backlog)
        grants: dict[int, list[int]] = {}
        taken = 0

        def choose(message: dict[str, Any]) -> int | None:
            nonlocal taken
            if message["id"] in self._inflight or taken >= capacity:
                return None
            sim_id = self._route(message, now, backlog, grants)
            if sim_id is None or room.get(sim_id, 0) <= 0:
                return None  # stays queued; a SIM may come back or recover
            room[sim_id] -= 1
            backlog[sim_id] += message["units"]
            taken += 1
            return sim_id

        claimed = self.store.claim_messages(
            now_wall, sims=sorted(self._queues), owner=self.owner,
            limit=capacity + len(self._inflight), choose=choose, horizon=RETRY_HORIZON,
        )  # fmt: skip
        for message, sim_id in claimed:
            self._queues[sim_id].put_nowait(message["id"])
            self._inflight.add(message["id"])
            self._backlog[sim_id] += message["units"]
        return len(claimed)

    def _route(
        self,
        message: dict[str, Any],
        now: float,
        backlog: Counter[int],
        grants: dict[int, list[int]],
    ) -> int | None:
        """The SIM of this daemon that should send `message` now, or None (it waits)."""
        account_id = message["account_id"]
        granted = grants.get(account_id)
        if granted is None:
            granted = grants[account_id] = self.store.sims_of_account(account_id)
        # A fixed sender is the SIM with that number in the store, wherever it is (this box's
        # pool knows only its own SIMs): the claim read only those of this box.
        sender_sim: int | None = message.get("sender_sim")
        if message.get("started_sim") is not None:
            # Part of it went out: the rest goes from the same SIM (the recipient's phone joins
            # parts per sender), waiting for it while it is away.
            sender_sim = int(message["started_sim"])
        if sender_sim is not None and granted and sender_sim not in granted:
            return None  # its SIM was revoked from the account: it waits (README: Accounts)
        rotate = message.get("batch_rotate") is None or bool(message["batch_rotate"])
        if rotate:
            allowed = self._allowed_sims(account_id, granted)
        else:
            allowed = self._batch_sim(message, granted, now, backlog)
        route = self.pool.route(
            account_id=account_id,
            allowed=allowed,
            recipient=message["recipient"],
            now=now,
            sender_sim=sender_sim,
            rotate=rotate,
            backlog=backlog,
        )
        return route.sim_id if route.sim_id in self._queues else None

    async def _send_loop(self, sim_id: int) -> None:
        queue = self._queues[sim_id]
        while sim_id not in self._stopping:
            message_id = await queue.get()
            try:
                await self.outbox.send_message(
                    message_id,
                    allowed_sims=[sim_id],
                    sender_sim=sim_id,
                    keep_going=lambda: sim_id not in self._stopping,
                )
            except StoreUnavailableError as exc:
                # Disk full or DB locked before AT+CMGS: nothing went out, the part is still
                # queued. Wait a little so a full disk is not retried in a busy loop.
                self._store_unavailable(exc)
                await self.outbox.clock.sleep(STORE_RETRY_SECONDS)
            except Exception:
                # A bug or a bad row must not kill the SIM's loop: log and move on; the message
                # keeps its durable state and is picked up again.
                log.exception("SIM %d: sending message %d failed", sim_id, message_id)
            finally:
                self._inflight.discard(message_id)
                current = self.store.message(message_id)
                self._backlog[sim_id] -= current["units"] if current else 0
                if current is not None and current["state"] == PartState.QUEUED.value:
                    # Not finished here (held, retried later, its SIM stopping): any SIM of
                    # any box may take it now. A message that went out keeps its claim: it
                    # is no longer queued, so nobody reads it as work again.
                    self._release_claims([message_id])
                self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set: a full tick at least every TICK_SECONDS (of the loop's
        clock, and of the outbox's, which a virtual one may move on faster) and after a
        schedule wake-up; in between, a claiming tick as soon as work is queued or a SIM frees
        a queue slot (so fast SIMs are never starved between ticks), and the moment a paced
        SIM with room is free again (tick's free_at)."""
        loop = asyncio.get_running_loop()
        full_at = loop.time()
        full_mono = self.outbox.clock.monotonic()
        while not stop.is_set():
            self._wake.clear()
            now = self.outbox.clock.monotonic()
            full = (
                self._schedule
                or loop.time() >= full_at - MARGIN
                or now >= full_mono + TICK_SECONDS - MARGIN
            )
            if full:
                self._schedule = False
                full_at, full_mono = loop.time() + TICK_SECONDS, now
            try:
                self.tick(full=full)
                if self._store_down:
                    self._store_down = False
                    log.warning("dispatcher: the store writes again; sending resumes")
            except StoreUnavailableError as exc:  # disk full, DB locked: next tick tries again
                self._store_unavailable(exc)
            except Exception:
                log.exception("dispatcher: tick failed; retrying next tick")
            waiters: list[asyncio.Future[Any]] = [
                asyncio.ensure_future(stop.wait()),
                asyncio.ensure_future(self._wake.wait()),
            ]
            if self.free_at is not None:
                # On the outbox's clock, a sleep like the send loop's own wait for the pace
                # would be (a virtual clock moves on to it).
                delay = self.free_at - MARGIN / 2 - self.outbox.clock.monotonic()
                waiters.append(asyncio.ensure_future(self.outbox.clock.sleep(delay)))
            try:
                await asyncio.wait(
                    waiters, timeout=max(full_at - loop.time(), 0.0), return_when="FIRST_COMPLETED"
                )
            finally:
                for waiter in waiters:
                    waiter.cancel()
