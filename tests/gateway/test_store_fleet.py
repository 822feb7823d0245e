"""Fleet mode in the store, on SQLite and PostgreSQL: SIM leases (acquire, renew, lose, take
over with the in-flight parts made uncertain in the same transaction, recovery scoped to SIMs
nobody holds) and claims on queued messages (never the same row twice, stale claims taken,
nothing a box cannot route read at all)."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gateway.models import PartState
from gateway.store import BoxBeat, LeaseHolder, Store, utc_iso
from gateway.store.postgres import WORK_CHANNEL

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
TTL = 15.0
A = LeaseHolder("box-a", "a1")
A2 = LeaseHolder("box-a", "a2")  # box A again, after a restart
B = LeaseHolder("box-b", "b1")
S = PartState


def _account(store: Store, name: str = "demo") -> int:
    return store.insert_account(
        {"sub_account": name, "password_hash": "x", "api_key": name, "token": name,
         "unlimited": 1},
        now=NOW,
    )  # fmt: skip


def _sims(store: Store, n: int) -> list[int]:
    sims = [store.bind_sim(iccid=f"8944000000000000{i:03d}", imsi=None, now=NOW) for i in range(n)]
    for i, sim in enumerate(sims):
        store.set_sim_number(sim, f"+4477009000{i:02d}")
    return sims


def _message(store: Store, account: int, **fields: Any) -> int:
    accepted = store.accept_message(
        account_id=account, recipient=fields.pop("recipient", "+15550001"), body="hi",
        encoding="gsm7", parts=fields.pop("parts", 1), now=NOW, **fields,
    )  # fmt: skip
    return accepted.message_id


def _sending(store: Store, message_id: int, sim_id: int) -> int:
    part = store.parts(message_id)[0]["id"]
    store.transition_part(part, S.QUEUED, S.SENDING, now=NOW, fields={"sim_id": sim_id})
    return int(part)


def _take_all(sim: int):  # type: ignore[no-untyped-def]
    return lambda _message: sim


# -- leases ----------------------------------------------------------------------------------


def test_a_lease_is_acquired_renewed_and_released(store: Store) -> None:
    (sim,) = _sims(store, 1)
    grant = store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    assert grant.acquired and grant.holder == A and grant.previous is None
    assert grant.expires_at == NOW + timedelta(seconds=TTL)
    assert store.lease(sim)["expires_at"] == utc_iso(NOW + timedelta(seconds=TTL))  # type: ignore[index]
    later = NOW + timedelta(seconds=10)
    assert store.renew_leases([sim], A, ttl=TTL, now=later) == {sim}
    assert store.lease(sim)["expires_at"] == utc_iso(later + timedelta(seconds=TTL))  # type: ignore[index]
    assert store.live_leases(later) == {sim: A}
    # Held without a break: acquiring again only refreshes it.
    again = store.acquire_lease(sim, A, ttl=TTL, now=later)
    assert again.acquired and again.previous == A and not again.moved
    assert store.release_lease(sim, A, now=later)
    assert store.live_leases(later) == {}
    assert not store.release_lease(sim, A, now=later)  # released already
    assert store.renew_leases([sim], A, ttl=TTL, now=later) == set()  # released: lost
    # The released row remembers its last holder: another box taking it sees that it moved.
    grant = store.acquire_lease(sim, B, ttl=TTL, now=later)
    assert grant.acquired and grant.previous == A and grant.moved


def test_a_live_lease_of_another_box_is_refused_until_it_expires(
    store: Store, other: Store
) -> None:
    (sim,) = _sims(store, 1)
    assert store.acquire_lease(sim, A, ttl=TTL, now=NOW).acquired
    refused = other.acquire_lease(sim, B, ttl=TTL, now=NOW + timedelta(seconds=TTL - 1))
    assert not refused.acquired and refused.holder == A
    assert other.live_leases(NOW) == {sim: A}
    # A stopped renewing: once expired, B takes it; A's renewal then finds it lost.
    taken = other.acquire_lease(sim, B, ttl=TTL, now=NOW + timedelta(seconds=TTL))
    assert taken.acquired and taken.previous == A and taken.moved
    assert store.renew_leases([sim], A, ttl=TTL, now=NOW + timedelta(seconds=TTL + 1)) == set()
    assert store.live_leases(NOW + timedelta(seconds=TTL + 1)) == {sim: B}


def test_an_expired_lease_is_not_renewed(store: Store) -> None:
    sim, second = _sims(store, 2)
    store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    store.acquire_lease(second, A, ttl=TTL, now=NOW + timedelta(seconds=10))
    # Renewed too late for the first (another box's sweep may already have judged its parts).
    renewed = store.renew_leases([sim, second], A, ttl=TTL, now=NOW + timedelta(seconds=TTL))
    assert renewed == {second}


def test_takeover_makes_the_sims_sending_parts_uncertain(store: Store, other: Store) -> None:
    account = _account(store)
    sim, spare = _sims(store, 2)
    store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    on_wire = _message(store, account, parts=2)
    part = _sending(store, on_wire, sim)
    elsewhere = _message(store, account)
    other_part = _sending(store, elsewhere, spare)
    queued = _message(store, account)
    grant = other.acquire_lease(sim, B, ttl=TTL, now=NOW + timedelta(seconds=TTL + 1))
    assert grant.acquired and grant.uncertain == (part,)
    # Part 2 can no longer make a whole message: failed unsent (the store's roll-up).
    assert [p["state"] for p in store.parts(on_wire)] == ["uncertain", "failed"]
    assert store.message(on_wire)["state"] == "failed"  # type: ignore[index]
    assert store.parts(elsewhere)[0]["state"] == "sending"  # another SIM: not B's business
    assert store.parts(queued)[0]["state"] == "queued"
    assert (
        store.conn.execute("SELECT state FROM parts WHERE id = ?", (other_part,)).fetchone()[0]
        == "sending"
    )


def test_a_restart_of_the_same_box_takes_its_live_leases_over(store: Store, other: Store) -> None:
    """kill -9 and start again: the new process takes its box's leases at once (no waiting for
    them to expire), and what the dead one had on the wire is uncertain."""
    account = _account(store)
    (sim,) = _sims(store, 1)
    store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    part = _sending(store, _message(store, account), sim)
    grant = other.acquire_lease(sim, A2, ttl=TTL, now=NOW + timedelta(seconds=1))
    assert grant.acquired and grant.previous == A and not grant.moved
    assert grant.uncertain == (part,)
    assert store.renew_leases([sim], A, ttl=TTL, now=NOW + timedelta(seconds=2)) == set()


def test_a_box_id_is_taken_by_one_process_at_a_time(store: Store, other: Store) -> None:
    """The box row is a compare-and-set on what the taker saw: a second process that saw the
    same row (or no row) loses; the holder's heartbeat renews only while the row is its own."""
    assert store.box_beat("box-a") is None
    assert store.take_box(A, seen=None, host="h1", pid=7, now=NOW)
    assert not other.take_box(A2, seen=None, host="h2", pid=8, now=NOW)  # it is there now
    seen = other.box_beat("box-a")
    assert seen is not None and seen.holder == A and (seen.host, seen.pid) == ("h1", 7)
    assert seen.heartbeat_at == NOW and seen.left_at is None
    later = NOW + timedelta(seconds=5)
    assert store.beat_box(A, now=later)
    # A renewed since `other` looked: its take on the old row fails.
    assert not other.take_box(A2, seen=seen, host="h2", pid=8, now=later)
    fresh = other.box_beat("box-a")
    assert fresh is not None and fresh.heartbeat_at == later
    assert other.take_box(A2, seen=fresh, host="h2", pid=8, now=later)
    assert not store.beat_box(A, now=later)  # taken: A learns it at its next heartbeat
    assert not store.leave_box(A, now=later)  # nor can it let go what is not its own
    assert other.leave_box(A2, now=later)
    left = store.box_beat("box-a")
    assert left is not None and left.left_at == later
    assert not other.beat_box(A2, now=later)  # left: no heartbeat until taken again


