"""Webhooks in fleet mode: every box runs a sender over the one outbox, and each delivery attempt
is claimed by one sender at a time. Two boxes deliver every event exactly once (in order per
key, whichever box sends it); a box killed mid-attempt leaves its claims to run out, and the
other box then delivers its events; a clean stop and a restart let go of claims at once."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from gateway import webhooks
from gateway.accounts import create_account
from gateway.config import WebhookSettings
from gateway.models import WebhookKind, WebhookState
from gateway.service import GatewayService
from gateway.store import Store, WebhookAttempt
from gateway.webhooks import CLAIM_MARGIN, WebhookWorker, new_session
from tests.gateway.webhook_support import ManualClock, Receiver

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
SETTINGS = WebhookSettings(timeout=2.0, connect_timeout=1.0, concurrency=8, per_host=8)
TTL = SETTINGS.timeout + CLAIM_MARGIN
BOX = "X-Test-Box"  # which box's sender made a request (a header of its session)


def _subscribed(store: Store, url: str = "http://127.0.0.1:9/hook") -> int:
    account = create_account(store, "shop", now=T0, unlimited=True).account_id
    GatewayService(store, wall=lambda: T0).set_webhook(account, "status", url)
    return account


def _events(store: Store, account: int, n: int, *, chains: int = 0) -> list[str]:
    """`n` events: the first 3 * `chains` in `chains` ordered chains (same order key), the
    rest unordered; return their event ids."""
    ids = []
    for i in range(n):
        key = f"chain:{i % chains}" if i < 3 * chains else None
        ids.append(
            store.enqueue_webhook(account, WebhookKind.STATUS, {"n": i}, order_key=key, now=T0)
        )
    return ids


def _claim(store: Store, box: str, owner: str, now: datetime = T0, limit: int = 100) -> list[int]:
    rows = store.claim_webhook_events(
        now, limit, box=box, owner=owner, until=now + timedelta(seconds=TTL)
    )
    return [int(r["id"]) for r in rows]


# -- the store -------------------------------------------------------------------------------


def test_a_claimed_event_is_left_to_its_claimer_until_recorded_or_run_out(
    store: Store, other: Store
) -> None:
    account = _subscribed(store)
    _events(store, account, 4)
    mine = _claim(store, "box-a", "a1", limit=3)
    assert len(mine) == 3
    assert _claim(other, "box-b", "b1") == [4]  # the one left
    assert other.due_webhook_events(T0, 10) == []  # in flight, all of them
    if store.dialect == "postgresql":  # B sleeps until A's claims may have run out
        assert other.next_webhook_due(now=T0) == T0 + timedelta(seconds=TTL)
    other.record_webhook_attempts([WebhookAttempt(4, WebhookState.DELIVERED, T0)], owner="b1")
    store.record_webhook_attempts([WebhookAttempt(mine[0], WebhookState.DELIVERED, T0)], owner="a1")
    later = T0 + timedelta(seconds=5)
    retry = WebhookAttempt(mine[1], WebhookState.PENDING, later, status=500,
                           next_attempt_at=later + timedelta(seconds=5))  # fmt: skip
    store.record_webhook_attempts([retry], owner="a1")  # its claim ends with the record
    assert _claim(other, "box-b", "b1", later) == []  # the retry is not due yet
    assert _claim(other, "box-b", "b1", later + timedelta(seconds=5)) == [mine[1]]
    # A died with mine[2] in flight: once its claim ran out, B tries it again.
    assert _claim(other, "box-b", "b1", T0 + timedelta(seconds=TTL - 1)) == []
    assert _claim(other, "box-b", "b1", T0 + timedelta(seconds=TTL)) == [mine[2]]


def test_claims_are_let_go_at_a_clean_stop_and_after_a_restart(store: Store) -> None:
    account = _subscribed(store)
    _events(store, account, 6)
    a = _claim(store, "box-a", "a1", limit=2)
    b = _claim(store, "box-b", "b1", limit=2)
    dropped = _claim(store, "box-a", "a1", limit=2)
    assert store.release_webhook_claims(dropped, owner="b1") == 0  # not b1's to let go
    assert store.release_webhook_claims(dropped, owner="a1") == 2  # a clean stop
    assert sorted(_claim(store, "box-b", "b1")) == dropped
    # Box A restarted (a new process, a2): what a1 left is taken up at once, B's stays B's.
    assert store.release_webhook_claims(owner="a2", box="box-a") == 2
    assert sorted(_claim(store, "box-a", "a2")) == a
    assert _claim(store, "box-a", "a2", T0 + timedelta(seconds=TTL - 1)) == []
    assert len(b) == 2


def test_claims_keep_the_order_of_one_key_across_boxes(store: Store, other: Store) -> None:
    account = _subscribed(store)
    assert len(_events(store, account, 2, chains=1)) == 2  # one key: 1, then 2
    assert _claim(store, "box-a", "a1") == [1]
    assert _claim(other, "box-b", "b1") == []  # its predecessor is in flight on A
    store.record_webhook_attempts([WebhookAttempt(1, WebhookState.DELIVERED, T0)], owner="a1")
    assert _claim(other, "box-b", "b1") == [2]


@pytest.fixture
def pg(pg_url: str) -> Iterator[tuple[Store, Store]]:
    first, second = Store.open(pg_url), Store.open(pg_url)
    yield first, second
    first.close()
    second.close()


def test_events_locked_by_a_claim_in_progress_are_skipped(pg: tuple[Store, Store]) -> None:
    """PostgreSQL: while box A's claim transaction holds its rows (the first subscription's),
    box B's claim skips them (FOR UPDATE SKIP LOCKED) instead of waiting or taking them too;
    what B claims meanwhile is no longer A's to take."""
    store, other = pg
    shop = _subscribed(store)
    second = create_account(store, "second", now=T0, unlimited=True).account_id
    GatewayService(store, wall=lambda: T0).set_webhook(second, "status", "http://127.0.0.1:9/b")
    _events(store, shop, 3)
    for _ in range(3):
        store.enqueue_webhook(second, WebhookKind.STATUS, {}, now=T0)
    inner: list[int] = []
    asked: list[str] = []

    def room(host: str) -> int:
        if len(asked) == 1:  # A's rows of the first subscription are locked now
            inner.extend(_claim(other, "box-b", "b1"))
        asked.append(host)
        return 10

    rows = store.claim_webhook_events(
        T0, 100, box="box-a", owner="a1", until=T0 + timedelta(seconds=TTL), room=room
    )
    assert [int(r["id"]) for r in rows] == [1, 2, 3]
    assert inner == [4, 5, 6]


