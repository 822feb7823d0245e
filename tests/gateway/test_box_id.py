"""One running daemon per box_id (fleet mode, PostgreSQL, on a virtual-time loop): a second
daemon with a box_id a running one has is refused at start, and the first keeps its SIMs and
its part on the wire; a killed daemon's box_id (and its leases, its part on the wire then
uncertain) is taken over after at most WATCH_PERIODS renewal periods, at once on the same
machine; of two daemons starting at once exactly one runs; a running daemon whose box_id was
taken gives up its SIMs instead of fighting for them, and stops with its own exit status."""

import asyncio
import dataclasses
import logging
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from click.testing import CliRunner

from gateway.accounts import create_account
from gateway.cli import main
from gateway.config import Config
from gateway.daemon import Gateway, serve
from gateway.leases import (
    EXIT_BOX_TAKEN,
    WATCH_PERIODS,
    BoxInUseError,
    BoxTakenError,
    Host,
    LeaseSettings,
    SimLeases,
)
from gateway.models import ThrottlePolicy
from gateway.outbox import Clock, Outbox
from gateway.pool import SimPool
from gateway.scheduler import Dispatcher
from gateway.service import GatewayService
from gateway.store import LeaseHolder, Store
from modem.emulator import EmulatorPool
from tests.emulated import serving
from tests.gateway.fleet_support import FakeModem
from tests.lockstep import LockstepClock
from tests.vloop import VirtualTimeLoop

TTL = 15.0
PERIOD = TTL / 3  # how often leases and the box's heartbeat are renewed
WATCH = WATCH_PERIODS * PERIOD  # the longest a starting daemon waits
MESSAGES = 12
PI_1 = Host("boot-1 pid:[1]", 100, alive=lambda pid: pid == 100)  # box A's machine
CLONE = Host("boot-2 pid:[1]", 100, alive=lambda pid: pid == 100)  # its SD card's clone
T = TypeVar("T")


@pytest.fixture
def stores(pg_url: str) -> Iterator[list[Store]]:
    """Three daemons' connections to one fleet store."""
    opened = [Store.open(pg_url) for _ in range(3)]
    yield opened
    for store in opened:
        store.close()


@dataclass
class Daemon:
    """What of a daemon holds a box_id and SIM leases: its leases, dispatcher and tasks."""

    leases: SimLeases
    dispatcher: Dispatcher
    modem: FakeModem
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def start(self, sim: int) -> bool:
        """Attach the SIM and run the dispatcher and the lease renewals (after join)."""
        attached = self.dispatcher.attach(sim, self.modem)
        self.tasks = [asyncio.create_task(self.dispatcher.run(self.stop)),
                      asyncio.create_task(self.dispatcher.keep_leases(self.stop))]  # fmt: skip
        return attached

    def kill(self) -> None:
        """kill -9: every task gone at once, nothing released, nothing renewed again."""
        for task in [*self.tasks, *self.dispatcher._loops.values()]:
            task.cancel()

    async def close(self) -> None:
        """A clean stop, as serve() makes it."""
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.dispatcher.close()
        self.leases.leave()


def _daemon(store: Store, loop: VirtualTimeLoop, sim: int, host: Host) -> Daemon:
    pool = SimPool()
    pool.upsert(sim, "+447700900001", ThrottlePolicy(interval=1.0))
    outbox = Outbox(store, pool, {}, Clock(loop.time, loop.wall, asyncio.sleep))
    leases = SimLeases(store, LeaseSettings("box-a", TTL), loop.wall, host=host)
    return Daemon(leases, Dispatcher(store, outbox, leases=leases), FakeModem(loop, radio=0.5))


async def _join(daemon: Daemon, loop: VirtualTimeLoop) -> float:
    """Join the box_id; return the virtual seconds it took."""
    started = loop.time()
    await daemon.leases.join(asyncio.sleep)
    return loop.time() - started


def _queue(store: Store, loop: VirtualTimeLoop) -> tuple[int, list[int]]:
    account = create_account(store, "bulk", now=loop.wall(), unlimited=True).account_id
    sim = store.bind_sim(iccid="8944000000000000001", imsi=None, now=loop.wall())
    recipients = [f"+155500000{i:02d}" for i in range(MESSAGES)]
    return sim, GatewayService(store, wall=loop.wall).submit(account, recipients, "hi").message_ids


async def _until_on_wire(daemon: Daemon) -> None:
    """Run until the daemon has a part on the wire (virtual time: no real wait)."""
    for _ in range(200):
        if daemon.dispatcher.outbox.on_wire:
            return
        await asyncio.sleep(0.05)
    pytest.fail("nothing went on the wire")


