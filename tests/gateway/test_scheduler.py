"""The dispatcher spreads a batch across SIMs at each SIM's pace (virtual-time loop)."""

import asyncio
import itertools
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.accounts import create_account
from gateway.models import PartState, ThrottlePolicy
from gateway.outbox import Clock, Outbox, OutcomeKind, SendOutcome
from gateway.pool import SimPool
from gateway.scheduler import MARGIN, TICK_SECONDS, Dispatcher
from gateway.service import GatewayService
from gateway.store import Store
from modem.pdu import SmsSubmit
from tests.vloop import EPOCH, VirtualTimeLoop

T = TypeVar("T")


@dataclass
class FakeModem:
    sim_id: int
    log: list[tuple[float, int, str]]
    fail: bool = False
    mr: itertools.count = field(default_factory=itertools.count)

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        started = asyncio.get_running_loop().time()
        await asyncio.sleep(0.3)  # radio time of AT+CMGS
        if self.fail:
            return SendOutcome(OutcomeKind.TEMPORARY, error="+CMS ERROR: 38", cms_error=38)
        self.log.append((started, self.sim_id, recipient))
        return SendOutcome(OutcomeKind.SENT, tp_mr=next(self.mr) % 256)


def _setup(tmp_path: Path, loop: VirtualTimeLoop, n_sims: int, interval: float):
    store = Store.open(tmp_path)
    account = create_account(store, "bulk", now=EPOCH, unlimited=True).account_id
    pool = SimPool()
    sims = []
    for i in range(n_sims):
        sim = store.bind_sim(iccid=f"894400000000000000{i}", imsi=None, now=EPOCH)
        pool.upsert(sim, f"+4477009000{i:02d}", ThrottlePolicy(interval=interval))
        sims.append(sim)
    clock = Clock(loop.time, loop.wall, asyncio.sleep)
    outbox = Outbox(store, pool, {}, clock)
    return store, account, sims, Dispatcher(store, outbox), GatewayService(store, wall=loop.wall)


async def _drain(store: Store, dispatcher: Dispatcher, total: int, limit: float) -> None:
    stop = asyncio.Event()
    runner = asyncio.create_task(dispatcher.run(stop))
    loop = asyncio.get_running_loop()
    while store.count_by_state("messages").get("sent", 0) < total and loop.time() < limit:
        await asyncio.sleep(1)
    stop.set()
    await runner
    await dispatcher.close()


def test_batch_of_400_spreads_evenly_over_4_sims_at_throttle(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 4, interval=2.0)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        service.submit(account, [f"+1555{i:07d}" for i in range(400)], "Sale today only")
        await _drain(store, dispatcher, 400, limit=3600)

    _drive(loop, store, scenario)
    per_sim: dict[int, list[float]] = defaultdict(list)
    for t, sim, _ in log:
        per_sim[sim].append(t)
    assert sorted(len(v) for v in per_sim.values()) == [100, 100, 100, 100]
    for times in per_sim.values():
        assert min(b - a for a, b in itertools.pairwise(times)) >= 2.0 - 1e-9  # float sums
    # 100 sends per SIM at one per 2 s take ~200 s; an uneven spread would take longer
    assert max(t for t, _, _ in log) < 205


def test_failing_sim_leaves_rotation_and_others_take_its_messages(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 3, interval=1.0)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log, fail=(sim == sims[2])))
        service.submit(account, [f"+1555{i:07d}" for i in range(60)], "hello")
        await _drain(store, dispatcher, 60, limit=3600)

    try:
        loop.run_until_complete(scenario())
        counts = store.count_by_state("messages")
    finally:
        loop.close()
        store.close()
    assert counts == {"sent": 60}
    senders = {sim for _, sim, _ in log}
    assert sims[2] not in senders  # every message went out through the healthy SIMs


@pytest.mark.parametrize("stop_word", ["STOP"])
def test_opted_out_recipient_is_not_sent_and_refunded(tmp_path: Path, stop_word: str) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=1.0)
    store.conn.execute("UPDATE accounts SET unlimited = 0, credits = 5 WHERE id = ?", (account,))
    store.set_opt_out(account, "+15550000001", True, keyword=stop_word, now=EPOCH)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        dispatcher.attach(sims[0], FakeModem(sims[0], log))
        service.submit(account, ["+15550000001", "+15550000002"], "promo")
        await _drain(store, dispatcher, 1, limit=60)

    try:
        loop.run_until_complete(scenario())
        states = store.count_by_state("messages")
        credits = store.account(account)["credits"]
    finally:
        loop.close()
        store.close()
    assert states == {"sent": 1, "failed": 1}
    assert len(log) == 1
    assert credits == 4  # charged 2, refunded the opted-out one


