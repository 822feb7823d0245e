"""A full disk or a database locked by another process: refused whole, retried, never lost."""

import asyncio
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.inbox import Inbox
from gateway.models import PartState, ThrottlePolicy
from gateway.outbox import Outbox
from gateway.pool import SimPool
from gateway.store import DATABASE_NAME, Store, StoreUnavailableError
from gateway.store.base import CONTENDED_BUSY_MS
from tests.gateway.test_inbox import _delivers
from tests.gateway.test_outbox import FakeModem, VirtualClock
from tests.storefaults import fill_disk

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _inbound_count(store: Store) -> int:
    return int(store.conn.execute("SELECT COUNT(*) FROM inbound").fetchone()[0])


def test_a_real_sqlite_full_is_unavailable_and_rolls_back_whole(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        account = create_account(store, "acct", now=T0, credits=10).account_id
        pages = store.conn.execute("PRAGMA page_count").fetchone()[0]
        store.conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full now
        before = store.account(account)
        with pytest.raises(StoreUnavailableError, match="full"), store.transaction() as conn:
            conn.execute("UPDATE accounts SET credits = 0 WHERE id = ?", (account,))
            conn.execute("CREATE TABLE filler (x)")
            conn.execute("INSERT INTO filler VALUES (?)", ("x" * 200_000,))
        assert not store.conn.in_transaction
        assert store.account(account) == before  # nothing of the refused transaction stayed
        store.conn.execute(f"PRAGMA max_page_count = {pages * 1000}")  # space is back
        accepted = store.accept_message(
            account_id=account, recipient="+447700900777", body="hi", encoding="gsm7", parts=1,
            now=T0,
        )  # fmt: skip
        assert store.message(accepted.message_id)["state"] == "queued"
    finally:
        store.close()


def test_a_lock_held_by_another_process_is_refused_after_the_busy_timeout(tmp_path: Path) -> None:
    store = Store.open(tmp_path, busy_timeout_ms=20)
    outside = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
    try:
        account = create_account(store, "acct", now=T0, credits=10).account_id
        outside.execute("BEGIN IMMEDIATE")  # a backup script, an outside writer, holding on
        with pytest.raises(StoreUnavailableError, match="locked"):
            store.add_credits(account, 5, "top-up", now=T0)
        assert store.account(account)["credits"] == 10  # reads go on meanwhile (WAL)
        outside.execute("ROLLBACK")
        store.add_credits(account, 5, "top-up", now=T0)
        assert store.account(account)["credits"] == 15
    finally:
        outside.close()
        store.close()


def _busy_timeout(store: Store) -> int:
    return int(store.conn.execute("PRAGMA busy_timeout").fetchone()[0])


def test_a_lock_episode_waits_the_busy_timeout_once_then_refuses_at_a_glance(
    tmp_path: Path,
) -> None:
    # The daemon's writes run on its one thread: each refused write waiting the full busy
    # timeout would stall everything for as long as the lock is held.
    store = Store.open(tmp_path, busy_timeout_ms=200)
    outside = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
    try:
        account = create_account(store, "acct", now=T0, credits=10).account_id
        assert not store.write_locked()
        outside.execute("BEGIN IMMEDIATE")  # an outside writer holding on
        for _ in range(5):
            with pytest.raises(StoreUnavailableError, match="locked"):
                store.add_credits(account, 5, "top-up", now=T0)
        assert (store.lock_refusals, store.lock_waits) == (5, 1)  # one full wait, four glances
        assert _busy_timeout(store) == CONTENDED_BUSY_MS
        assert store.write_locked()  # what /v1/health and /metrics say meanwhile
        outside.execute("ROLLBACK")
        assert not store.write_locked()  # seen going even though nothing else wrote
        assert _busy_timeout(store) == 200  # a write waits the full timeout again
        store.add_credits(account, 5, "top-up", now=T0)
        assert store.account(account)["credits"] == 15
        outside.execute("BEGIN IMMEDIATE")  # the next episode waits once again
        with pytest.raises(StoreUnavailableError):
            store.add_credits(account, 5, "top-up", now=T0)
        outside.execute("ROLLBACK")
        assert (store.lock_refusals, store.lock_waits) == (6, 2)
        fill_disk(store).full = True  # a full disk is no lock: writes keep their timeout
        with pytest.raises(StoreUnavailableError, match="full"):
            store.add_credits(account, 5, "top-up", now=T0)
        assert store.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 200
        assert store.lock_refusals == 6
    finally:
        outside.close()
        store.close()


def test_an_outside_long_read_never_blocks_a_write(tmp_path: Path) -> None:
    # busy_timeout 0: a write that met any lock would be refused at once.
    store = Store.open(tmp_path, busy_timeout_ms=0)
    reader = sqlite3.connect(tmp_path / DATABASE_NAME, isolation_level=None)
    try:
        account = create_account(store, "acct", now=T0, credits=10).account_id
        reader.execute("BEGIN")  # `sqlite3 smsgw.sqlite3` in a long SELECT, a report script
        seen = reader.execute("SELECT credits FROM accounts WHERE id = ?", (account,)).fetchone()
        for _ in range(50):
            store.add_credits(account, 1, "top-up", now=T0)
        assert store.account(account)["credits"] == 60
        assert store.lock_refusals == 0
        # The reader still sees its snapshot (WAL): the writes went around it, not through it.
        again = reader.execute("SELECT credits FROM accounts WHERE id = ?", (account,)).fetchone()
        assert seen == again == (10,)
        reader.execute("ROLLBACK")
    finally:
        reader.close()
        store.close()


def test_a_backup_neither_blocks_writes_nor_starts_over_when_they_come(tmp_path: Path) -> None:
    daemon = Store.open(tmp_path, busy_timeout_ms=0)  # any wait on the backup: refused at once
    try:
        account = create_account(daemon, "acct", now=T0, credits=10).account_id
        with daemon.transaction() as conn:  # ~12 MB: a dozen backup steps of 256 pages
            conn.execute("CREATE TABLE ballast (x BLOB)")
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)"
                " INSERT INTO ballast SELECT randomblob(4000) FROM n"
            )
        steps: list[tuple[int, int]] = []

        def progress(done: int, total: int) -> None:
            steps.append((done, total))
            if len(steps) <= 100:  # the daemon commits between every two steps
                daemon.add_credits(account, 1, "top-up", now=T0)

        # What `smsgw db backup` runs: a read-only connection of its own.
        Store.backup_file(tmp_path / DATABASE_NAME, tmp_path / "backup.sqlite3", progress)
        done = [d for d, _ in steps]
        assert len(steps) > 10
        assert done == sorted(set(done))  # always forward: never started over
        assert daemon.lock_refusals == 0  # no write waited for the backup
        assert daemon.account(account)["credits"] == 10 + len(steps)
        copy = Store.open(tmp_path / "backup.sqlite3")
        try:
            assert copy.integrity_check() == []
            assert copy.account(account)["credits"] == 10  # the database as the backup began
        finally:
            copy.close()
    finally:
        daemon.close()


