"""Contacts and contact groups addressed by id, and a contact's memberships of several groups.

A contact's own group (contacts.group_id) is its first membership, the one every dialect sees;
further ones are rows of contact_group_members.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, utc_iso

CONTACT_COLUMNS = frozenset({"number", "first_name", "last_name", "email", "extra"})


class GroupStore(StoreBase):
    """Contacts and groups by id, and group memberships."""

    def insert_contact(self, account_id: int, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Insert a contact outside any group; return its id."""
        row = {k: v for k, v in fields.items() if k in CONTACT_COLUMNS}
        row["extra"] = json.dumps(dict(row.get("extra") or {}))
        with self.transaction():
            return self._insert(
                "contacts", {**row, "account_id": account_id, "created_at": utc_iso(now)}
            )

    def contact(self, account_id: int, contact_id: int) -> dict[str, Any] | None:
        """One contact of an account."""
        row = self.conn.execute(
            "SELECT * FROM contacts WHERE account_id = ? AND id = ?", (account_id, contact_id)
        ).fetchone()
        return dict(row) if row is not None else None

    def all_contacts(
        self, account_id: int, *, limit: int | None = None, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page oldest first) of an account's contacts."""
        total = int(
            self.conn.execute(
                "SELECT COUNT(*) FROM contacts WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
        )
        rows = self.conn.execute(
            "SELECT * FROM contacts WHERE account_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (account_id, -1 if limit is None else limit, offset),
        ).fetchall()
        return total, [dict(r) for r in rows]

    def update_contact(self, account_id: int, contact_id: int, fields: Mapping[str, Any]) -> bool:
        """Change some columns of a contact (`extra` is merged); False if there is none."""
        unknown = set(fields) - CONTACT_COLUMNS
        if unknown:
            raise ValueError(f"not contact columns: {sorted(unknown)}")
        with self.transaction():
            row = self.conn.execute(
                "SELECT extra FROM contacts WHERE account_id = ? AND id = ?",
                (account_id, contact_id),
            ).fetchone()
            if row is None:
                return False
            values = dict(fields)
            if "extra" in values:
                values["extra"] = json.dumps(
                    {**json.loads(row["extra"] or "{}"), **dict(values["extra"])}
                )
            if values:
                sets = ", ".join(f"{name} = ?" for name in values)
                self.conn.execute(
                    f"UPDATE contacts SET {sets} WHERE id = ?", (*values.values(), contact_id)
                )
        return True

    def group(self, account_id: int, group_id: int) -> dict[str, Any] | None:
        """One contact group of an account."""
        row = self.conn.execute(
            "SELECT * FROM contact_groups WHERE account_id = ? AND id = ?", (account_id, group_id)
        ).fetchone()
        return dict(row) if row is not None else None

    def all_groups(
        self, account_id: int, *, limit: int | None = None, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page oldest first) of an account's groups."""
        total = int(
            self.conn.execute(
                "SELECT COUNT(*) FROM contact_groups WHERE account_id = ?", (account_id,)
            ).fetchone()[0]
        )
        rows = self.conn.execute(
            "SELECT * FROM contact_groups WHERE account_id = ? ORDER BY id LIMIT ? OFFSET ?",
            (account_id, -1 if limit is None else limit, offset),
        ).fetchall()
        return total, [dict(r) for r in rows]

    def insert_group(self, account_id: int, name: str) -> int | None:
        """Create a group; None when the account already has one of that name."""
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO contact_groups (account_id, name) VALUES (?, ?)",
                (account_id, name),
            )
        return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else None

    def rename_group(self, account_id: int, group_id: int, name: str) -> bool | None:
        """Rename a group: False if there is none, None if the name is taken by another."""
        with self.transaction():
            if self.group(account_id, group_id) is None:
                return False
            taken = self.conn.execute(
                "SELECT id FROM contact_groups WHERE account_id = ? AND name = ? AND id != ?",
                (account_id, name, group_id),
            ).fetchone()
            if taken is not None:
                return None
            self.conn.execute("UPDATE contact_groups SET name = ? WHERE id = ?", (name, group_id))
        return True

    def delete_group(self, account_id: int, group_id: int) -> bool:
        """Delete a group (its contacts stay, outside it); False if there was none."""
        with self.transaction():
            if self.group(account_id, group_id) is None:
                return False
            # A contact whose own group goes keeps its next membership as its own.
            self.conn.execute(
                "UPDATE contacts SET group_id = (SELECT MIN(m.group_id) FROM"
                " contact_group_members m WHERE m.contact_id = contacts.id AND m.group_id != ?)"
                " WHERE group_id = ?",
                (group_id, group_id),
            )
            self.conn.execute(
                "DELETE FROM contact_group_members WHERE group_id = ? OR (contact_id, group_id)"
                " IN (SELECT id, group_id FROM contacts WHERE account_id = ?)",
                (group_id, account_id),
            )
            self.conn.execute("DELETE FROM contact_groups WHERE id = ?", (group_id,))
        return True

    def add_membership(self, account_id: int, group_id: int, contact_id: int) -> bool:
        """Put a contact into a group (again is a no-op); False if either is not the account's."""
        with self.transaction():
            contact = self.contact(account_id, contact_id)
            if contact is None or self.group(account_id, group_id) is None:
                return False
            if contact["group_id"] is None:
                self.conn.execute(
                    "UPDATE contacts SET group_id = ? WHERE id = ?", (group_id, contact_id)
                )
            elif contact["group_id"] != group_id:
                self.conn.execute(
                    "INSERT OR IGNORE INTO contact_group_members (group_id, contact_id)"
                    " VALUES (?, ?)",
                    (group_id, contact_id),
                )
        return True

    def remove_membership(self, account_id: int, group_id: int, contact_id: int) -> bool:
        """Take a contact out of a group (not in it is a no-op); False if either is unknown."""
        with self.transaction():
            contact = self.contact(account_id, contact_id)
            if contact is None or self.group(account_id, group_id) is None:
                return False
            self.conn.execute(
                "DELETE FROM contact_group_members WHERE group_id = ? AND contact_id = ?",
                (group_id, contact_id),
            )
            if contact["group_id"] == group_id:
                nxt = self.conn.execute(
                    "SELECT MIN(group_id) FROM contact_group_members WHERE contact_id = ?",
                    (contact_id,),
                ).fetchone()[0]
                self.conn.execute(
                    "UPDATE contacts SET group_id = ? WHERE id = ?", (nxt, contact_id)
                )
                if nxt is not None:
                    self.conn.execute(
                        "DELETE FROM contact_group_members WHERE group_id = ? AND contact_id = ?",
                        (nxt, contact_id),
                    )
        return True

    def group_ids_of(self, account_id: int, contact_id: int) -> list[int]:
        """Every group a contact is in, its own first."""
        contact = self.contact(account_id, contact_id)
        if contact is None:
            return []
        own = [contact["group_id"]] if contact["group_id"] is not None else []
        rows = self.conn.execute(
            "SELECT group_id FROM contact_group_members WHERE contact_id = ? ORDER BY group_id",
            (contact_id,),
        ).fetchall()
        return own + [int(r[0]) for r in rows]

    def group_member_ids(self, account_id: int, group_id: int) -> list[int]:
        """Ids of every contact in a group (own group or further membership), by id."""
        rows = self.conn.execute(
            "SELECT id FROM contacts WHERE account_id = ? AND (group_id = ? OR id IN"
            " (SELECT contact_id FROM contact_group_members WHERE group_id = ?)) ORDER BY id",
            (account_id, group_id, group_id),
        ).fetchall()
        return [int(r[0]) for r in rows]
