"""Contacts, contact groups, opt-outs and appointments of each account"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, escape_like, utc_iso


class ContactStore(StoreBase):
    """Contacts, contact groups, opt-outs and appointments of each account."""

    def set_opt_out(
        self, account_id: int, number: str, opted_out: bool, *, keyword: str, now: datetime
    ) -> None:
        """Record an opt-out (STOP) or remove it (START) for one number of one account."""
        with self.transaction():
            if opted_out:
                self.conn.execute(
                    "INSERT OR REPLACE INTO opt_outs (account_id, number, keyword, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (account_id, number, keyword, utc_iso(now)),
                )
            else:
                self.conn.execute(
                    "DELETE FROM opt_outs WHERE account_id = ? AND number = ?",
                    (account_id, number),
                )

    def set_opt_outs(
        self,
        account_id: int,
        numbers: Sequence[str],
        opted_out: bool,
        *,
        keyword: str,
        now: datetime,
    ) -> int:
        """Opt many numbers out (or back in) in one transaction; return how many changed."""
        stamp = utc_iso(now)
        changed = 0
        with self.transaction():
            for number in dict.fromkeys(numbers):
                if opted_out:
                    cursor = self.conn.execute(
                        "INSERT OR IGNORE INTO opt_outs (account_id, number, keyword, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (account_id, number, keyword, stamp),
                    )
                else:
                    cursor = self.conn.execute(
                        "DELETE FROM opt_outs WHERE account_id = ? AND number = ?",
                        (account_id, number),
                    )
                changed += cursor.rowcount
        return changed

    def list_opt_outs(self, account_id: int) -> list[dict[str, Any]]:
        """An account's opted-out numbers (number, keyword, created_at), oldest first."""
        rows = self.conn.execute(
            "SELECT number, keyword, created_at FROM opt_outs WHERE account_id = ?"
            " ORDER BY created_at, number",
            (account_id,),
        ).fetchall()
        return [dict(r) for r in rows]

    def is_opted_out(self, account_id: int, number: str) -> bool:
        """Whether a number has opted out of an account's messages."""
        row = self.conn.execute(
            "SELECT 1 FROM opt_outs WHERE account_id = ? AND number = ?", (account_id, number)
        ).fetchone()
        return row is not None

    def contact_group_id(self, account_id: int, name: str) -> int | None:
        """Id of an account's contact group, by name (exact)."""
        row = self.conn.execute(
            "SELECT id FROM contact_groups WHERE account_id = ? AND name = ?", (account_id, name)
        ).fetchone()
        return int(row[0]) if row is not None else None

    def ensure_contact_group(self, account_id: int, name: str) -> int:
        """Id of an account's contact group, created if missing."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO contact_groups (account_id, name) VALUES (?, ?)",
                (account_id, name),
            )
        group_id = self.contact_group_id(account_id, name)
        assert group_id is not None
        return group_id

    def contact_group_counts(self, account_id: int) -> list[tuple[str, int]]:
        """Every group of an account with how many contacts it holds, by name."""
        rows = self.conn.execute(
            "SELECT g.name, COUNT(c.id) FROM contact_groups g"
            " LEFT JOIN contacts c ON c.group_id = g.id WHERE g.account_id = ?"
            " GROUP BY g.id ORDER BY g.name",
            (account_id,),
        ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def contact_groups(self, account_id: int) -> list[dict[str, Any]]:
        """Every group of an account (id, name, count of contacts), by id."""
        rows = self.conn.execute(
            "SELECT g.id, g.name, COUNT(c.id) AS count FROM contact_groups g"
            " LEFT JOIN contacts c ON c.group_id = g.id WHERE g.account_id = ?"
            " GROUP BY g.id ORDER BY g.id",
            (account_id,),
        ).fetchall()
        return [dict(r) for r in rows]

    def contact_group(self, account_id: int, group_id: int) -> dict[str, Any] | None:
        """One group of an account (id, name), or None."""
        row = self.conn.execute(
            "SELECT id, name FROM contact_groups WHERE account_id = ? AND id = ?",
            (account_id, group_id),
        ).fetchone()
        return dict(row) if row is not None else None

    def create_contact_group(self, account_id: int, name: str) -> int | None:
        """A new group's id; None when the account already has a group of that name."""
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO contact_groups (account_id, name) VALUES (?, ?)",
                (account_id, name),
            )
        return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else None

    def delete_contact_group(self, account_id: int, group_id: int) -> bool:
        """Delete a group and the contacts in it; False when there is no such group."""
        with self.transaction():
            self.conn.execute(
                "UPDATE appointments SET contact_id = NULL WHERE contact_id IN"
                " (SELECT id FROM contacts WHERE account_id = ? AND group_id = ?)",
                (account_id, group_id),
            )
            self.conn.execute(
                "DELETE FROM contacts WHERE account_id = ? AND group_id = ?",
                (account_id, group_id),
            )
            cursor = self.conn.execute(
                "DELETE FROM contact_groups WHERE account_id = ? AND id = ?",
                (account_id, group_id),
            )
        return cursor.rowcount == 1

    def add_group_numbers(
        self, account_id: int, group_id: int, numbers: Sequence[str], *, now: datetime
    ) -> int:
        """Add numbers (E.164) to a group as bare contacts, skipping those it has; return how
        many were added."""
        stamp = utc_iso(now)
        added = 0
        with self.transaction():
            for number in dict.fromkeys(numbers):
                exists = self.conn.execute(
                    "SELECT 1 FROM contacts WHERE account_id = ? AND group_id = ? AND number = ?",
                    (account_id, group_id, number),
                ).fetchone()
                if exists is None:
                    self.conn.execute(
                        "INSERT INTO contacts (account_id, group_id, number, created_at)"
                        " VALUES (?, ?, ?, ?)",
                        (account_id, group_id, number, stamp),
                    )
                    added += 1
        return added

    def remove_group_numbers(self, account_id: int, group_id: int, numbers: Sequence[str]) -> int:
        """Remove numbers (E.164) from a group; return how many contacts went."""
        removed = 0
        with self.transaction():
            for number in dict.fromkeys(numbers):
                self.conn.execute(
                    "UPDATE appointments SET contact_id = NULL WHERE contact_id IN (SELECT id"
                    " FROM contacts WHERE account_id = ? AND group_id = ? AND number = ?)",
                    (account_id, group_id, number),
                )
                cursor = self.conn.execute(
                    "DELETE FROM contacts WHERE account_id = ? AND group_id = ? AND number = ?",
                    (account_id, group_id, number),
                )
                removed += cursor.rowcount
        return removed

    def save_contacts(
        self, account_id: int, contacts: Sequence[Mapping[str, Any]], *, now: datetime
    ) -> list[int]:
        """Insert contacts, or update the one with the same number in the same group; ids back.

        Each entry has group_id, number and optionally first_name, last_name, email, extra
        (a dict merged into the stored one).
        """
        stamp = utc_iso(now)
        ids: list[int] = []
        with self.transaction():
            for c in contacts:
                row = self.conn.execute(
                    "SELECT id, extra FROM contacts WHERE account_id = ? AND group_id IS ?"
                    " AND number = ? ORDER BY id LIMIT 1",
                    (account_id, c["group_id"], c["number"]),
                ).fetchone()
                if row is None:
                    cursor = self.conn.execute(
                        "INSERT INTO contacts (account_id, group_id, number, first_name,"
                        " last_name, email, extra, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            account_id,
                            c["group_id"],
                            c["number"],
                            c.get("first_name", ""),
                            c.get("last_name", ""),
                            c.get("email", ""),
                            json.dumps(dict(c.get("extra") or {})),
                            stamp,
                        ),
                    )
                    ids.append(int(cursor.lastrowid or 0))
                    continue
                extra = {**json.loads(row["extra"] or "{}"), **dict(c.get("extra") or {})}
                self.conn.execute(
                    "UPDATE contacts SET"
                    " first_name = CASE WHEN ? != '' THEN ? ELSE first_name END,"
                    " last_name = CASE WHEN ? != '' THEN ? ELSE last_name END,"
                    " email = CASE WHEN ? != '' THEN ? ELSE email END, extra = ? WHERE id = ?",
                    (
                        *(c.get("first_name", ""),) * 2,
                        *(c.get("last_name", ""),) * 2,
                        *(c.get("email", ""),) * 2,
                        json.dumps(extra),
                        row["id"],
                    ),
                )
                ids.append(int(row["id"]))
        return ids

    def search_contacts(
        self,
        account_id: int,
        *,
        group_ids: Sequence[int] | None = None,
        ids: Sequence[int] | None = None,
        number: str | None = None,
        terms: Sequence[str] = (),
        name: str | None = None,
        email: str | None = None,
        number_like: str | None = None,
        source: int | None = None,
        subscribed: bool | None = None,
        order: str = "created",
        descending: bool = True,
        limit: int | None = None,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """Contacts of an account matching every given filter: (total, one page with group name
        and opt-out flag). `terms` each match part of the number or a name."""
        where = ["c.account_id = ?"]
        args: list[Any] = [account_id]
        if group_ids is not None:
            where.append(f"c.group_id IN ({', '.join('?' * len(group_ids)) or 'NULL'})")
            args.extend(group_ids)
        if ids is not None:
            where.append(f"c.id IN ({', '.join('?' * len(ids)) or 'NULL'})")
            args.extend(ids)
        if number is not None:
            where.append("c.number = ?")
            args.append(number)
        for term in terms:
            where.append(
                "(c.number LIKE ? ESCAPE '\\' OR c.first_name LIKE ? ESCAPE '\\'"
                " OR c.last_name LIKE ? ESCAPE '\\')"
            )
            args.extend([f"%{escape_like(term)}%"] * 3)
        if name is not None:
            where.append("(c.first_name || ' ' || c.last_name) LIKE ? ESCAPE '\\'")
            args.append(f"%{escape_like(name)}%")
        if email is not None:
            where.append("c.email LIKE ? ESCAPE '\\'")
            args.append(f"%{escape_like(email)}%")
        if number_like is not None:
            where.append("c.number LIKE ? ESCAPE '\\'")
            args.append(f"%{escape_like(number_like)}%")
        if source is not None:
            where.append("COALESCE(json_extract(c.extra, '$.source'), 0) = ?")
            args.append(source)
        opted = (
            "EXISTS (SELECT 1 FROM opt_outs o"
            " WHERE o.account_id = c.account_id AND o.number = c.number)"
        )
        if subscribed is not None:
            where.append(f"{'NOT ' if subscribed else ''}{opted}")
        column = {
            "name": "c.first_name || ' ' || c.last_name",
            "phone_number": "c.number",
            "created": "c.created_at",
        }[order]
        direction = "DESC" if descending else "ASC"
        clause = " AND ".join(where)
        total = int(
            self.conn.execute(f"SELECT COUNT(*) FROM contacts c WHERE {clause}", args).fetchone()[0]
        )
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        rows = self.conn.execute(
            f"SELECT c.*, g.name AS group_name, {opted} AS opted_out FROM contacts c"
            f" LEFT JOIN contact_groups g ON g.id = c.group_id WHERE {clause}"
            f" ORDER BY {column} {direction}, c.id {direction}{page}",
            args,
        ).fetchall()
        return total, [dict(r) for r in rows]

    def delete_contacts(self, account_id: int, ids: Sequence[int]) -> int:
        """Delete an account's contacts by id; return how many went."""
        if not ids:
            return 0
        with self.transaction():
            self.conn.execute(
                f"UPDATE appointments SET contact_id = NULL WHERE contact_id IN"
                f" ({', '.join('?' * len(ids))})",
                tuple(ids),
            )
            marks = ", ".join("?" * len(ids))
            cursor = self.conn.execute(
                f"DELETE FROM contacts WHERE account_id = ? AND id IN ({marks})",
                (account_id, *ids),
            )
        return cursor.rowcount

    def add_appointment(
        self,
        account_id: int,
        *,
        contact_id: int | None,
        number: str,
        starts_at: datetime,
        status: int,
        now: datetime,
    ) -> int | None:
        """Record an appointment; None when that number already has one at that time."""
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO appointments (account_id, contact_id, number, starts_at,"
                " status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (account_id, contact_id, number, utc_iso(starts_at), status, utc_iso(now)),
            )
        return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else None

    def appointments(self, account_id: int) -> list[dict[str, Any]]:
        """An account's appointments, soonest first."""
        rows = self.conn.execute(
            "SELECT * FROM appointments WHERE account_id = ? ORDER BY starts_at, id",
            (account_id,),
        ).fetchall()
        return [dict(r) for r in rows]