def test_two_processes_taking_one_box_id_at_once_get_it_once(store_url: str, store: Store) -> None:
    """A real race, each on its own connection and thread: one wins, on a fresh box_id and on
    the row a dead process left."""
    assert store.take_box(A, seen=None, host="h", pid=1, now=NOW)
    dead = store.box_beat("box-a")
    for box, seen in (("box-fresh", None), ("box-a", dead)):
        racers = [Store.open(store_url) for _ in range(4)]
        barrier = threading.Barrier(len(racers))

        def take(
            racer: Store, n: int, box: str = box, seen: BoxBeat | None = seen,
            barrier: threading.Barrier = barrier,
        ) -> bool:  # fmt: skip
            barrier.wait(timeout=10)
            holder = LeaseHolder(box, f"racer{n}")
            return racer.take_box(holder, seen=seen, host="h", pid=n, now=NOW)

        try:
            with ThreadPoolExecutor(len(racers)) as pool:
                won = list(pool.map(take, racers, range(len(racers))))
        finally:
            for racer in racers:
                racer.close()
        assert won.count(True) == 1, (box, won)
        row = store.box_beat(box)
        assert row is not None and row.holder.incarnation == f"racer{won.index(True)}"


def test_a_live_lease_of_this_box_is_refused_to_a_process_that_lost_the_box_id(
    store: Store, other: Store
) -> None:
    """A restart takes its box's live leases at once only while the box's row is its own (or
    there is none): a daemon whose box_id another process took cannot take that one's."""
    (sim,) = _sims(store, 1)
    assert store.take_box(A2, seen=None, host="h", pid=2, now=NOW)
    assert store.acquire_lease(sim, A2, ttl=TTL, now=NOW).acquired
    refused = other.acquire_lease(sim, A, ttl=TTL, now=NOW + timedelta(seconds=1))
    assert not refused.acquired and refused.holder == A2
    assert store.live_leases(NOW + timedelta(seconds=1)) == {sim: A2}
    # Once the lease runs out, anyone may take it, as ever.
    assert other.acquire_lease(sim, A, ttl=TTL, now=NOW + timedelta(seconds=TTL)).acquired