@dataclass
class GatedModem:
    """A modem whose AT+CMGS answers only when the test opens the gate."""

    gate: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        self.calls += 1
        self.started.set()
        await self.gate.wait()
        return SendOutcome(OutcomeKind.SENT, tp_mr=self.calls)


def test_detach_lets_the_part_on_the_wire_finish_and_keeps_the_rest_queued(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=1.0)
    modem = GatedModem()

    async def scenario() -> list[str]:
        dispatcher.attach(sims[0], modem)
        (mid,) = service.submit(account, ["+15551230001"], "z" * 300).message_ids  # 2 parts
        dispatcher.tick()
        await modem.started.wait()  # part 1 is inside AT+CMGS
        detaching = asyncio.create_task(dispatcher.detach(sims[0]))
        await asyncio.sleep(5)
        assert not detaching.done()  # it waits for the modem's answer instead of cutting it
        modem.gate.set()
        await detaching
        return [p["state"] for p in store.parts(mid)]

    states = _drive(loop, store, scenario)
    assert states == ["sent", "queued"]  # recorded, not left `sending`; part 2 waits
    assert modem.calls == 1


def test_detach_during_throttle_wait_cancels_at_once(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=60.0)
    modem = GatedModem()
    modem.gate.set()

    async def scenario() -> tuple[list[str], float]:
        dispatcher.attach(sims[0], modem)
        (mid,) = service.submit(account, ["+15551230001"], "z" * 300).message_ids
        dispatcher.tick()
        await modem.started.wait()
        await asyncio.sleep(1)  # part 1 sent; part 2 waits 60 s for the throttle
        started = asyncio.get_running_loop().time()
        await dispatcher.detach(sims[0])
        return [p["state"] for p in store.parts(mid)], asyncio.get_running_loop().time() - started

    try:
        states, took = loop.run_until_complete(scenario())
    finally:
        loop.close()
        store.close()
    assert states == ["sent", "queued"]
    assert took < 1.0


def test_batch_without_rotation_keeps_to_one_sim_and_waits_for_it(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 3, interval=1.0)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> tuple[int, int, dict[str, int]]:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        first = service.submit(account, [f"+1555{i:07d}" for i in range(6)], "one number",
                               rotate=False)  # fmt: skip
        await _drain(store, dispatcher, 3, limit=60)  # about half of it is out...
        (pinned,) = {sim for _, sim, _ in log}
        sent_before = len(log)
        log.clear()
        for sim in sims:
            if sim != pinned:  # ...then its SIM is unplugged
                dispatcher.attach(sim, FakeModem(sim, log))
        later = service.submit(account, ["+15559999991", "+15559999992"], "later", rotate=False)
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(30)
        await _stopped(stop, runner, dispatcher)
        assert first.batch_id is not None and later.batch_id is not None
        waiting = store.message_states_of_batch(first.batch_id)
        assert store.message_states_of_batch(later.batch_id) == {"sent": 2}
        return pinned, sent_before, waiting

    try:
        pinned, sent_before, waiting = loop.run_until_complete(scenario())
    finally:
        loop.close()
        store.close()
    assert 3 <= sent_before < 6
    # the first batch waits for its own SIM...
    assert waiting == {"sent": sent_before, "queued": 6 - sent_before}
    (other,) = {sim for _, sim, _ in log}  # ...a new one starts, all on one other SIM
    assert other != pinned
    assert all(r.startswith("+155599999") for _, _, r in log)


def test_batch_without_rotation_starts_on_the_sim_with_the_most_headroom(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 3, interval=1.0)
    pool = dispatcher.pool
    # sim 0 has the lowest id but may send 3 more today; sim 1 40 more; sim 2 20 more recipients
    pool.upsert(sims[0], "+447700900000", ThrottlePolicy(interval=1.0, per_day=3))
    pool.upsert(sims[1], "+447700900001", ThrottlePolicy(interval=1.0, per_day=50))
    pool.upsert(sims[2], "+447700900002", ThrottlePolicy(interval=1.0, recipients_per_day=20))
    for i in range(10):
        pool.get(sims[1]).throttle.record(float(i) - 3600, f"+1444{i:07d}")  # an hour ago
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        service.submit(account, [f"+1555{i:07d}" for i in range(5)], "keep to one", rotate=False)
        await _drain(store, dispatcher, 5, limit=60)

    _drive(loop, store, scenario)
    assert [sim for _, sim, _ in log] == [sims[1]] * 5  # not the first SIM, which caps at 3


