"""Sub-accounts, their credentials, the credits ledger and one-time passwords"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.store.base import (
    BUSY_TIMEOUT_MS,
    DuplicateError,
    StoreBase,
    is_unique_violation,
    utc_iso,
)
from gateway.store.postgres import PgConnection

_KEPT_ACCOUNTS = 1000  # account rows kept between commits (the cache starts over past it)


class AccountStore(StoreBase):
    """Sub-accounts, their credentials, the credits ledger and one-time passwords."""

    def __init__(
        self, conn: sqlite3.Connection | PgConnection, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        super().__init__(conn, busy_timeout_ms=busy_timeout_ms)
        # Account rows by (column, value), with the read_epoch they were read in.
        self._kept_accounts: dict[tuple[str, Any], tuple[tuple[int, int], dict[str, Any]]] = {}

    def _account_where(self, column: str, value: Any) -> dict[str, Any] | None:
        """The account whose `column` is `value`. Every API request reads its account (by key
        or name): a row read since the last commit anywhere to the database is the current
        one, so it is kept until the next commit (a changed or revoked key, a disabled account
        take effect at once) and asked for again only then."""
        epoch = self.read_epoch()
        kept = self._kept_accounts
        if epoch is not None:
            hit = kept.get((column, value))
            if hit is not None and hit[0] == epoch:
                return dict(hit[1])
        row = self.conn.execute(f"SELECT * FROM accounts WHERE {column} = ?", (value,)).fetchone()
        if row is None:
            return None
        account = dict(row)
        if epoch is not None:
            if len(kept) >= _KEPT_ACCOUNTS:
                kept.clear()
            kept[(column, value)] = (epoch, account)
            return dict(account)
        return account

    def insert_account(self, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Insert an account row and return its id; DuplicateError when its name (or a key) is
        taken, which a check before the insert cannot rule out with several writers (fleet)."""
        row = dict(fields)
        row["created_at"] = utc_iso(now)
        try:
            with self.transaction():
                return self._insert("accounts", row)
        except Exception as exc:
            if is_unique_violation(exc):
                raise DuplicateError(f"account {row.get('sub_account')!r} exists") from exc
            raise

    def account(self, account_id: int) -> dict[str, Any] | None:
        """Return one account row as a dict."""
        return self._account_where("id", account_id)

    def account_by_api_key(self, api_key: str) -> dict[str, Any] | None:
        """The account an API key belongs to."""
        return self._account_where("api_key", api_key)

    def account_by_name(self, sub_account: str) -> dict[str, Any] | None:
        """An account by its sub-account name."""
        return self._account_where("sub_account", sub_account)

    def list_accounts(self) -> list[dict[str, Any]]:
        """Every account, without secrets."""
        rows = self.conn.execute(
            "SELECT id, sub_account, email, credits, unlimited, api_enabled, default_dial_code,"
            " timezone, created_at FROM accounts ORDER BY id"
        ).fetchall()
        return [dict(r) for r in rows]

    def add_credits(self, account_id: int, delta: int, reason: str, *, now: datetime) -> int:
        """Top up (or take back) credits through the ledger; return the new balance."""
        with self.transaction():
            self.conn.execute(
                "UPDATE accounts SET credits = credits + ? WHERE id = ?", (delta, account_id)
            )
            self.conn.execute(
                "INSERT INTO credits_ledger (account_id, delta, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                (account_id, delta, reason, utc_iso(now)),
            )
            row = self.conn.execute(
                "SELECT credits FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
        return int(row[0])

    def charge_credits(self, account_id: int, units: int, reason: str, *, now: datetime) -> bool:
        """Take `units` credits for something that is not a message; False if they are lacking."""
        with self.transaction():
            row = self.conn.execute(
                "SELECT credits, unlimited FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            if row is None or (not row["unlimited"] and row["credits"] < units):
                return False
            self.conn.execute(
                "UPDATE accounts SET credits = credits - ? WHERE id = ? AND unlimited = 0",
                (units, account_id),
            )
            self.conn.execute(
                "INSERT INTO credits_ledger (account_id, delta, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                (account_id, -units, reason, utc_iso(now)),
            )
        return True

    def set_account_policy(self, account_id: int, policy: Mapping[str, bool]) -> None:
        """Set some of allow_unicode, allow_long, allow_international, allow_topup."""
        allowed = {"allow_unicode", "allow_long", "allow_international", "allow_topup"}
        if not set(policy) <= allowed:
            raise ValueError(f"unknown policy flags: {sorted(set(policy) - allowed)}")
        if not policy:
            return
        assignments = ", ".join(f"{name} = ?" for name in policy)
        with self.transaction():
            self.conn.execute(
                f"UPDATE accounts SET {assignments} WHERE id = ?",
                (*(int(v) for v in policy.values()), account_id),
            )

    def set_credentials(
        self, account_id: int, *, password_hash: str, api_key: str, token: str
    ) -> None:
        """Replace an account's stored (hashed) credentials."""
        with self.transaction():
            self.conn.execute(
                "UPDATE accounts SET password_hash = ?, api_key = ?, token = ? WHERE id = ?",
                (password_hash, api_key, token, account_id),
            )

    def insert_otp(self, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Store a one-time password (its hash only)."""
        row = {**fields, "created_at": utc_iso(now)}
        with self.transaction():
            return self._insert("otps", row)

    def live_otps(
        self, account_id: int, number: str | None, *, now: datetime
    ) -> list[dict[str, Any]]:
        """Pending, unexpired OTPs of an account (for one number, if given), newest first."""
        sql = "SELECT * FROM otps WHERE account_id = ? AND state = 'pending' AND expires_at > ?"
        args: list[Any] = [account_id, utc_iso(now)]
        if number is not None:
            sql += " AND number = ?"
            args.append(number)
        rows = self.conn.execute(sql + " ORDER BY id DESC", args).fetchall()
        return [dict(r) for r in rows]

    def update_otp(self, otp_id: int, *, state: str, attempts: int) -> None:
        """Record a validation attempt's outcome on one OTP."""
        with self.transaction():
            self.conn.execute(
                "UPDATE otps SET state = ?, attempts = ? WHERE id = ?", (state, attempts, otp_id)
            )
