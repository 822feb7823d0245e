"""Teams of accounts: sub-accounts of an account, their profiles, sending tokens and credit
transfers between them"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, utc_iso

PROFILE_COLUMNS = frozenset(
    {"first_name", "last_name", "contact_number", "company", "password_hash", "email"}
)


class TeamStore(StoreBase):
    """Sub-accounts of an account, their profiles, sending tokens and credit transfers."""

    def accounts_by_email(self, email: str) -> list[dict[str, Any]]:
        """Accounts with that email address (case-insensitive), oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM accounts WHERE email = ? COLLATE NOCASE ORDER BY id", (email,)
        ).fetchall()
        return [dict(r) for r in rows]

    def account_by_send_token(self, digest: str) -> dict[str, Any] | None:
        """The account whose URL-sending token has this digest."""
        row = self.conn.execute("SELECT * FROM accounts WHERE send_token = ?", (digest,)).fetchone()
        return dict(row) if row is not None else None

    def set_send_token(self, account_id: int, digest: str) -> None:
        """Replace an account's URL-sending token (its digest)."""
        with self.transaction():
            self.conn.execute(
                "UPDATE accounts SET send_token = ? WHERE id = ?", (digest, account_id)
            )

    def team(self, account_id: int) -> list[dict[str, Any]]:
        """The account followed by its sub-accounts, by id."""
        rows = self.conn.execute(
            "SELECT * FROM accounts WHERE id = ? OR parent_id = ? ORDER BY id != ?, id",
            (account_id, account_id, account_id),
        ).fetchall()
        return [dict(r) for r in rows]

    def update_profile(self, account_id: int, fields: Mapping[str, Any]) -> None:
        """Change some of an account's profile columns (names, numbers, password hash)."""
        unknown = set(fields) - PROFILE_COLUMNS
        if unknown:
            raise ValueError(f"not profile columns: {sorted(unknown)}")
        if not fields:
            return
        sets = ", ".join(f"{name} = ?" for name in fields)
        with self.transaction():
            self.conn.execute(
                f"UPDATE accounts SET {sets} WHERE id = ?", (*fields.values(), account_id)
            )

    def transfer_credits(
        self, source_id: int, target_id: int, units: int, *, now: datetime
    ) -> bool:
        """Move credits from one account to another in one transaction (both in the ledger);
        False when the source (unless unlimited) lacks them."""
        if units < 1:
            raise ValueError("a transfer moves at least one credit")
        stamp = utc_iso(now)
        with self.transaction():
            row = self.conn.execute(
                "SELECT credits, unlimited FROM accounts WHERE id = ?", (source_id,)
            ).fetchone()
            if row is None or (not row["unlimited"] and row["credits"] < units):
                return False
            self.conn.execute(
                "UPDATE accounts SET credits = credits - ? WHERE id = ? AND unlimited = 0",
                (units, source_id),
            )
            self.conn.execute(
                "UPDATE accounts SET credits = credits + ? WHERE id = ?", (units, target_id)
            )
            self.conn.executemany(
                "INSERT INTO credits_ledger (account_id, delta, reason, created_at)"
                " VALUES (?, ?, ?, ?)",
                [
                    (source_id, -units, f"transfer to account {target_id}", stamp),
                    (target_id, units, f"transfer from account {source_id}", stamp),
                ],
            )
        return True

    def insert_sub_account(
        self, parent_id: int, fields: Mapping[str, Any], credits: int, *, now: datetime
    ) -> int | None:
        """Create an account under `parent_id` and give it `credits` of the parent's, in one
        transaction; None (nothing created) when the parent (unless unlimited) lacks them."""
        stamp = utc_iso(now)
        with self.transaction():
            parent = self.conn.execute(
                "SELECT credits, unlimited FROM accounts WHERE id = ?", (parent_id,)
            ).fetchone()
            if parent is None or (
                credits and not parent["unlimited"] and parent["credits"] < credits
            ):
                return None
            account_id = self._insert(
                "accounts",
                {**fields, "parent_id": parent_id, "credits": 0, "created_at": stamp},
            )
            if credits:
                self.conn.execute(
                    "UPDATE accounts SET credits = credits - ? WHERE id = ? AND unlimited = 0",
                    (credits, parent_id),
                )
                self.conn.execute(
                    "UPDATE accounts SET credits = ? WHERE id = ?", (credits, account_id)
                )
                self.conn.executemany(
                    "INSERT INTO credits_ledger (account_id, delta, reason, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    [
                        (parent_id, -credits, f"transfer to account {account_id}", stamp),
                        (account_id, credits, f"transfer from account {parent_id}", stamp),
                    ],
                )
        return account_id

    def set_token(self, account_id: int, digest: str) -> None:
        """Replace an account's REST token (its digest)."""
        with self.transaction():
            self.conn.execute("UPDATE accounts SET token = ? WHERE id = ?", (digest, account_id))
