"""Fleet mode end to end (issue 15, must-show 2): two daemons, each with its own emulated modems,
on one PostgreSQL store. Messages submitted alternately to both boxes' HTTP APIs all go out
exactly once (the emulated network is the judge), each through a SIM of the box that claimed
it; a rotating batch spreads over both boxes' SIMs; a message accepted on one box is sent by
the other, woken by LISTEN/NOTIFY alone; a SIM moved from one box to the other carries its
queue and its throttle with it.

Real PTYs, real HTTP sockets, a real PostgreSQL; the two daemons and the emulated network share
one virtual clock (tests/lockstep.py), so every SIM's throttle is judged exactly and costs no
time.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway import scheduler
from gateway.accounts import create_account
from gateway.config import Config
from gateway.daemon import Gateway
from gateway.models import ThrottlePolicy
from gateway.ratelimit import LimitSettings
from gateway.store import Store
from gateway.store.listen import WorkListener
from modem.emulator import EmulatorPool
from tests.emulated import free_port, serving
from tests.lockstep import LockstepClock
from tests.postgres import Cluster

THROTTLE = ThrottlePolicy().interval  # 1 s per SIM, the default
DEADLINE = 120.0  # seconds of wall time for a whole scenario; fails instead of hanging
UNLIMITED = LimitSettings(account_rate=0, ip_rate=0)  # one test client sends it all
LONG = "A two-part text, so that a message torn across boxes would show. " * 3  # 2 GSM-7 parts


def _config(tmp_path: Path, pg_url: str, box: str, *, http: bool = True) -> Config:
    return Config(
        data_dir=tmp_path / box, database_url=pg_url, box_id=box, http_host="127.0.0.1",
        http_port=free_port() if http else 0, discover=(), limits=UNLIMITED,
    )  # fmt: skip


def _count_sent(gateways: list[Gateway]) -> tuple[Callable[[], int], asyncio.Event, list[int]]:
    """Count parts recorded sent on every box; `target[0]` sets the event when reached."""
    reached = asyncio.Event()
    target = [0]
    sent = [0]
    for gateway in gateways:
        reconcile = gateway.outbox.on_sent

        def on_sent(part_id: int, reconcile: Callable[[int], object] | None = reconcile) -> None:
            if reconcile is not None:
                reconcile(part_id)
            sent[0] += 1
            if sent[0] >= target[0]:
                reached.set()

        gateway.outbox.on_sent = on_sent
    return lambda: sent[0], reached, target


@dataclass(frozen=True)
class FleetRun:
    """What the network saw and what the store says about who claimed what."""

    submits: list[tuple[str, str, float]]  # (sender SIM number, destination, virtual time)
    boxes: dict[str, set[str]]  # box -> its SIMs' numbers
    claimed_by: dict[str, str]  # destination -> box whose claim sent it
    parts: dict[str, int]  # destination -> parts its message has
    fixed: dict[str, str]  # destination -> the SIM number it was sent "from"
    batch: set[str]  # destinations of the rotating batch


async def _fleet(
    emu: EmulatorPool, clock: LockstepClock, tmp_path: Path, pg_url: str, messages: int
) -> FleetRun:
    ports = [i.path for i in emu.info()]
    numbers = [i.msisdn for i in emu.info()]
    a_config = _config(tmp_path, pg_url, "box-a")
    b_config = _config(tmp_path, pg_url, "box-b")
    async with (
        serving(a_config, ports[:2], lockstep=clock) as a,
        serving(b_config, ports[2:], lockstep=clock) as b,
        aiohttp.ClientSession() as http,
    ):
        creds = create_account(a.store, "fleet", now=clock.wall(), unlimited=True)
        auth = {"Authorization": f"Bearer {creds.api_key}"}
        bases = [f"http://127.0.0.1:{c.http_port}/v1/messages" for c in (a_config, b_config)]
        sent, reached, target = _count_sent([a, b])
        # Every 10th message has two parts; every 10th (others) is sent "from" a SIM of box
        # B, submitted to either box (box A's own pool does not know that number).
        parts = {f"+1555{i:07d}": 2 if i % 10 == 0 else 1 for i in range(messages)}
        fixed = {f"+1555{i:07d}": numbers[3] for i in range(5, messages, 10)}
        target[0] = sum(parts.values())
        gate = asyncio.Semaphore(8)

        async def submit(i: int) -> None:
            to = f"+1555{i:07d}"
            body: dict[str, Any] = {"to": to, "text": LONG if parts[to] == 2 else f"hello {i}"}
            if to in fixed:
                body["from"] = fixed[to]
            # Alternately to box A and box B.
            async with gate, http.post(bases[i % 2], json=body, headers=auth) as r:
                assert r.status == 201, await r.text()

        await asyncio.gather(*(submit(i) for i in range(messages)))
        await reached.wait()  # bounded by DEADLINE around the scenario
        # One rotating batch, through box A alone: it goes out over both boxes' SIMs.
        batch = [f"+1666{i:07d}" for i in range(40)]
        target[0] += len(batch)
        reached.clear()
        async with http.post(bases[0], json={"to": batch, "text": "sale"}, headers=auth) as r:
            assert r.status == 201, await r.text()
        await reached.wait()
        assert sent() == target[0]
        owners = {a.dispatcher.owner: "box-a", b.dispatcher.owner: "box-b"}
        rows = a.store.conn.execute(
            "SELECT recipient, claim_owner FROM messages WHERE account_id = ?", (creds.account_id,)
        ).fetchall()
        claimed_by = {str(r[0]): owners[str(r[1])] for r in rows}
    submits = [(o.sender, o.destination, o.time) for o in emu.outside()]
    boxes = {"box-a": set(numbers[:2]), "box-b": set(numbers[2:])}
    return FleetRun(submits, boxes, claimed_by, parts, fixed, set(batch))


def _judge(run: FleetRun, messages: int) -> None:
    senders: dict[str, set[str]] = defaultdict(set)
    for sender, dest, _ in run.submits:
        senders[dest].add(sender)
    destinations = Counter(dest for _, dest, _ in run.submits)
    assert len(destinations) == messages + len(run.batch)
    # Every message out exactly once: each part once, all parts from one SIM (never torn).
    assert destinations == Counter({**run.parts, **dict.fromkeys(run.batch, 1)})
    assert {dest for dest, sims in senders.items() if len(sims) > 1} == set()
    sim_box = {number: box for box, sims in run.boxes.items() for number in sims}
    for sender, dest, _ in run.submits:
        assert sim_box[sender] == run.claimed_by[dest]  # through a SIM of the box that claimed it
    # A fixed sender went out from that very SIM, whichever box took the request.
    assert {dest: senders[dest] for dest in run.fixed} == {
        dest: {number} for dest, number in run.fixed.items()
    }
    per_box = Counter(sim_box[sender] for sender, _, _ in run.submits)
    assert min(per_box.values()) >= messages // 4  # both boxes did a fair share
    # The batch, accepted on box A, went out over all four SIMs, two of them box B's.
    batch_senders = Counter(sender for sender, dest, _ in run.submits if dest in run.batch)
    assert set(batch_senders) == set(sim_box)
    assert max(batch_senders.values()) - min(batch_senders.values()) <= 2
    # Each SIM at its throttle, on the network's own clock, wherever its box is.
    times: dict[str, list[float]] = defaultdict(list)
    for sender, _, at in run.submits:
        times[sender].append(at)
    for sender, stamps in times.items():
        gaps = [b - a for a, b in itertools.pairwise(sorted(stamps))]
        assert min(gaps) >= THROTTLE, (sender, min(gaps))


def _run_fleet(tmp_path: Path, pg_url: str, messages: int) -> None:
    with EmulatorPool(["generic"] * 4, seed=15, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        run = clock.run(
            asyncio.wait_for(_fleet(emu, clock, tmp_path, pg_url, messages), DEADLINE * 4)
        )
    _judge(run, messages)


def test_two_boxes_send_2000_messages_exactly_once_each_from_its_own_sims(
    tmp_path: Path, pg_url: str
) -> None:
    _run_fleet(tmp_path, pg_url, 2000)


async def test_a_message_accepted_on_one_box_is_sent_by_the_other_woken_by_notify(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Box A has no modems; box B's dispatcher polls once an hour: only the notification of
    A's commit can have woken B in time."""
    monkeypatch.setattr(scheduler, "TICK_SECONDS", 3600.0)
    with EmulatorPool(1, seed=16, report_delay=0.0) as emu:
        a_config = _config(tmp_path, pg_url, "box-a")
        b_config = _config(tmp_path, pg_url, "box-b", http=False)
        async with (
            serving(a_config, []) as a,
            serving(b_config, [emu.info()[0].path], frontends=[]) as b,
            aiohttp.ClientSession() as http,
        ):
            _, reached, target = _count_sent([b])
            target[0] = 1
            creds = create_account(a.store, "shop", now=datetime.now(UTC), unlimited=True)
            async with http.post(
                f"http://127.0.0.1:{a_config.http_port}/v1/messages",
                json={"to": "+15550000001", "text": "from A, sent by B"},
                headers={"Authorization": f"Bearer {creds.api_key}"},
            ) as r:
                assert r.status == 201, await r.text()
            await asyncio.wait_for(reached.wait(), 30)
        assert [(o.sender, o.destination) for o in emu.outside()] == [
            (emu.info()[0].msisdn, "+15550000001")
        ]


