"""The dispatcher: hands due messages to per-SIM send loops, spreading batches across SIMs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.outbox import SEND_TIMEOUT, Outbox, PartSender
from gateway.recurrence import Recurrence, RepeatUnit, next_occurrence
from gateway.store import Store, StoreUnavailableError
from modem.pdu import count

log = logging.getLogger(__name__)

# How many messages may wait in one SIM's queue: enough to keep it busy between ticks, few
# enough that a SIM that falls ill strands little work.
QUEUE_DEPTH = 2
TICK_SECONDS = 0.5
# A SIM's loop pauses this long after the store refused a write (disk full, DB locked).
STORE_RETRY_SECONDS = 2.0
# How long detach() lets a send that is under way finish: longer than the outbox's own bound on
# one AT+CMGS exchange, so the part ends recorded as sent, failed or uncertain.
DETACH_GRACE = SEND_TIMEOUT + 5.0
# Batches whose SIM is remembered in memory; an older one is looked up in the store again.
MAX_PINS = 4096


def run_due_series(store: Store, now: datetime) -> list[int]:
    """Accept (and charge) the occurrence of every recurring series that is due; return ids."""
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
        account = store.account(batch["account_id"])
        cost = count(template["text"])
        needed = cost.parts * len(template["recipients"])
        if account is None or (not account["unlimited"] and account["credits"] < needed):
            log.warning("series %d: run skipped, %d credits needed", batch["id"], needed)
            store.record_series_run(batch["id"], following, error="insufficient credits")
            continue
        for number in template["recipients"]:
            accepted = store.accept_message(
                account_id=batch["account_id"],
                recipient=number,
                body=template["text"],
                encoding=cost.encoding.value,
                parts=cost.parts,
                sender=template["sender"],
                batch_id=batch["id"],
                status_report=bool(template["status_report"]),
                flash=bool(template["flash"]),
                charge=cost.parts,
                extra={**template["extra"], "occurrence": this_run.isoformat()},
                now=now,
            )
            created.append(accepted.message_id)
        store.record_series_run(batch["id"], following)
    return created


class Dispatcher:
    """Assigns each due message to a SIM and runs one send loop per attached SIM."""

    def __init__(self, store: Store, outbox: Outbox) -> None:
        self.store = store
        self.outbox = outbox
        self.pool = outbox.pool
        self._queues: dict[int, asyncio.Queue[int]] = {}
        self._loops: dict[int, asyncio.Task[None]] = {}
        self._inflight: set[int] = set()
        self._backlog: Counter[int] = Counter()
        self._wake = asyncio.Event()
        self._stopping: set[int] = set()
        # batch id -> the SIM a batch without rotation keeps to (most recently used last)
        self._pins: dict[int, int] = {}
        self._store_down = False  # the last tick or send found the store refusing writes

    def attach(self, sim_id: int, sender: PartSender) -> None:
        """A SIM's modem is ready: start its send loop."""
        self.outbox.senders[sim_id] = sender
        self.pool.set_present(sim_id, True)
        if sim_id not in self._loops:
            self._queues[sim_id] = asyncio.Queue()
            self._loops[sim_id] = asyncio.create_task(
                self._send_loop(sim_id), name=f"send-loop-sim{sim_id}"
            )

    async def detach(self, sim_id: int, *, grace: float = DETACH_GRACE) -> None:
        """A SIM's modem is gone or the daemon stops: no new work goes to it; a message whose
        AT+CMGS is under way may finish (bounded by `grace`, longer than the outbox's own send
        timeout) so its part is recorded, not left `sending`; then the loop is stopped and the
        messages still waiting in its queue go back to the dispatcher."""
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
        while queue is not None and not queue.empty():
            self._inflight.discard(queue.get_nowait())
        self._backlog.pop(sim_id, None)
        self.outbox.senders.pop(sim_id, None)

    async def close(self) -> None:
        """Stop every send loop."""
        for sim_id in list(self._loops):
            await self.detach(sim_id)

    def _allowed_sims(self, account_id: int, granted: list[int] | None = None) -> list[int]:
        """Attached SIMs the account may use: those granted to it, or every one if none is."""
        if granted is None:
            granted = self.store.sims_of_account(account_id)
        return [s for s in (granted or list(self._loops)) if s in self._loops]

    def _batch_sim(self, message: dict[str, Any], granted: list[int], now: float) -> list[int]:
        """The one SIM a batch sent without rotation keeps to: the one it already started on
        (remembered, or found in the store after a restart) while the account may still use
        it, waiting for it while it is away; else the allowed SIM with the most headroom now."""
        batch_id: int | None = message["batch_id"]
        pinned = None
        if batch_id is not None:
            pinned = self._pins.get(batch_id) or self.store.batch_sim(batch_id)
        if pinned is not None and (not granted or pinned in granted):
            self._pin(batch_id, pinned)
            return [pinned]
        allowed = self._allowed_sims(message["account_id"], granted)
        choice = self.pool.roomiest(allowed, now, self._backlog)
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

    def wake(self) -> None:
        """New work was accepted: assign it now rather than at the next tick."""
        self._wake.set()

    def tick(self) -> int:
        """Promote scheduled messages that are due and assign queued ones; return how many."""
        now_wall = self.outbox.clock.wall()
        now = self.outbox.clock.monotonic()
        self.store.promote_due(now_wall)
        run_due_series(self.store, now_wall)
        capacity = sum(max(QUEUE_DEPTH - q.qsize(), 0) for q in self._queues.values())
        if capacity == 0:
            return 0
        assigned = 0
        for message in self.store.due_messages(now_wall, capacity + len(self._inflight)):
            if message["id"] in self._inflight:
                continue
            sender = self.pool.by_number(message["sender"]) if message["sender"] else None
            granted = self.store.sims_of_account(message["account_id"])
            if sender is not None and granted and sender.sim_id not in granted:
                continue  # its SIM was revoked from the account: it waits (README: Accounts)
            rotate = message.get("batch_rotate") is None or bool(message["batch_rotate"])
            if rotate:
                allowed = self._allowed_sims(message["account_id"], granted)
            else:
                allowed = self._batch_sim(message, granted, now)
            route = self.pool.route(
                account_id=message["account_id"],
                allowed=allowed,
                recipient=message["recipient"],
                now=now,
                sender_sim=sender.sim_id if sender is not None else None,
                rotate=rotate,
                backlog=self._backlog,
            )
            if route.sim_id is None or route.sim_id not in self._queues:
                continue  # stays queued; a SIM may come back or recover
            queue = self._queues[route.sim_id]
            if queue.qsize() >= QUEUE_DEPTH:
                continue
            queue.put_nowait(message["id"])
            self._inflight.add(message["id"])
            self._backlog[route.sim_id] += message["units"]
            assigned += 1
            if assigned >= capacity:
                break
        return assigned

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
                units = self.store.message(message_id)
                self._backlog[sim_id] -= units["units"] if units else 0
                self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set: at least every TICK_SECONDS, and as soon as a SIM frees a
        queue slot (so fast SIMs are never starved between ticks)."""
        while not stop.is_set():
            self._wake.clear()
            try:
                self.tick()
                if self._store_down:
                    self._store_down = False
                    log.warning("dispatcher: the store writes again; sending resumes")
            except StoreUnavailableError as exc:  # disk full, DB locked: next tick tries again
                self._store_unavailable(exc)
            except Exception:
                log.exception("dispatcher: tick failed; retrying next tick")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=TICK_SECONDS, return_when="FIRST_COMPLETED")
            finally:
                for waiter in waiters:
                    waiter.cancel()
