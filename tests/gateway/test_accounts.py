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
