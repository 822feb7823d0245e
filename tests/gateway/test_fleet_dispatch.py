"""The dispatcher holding SIM leases (fleet mode), on a virtual-time loop, on SQLite and on
PostgreSQL: a dead box's SIM is taken over only once its lease has expired, its part on the
wire then uncertain and the rest of its queue sent from the new box; a box whose lease was
lost stops sending through that SIM at its next renewal and gives its queue back."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest

from gateway.accounts import create_account
from gateway.leases import LeaseSettings, SimLeases
from gateway.models import PartState, ThrottlePolicy
from gateway.outbox import Clock, Outbox
from gateway.pool import SimAvailability, SimPool
from gateway.scheduler import Dispatcher
from gateway.service import GatewayService
from gateway.store import LeaseHolder, Store, utc_iso
from tests.gateway.fleet_support import FakeModem
from tests.vloop import EPOCH, VirtualTimeLoop

TTL = 15.0
PERIOD = TTL / 3  # how often a lease is renewed
A = LeaseHolder("box-a", "a1")
S = PartState


@pytest.fixture
def stores(store_url: str) -> Iterator[tuple[Store, Store]]:
    """Two boxes' connections to one database."""
    first, second = Store.open(store_url), Store.open(store_url)
    yield first, second
    first.close()
    second.close()


def _box(store: Store, loop: VirtualTimeLoop, box_id: str, sim: int, interval: float):
    pool = SimPool()
    pool.upsert(sim, "+447700900001", ThrottlePolicy(interval=interval))
    outbox = Outbox(store, pool, {}, Clock(loop.time, loop.wall, asyncio.sleep))
    leases = SimLeases(store, LeaseSettings(box_id, TTL), loop.wall)
    return Dispatcher(store, outbox, leases=leases), pool


def test_a_dead_box_s_sim_is_taken_over_once_its_lease_expires(
    stores: tuple[Store, Store],
) -> None:
    store_a, store_b = stores
    loop = VirtualTimeLoop()
    account = create_account(store_a, "bulk", now=EPOCH, unlimited=True).account_id
    sim = store_a.bind_sim(iccid="8944000000000000001", imsi=None, now=EPOCH)
    # Box A as it was when it was killed: the SIM's lease, two messages claimed, the first
    # one's part on the wire.
    store_a.acquire_lease(sim, A, ttl=TTL, now=EPOCH)
    service = GatewayService(store_a, wall=loop.wall)
    ids = service.submit(account, [f"+1555000000{i}" for i in range(5)], "hello").message_ids
    store_a.claim_messages(EPOCH, sims=[sim], owner=A.incarnation, limit=2, choose=lambda m: sim)
    on_wire = store_a.parts(ids[0])[0]["id"]
    store_a.transition_part(on_wire, S.QUEUED, S.SENDING, now=EPOCH, fields={"sim_id": sim})
    dispatcher, _ = _box(store_b, loop, "box-b", sim, interval=1.0)
    modem = FakeModem(loop)

    async def scenario() -> bool:
        attached = dispatcher.attach(sim, modem)  # the SIM's modem is now on box B
        stop = asyncio.Event()
        tasks = [asyncio.create_task(dispatcher.run(stop)),
                 asyncio.create_task(dispatcher.keep_leases(stop))]  # fmt: skip
        while store_b.count_by_state("messages").get("sent", 0) < 4 and loop.time() < 600:
            await asyncio.sleep(1)
        stop.set()
        await asyncio.gather(*tasks)
        await dispatcher.close()
        return attached

    try:
        attached = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert not attached  # A's lease was still live: B waited for it
    assert min(t for t, _ in modem.sent) >= TTL  # ...until it expired, not a moment before
    # The part A had on the wire is uncertain (never resent); the rest, A's claims included,
    # went out from B, once each.
    assert [p["state"] for p in store_b.parts(ids[0])] == ["uncertain"]
    assert sorted(r for _, r in modem.sent) == [f"+1555000000{i}" for i in range(1, 5)]
    assert store_b.count_by_state("messages") == {"sent": 4, "uncertain": 1}
    assert store_b.live_leases(EPOCH + timedelta(seconds=601)) == {}  # released at close


def test_a_box_whose_lease_was_lost_stops_sending_and_gives_its_queue_back(
    stores: tuple[Store, Store],
) -> None:
    store_a, store_b = stores
    loop = VirtualTimeLoop()
    account = create_account(store_a, "bulk", now=EPOCH, unlimited=True).account_id
    sim = store_a.bind_sim(iccid="8944000000000000001", imsi=None, now=EPOCH)
    dispatcher, pool = _box(store_a, loop, "box-a", sim, interval=2.0)
    modem = FakeModem(loop)
    ids = (
        GatewayService(store_a, wall=loop.wall)
        .submit(account, [f"+155500000{i:02d}" for i in range(20)], "hello")
        .message_ids
    )

    async def scenario() -> tuple[bool, SimAvailability, float]:
        attached = dispatcher.attach(sim, modem)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(dispatcher.run(stop)),
                 asyncio.create_task(dispatcher.keep_leases(stop))]  # fmt: skip
        await asyncio.sleep(6)  # renewed at 5 s; sending one message every 2 s
        # Box A stalls past its lease (say, a frozen process) and box B takes the SIM: both
        # done straight in the store, as B would.
        store_b.conn.execute("UPDATE sim_leases SET expires_at = ?", (utc_iso(loop.wall()),))
        assert store_b.acquire_lease(sim, LeaseHolder("box-b", "b1"), ttl=600, now=loop.wall())
        lost_at = loop.time()
        await asyncio.sleep(10)  # A's renewal at 10 s finds it lost
        availability = pool.availability(sim, loop.time())
        stop.set()
        await asyncio.gather(*tasks)
        await dispatcher.close()
        return attached, availability, lost_at

    try:
        attached, availability, lost_at = loop.run_until_complete(scenario())
    finally:
        loop.close()
    assert attached
    assert availability is SimAvailability.GONE  # detached here
    # Nothing started from A after its next renewal (at 10 s) found the lease gone.
    assert modem.sent and max(t for t, _ in modem.sent) < lost_at + PERIOD
    claimed = store_a.conn.execute(
        "SELECT COUNT(*) FROM messages WHERE claim_owner = ? AND state = 'queued'",
        (dispatcher.owner,),
    ).fetchone()[0]
    assert claimed == 0  # its queue given back: any box may take it
    assert store_a.count_by_state("messages")["queued"] == 20 - len(modem.sent)
    assert len(ids) == 20