def _run(loop: VirtualTimeLoop, scenario: Coroutine[Any, Any, T]) -> T:
    """Run a scenario; whatever it left running (a failed one: whole daemons) is cancelled."""
    try:
        return loop.run_until_complete(scenario)
    finally:
        loop.run_until_complete(_cancel(asyncio.all_tasks(loop)))
        loop.close()


async def _cancel(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _uncertain(store: Store) -> int:
    return store.count_by_state("parts").get("uncertain", 0)


@pytest.mark.parametrize("second_host", [CLONE, Host(PI_1.key, 200, alive=lambda pid: True)],
                         ids=["cloned-sd-card", "same-machine"])  # fmt: skip
def test_a_second_daemon_with_a_running_box_id_is_refused_and_the_first_keeps_its_sims(
    stores: list[Store], second_host: Host
) -> None:
    store_a, store_b, _ = stores
    loop = VirtualTimeLoop()
    sim, ids = _queue(store_a, loop)
    first = _daemon(store_a, loop, sim, PI_1)
    second = _daemon(store_b, loop, sim, second_host)

    async def scenario() -> tuple[str, float, set[int], int]:
        await _join(first, loop)
        assert first.start(sim)
        await asyncio.sleep(3.2)
        await _until_on_wire(first)
        started = loop.time()
        with pytest.raises(BoxInUseError) as refused:
            await second.leases.join(asyncio.sleep)
        took = loop.time() - started
        # The first daemon went on sending and renewing all along.
        uncertain = _uncertain(store_a)
        while store_a.count_by_state("messages").get("sent", 0) < MESSAGES and loop.time() < 120:
            await asyncio.sleep(1)
        held = first.leases.held()
        await first.close()
        return str(refused.value), took, held, uncertain

    message, took, held, uncertain_then = _run(loop, scenario())
    assert message.startswith(
        "box_id box-a is in use by another running smsgw (incarnation "
        f"{first.leases.holder.incarnation}, last seen "
    )
    assert message.endswith(" s ago); give each box its own box_id")
    assert 0 < took <= WATCH  # told by the first one's next heartbeat, within the watch
    assert held == {sim}
    assert not second.leases.joined and second.leases.held() == set()
    assert uncertain_then == 0 and _uncertain(store_a) == 0
    assert store_a.count_by_state("messages") == {"sent": MESSAGES}
    assert sorted(r for _, r in first.modem.sent) == [f"+155500000{i:02d}" for i in range(12)]
    assert second.modem.sent == [] and len(ids) == MESSAGES


@pytest.mark.parametrize(
    ("restart_host", "waits"),
    [(CLONE, WATCH), (Host(PI_1.key, 200, alive=lambda pid: False), 0.0)],
    ids=["other-machine", "same-machine-pid-gone"],
)
def test_a_killed_daemon_s_box_id_and_leases_are_taken_over_within_the_watch(
    stores: list[Store], restart_host: Host, waits: float
) -> None:
    """kill -9 mid-AT+CMGS, then a new process with the same box_id: it waits WATCH (its
    predecessor's pid cannot be looked at from there) or nothing (same machine, pid gone),
    then takes the SIM's lease at once; the part on the wire is uncertain, the rest is sent."""
    store_a, store_b, _ = stores
    loop = VirtualTimeLoop()
    sim, _ = _queue(store_a, loop)
    first = _daemon(store_a, loop, sim, PI_1)
    restart = _daemon(store_b, loop, sim, restart_host)

    async def scenario() -> tuple[float, bool, int]:
        await _join(first, loop)
        assert first.start(sim)
        await asyncio.sleep(3.2)
        await _until_on_wire(first)
        first.kill()
        await asyncio.sleep(1)  # systemd's RestartSec, say
        took = await _join(restart, loop)
        attached = restart.start(sim)
        uncertain = _uncertain(store_b)
        while (
            store_b.count_by_state("messages").get("sent", 0) < MESSAGES - 1 and loop.time() < 120
        ):
            await asyncio.sleep(1)
        await restart.close()
        return took, attached, uncertain

    took, attached, uncertain = _run(loop, scenario())
    assert took == pytest.approx(waits)
    assert attached  # the lease taken over at once, live as it still was
    assert uncertain == 1  # the part on the wire at the kill, in the same transaction
    sent_first = len(first.modem.sent)
    assert store_b.count_by_state("messages") == {"sent": MESSAGES - 1, "uncertain": 1}
    assert len(restart.modem.sent) == MESSAGES - sent_first
    row = store_b.box_beat("box-a")
    assert row is not None and row.left_at is not None  # left cleanly: next start at once


@pytest.mark.parametrize("left_by", ["nobody", "a-dead-process"])
def test_of_two_daemons_starting_at_once_exactly_one_runs(
    stores: list[Store], left_by: str
) -> None:
    store_a, store_b, store_c = stores
    loop = VirtualTimeLoop()
    sim, _ = _queue(store_a, loop)
    if left_by == "a-dead-process":  # killed just now, on another machine
        dead = SimLeases(store_c, LeaseSettings("box-a", TTL), loop.wall, host=CLONE)
        loop.run_until_complete(dead.join(asyncio.sleep))
        assert dead.acquire(sim).acquired
    one, two = _daemon(store_a, loop, sim, PI_1), _daemon(store_b, loop, sim, PI_1)

    async def run(daemon: Daemon) -> float:
        took = await _join(daemon, loop)
        assert daemon.start(sim)  # as serve() does: renewing from the moment it joined
        return took

    async def scenario() -> list[object]:
        results = await asyncio.gather(run(one), run(two), return_exceptions=True)
        running = [d for d, r in zip((one, two), results, strict=True) if isinstance(r, float)]
        while store_a.count_by_state("messages").get("sent", 0) < MESSAGES and loop.time() < 120:
            await asyncio.sleep(1)
        for daemon in running:
            await daemon.close()
        return results

    results = _run(loop, scenario())
    refused = [r for r in results if isinstance(r, BoxInUseError)]
    assert len(refused) == 1 and len([r for r in results if isinstance(r, float)]) == 1
    assert "is in use by another running smsgw" in str(refused[0])
    winner = one if isinstance(results[0], float) else two
    loser = two if winner is one else one
    assert len(winner.modem.sent) == MESSAGES and loser.modem.sent == []
    assert store_a.count_by_state("messages") == {"sent": MESSAGES}


def test_a_daemon_whose_box_id_was_taken_gives_up_its_sims_instead_of_fighting(
    stores: list[Store], caplog: pytest.LogCaptureFixture
) -> None:
    """The other side won: say box A froze past the watch and a second daemon took its
    box_id, then its SIM's lease (at once: the box is its own now). At its next renewal box A
    says so (ERROR), stops sending and never asks for the lease again."""
    store_a, store_b, _ = stores
    loop = VirtualTimeLoop()
    sim, _ = _queue(store_a, loop)
    first = _daemon(store_a, loop, sim, PI_1)
    other = _daemon(store_b, loop, sim, CLONE)

    async def scenario() -> tuple[float, bool, dict[int, object]]:
        await _join(first, loop)
        assert first.start(sim)
        await asyncio.sleep(2.7)  # between two sends: nothing on the wire
        seen = store_b.box_beat("box-a")
        assert store_b.take_box(other.leases.holder, seen=seen, host=CLONE.key, pid=1,
                                now=loop.wall())  # fmt: skip
        other.leases.joined = True  # what join does once take_box won
        taken_at = loop.time()
        attached = other.start(sim)
        await asyncio.sleep(4 * PERIOD)  # box A renews (and would ask again) four times
        leases = dict(store_a.live_leases(loop.wall()))
        while store_b.count_by_state("messages").get("sent", 0) < MESSAGES and loop.time() < 120:
            await asyncio.sleep(1)
        await first.close()
        await other.close()
        return taken_at, attached, leases

    with caplog.at_level(logging.ERROR, logger="gateway.leases"):
        taken_at, attached, leases = _run(loop, scenario())
    assert attached
    assert leases == {sim: other.leases.holder}  # box A never took it back
    assert first.leases.deposed and first.leases.held() == set()
    # Nothing started from box A after its next renewal found the box taken.
    assert max(t for t, _ in first.modem.sent) < taken_at + PERIOD
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [
        f"box_id box-a was taken by another smsgw (incarnation {other.leases.holder.incarnation}):"
        " this daemon gives up its 1 SIM(s) and sends no more; give each box its own box_id"
    ]
    assert len(first.modem.sent) + len(other.modem.sent) == MESSAGES  # each message once
    assert store_b.count_by_state("messages") == {"sent": MESSAGES}


def test_serve_refuses_a_box_id_a_running_daemon_has_and_lets_it_go_at_a_clean_stop(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon itself, on emulated modems and one virtual clock: a second `serve` with
    box A's box_id (from a cloned SD card) is refused within the watch while A goes on holding
    its SIM; A's clean stop lets the box_id go."""
    config = Config(data_dir=tmp_path / "a", database_url=pg_url, box_id="box-a", discover=())
    clone = dataclasses.replace(config, data_dir=tmp_path / "clone")

    async def scenario(emu: EmulatorPool, clock: LockstepClock) -> tuple[str, float, bool]:
        (port,) = [i.path for i in emu.info()]
        async with serving(config, [port], frontends=[], lockstep=clock) as a:
            assert a.dispatcher.leases is not None
            (sim,) = a.dispatcher.leases.held()
            with monkeypatch.context() as m:
                m.setattr(Host, "here", classmethod(lambda cls: CLONE))
                started = clock.monotonic()
                with pytest.raises(BoxInUseError) as refused:
                    await serve(clone, stop=asyncio.Event(), frontends=[], clock=clock.clock())
            waited = clock.monotonic() - started
            kept = a.store.live_leases(clock.wall()) == {sim: a.dispatcher.leases.holder}
        return str(refused.value), waited, kept

    with EmulatorPool(1, seed=21, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        message, waited, kept = clock.run(asyncio.wait_for(scenario(emu, clock), 60))
    assert "box_id box-a is in use by another running smsgw (incarnation " in message
    assert 0 < waited <= WATCH_PERIODS * config.lease_ttl / 3
    assert kept
    store = Store.open(pg_url)
    try:
        row = store.box_beat("box-a")
    finally:
        store.close()
    assert row is not None and row.left_at is not None


def test_serve_stops_cleanly_once_its_box_id_is_taken_and_says_by_whom(
    tmp_path: Path, pg_url: str
) -> None:
    """The daemon itself, on an emulated modem and one virtual clock: another process takes
    box A's box_id while A serves; at its next heartbeat A gives up its SIM and stops as at
    SIGTERM (workers and store closed), then raises BoxTakenError naming the other holder,
    whose box row it leaves alone."""
    config = Config(data_dir=tmp_path / "a", database_url=pg_url, box_id="box-a", discover=())
    other = LeaseHolder("box-a", "0123456789abcdef")

    async def scenario(emu: EmulatorPool, clock: LockstepClock) -> tuple[str, float, bool]:
        (port,) = [i.path for i in emu.info()]
        stop = asyncio.Event()
        ready: asyncio.Future[Gateway] = asyncio.get_running_loop().create_future()
        daemon = asyncio.create_task(
            serve(config, stop=stop, ports=[(port, None)], on_ready=ready.set_result,
                  frontends=[], clock=clock.clock())
        )  # fmt: skip
        a = await ready
        await asyncio.gather(*(w.ready.wait() for w in a.workers.values()))
        assert a.dispatcher.leases is not None and len(a.dispatcher.leases.held()) == 1
        taker = Store.open(pg_url)
        try:
            seen = taker.box_beat("box-a")
            assert taker.take_box(other, seen=seen, host=CLONE.key, pid=4321, now=clock.wall())
        finally:
            taker.close()
        taken_at = clock.monotonic()
        with pytest.raises(BoxTakenError) as stopped:
            await daemon
        took = clock.monotonic() - taken_at
        workers_done = all(task.done() for _, task in a.running.values())
        return str(stopped.value), took, workers_done and stop.is_set()

    with EmulatorPool(1, seed=22, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        message, took, stopped_cleanly = clock.run(asyncio.wait_for(scenario(emu, clock), 60))
    assert message == (
        "box_id box-a was taken by another running smsgw (incarnation 0123456789abcdef) while"
        " this one ran: it gave up its SIMs and stopped; give each box its own box_id"
    )
    assert took <= config.lease_ttl / 3  # its next heartbeat
    assert stopped_cleanly
    store = Store.open(pg_url)
    try:
        row = store.box_beat("box-a")
    finally:
        store.close()
    assert row is not None and row.holder == other and row.left_at is None  # not A's to leave


@pytest.mark.parametrize(
    "error",
    [
        BoxInUseError("box_id box-a is in use by another running smsgw (…)"),  # at start
        BoxTakenError("box_id box-a was taken by another running smsgw (…)"),  # while running
    ],
    ids=["refused", "taken"],
)
def test_the_cli_says_a_box_id_clash_in_one_line_with_its_own_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    config = tmp_path / "smsgw.toml"
    config.write_text(f'data_dir = "{tmp_path}"\n')

    async def clash(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr("gateway.cli.daemon.serve", clash)
    result = CliRunner().invoke(main, ["serve", "--config", str(config)])
    # Not a plain failure's 1: the unit does not restart into the same clash.
    assert result.exit_code == EXIT_BOX_TAKEN != 1
    assert result.output == f"Error: {error}\n"