def test_takeover_and_uncertain_commit_together(
    store: Store, other: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If making the in-flight parts uncertain fails, the lease is not taken either."""
    account = _account(store)
    (sim,) = _sims(store, 1)
    store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    part = _sending(store, _message(store, account), sim)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk gone mid-transaction")

    monkeypatch.setattr(other, "_rollup_message_of", broken)
    later = NOW + timedelta(seconds=TTL + 1)
    with pytest.raises(RuntimeError):
        other.acquire_lease(sim, B, ttl=TTL, now=later)
    assert store.lease(sim)["incarnation"] == A.incarnation  # type: ignore[index]
    assert store.count_by_state()["sending"] == 1
    monkeypatch.undo()
    assert other.acquire_lease(sim, B, ttl=TTL, now=later).uncertain == (part,)


def test_recovery_is_scoped_to_sims_nobody_holds(store: Store, other: Store) -> None:
    """A box starting (or its housekeeping) judges only parts of SIMs with no live lease: the
    parts another live box has on the wire are left alone."""
    account = _account(store)
    live, dead, never = _sims(store, 3)
    store.acquire_lease(live, A, ttl=TTL, now=NOW)
    other.acquire_lease(dead, B, ttl=5.0, now=NOW)
    on_live = _sending(store, _message(store, account), live)
    on_dead = _sending(store, _message(store, account), dead)
    on_never = _sending(store, _message(store, account), never)
    later = NOW + timedelta(seconds=10)  # B's lease ran out; A's did not
    assert sorted(store.recover_unleased_sending(now=later)) == sorted([on_dead, on_never])
    states = {p: store.conn.execute("SELECT state FROM parts WHERE id = ?", (p,)).fetchone()[0]
              for p in (on_live, on_dead, on_never)}  # fmt: skip
    assert states == {on_live: "sending", on_dead: "uncertain", on_never: "uncertain"}
    assert store.recover_unleased_sending(now=later) == []


# -- claims ----------------------------------------------------------------------------------


def test_two_claimers_never_get_the_same_message(store: Store, other: Store) -> None:
    account = _account(store)
    sim_a, sim_b = _sims(store, 2)
    store.acquire_lease(sim_a, A, ttl=TTL, now=NOW)
    other.acquire_lease(sim_b, B, ttl=TTL, now=NOW)
    ids = [_message(store, account, recipient=f"+1555000{i}") for i in range(6)]
    first = store.claim_messages(NOW, sims=[sim_a], owner=A.incarnation, limit=4,
                                 choose=_take_all(sim_a))  # fmt: skip
    second = other.claim_messages(NOW, sims=[sim_b], owner=B.incarnation, limit=10,
                                  choose=_take_all(sim_b))  # fmt: skip
    assert [m["id"] for m, _ in first] == ids[:4]
    assert [m["id"] for m, _ in second] == ids[4:]
    row = store.message(ids[0])
    assert (row["claim_sim"], row["claim_owner"]) == (sim_a, A.incarnation)  # type: ignore[index]
    # Claiming again, each gets back only its own claims (to skip those it is sending).
    again = other.claim_messages(NOW, sims=[sim_b], owner=B.incarnation, limit=10,
                                 choose=lambda _m: None)  # fmt: skip
    assert again == []


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[Store, Store]]:
    """Two boxes' connections to one PostgreSQL database (SQLite has one writer: a second
    claim could not even begin while the first is open)."""
    first, second = Store.open(pg_url), Store.open(pg_url)
    yield first, second
    first.close()
    second.close()


def test_rows_locked_by_a_claim_in_progress_are_skipped(pg: tuple[Store, Store]) -> None:
    """While one box's claim transaction holds its rows, another box's claim skips them (FOR
    UPDATE SKIP LOCKED) instead of waiting for them or taking them too."""
    store, other = pg
    account = _account(store)
    sim_a, sim_b = _sims(store, 2)
    store.acquire_lease(sim_a, A, ttl=TTL, now=NOW)
    other.acquire_lease(sim_b, B, ttl=TTL, now=NOW)
    ids = [_message(store, account, recipient=f"+1555000{i}") for i in range(4)]
    inner: list[int] = []

    def choose(message: dict[str, Any]) -> int:
        if not inner:  # inside A's claim transaction, rows 0-1 locked: B claims meanwhile
            got = other.claim_messages(NOW, sims=[sim_b], owner=B.incarnation, limit=10,
                                       choose=_take_all(sim_b))  # fmt: skip
            inner.extend(m["id"] for m, _ in got)
        return sim_a

    claimed = store.claim_messages(NOW, sims=[sim_a], owner=A.incarnation, limit=2, choose=choose)
    assert [m["id"] for m, _ in claimed] == ids[:2]
    assert inner == ids[2:]


def test_a_stale_claim_is_taken(store: Store, other: Store) -> None:
    account = _account(store)
    sim_a, sim_b = _sims(store, 2)
    store.acquire_lease(sim_a, A, ttl=TTL, now=NOW)
    other.acquire_lease(sim_b, B, ttl=TTL, now=NOW)
    mid = _message(store, account)
    assert store.claim_messages(NOW, sims=[sim_a], owner=A.incarnation, limit=1,
                                choose=_take_all(sim_a))  # fmt: skip
    live = NOW + timedelta(seconds=TTL - 1)
    assert other.renew_leases([sim_b], B, ttl=TTL, now=live) == {sim_b}
    assert other.claim_messages(live, sims=[sim_b], owner=B.incarnation, limit=1,
                                choose=_take_all(sim_b)) == []  # fmt: skip
    # A's lease ran out: its claim is stale, B takes the message.
    stale = NOW + timedelta(seconds=TTL)
    taken = other.claim_messages(stale, sims=[sim_b], owner=B.incarnation, limit=1,
                                 choose=_take_all(sim_b))  # fmt: skip
    assert [(m["id"], sim) for m, sim in taken] == [(mid, sim_b)]


def test_a_claim_dies_with_its_process_not_only_with_the_lease(store: Store) -> None:
    """A box restarted after a crash holds its SIM's lease again at once, but the claims the
    dead process made are stale: they name its incarnation."""
    account = _account(store)
    (sim,) = _sims(store, 1)
    store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    mid = _message(store, account)
    store.claim_messages(NOW, sims=[sim], owner=A.incarnation, limit=1, choose=_take_all(sim))
    store.acquire_lease(sim, A2, ttl=TTL, now=NOW)
    taken = store.claim_messages(NOW, sims=[sim], owner=A2.incarnation, limit=1,
                                 choose=_take_all(sim))  # fmt: skip
    assert [m["id"] for m, _ in taken] == [mid]


def test_a_released_claim_is_work_for_anyone(store: Store, other: Store) -> None:
    account = _account(store)
    sim_a, sim_b = _sims(store, 2)
    store.acquire_lease(sim_a, A, ttl=TTL, now=NOW)
    other.acquire_lease(sim_b, B, ttl=TTL, now=NOW)
    mid = _message(store, account)
    store.claim_messages(NOW, sims=[sim_a], owner=A.incarnation, limit=1, choose=_take_all(sim_a))
    assert other.release_claims([mid], owner=B.incarnation) == 0  # not B's to give back
    assert store.release_claims([mid], owner=A.incarnation) == 1
    taken = other.claim_messages(NOW, sims=[sim_b], owner=B.incarnation, limit=1,
                                 choose=_take_all(sim_b))  # fmt: skip
    assert [m["id"] for m, _ in taken] == [mid]


def test_only_messages_this_box_can_route_are_read(store: Store) -> None:
    """A fixed sender on another box's SIM, an account granted only other boxes' SIMs, a
    batch pinned to another box's SIM: none is read, so however many there are, work this
    box can do is never starved behind them (limit 1 gets the one routable message)."""
    account = _account(store)
    restricted = _account(store, "restricted")
    mine, theirs = _sims(store, 2)
    store.acquire_lease(mine, A, ttl=TTL, now=NOW)
    store.acquire_lease(theirs, B, ttl=TTL, now=NOW)
    store.grant_sim(restricted, theirs)
    their_number = store.sim(theirs)["msisdn"]  # type: ignore[index]
    for i in range(3):
        _message(store, account, sender=their_number, recipient=f"+1555100{i}")
        _message(store, restricted, recipient=f"+1555200{i}")
    pinned = store.insert_batch({"account_id": account, "rotate": 0}, now=NOW)
    store.conn.execute("UPDATE batches SET pin_sim = ? WHERE id = ?", (theirs, pinned))
    for i in range(3):
        _message(store, account, batch_id=pinned, recipient=f"+1555300{i}")
    routable = _message(store, account, sender="ACME")  # not a SIM's number: any SIM may send
    got = store.claim_messages(NOW, sims=[mine], owner=A.incarnation, limit=1,
                               choose=_take_all(mine))  # fmt: skip
    assert [m["id"] for m, _ in got] == [routable]
    # The same rows are the other SIM's work: each carries the sender's SIM.
    got = store.claim_messages(NOW, sims=[theirs], owner=B.incarnation, limit=20,
                               choose=_take_all(theirs))  # fmt: skip
    assert len(got) == 9
    assert {m["sender_sim"] for m, _ in got if m["sender"]} == {theirs}


def test_a_batch_without_rotation_is_pinned_by_its_first_claim(store: Store, other: Store) -> None:
    account = _account(store)
    sim_a, sim_b = _sims(store, 2)
    store.acquire_lease(sim_a, A, ttl=TTL, now=NOW)
    other.acquire_lease(sim_b, B, ttl=TTL, now=NOW)
    batch = store.insert_batch({"account_id": account, "rotate": 0}, now=NOW)
    ids = [_message(store, account, batch_id=batch, recipient=f"+1555000{i}") for i in range(4)]
    first = store.claim_messages(NOW, sims=[sim_a], owner=A.incarnation, limit=1,
                                 choose=_take_all(sim_a))  # fmt: skip
    assert [m["id"] for m, _ in first] == ids[:1]
    assert store.batch_sim(batch) == sim_a
    # B reads none of it: the batch keeps to A's SIM.
    assert other.claim_messages(NOW, sims=[sim_b], owner=B.incarnation, limit=10,
                                choose=_take_all(sim_b)) == []  # fmt: skip


def test_a_pin_set_meanwhile_by_another_box_wins(pg: tuple[Store, Store]) -> None:
    """Two boxes claiming the first messages of one batch without rotation at once: the pin is
    a compare-and-set, so the one that loses leaves its message instead of splitting the
    batch over two SIMs."""
    store, other = pg
    account = _account(store)
    sim_a, sim_b = _sims(store, 2)
    batch = store.insert_batch({"account_id": account, "rotate": 0}, now=NOW)
    _message(store, account, batch_id=batch)

    def pinned_meanwhile(_message: dict[str, Any]) -> int:
        other.conn.execute("UPDATE batches SET pin_sim = ? WHERE id = ?", (sim_b, batch))
        return sim_a

    got = store.claim_messages(NOW, sims=[sim_a], owner="a", limit=5, choose=pinned_meanwhile)
    assert got == []
    assert store.batch_sim(batch) == sim_b
    assert store.message(1)["claim_sim"] is None  # type: ignore[index]


# -- wake-ups (PostgreSQL: NOTIFY at COMMIT) -------------------------------------------------


@pytest.fixture
def listener(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    conn = psycopg.connect(pg_url, autocommit=True)
    conn.execute(f"LISTEN {WORK_CHANNEL}")
    yield conn
    conn.close()


def _notified(conn: psycopg.Connection[Any]) -> int:
    """How many work notifications came before a marker sent now (notifications arrive in
    commit order, so everything committed before the marker is counted, without waiting)."""
    with psycopg.connect(str(conn.info.dsn), autocommit=True) as marker:
        marker.execute("SELECT pg_notify(%s, 'marker')", (WORK_CHANNEL,))
    for count, notify in enumerate(conn.notifies(timeout=10)):
        if notify.payload == "marker":
            return count
    raise AssertionError("the marker never came")


def test_queued_work_is_notified_at_commit(
    pg: tuple[Store, Store], listener: psycopg.Connection[Any]
) -> None:
    store, _ = pg
    account = _account(store)
    (sim,) = _sims(store, 1)
    store.acquire_lease(sim, A, ttl=TTL, now=NOW)
    assert _notified(listener) == 0
    mid = _message(store, account)
    assert _notified(listener) == 1  # one per transaction
    _message(store, account, send_at=NOW + timedelta(hours=1))
    assert _notified(listener) == 0  # scheduled: nothing to send yet
    assert store.promote_due(NOW + timedelta(hours=2)) == 1
    assert _notified(listener) == 1
    store.claim_messages(NOW, sims=[sim], owner=A.incarnation, limit=1, choose=_take_all(sim))
    assert _notified(listener) == 0
    store.release_claims([mid], owner=A.incarnation)
    assert _notified(listener) == 1  # given back with its parts queued: work for any box
    with pytest.raises(RuntimeError), store.transaction():
        store._insert_message(
            account_id=account, recipient="+1", body="x", encoding="gsm7", parts=1, sender="",
            batch_id=None, send_at=None, status_report=True, flash=False, charge=0, extra=None,
            now=NOW,
        )  # fmt: skip
        raise RuntimeError("rolled back")
    assert _notified(listener) == 0  # never committed: nobody is woken