def test_batch_without_rotation_among_equals_starts_on_the_sim_free_soonest(
    tmp_path: Path,
) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 3, interval=30.0)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        now = asyncio.get_running_loop().time()
        dispatcher.pool.get(sims[0]).throttle.record(now - 1, "+15550000001")  # 29 s to wait
        dispatcher.pool.get(sims[1]).throttle.record(now - 20, "+15550000002")  # 10 s to wait
        service.submit(account, ["+15551110001", "+15551110002"], "uncapped", rotate=False)
        await _drain(store, dispatcher, 2, limit=200)

    _drive(loop, store, scenario)
    assert [sim for _, sim, _ in log] == [sims[2], sims[2]]  # sim 2 was free at once


def test_batch_without_rotation_keeps_its_sim_across_a_restart(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 3, interval=1.0)
    result = service.submit(account, [f"+1555{i:07d}" for i in range(4)], "x", rotate=False)
    # The previous daemon sent the first message from sim 2, then stopped.
    (part,) = store.parts(result.message_ids[0])
    store.transition_part(part["id"], PartState.QUEUED, PartState.SENDING, now=EPOCH,
                          fields={"sim_id": sims[2]})  # fmt: skip
    store.transition_part(part["id"], PartState.SENDING, PartState.SENT, now=EPOCH,
                          fields={"tp_mr": 1})  # fmt: skip
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        await _drain(store, dispatcher, 4, limit=60)

    _drive(loop, store, scenario)
    assert [sim for _, sim, _ in log] == [sims[2]] * 3


def test_sims_granted_to_an_account_are_the_only_ones_it_sends_from(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 3, interval=1.0)
    store.grant_sim(account, sims[1])
    store.grant_sim(account, sims[2])
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        service.submit(account, [f"+1555{i:07d}" for i in range(6)], "rotating")
        service.submit(account, ["+15558880001", "+15558880002"], "pinned", rotate=False)
        await _drain(store, dispatcher, 8, limit=60)

    _drive(loop, store, scenario)
    assert {sim for _, sim, _ in log} == {sims[1], sims[2]}


def test_a_message_from_a_revoked_sim_waits(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 2, interval=1.0)
    store.conn.execute("UPDATE sims SET msisdn = '+447700900000' WHERE id = ?", (sims[0],))
    store.grant_sim(account, sims[0])
    store.grant_sim(account, sims[1])
    (mid,) = service.submit(account, ["+15551230001"], "from sim 0",
                            sender="+447700900000").message_ids  # fmt: skip
    assert store.revoke_sim(account, sims[0])
    assert not store.revoke_sim(account, sims[0])  # already gone
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        await _drain(store, dispatcher, 1, limit=30)

    try:
        loop.run_until_complete(scenario())
        state = store.message(mid)["state"]
    finally:
        loop.close()
        store.close()
    assert (log, state) == ([], "queued")  # neither sent from the revoked SIM nor from another


def test_a_full_disk_pauses_sending_and_it_resumes_with_nothing_lost_or_sent_twice(
    tmp_path: Path,
) -> None:
    from tests.storefaults import fill_disk

    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 2, interval=1.0)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        service.submit(account, [f"+1555{i:07d}" for i in range(40)], "Sale today only")
        disk = fill_disk(store)
        disk.full = True  # before the first part goes out: every commit refused for 60 s
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(60)
        refused = disk.refused
        assert refused > 0 and log == []  # nothing sent while nothing can be recorded
        disk.full = False  # space returns
        while store.count_by_state("messages").get("sent", 0) < 40 and loop.time() < 600:
            await asyncio.sleep(1)
        stop.set()
        await runner  # the dispatcher lived through it
        await dispatcher.close()
        assert store.count_by_state("parts") == {"sent": 40}

    _drive(loop, store, scenario)
    assert sorted(r for _, _, r in log) == [f"+1555{i:07d}" for i in range(40)]  # once each