def test_an_at_cmgs_outcome_is_kept_until_its_commit_succeeds(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        account = create_account(store, "acct", now=T0, credits=10).account_id
        sim = store.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+4477009", now=T0)
        pool = SimPool()
        pool.upsert(sim, "+447700900001", ThrottlePolicy(interval=1.0))
        vclock = VirtualClock()
        modem = FakeModem(vclock)
        disk = fill_disk(store)
        sleeps: list[float] = []

        async def sleep(delay: float) -> None:
            sleeps.append(delay)
            if len(sleeps) == 4:
                disk.full = False  # space returns after the fourth retry
            await vclock.sleep(delay)

        clock = vclock.clock()
        outbox = Outbox(store, pool, {sim: modem}, type(clock)(clock.monotonic, clock.wall, sleep))
        mid = store.accept_message(
            account_id=account, recipient="+447700900777", body="hi", encoding="gsm7", parts=1,
            now=T0,
        ).message_id  # fmt: skip
        disk.full, disk.allow = True, 1  # the SENDING commit goes through, the SENT one not
        state = asyncio.run(outbox.send_message(mid, allowed_sims=[sim]))
        assert state is PartState.SENT
        assert len(modem.sent) == 1  # sent once, never again because a commit failed
        assert disk.refused == 4
        assert sleeps == [0.5, 1.0, 2.0, 4.0]  # backing off, not spinning
        (part,) = store.parts(mid)
        assert (part["state"], part["tp_mr"]) == ("sent", 250)
    finally:
        store.close()


def test_a_refused_commit_before_at_cmgs_sends_nothing_and_keeps_the_part_queued(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path)
    try:
        account = create_account(store, "acct", now=T0, credits=10).account_id
        sim = store.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+4477009", now=T0)
        pool = SimPool()
        pool.upsert(sim, "+447700900001", ThrottlePolicy(interval=1.0))
        vclock = VirtualClock()
        modem = FakeModem(vclock)
        outbox = Outbox(store, pool, {sim: modem}, vclock.clock())
        mid = store.accept_message(
            account_id=account, recipient="+447700900777", body="hi", encoding="gsm7", parts=1,
            now=T0,
        ).message_id  # fmt: skip
        fill_disk(store).full = True
        with pytest.raises(StoreUnavailableError):
            asyncio.run(outbox.send_message(mid, allowed_sims=[sim]))
        assert modem.sent == []
        assert store.parts(mid)[0]["state"] == "queued"
        store.conn.full = False  # type: ignore[attr-defined]
        assert asyncio.run(outbox.send_message(mid, allowed_sims=[sim])) is PartState.SENT
    finally:
        store.close()


def test_an_inbound_message_whose_commit_failed_is_stored_when_space_returns(
    tmp_path: Path,
) -> None:
    store = Store.open(tmp_path)
    try:
        account = create_account(store, "acct", now=T0).account_id
        sim = store.bind_sim(iccid="8944000000000000001", imsi=None, msisdn="+4477009", now=T0)
        store.grant_sim(account, sim)
        inbox = Inbox(store)
        first, second = _delivers("a reply " * 30)
        other = _delivers("another reply", reference=9)[0]
        inbox.receive(sim, first, now=T0)
        disk = fill_disk(store)
        disk.full, disk.allow = True, 1  # the last part is durable; the message commit is not
        with pytest.raises(StoreUnavailableError):
            inbox.receive(sim, second, now=T0)  # the modem keeps its copy (handler raised)
        assert _inbound_count(store) == 0
        with pytest.raises(StoreUnavailableError):
            inbox.receive(sim, other, now=T0)  # still full: nothing dropped, nothing stored
        disk.full = False
        assert inbox.receive(sim, second, now=T0).duplicate  # the modem's rescan: only deleted
        assert _inbound_count(store) == 1
        bodies = [r[0] for r in store.conn.execute("SELECT body FROM inbound")]
        assert bodies == ["a reply " * 30]
        assert inbox.receive(sim, other, now=T0).inbound_id is not None
        assert _inbound_count(store) == 2
    finally:
        store.close()


def test_the_daemon_busy_timeout_comes_from_the_toml_file(tmp_path: Path) -> None:
    from gateway.config import ConfigError, load

    path = tmp_path / "smsgw.toml"
    assert load(None).busy_timeout_ms == 1000  # well under an HTTP client's timeout
    path.write_text("[store]\nbusy_timeout_ms = 250\n")
    assert load(path).busy_timeout_ms == 250
    path.write_text("[store]\nbusy_timeout_ms = -1\n")
    with pytest.raises(ConfigError, match="busy_timeout_ms"):
        load(path)


def test_an_inbound_sms_stays_on_the_modem_while_the_store_refuses(tmp_path: Path) -> None:
    from gateway.reports import ReportMatcher
    from gateway.scheduler import Dispatcher
    from gateway.worker import ModemWorker
    from modem.client import InboundSms
    from modem.pdu import decode_pdu
    from tests.gateway.test_worker import StubClient

    store = Store.open(tmp_path)
    (pdu,) = _delivers("are you open today?")
    deliver = decode_pdu(pdu).tpdu
    item = InboundSms(deliver, None, "SM", 3, pdu, T0)  # type: ignore[arg-type]

    async def scenario() -> tuple[bool, bool]:
        pool = SimPool()
        outbox = Outbox(store, pool, {}, VirtualClock().clock())
        dispatcher = Dispatcher(store, outbox)
        worker = ModemWorker(
            "/dev/null", store=store, pool=pool, dispatcher=dispatcher, inbox=Inbox(store),
            reports=ReportMatcher(store), wall=lambda: T0,
        )  # fmt: skip
        try:
            await worker._bind(StubClient())  # type: ignore[arg-type]
            disk = fill_disk(store)
            disk.full = True
            kept = await worker._on_inbound(item)  # False: the driver must not delete it
            disk.full = False
            stored = await worker._on_inbound(item)  # the next scan hands it over again
            return kept, stored
        finally:
            await dispatcher.close()

    try:
        kept, stored = asyncio.run(scenario())
        assert (kept, stored) == (False, True)
        bodies = [r[0] for r in store.conn.execute("SELECT body FROM inbound")]
        assert bodies == ["are you open today?"]
    finally:
        store.close()
