"""The operator's view across every account: queue depth, today's counts, the hourly chart, and
message and inbox searches for the dashboard (each bounded by an index, so a box with a million
stored messages answers them in milliseconds)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, escape_like, utc_iso

# The name of the account's first contact with that number (contacts_account_number index).
_CONTACT_NAME = (
    "(SELECT trim(c.first_name || ' ' || c.last_name) FROM contacts c"
    " WHERE c.account_id = {account} AND c.number = {number} ORDER BY c.id LIMIT 1)"
    " AS contact_name"
)


@dataclass(frozen=True, slots=True)
class MessageSearch:
    """Filters over every account's messages (each given one must match), newest first."""

    state: str | None = None
    sim_id: int | None = None
    account_id: int | None = None
    text: str = ""  # part of the recipient or of the body
    before_id: int | None = None  # keyset paging: only messages older than this one


@dataclass(frozen=True, slots=True)
class InboxSearch:
    """Filters over every account's inbound messages, newest first."""

    account_id: int | None = None
    sim_id: int | None = None
    text: str = ""  # part of the originator or of the body
    before_id: int | None = None


class OperatorStore(StoreBase):
    """Read-only queries behind the dashboard, /metrics and `smsgw top`."""

    def queue_depth(self, states: Sequence[str]) -> dict[str, int]:
        """Messages in each of `states` (every one present, zeros included)."""
        marks = ", ".join("?" * len(states))
        rows = self.conn.execute(
            f"SELECT state, COUNT(*) FROM messages WHERE state IN ({marks}) GROUP BY state",
            tuple(states),
        ).fetchall()
        found = {str(r[0]): int(r[1]) for r in rows}
        return {state: found.get(state, 0) for state in states}

    def parts_sent_since(self, since: datetime) -> int:
        """Parts the network accepted (a TP-MR came back) since `since`."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM parts WHERE sent_at >= ?", (utc_iso(since),)
        ).fetchone()
        return int(row[0])

    def parts_failed_since(self, since: datetime) -> int:
        """Parts that failed for good since `since`."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM parts WHERE done_at >= ? AND state = 'failed'", (utc_iso(since),)
        ).fetchone()
        return int(row[0])

    def inbound_since(self, since: datetime) -> int:
        """Inbound messages stored since `since`."""
        row = self.conn.execute(
            "SELECT COUNT(*) FROM inbound WHERE received_at >= ?", (utc_iso(since),)
        ).fetchone()
        return int(row[0])

    def hourly_counts(self, since: datetime) -> dict[str, tuple[int, int, int]]:
        """UTC hour ('YYYY-MM-DDTHH') -> (parts sent, parts failed, messages received) since
        `since`; hours without any are left out."""
        stamp = utc_iso(since)
        out: dict[str, list[int]] = {}
        for column, sql in enumerate(
            (
                "SELECT substr(sent_at, 1, 13), COUNT(*) FROM parts WHERE sent_at >= ? GROUP BY 1",
                "SELECT substr(done_at, 1, 13), COUNT(*) FROM parts"
                " WHERE done_at >= ? AND state = 'failed' GROUP BY 1",
                "SELECT substr(received_at, 1, 13), COUNT(*) FROM inbound"
                " WHERE received_at >= ? GROUP BY 1",
            )
        ):
            for hour, n in self.conn.execute(sql, (stamp,)):
                out.setdefault(str(hour), [0, 0, 0])[column] = int(n)
        return {hour: (c[0], c[1], c[2]) for hour, c in out.items()}

    def search_messages(self, q: MessageSearch, *, limit: int) -> list[dict[str, Any]]:
        """One page of messages matching `q`, newest first, each with its account's name and
        the SIM its first part went from."""
        where: list[str] = []
        args: list[Any] = []
        if q.state is not None:
            where.append("m.state = ?")
            args.append(q.state)
        if q.account_id is not None:
            where.append("m.account_id = ?")
            args.append(q.account_id)
        if q.sim_id is not None:
            where.append(
                "EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.sim_id = ?)"
            )
            args.append(q.sim_id)
        if q.text:
            where.append("(m.recipient LIKE ? ESCAPE '\\' OR m.body LIKE ? ESCAPE '\\')")
            args.extend([f"%{escape_like(q.text)}%"] * 2)
        if q.before_id is not None:
            where.append("m.id < ?")
            args.append(q.before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(
            "SELECT m.id, m.account_id, a.sub_account, m.recipient, m.sender, m.body, m.units,"
            " m.state, m.error, m.created_at, m.updated_at,"
            " (SELECT p.sim_id FROM parts p WHERE p.message_id = m.id AND p.sim_id IS NOT NULL"
            "  ORDER BY p.seq LIMIT 1) AS sim_id,"
            f" {_CONTACT_NAME.format(number='m.recipient', account='m.account_id')}"
            # The page's ids first: filtered on an account, SQLite would otherwise work out
            # every one of its messages' SIM and contact before taking the newest (20,000:
            # 48 ms a page of 100).
            f" FROM (SELECT m.id FROM messages m {clause} ORDER BY m.id DESC LIMIT ?) page"
            " JOIN messages m ON m.id = page.id JOIN accounts a ON a.id = m.account_id"
            " ORDER BY m.id DESC",
            (*args, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def message_detail(self, message_id: int) -> dict[str, Any] | None:
        """One message with its account name, its parts and every status report matched to
        them (any account: the operator sees all)."""
        row = self.conn.execute(
            "SELECT m.*, a.sub_account,"
            f" {_CONTACT_NAME.format(number='m.recipient', account='m.account_id')}"
            " FROM messages m JOIN accounts a ON a.id = m.account_id WHERE m.id = ?",
            (message_id,),
        ).fetchone()
        if row is None:
            return None
        message = dict(row)
        message["parts"] = [
            dict(r)
            for r in self.conn.execute(
                "SELECT p.*, s.iccid, s.msisdn AS sim_msisdn FROM parts p"
                " LEFT JOIN sims s ON s.id = p.sim_id WHERE p.message_id = ? ORDER BY p.seq",
                (message_id,),
            )
        ]
        message["reports"] = [
            dict(r)
            for r in self.conn.execute(
                "SELECT r.*, p.seq FROM delivery_reports r JOIN parts p ON p.id = r.part_id"
                " WHERE p.message_id = ? ORDER BY r.id",
                (message_id,),
            )
        ]
        return message

    def search_inbound(self, q: InboxSearch, *, limit: int) -> list[dict[str, Any]]:
        """One page of inbound messages matching `q`, newest first, with the account's name."""
        where: list[str] = []
        args: list[Any] = []
        if q.account_id is not None:
            where.append("i.account_id = ?")
            args.append(q.account_id)
        if q.sim_id is not None:
            where.append("i.sim_id = ?")
            args.append(q.sim_id)
        if q.text:
            where.append("(i.originator LIKE ? ESCAPE '\\' OR i.body LIKE ? ESCAPE '\\')")
            args.extend([f"%{escape_like(q.text)}%"] * 2)
        if q.before_id is not None:
            where.append("i.id < ?")
            args.append(q.before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self.conn.execute(
            "SELECT i.*, a.sub_account,"
            f" {_CONTACT_NAME.format(number='i.originator', account='i.account_id')}"
            f" FROM inbound i LEFT JOIN accounts a ON a.id = i.account_id"
            f" {clause} ORDER BY i.id DESC LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [dict(r) for r in rows]
