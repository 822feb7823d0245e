"""Accounts: credentials are random, hashed at rest and verifiable."""

from datetime import UTC, datetime

import pytest

from gateway.accounts import create_account, hash_password, verify_password
from gateway.store import DuplicateError, Store

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def test_password_hash_roundtrip() -> None:
    encoded = hash_password("s3cret", salt=b"0123456789abcdef")
    assert encoded.startswith("scrypt$16384$8$1$")
    assert "s3cret" not in encoded
    assert verify_password("s3cret", encoded)
    assert not verify_password("s3cret!", encoded)
    assert not verify_password("s3cret", "md5$abc")
    assert not verify_password("s3cret", "garbage")


def test_create_account_stores_only_the_hash(store_url: str) -> None:
    store = Store.open(store_url)
    try:
        a = create_account(store, "shop", now=NOW, email="ops@example.com", credits=50)
        b = create_account(store, "school", now=NOW)
        assert a.api_key != b.api_key
        assert a.password != b.password
        row = store.account(a.account_id)
        assert row is not None
        assert row["credits"] == 50
        assert row["password_hash"] != a.password
        assert verify_password(a.password, row["password_hash"])
        with pytest.raises(DuplicateError, match="'shop' exists"):
            create_account(store, "shop", now=NOW)
    finally:
        store.close()


class _Counting:
    """A store connection that counts the account rows read through it."""

    def __init__(self, conn: object) -> None:
        self._conn = conn
        self.account_reads = 0

    def execute(self, sql: str, *args: object) -> object:
        if sql.startswith("SELECT * FROM accounts"):
            self.account_reads += 1
        return self._conn.execute(sql, *args)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._conn, name)


def test_a_kept_account_row_is_read_again_after_any_write(store_url: str) -> None:
    """Each request reads its account: the row is kept while nothing was written anywhere,
    and a key reset, a disabled account or a credit change by another process (the CLI) or
    through this connection is seen by the very next request."""
    from gateway.accounts import reset_credentials, secret_digest
    from gateway.service import GatewayService, UnknownAccountError

    store = Store.open(store_url)
    cli = Store.open(store_url)  # `smsgw accounts ...` in another process
    try:
        made = create_account(store, "shop", now=NOW, credits=50)
        service = GatewayService(store, wall=lambda: NOW)
        counting = _Counting(store.conn)
        store.conn = counting  # type: ignore[assignment]
        for _ in range(3):
            assert service.authenticate(made.api_key) == made.account_id
            assert service.account_by_credentials("shop", made.password)["id"] == made.account_id
        # SQLite: once by key, once by name; PostgreSQL tells no epoch: every time
        assert counting.account_reads == (2 if store.dialect == "sqlite" else 6)
        fresh = reset_credentials(cli, made.account_id)  # another process resets the secrets
        with pytest.raises(UnknownAccountError):
            service.authenticate(made.api_key)
        with pytest.raises(UnknownAccountError):
            service.account_by_credentials("shop", made.password)
        assert service.authenticate(fresh.api_key) == made.account_id
        cli.conn.execute("UPDATE accounts SET api_enabled = 0 WHERE id = ?", (made.account_id,))
        with pytest.raises(UnknownAccountError):
            service.authenticate(fresh.api_key)
        # a write through this connection outside a transaction, and one inside
        store.conn.execute("UPDATE accounts SET api_enabled = 1, credits = 7")
        assert store.account_by_api_key(secret_digest(fresh.api_key))["credits"] == 7
        store.add_credits(made.account_id, 3, "top-up", now=NOW)
        assert store.account_by_api_key(secret_digest(fresh.api_key))["credits"] == 10
        with store.transaction():  # inside a transaction its own writes are what counts
            store.conn.execute("UPDATE accounts SET credits = 1")
            assert store.account(made.account_id)["credits"] == 1
        assert store.account(made.account_id)["credits"] == 1
    finally:
        cli.close()
        store.close()