@dataclass
class ScriptedModem:
    """A modem answering AT+CMGS as scripted (then SENT), recording each submit."""

    sim_id: int
    log: list[tuple[int, SmsSubmit]]
    script: list[OutcomeKind] = field(default_factory=list)
    mr: itertools.count = field(default_factory=itertools.count)

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> SendOutcome:
        await asyncio.sleep(0.3)
        kind = self.script.pop(0) if self.script else OutcomeKind.SENT
        if kind is OutcomeKind.TEMPORARY:
            return SendOutcome(kind, error="+CMS ERROR: 42", cms_error=42)
        self.log.append((self.sim_id, submit))
        return SendOutcome(OutcomeKind.SENT, tp_mr=next(self.mr) % 256)


def test_a_part_sent_again_joins_the_parts_already_out_on_their_sim(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 2, interval=1.0)
    log: list[tuple[int, SmsSubmit]] = []
    first, other = sims
    # Part 1 goes out; part 2 meets congestion three times, which cools its SIM down for a
    # minute while the other SIM is idle: part 2 (and 3) still wait for the first SIM.
    script = [OutcomeKind.SENT, *[OutcomeKind.TEMPORARY] * 3]

    async def scenario() -> list[str]:
        dispatcher.attach(first, ScriptedModem(first, log, script))
        (mid,) = service.submit(account, ["+15551230001"], "w" * 400).message_ids  # 3 parts
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        while not log:
            await asyncio.sleep(0.1)
        dispatcher.attach(other, ScriptedModem(other, log))
        await asyncio.sleep(300)
        await _stopped(stop, runner, dispatcher)
        return [p["state"] for p in store.parts(mid)]

    states = _drive(loop, store, scenario)
    assert states == ["sent", "sent", "sent"]
    assert [sim for sim, _ in log] == [first, first, first]
    concat = [s.user_data.header.concatenation for _, s in log]  # type: ignore[union-attr]
    assert {(c.reference, c.total) for c in concat if c is not None} == {(concat[0].reference, 3)}
    assert [c.sequence for c in concat if c is not None] == [1, 2, 3]


def test_a_retry_put_off_before_the_clock_went_back_is_sent_after_its_back_off(
    tmp_path: Path,
) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=1.0)
    step = timedelta(0)
    dispatcher.outbox.clock = Clock(loop.time, lambda: loop.wall() + step, asyncio.sleep)
    log: list[tuple[int, SmsSubmit]] = []

    async def scenario() -> float:
        nonlocal step
        dispatcher.attach(sims[0], ScriptedModem(sims[0], log, [OutcomeKind.TEMPORARY]))
        (mid,) = service.submit(account, ["+15551230001"], "hello").message_ids
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        while store.parts(mid)[0]["error"] == "":  # until its congestion is recorded
            await asyncio.sleep(0.1)
        step = -timedelta(hours=1)  # put off by 2 s, then NTP steps the wall clock back
        stepped = loop.time()
        while not log:
            await asyncio.sleep(0.1)
        await _stopped(stop, runner, dispatcher)
        return loop.time() - stepped

    waited = _drive(loop, store, scenario)
    assert waited < 10.0  # not the hour the clock went back


def _drive(loop: VirtualTimeLoop, store: Store, scenario: Callable[[], Awaitable[T]]) -> T:
    """Run `scenario` on the virtual loop, then close the loop and the store."""
    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()
        store.close()


async def _stopped(stop: asyncio.Event, runner: asyncio.Task[None], dispatcher: Dispatcher) -> None:
    """Stop the dispatcher's run loop and close it."""
    stop.set()
    await runner
    await dispatcher.close()


