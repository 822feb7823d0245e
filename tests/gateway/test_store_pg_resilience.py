"""PostgreSQL connection resilience: no wait of the store is unbounded (another box holding the
fleet-wide writer lock, a statement the server never finishes), and a lost connection (its
backend killed, the server restarted) answers StoreUnavailableError for the operation in flight,
never half-applies it, and is reconnected on a later use, so the daemon recovers by itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from gateway.store import Store, StoreUnavailableError
from gateway.store.postgres import RECONNECT_FIRST, WRITER_LOCK
from tests.postgres import Cluster

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
BUSY_MS = 200  # the lock timeout these tests open the store with
READY_TIMEOUT_S = 60  # a connect on a busy 2-core box: not a timing target


@pytest.fixture
def store(pg_url: str) -> Iterator[Store]:
    s = Store.open(pg_url, busy_timeout_ms=BUSY_MS)
    yield s
    s.close()


def _account(store: Store) -> int:
    return store.insert_account(
        {"sub_account": "demo", "password_hash": "x", "api_key": "k", "token": "t",
         "unlimited": 1},
        now=NOW,
    )  # fmt: skip


def _accept(store: Store, account: int, body: str) -> int:
    return store.accept_message(
        account_id=account, recipient="+15550001", body=body, encoding="gsm7", parts=1, now=NOW,
    ).message_id  # fmt: skip


def _bodies(store: Store) -> list[str]:
    return [str(r[0]) for r in store.conn.execute("SELECT body FROM messages ORDER BY id")]


def _kill(admin: psycopg.Connection[Any], store: Store) -> None:
    """Terminate the store's server process (an operator, a failover, the OOM killer), and
    wait until it is gone."""
    assert store._pg is not None
    pid = store._pg.raw.info.backend_pid
    (killed,) = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()  # type: ignore[misc]
    assert killed


def test_a_killed_connection_fails_the_operation_in_flight_then_reconnects(
    store: Store, postgres: Cluster
) -> None:
    account = _account(store)
    before = [_accept(store, account, f"before {i}") for i in range(3)]
    _kill(postgres.admin, store)
    with pytest.raises(StoreUnavailableError):
        _accept(store, account, "in flight")  # its BEGIN met the dead connection
    after = _accept(store, account, "after")  # reconnected on this use
    assert after > max(before)
    assert _bodies(store) == ["before 0", "before 1", "before 2", "after"]
    assert store._pg is not None and store._pg.reconnects == 1
    # A read outside any transaction is the same: unavailable once, then answered again.
    _kill(postgres.admin, store)
    with pytest.raises(StoreUnavailableError):
        store.message(after)
    assert store.message(after)["body"] == "after"  # type: ignore[index]


def test_a_connection_lost_mid_transaction_leaves_nothing_of_it(
    store: Store, postgres: Cluster
) -> None:
    account = _account(store)
    _accept(store, account, "kept")
    with pytest.raises(StoreUnavailableError), store.transaction():
        store.conn.execute(
            "INSERT INTO messages (account_id, recipient, body, encoding, units, state,"
            " extra, created_at, updated_at) VALUES (?, '+1', 'half', 'gsm7', 1, 'queued',"
            " '{}', ?, ?)",
            (account, NOW.isoformat(), NOW.isoformat()),
        )
        _kill(postgres.admin, store)
        # The rest of the block never reaches the server, nor a new connection: that would
        # commit its second half alone.
        store.conn.execute("UPDATE accounts SET credits = 99 WHERE id = ?", (account,))
    assert _bodies(store) == ["kept"]
    assert store.account(account)["credits"] == 0  # type: ignore[index]


class _AnswerLost:
    """A psycopg connection whose COMMIT reaches the server (`committed=True`: and is done
    there) but whose answer is lost with the connection."""

    def __init__(self, raw: psycopg.Connection[Any], admin: psycopg.Connection[Any], *,
                 committed: bool) -> None:  # fmt: skip
        self._raw, self._admin, self._committed = raw, admin, committed
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)

    @property
    def closed(self) -> bool:
        return self.lost or self._raw.closed

    def execute(self, query: Any, *args: Any) -> Any:
        if isinstance(query, bytes) and query.endswith(b"COMMIT") and not self.lost:
            if self._committed:
                self._raw.execute(query, *args)
            pid = self._raw.info.backend_pid
            self._admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
            self.lost = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return self._raw.execute(query, *args)


@pytest.mark.parametrize("committed", [True, False], ids=["committed", "not-committed"])
def test_a_commit_whose_answer_was_lost_is_asked_about_by_its_transaction_id(
    store: Store, postgres: Cluster, committed: bool
) -> None:
    """The connection dies after COMMIT was sent: did it commit? A new connection asks the
    server (txid_status). Committed: the write succeeded (an accepted message must not be
    refused, its client would send it again). Not committed: unavailable, nothing of it."""
    account = _account(store)
    assert store._pg is not None
    store._pg.raw = _AnswerLost(store._pg.raw, postgres.admin, committed=committed)  # type: ignore[assignment]
    if committed:
        mid = _accept(store, account, "answer lost")
        assert store.message(mid)["body"] == "answer lost"  # type: ignore[index]
    else:
        with pytest.raises(StoreUnavailableError):
            _accept(store, account, "never committed")
        assert _bodies(store) == []
    assert store._pg.reconnects == 1
    _accept(store, account, "next")
    assert _bodies(store)[-1] == "next"


def test_another_box_holding_the_writer_lock_bounds_each_write(store: Store, pg_url: str) -> None:
    """Another box's transaction holds the fleet-wide writer lock (stuck, or a long one): a
    write waits the lock timeout once, answers StoreUnavailableError, and later ones only
    glance at the lock until it is free, as on SQLite; reads go on."""
    account = _account(store)
    mid = _accept(store, account, "before")
    holder = psycopg.connect(pg_url, autocommit=True)
    pool = ThreadPoolExecutor(1)  # a write that waited forever fails the test, not hangs it
    try:
        holder.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITER_LOCK})".encode())
        started = time.monotonic()
        first = pool.submit(_accept, store, account, "while locked")
        with pytest.raises(StoreUnavailableError):
            first.result(timeout=30)
        waited = time.monotonic() - started
        assert BUSY_MS / 1000 <= waited < 10 * BUSY_MS / 1000
        with pytest.raises(StoreUnavailableError):
            _accept(store, account, "still locked")
        assert (store.lock_refusals, store.lock_waits) == (2, 1)  # one full wait per episode
        assert store.write_locked()
        assert store.message(mid)["body"] == "before"  # type: ignore[index]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        pool.shutdown()
    assert not store.write_locked()
    _accept(store, account, "after")
    assert _bodies(store) == ["before", "after"]
    assert not store.contended


def test_a_statement_the_server_does_not_finish_is_cancelled(pg_url: str) -> None:
    store = Store.open(pg_url, busy_timeout_ms=50)  # statement timeout: its floor, 1 s
    pool = ThreadPoolExecutor(1)
    try:
        assert store._pg is not None and store._pg.statement_timeout_ms == 1000
        slow = pool.submit(store.conn.execute, "SELECT pg_sleep(60)")
        with pytest.raises(StoreUnavailableError, match="statement timeout"):
            slow.result(timeout=30)
        assert store.conn.execute("SELECT 1").fetchone()[0] == 1
    finally:
        pool.shutdown()
        store.close()


def test_a_restarted_server_is_reconnected_to_with_a_backoff() -> None:
    """The database server restarts (an upgrade, a failover): while it is down every use
    answers unavailable at once (a reconnect is tried at most once per backoff step), and
    once it is back the store works again without a restart of its own."""
    cluster = Cluster()  # its own: the session's server stays up for the other tests
    try:
        # The URL's own connect_timeout replaces the 2 s default (CONNECT_DEFAULTS): on a
        # loaded box the restarted server's first backend (cold caches) may take longer than
        # that to start, and what is under test is the backoff, not the timeout. A server that
        # is down still refuses at once (no socket to connect to), so nothing waits for it.
        url = f"{cluster.create_database()}&connect_timeout={READY_TIMEOUT_S}"
        store = Store.open(url, busy_timeout_ms=BUSY_MS)
        assert store._pg is not None
        clock = [0.0]
        store._pg.monotonic = lambda: clock[0]
        try:
            account = _account(store)
            _accept(store, account, "before")
            cluster.stop_server()
            with pytest.raises(StoreUnavailableError):
                _accept(store, account, "lost")  # the connection's loss is found
            with pytest.raises(StoreUnavailableError, match="cannot be reached"):
                _accept(store, account, "down")  # a reconnect tried: refused
            with pytest.raises(StoreUnavailableError, match="next attempt in"):
                _accept(store, account, "down")  # within the backoff: not even tried
            cluster.start_server()
            with pytest.raises(StoreUnavailableError, match="next attempt in"):
                _accept(store, account, "up, but within the backoff")
            clock[0] += RECONNECT_FIRST
            _accept(store, account, "after")
            assert _bodies(store) == ["before", "after"]
            assert store._pg.reconnects == 1
        finally:
            store.close()
    finally:
        cluster.stop()