# -- two boxes' senders on one PostgreSQL, one real receiver ----------------------------------


def _box_session(name: str) -> Callable[[WebhookSettings], aiohttp.ClientSession]:
    def factory(settings: WebhookSettings) -> aiohttp.ClientSession:
        session = new_session(settings)
        session.headers[BOX] = name
        return session

    return factory


@asynccontextmanager
async def _sender(
    store: Store, clock: ManualClock, box: str
) -> AsyncIterator[tuple[WebhookWorker, asyncio.Task[None]]]:
    worker = WebhookWorker(
        store, SETTINGS, clock=clock.clock(), rng=random.Random(box), box_id=box,
        session_factory=_box_session(box),
    )  # fmt: skip
    store.on_webhook_enqueued = worker.wake
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield worker, task
    finally:
        stop.set()
        await asyncio.gather(task, return_exceptions=True)
        store.on_webhook_enqueued = None


def _arrivals(receiver: Receiver) -> list[tuple[str, str, dict[str, Any]]]:
    """(box, event id, data) of every request the receiver got, in arrival order."""
    return [
        (s.headers[BOX], s.headers["X-Smsgw-Event-Id"], s.json()["data"]) for s in receiver.seen
    ]


async def test_two_boxes_deliver_every_event_exactly_once(pg_url: str) -> None:
    a_store, b_store = Store.open(pg_url), Store.open(pg_url)
    clock = ManualClock(T0)
    try:
        async with Receiver() as receiver:
            account = _subscribed(a_store, receiver.url())
            async with (
                _sender(a_store, clock, "box-a") as (a, _),
                _sender(b_store, clock, "box-b") as (b, _),
            ):
                ids = _events(a_store, account, 120, chains=10)  # 30 in 10 chains, 90 alone
                b.wake()  # B heard of them too (in fleet mode: its poll)
                await receiver.wait_for(len(ids))
                await a.quiet()
                await b.quiet()
    finally:
        a_store.close()
        b_store.close()
    arrivals = _arrivals(receiver)
    assert Counter(event_id for _, event_id, _ in arrivals) == Counter(ids)  # once each
    boxes = Counter(box for box, _, _ in arrivals)
    assert set(boxes) == {"box-a", "box-b"}  # both did a share
    chains: dict[int, list[int]] = defaultdict(list)
    for _, _, data in arrivals:
        if data["n"] < 30:
            chains[data["n"] % 10].append(data["n"])
    assert all(ns == sorted(ns) for ns in chains.values())  # each key in order, across boxes


async def test_a_killed_box_s_attempts_are_made_by_the_other_once_their_claims_ran_out(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Box A has every event in flight to a receiver that never answers it, and dies (its
    process gone: no record, no release). Box B leaves the events alone while A's claims
    may still be live, then delivers each of them once."""
    monkeypatch.setattr(webhooks, "STOP_GRACE", 0.0)
    release = asyncio.Event()

    async def never_for_a(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        if request.headers[BOX] == "box-a":
            await release.wait()
        return web.Response(text="ok")

    a_store, b_store = Store.open(pg_url), Store.open(pg_url)
    clock = ManualClock(T0)
    try:
        async with Receiver(never_for_a) as receiver:
            account = _subscribed(b_store, receiver.url())
            ids = _events(b_store, account, SETTINGS.concurrency)
            async with _sender(a_store, clock, "box-a") as (_, a_task):
                await receiver.wait_for(len(ids))  # all of them on the wire from A
                a_store.close()  # A's process dies: its connection with it
                a_task.cancel()
            async with _sender(b_store, clock, "box-b") as (b, _):
                await b.quiet()
                clock.advance(TTL - 1)
                await b.quiet()
                assert len(receiver.seen) == len(ids)  # nothing from B while A's may be live
                clock.advance(1)
                await receiver.wait_for(2 * len(ids))
                await b.quiet()
            release.set()
    finally:
        b_store.close()
    arrivals = _arrivals(receiver)
    from_b = [event_id for box, event_id, _ in arrivals if box == "box-b"]
    assert sorted(from_b) == sorted(ids)  # each once, by B
    check = Store.open(pg_url)
    try:
        assert check.webhook_counts() == {"pending": 0, "delivered": len(ids), "failed": 0}
    finally:
        check.close()