def _count_calls(store: Store, name: str, loop: VirtualTimeLoop) -> list[float]:
    """Record the virtual time of every call of the store's method `name`."""
    calls: list[float] = []
    method = getattr(store, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(loop.time())
        return method(*args, **kwargs)

    setattr(store, name, counted)
    return calls


def test_accepts_while_every_sim_with_room_is_paced_claim_nothing_until_it_is_free(
    tmp_path: Path,
) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 2, interval=10.2)
    service.on_accepted = dispatcher.wake
    busy, away = sims
    dispatcher.pool.set_enabled(away, False)  # attached, its queue empty, out of rotation
    claims = _count_calls(store, "claim_messages", loop)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        for sim in sims:
            dispatcher.attach(sim, FakeModem(sim, log))
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        service.submit(account, ["+15550000000"], "first")
        await asyncio.sleep(1.0)  # sent at 0 s: `busy` is paced until 10.2 s
        for i in range(1, 41):  # an accepted group every 0.1 s, as under load
            service.submit(account, [f"+1555000{i:04d}"], "more")
            await asyncio.sleep(0.1)
        while len(log) < 2:
            await asyncio.sleep(0.5)
        await _stopped(stop, runner, dispatcher)

    _drive(loop, store, scenario)
    # Each wake-up (40 accepted groups, full ticks) would have read the queue, and every
    # message would have stayed there: `away` has room but is out of rotation, and `busy`,
    # the one SIM that could take them, has its pace to wait for.
    assert [t for t in claims if 0.5 < t < 10.2 - MARGIN] == []
    # Woken (half a margin) before `busy` is free, not at the next full tick (10.5 s): its
    # next message starts the moment the pace allows.
    assert min(t for t in claims if t > 0.5) == pytest.approx(10.2 - MARGIN / 2)
    assert [(t, sim) for t, sim, _ in log[:2]] == [(0.0, busy), (10.2, busy)]


@pytest.mark.parametrize("due", [False, True], ids=["now", "send_at_due"])
def test_an_idle_box_sends_an_accepted_message_at_once(tmp_path: Path, due: bool) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=1.0)
    service.on_accepted = dispatcher.wake
    log: list[tuple[float, int, str]] = []

    async def scenario() -> float:
        dispatcher.attach(sims[0], FakeModem(sims[0], log))
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        await asyncio.sleep(3.7)  # between two full ticks, the SIM long free
        accepted = loop.time()
        service.submit(account, ["+15550000001"], "now", send_at=loop.wall() if due else None)
        while not log:
            await asyncio.sleep(0.05)
        await _stopped(stop, runner, dispatcher)
        return accepted

    accepted = _drive(loop, store, scenario)
    assert log[0][0] == accepted  # AT+CMGS started at the very moment it was accepted


def test_scheduled_messages_are_promoted_per_full_tick_not_per_accepted_group(
    tmp_path: Path,
) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=1.0)
    service.on_accepted = dispatcher.wake
    promotions = _count_calls(store, "promote_due", loop)
    series = _count_calls(store, "due_series", loop)
    log: list[tuple[float, int, str]] = []

    async def scenario() -> None:
        dispatcher.attach(sims[0], FakeModem(sims[0], log))
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        for i in range(100):  # 100 accepted groups in 2 s
            service.submit(account, [f"+1555000{i:04d}"], "bulk")
            await asyncio.sleep(0.02)
        await _stopped(stop, runner, dispatcher)

    _drive(loop, store, scenario)
    # One full tick every TICK_SECONDS (give or take the margin): 5 in 2 s, not 100.
    assert promotions == series
    assert len(promotions) == 5
    gaps = [b - a for a, b in itertools.pairwise(promotions)]
    assert all(TICK_SECONDS - MARGIN <= gap <= TICK_SECONDS + 1e-9 for gap in gaps), gaps


def test_a_resumed_batch_sends_what_fell_due_while_paused_at_once(tmp_path: Path) -> None:
    loop = VirtualTimeLoop()
    store, account, sims, dispatcher, service = _setup(tmp_path, loop, 1, interval=1.0)
    service.on_accepted = dispatcher.wake
    log: list[tuple[float, int, str]] = []

    async def scenario() -> float:
        dispatcher.attach(sims[0], FakeModem(sims[0], log))
        stop = asyncio.Event()
        runner = asyncio.create_task(dispatcher.run(stop))
        batch = service.submit(
            account, ["+15550000001"], "later", send_at=loop.wall() + timedelta(seconds=2)
        ).batch_id
        assert batch is not None
        service.pause_batch(account, batch)
        await asyncio.sleep(5.2)  # due at 2 s, held; the next full tick is at 5.5 s
        resumed = loop.time()
        service.resume_batch(account, batch)
        while not log:
            await asyncio.sleep(0.01)
        await _stopped(stop, runner, dispatcher)
        return resumed

    resumed = _drive(loop, store, scenario)
    assert log[0][0] == resumed  # promoted by the resume's own wake-up, not the next tick