async def test_the_work_listener_reconnects_after_losing_the_server(
    pg_url: str, postgres: Cluster
) -> None:
    woken: asyncio.Queue[None] = asyncio.Queue()
    listener = WorkListener(pg_url, lambda: woken.put_nowait(None), backoff_first=0.01)
    stop = asyncio.Event()
    task = asyncio.create_task(listener.run(stop))
    store = Store.open(pg_url)
    try:
        await asyncio.wait_for(woken.get(), 10)  # connected: it looks once
        first = listener.backend_pid
        assert first is not None
        postgres.admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        await asyncio.wait_for(woken.get(), 10)  # back again, and it looks once more
        assert listener.backend_pid not in (None, first)
        account = create_account(store, "shop", now=datetime.now(UTC), unlimited=True)
        store.accept_message(
            account_id=account.account_id, recipient="+1555", body="x", encoding="gsm7",
            parts=1, now=datetime.now(UTC),
        )  # fmt: skip
        await asyncio.wait_for(woken.get(), 10)  # the new connection hears the commit
    finally:
        stop.set()
        await task
        store.close()


CAP_PER_DAY = 8
ADMIN_PASSWORD = "correct horse battery"


async def _moving(emu: EmulatorPool, clock: LockstepClock, tmp_path: Path, pg_url: str) -> None:
    """SIM X starts on box A; A lets it go (its modem unplugged there: a clean detach) and box
    B takes it over; B lets it go and A takes it back, its own memory of X's sends out of date.
    X may send CAP_PER_DAY a day: what each box sent from it counts on the other."""
    (info,) = emu.info()
    port = info.path
    a_config = _config(tmp_path, pg_url, "box-a", http=False)
    b_config = _config(tmp_path, pg_url, "box-b", http=False)
    async with (
        serving(a_config, [port], frontends=[], lockstep=clock) as a,
        serving(b_config, [], frontends=[], lockstep=clock) as b,
    ):
        (worker,) = a.workers.values()
        assert worker.sim_id is not None
        a.service.set_sim_limits(worker.sim_id, {"cap_per_day": CAP_PER_DAY})
        account = create_account(a.store, "moving", now=clock.wall(), unlimited=True)
        numbers = [f"+1777{i:07d}" for i in range(CAP_PER_DAY + 4)]
        # Sent "from" X: its queue, that no other SIM may take.
        a.service.submit(account.account_id, numbers, "moving", sender=info.msisdn)
        sent, reached, target = _count_sent([a, b])
        for box, until in ((a, 3), (b, 6), (a, CAP_PER_DAY)):
            if box is b or until == CAP_PER_DAY:
                box.start_worker(port)
            target[0] = until
            reached.clear()
            await reached.wait()  # bounded by DEADLINE around the scenario
            if until != CAP_PER_DAY:
                await box.remove_worker(port)  # lets the SIM go: its lease and its claims
                assert a.store.live_leases(clock.wall()) == {}
        # The day's cap is spent: a minute more (virtual) sends nothing, the queue waits.
        await clock.sleep(60)
        assert sent() == CAP_PER_DAY
        assert a.store.count_by_state("messages") == {"delivered": CAP_PER_DAY, "queued": 4}


