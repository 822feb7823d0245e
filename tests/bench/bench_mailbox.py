"""The Zoom Connect mailbox (GET messages/all) on a big account: one page of 100, first and deep,
and the total alone, for each filter a client can pass, among 20,000 outbound messages (every
outcome, on two SIMs, in ten campaigns) and 2,000 inbound ones (half of them replies), beside
another account's 5,000 + 500. Target: a page costs what its rows cost, not what the account
holds (the store runs on the daemon's event loop, at every poll of every client).

SQLite always; PostgreSQL too when a server is installed (tests/postgres.py), unless
SMSGW_BENCH_BACKENDS says otherwise (e.g. `sqlite`)."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.store import BatchRows, MailboxQuery, Store

T0 = datetime(2026, 11, 1, tzinfo=UTC)
OUTBOUND = 20_000
INBOUND = 2_000
NOISE_OUT, NOISE_IN = 5_000, 500
PAGE = 100
RUNS = 5
BACKENDS = os.environ.get("SMSGW_BENCH_BACKENDS", "sqlite,postgresql").split(",")
SIMS = ("+27820000001", "+27820000002")


def _filters(replied: int) -> list[tuple[str, MailboxQuery]]:
    """The filters of messages/all (api/zoomconnect.py messages_all), as the store gets them."""
    return [
        ("none", MailboxQuery()),
        ("type=OUTBOUND", MailboxQuery(kind="out")),
        ("type=INBOUND", MailboxQuery(kind="in")),
        ("status=DELIVERED", MailboxQuery(outcomes=("delivered",))),
        ("status=FAILED", MailboxQuery(outcomes=("failed",))),
        ("status=FAILED_OPTOUT", MailboxQuery(outcomes=("opted_out",))),
        ("fromNumber=SIM", MailboxQuery(from_number=SIMS[1])),
        ("fromNumber=customer", MailboxQuery(from_number="+27830000014")),  # a conversation
        ("toNumber", MailboxQuery(to_number="+27830000007")),
        ("message=", MailboxQuery(text="ticket 1")),
        ("campaign", MailboxQuery(extra=(("campaign", "c4"),))),
        ("dataField", MailboxQuery(extra=(("dataField", "r7"),))),
        ("repliesToMessageId", MailboxQuery(replied_to=replied)),
        ("deleted=false", MailboxQuery(deleted=False)),
        ("read=false", MailboxQuery(read=False)),
        (
            "DateTimeSent 10 days",
            MailboxQuery(sent_from=T0 + timedelta(days=5), sent_to=T0 + timedelta(days=15)),
        ),
        ("DateTimeReceived", MailboxQuery(received_from=T0 + timedelta(days=10))),
    ]


def _fill(store: Store, account: int, outbound: int, inbound: int, *, sims: list[int]) -> None:
    """`outbound` messages a minute apart (batches of 100), then their outcomes and SIMs, then
    `inbound` messages: every other one a reply from a number the account sent to."""
    first = None
    for start in range(0, outbound, 100):
        rows = [
            {"account_id": account, "recipient": f"+2783{(start + i) % 5000:07d}",
             "body": f"Ticket {start + i} is ready", "encoding": "gsm7", "parts": 1 + i % 2,
             "charge": 0, "extra": {"campaign": f"c{(start + i) % 10}",
                                    "dataField": f"r{start + i}"}}
            for i in range(100)
        ]  # fmt: skip
        batch = {"account_id": account, "sender": "", "rotate": 1, "extra": "{}"}
        (accepted,) = store.accept_batches(
            [BatchRows(batch, rows, 0)], now=T0 + timedelta(minutes=start // 100 * 100)
        )
        assert accepted is not None
        first = accepted[1][0] if first is None else first
    assert first is not None
    last = first + outbound - 1
    stamp = (T0 + timedelta(days=20)).isoformat()
    with store.transaction():
        # Outcomes by id modulo 20: 12 delivered, 3 sent, 2 failed on the network, 1 opted out,
        # 1 scheduled (queued), 1 cancelled; the parts of those that left went from a SIM.
        store.conn.execute(
            "UPDATE messages SET state = CASE"
            " WHEN id % 20 < 12 THEN 'delivered' WHEN id % 20 < 15 THEN 'sent'"
            " WHEN id % 20 < 18 THEN 'failed' WHEN id % 20 = 18 THEN 'queued'"
            " ELSE 'cancelled' END WHERE id BETWEEN ? AND ?",
            (first, last),
        )
        store.conn.execute(
            "UPDATE parts SET state = CASE m.state WHEN 'queued' THEN 'queued'"
            "  WHEN 'cancelled' THEN 'cancelled' ELSE m.state END,"
            " sim_id = CASE WHEN m.state IN ('queued', 'cancelled') OR m.id % 20 = 17 THEN NULL"
            "  WHEN m.id % 3 = 0 THEN ? ELSE ? END,"
            " sent_at = CASE WHEN m.state IN ('queued', 'cancelled') OR m.id % 20 = 17"
            "  THEN NULL ELSE ? END,"
            " error = CASE WHEN m.id % 20 = 17 THEN 'recipient opted out' ELSE '' END"
            " FROM messages m WHERE m.id = parts.message_id AND m.id BETWEEN ? AND ?",
            (sims[1], sims[0], stamp, first, last),
        )
    for n in range(inbound):  # one transaction each, as the inbox stores them
        sender = f"+2783{(n * 7) % 5000:07d}" if n % 2 == 0 else f"+2784{n:07d}"
        store.insert_inbound(
            {"account_id": account, "sim_id": sims[n % 2], "originator": sender,
             "recipient": SIMS[n % 2], "body": f"Reply {n}", "encoding": "gsm7",
             "parts_received": 1, "parts_total": 1, "complete": 1},
            [], now=T0 + timedelta(days=n * 20 / inbound), notify=False,
        )  # fmt: skip


def _filled(url: str) -> tuple[Store, int]:
    store = Store.open(url)
    sims = [
        store.bind_sim(iccid=f"892700000000000001{k}", imsi=None, msisdn=number, now=T0)
        for k, number in enumerate(SIMS)
    ]
    big = store.insert_account(
        {"sub_account": "big", "password_hash": "x", "api_key": "k", "token": "t"}, now=T0
    )
    noise = store.insert_account(
        {"sub_account": "noise", "password_hash": "x", "api_key": "k2", "token": "t2"}, now=T0
    )
    _fill(store, noise, NOISE_OUT // 2, NOISE_IN // 2, sims=sims)
    _fill(store, big, OUTBOUND, INBOUND, sims=sims)
    _fill(store, noise, NOISE_OUT // 2, NOISE_IN // 2, sims=sims)
    store.conn.execute("ANALYZE")
    return store, big


def _ms(call: Callable[[], Any]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        call()
        times.append(1000 * (time.perf_counter() - started))
    return statistics.median(times)


def _run(store: Store, account: int, backend: str) -> None:
    print(f"  {backend}: {OUTBOUND:,} outbound + {INBOUND:,} inbound (median of {RUNS};"
          f" a page is {PAGE} rows, the deep one starts mid-list)", flush=True)  # fmt: skip
    _, replies = store.mailbox(account, MailboxQuery(kind="in"), limit=PAGE, offset=0)
    replied = next(r["replied_to"] for r in replies if r["replied_to"] is not None)
    for name, q in _filters(replied):
        total, _ = store.mailbox(account, q, limit=0, offset=0)
        deep = total // 2 // PAGE * PAGE
        first = _ms(lambda q=q: store.mailbox(account, q, limit=PAGE, offset=0))
        middle = _ms(lambda q=q, d=deep: store.mailbox(account, q, limit=PAGE, offset=d))
        count = _ms(lambda q=q: store.mailbox(account, q, limit=0, offset=0))
        print(f"    {name:22} {total:6} rows: first page {first:6.1f} ms, page at {deep:5}"
              f" {middle:6.1f} ms, total alone {count:6.1f} ms", flush=True)  # fmt: skip


def main() -> None:
    load = os.getloadavg()[0]
    print(f"(load average {load:.2f} on {os.cpu_count()} CPUs: other work slows these numbers)")
    if "sqlite" in BACKENDS:
        store, account = _filled(tempfile.mkdtemp(prefix="smsgw-bench-mailbox-"))
        try:
            _run(store, account, "SQLite")
        finally:
            store.close()
    if "postgresql" in BACKENDS:
        from tests.postgres import Cluster  # a server is needed only here

        try:
            cluster = Cluster()
        except RuntimeError as e:
            print(f"  PostgreSQL: skipped ({e})")
            return
        try:
            store, account = _filled(cluster.create_database())
            try:
                _run(store, account, "PostgreSQL")
            finally:
                store.close()
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