def test_a_sim_moved_between_boxes_keeps_its_queue_and_its_throttle(
    tmp_path: Path, pg_url: str
) -> None:
    with EmulatorPool(1, seed=17, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        clock.run(asyncio.wait_for(_moving(emu, clock, tmp_path, pg_url), DEADLINE))
        (info,) = emu.info()
        submits = [(o.sender, o.destination, o.time) for o in emu.outside()]
    # Its queue went out from X alone, each message once, at its pace (1 ms: stored
    # microseconds), and no more than its day allows, however often it moved.
    assert len({dest for _, dest, _ in submits}) == len(submits) == CAP_PER_DAY
    assert {sender for sender, _, _ in submits} == {info.msisdn}
    times = sorted(at for _, _, at in submits)
    assert min(b - a for a, b in itertools.pairwise(times)) >= THROTTLE - 1e-3


async def test_each_box_shows_the_other_box_s_sims_present_with_the_box_holding_them(
    tmp_path: Path, pg_url: str
) -> None:
    """Box A's operator view (/v1/sims, the dashboard's SIMs, /metrics) of a fleet: its own
    SIM ready on box-a, box B's SIM present on box-b (not gone); once B stops, gone."""
    with EmulatorPool(2, seed=18, report_delay=0.0) as emu:
        ports = [i.path for i in emu.info()]
        a_config = _config(tmp_path, pg_url, "box-a")
        b_config = _config(tmp_path, pg_url, "box-b", http=False)
        jar = aiohttp.CookieJar(unsafe=True)  # the dashboard's session cookie, on 127.0.0.1
        async with (
            serving(a_config, ports[:1]) as a,
            aiohttp.ClientSession(cookie_jar=jar) as http,
        ):
            creds = create_account(a.store, "ops", now=datetime.now(UTC), unlimited=True)
            base = f"http://127.0.0.1:{a_config.http_port}"
            auth = {"Authorization": f"Bearer {creds.api_key}"}
            a.service.set_admin_password(ADMIN_PASSWORD)
            async with http.get(f"{base}/login") as r:
                csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
            assert csrf is not None
            login = {"csrf": csrf.group(1), "password": ADMIN_PASSWORD, "next": "/sims"}
            async with http.post(f"{base}/login", data=login) as r:
                assert r.status == 200, await r.text()

            async def seen_from_a() -> tuple[dict[int, Any], str]:
                async with http.get(f"{base}/v1/sims", headers=auth) as r:
                    assert r.status == 200, await r.text()
                    sims = {s["id"]: s for s in (await r.json())["sims"]}
                async with http.get(f"{base}/metrics") as r:
                    return sims, await r.text()

            async def page(path: str) -> str:
                async with http.get(f"{base}{path}") as r:
                    assert r.status == 200, await r.text()
                    return await r.text()

            async with serving(b_config, ports[1:], frontends=[]) as b:
                (mine,) = a.dispatcher.leases.held()  # type: ignore[union-attr]
                (theirs,) = b.dispatcher.leases.held()  # type: ignore[union-attr]
                sims, metrics = await seen_from_a()
                assert (sims[mine]["state"], sims[mine]["box"]) == ("present", "box-a")
                assert (sims[theirs]["state"], sims[theirs]["box"]) == ("present", "box-b")
                view = {s.sim_id: s for s in a.service.sim_statuses()}
                assert (view[mine].state, view[mine].box) == ("ready", "box-a")
                assert (view[theirs].state, view[theirs].box) == ("present", "box-b")
                assert f'smsgw_sim_info{{box="box-b",iccid="{view[theirs].iccid}"' in metrics
                for html in (await page("/fragments/overview"), await page("/sims")):
                    assert html.count('<small class="box">on box-b</small>') == 1
                    assert html.count('<small class="box">on box-a</small>') == 1
            # B stopped cleanly: its lease released, no box sends through its SIM.
            sims, _ = await seen_from_a()
            assert (sims[theirs]["state"], sims[theirs]["box"]) == ("gone", None)
            assert {s.sim_id: s.state for s in a.service.sim_statuses()}[theirs] == "gone"
            assert "on box-b" not in await page("/fragments/overview")


async def test_a_box_whose_store_connection_is_killed_recovers_by_itself(
    tmp_path: Path, pg_url: str, postgres: Cluster
) -> None:
    """The database server cuts the daemon's store connection (an operator, a failover):
    one request may be answered "try later", the daemon reconnects on its own and what it
    accepted, before and after, goes out."""
    with EmulatorPool(1, seed=19, report_delay=0.0) as emu:
        config = _config(tmp_path, pg_url, "box-a")
        async with (
            serving(config, [emu.info()[0].path]) as a,
            aiohttp.ClientSession() as http,
        ):
            _, reached, target = _count_sent([a])
            creds = create_account(a.store, "shop", now=datetime.now(UTC), unlimited=True)
            url = f"http://127.0.0.1:{config.http_port}/v1/messages"
            auth = {"Authorization": f"Bearer {creds.api_key}"}

            async def send(to: str) -> int:
                async with http.post(url, json={"to": to, "text": "hi"}, headers=auth) as r:
                    return r.status

            assert await send("+15550000001") == 201
            target[0] = 1
            await asyncio.wait_for(reached.wait(), 30)
            assert a.store._pg is not None
            pid = a.store._pg.raw.info.backend_pid
            postgres.admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            first = await send("+15550000002")
            assert first in (201, 503)  # the loss found by this request, or by the dispatcher
            assert await send("+15550000003") == 201
            target[0] = 3 if first == 201 else 2
            reached.clear()
            await asyncio.wait_for(reached.wait(), 30)
            assert a.store._pg.reconnects == 1
        sent = sorted(o.destination for o in emu.outside())
    expected = ["+15550000001", "+15550000002", "+15550000003"]
    assert sent == (expected if first == 201 else [expected[0], expected[2]])
