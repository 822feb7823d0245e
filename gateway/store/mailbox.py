"""One account's outbound and inbound messages as one list (a mailbox): filters, read and deleted
flags, replies matched to what they answer, and per-outcome totals for statistics"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, escape_like, utc_iso

# What became of an outbound message, from its state and its parts (dialect-neutral names):
# scheduled (not on the network yet), sent (no report yet), delivered, failed (after reaching
# the network, or expired), opted_out and refunded (failed before the network, or cancelled:
# credits given back), uncertain (interrupted during AT+CMGS).
_OUTCOME = """CASE
    WHEN m.state IN ('accepted', 'queued', 'sending') THEN 'scheduled'
    WHEN m.state = 'sent' THEN 'sent'
    WHEN m.state = 'delivered' THEN 'delivered'
    WHEN m.state = 'uncertain' THEN 'uncertain'
    WHEN m.state = 'cancelled' THEN 'refunded'
    WHEN EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.sent_at IS NOT NULL)
        THEN 'failed'
    WHEN EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.error LIKE '%opted out%')
        THEN 'opted_out'
    ELSE 'refunded' END"""

_OUTBOUND = f"""
SELECT 'out' AS kind, m.id AS id, m.account_id AS account_id,
    COALESCE((SELECT s.msisdn FROM parts p JOIN sims s ON s.id = p.sim_id
        WHERE p.message_id = m.id ORDER BY p.seq LIMIT 1), '') AS from_number,
    m.recipient AS to_number, m.body AS body, m.encoding AS encoding, m.state AS state,
    {_OUTCOME} AS outcome, m.units AS parts, m.send_at AS send_at, m.created_at AS created_at,
    (SELECT MIN(p.sent_at) FROM parts p WHERE p.message_id = m.id) AS sent_at,
    NULL AS received_at, m.is_read AS is_read, m.deleted AS deleted, m.extra AS extra,
    NULL AS replied_to, COALESCE(m.send_at, m.created_at) AS at
FROM messages m WHERE m.account_id = ?"""

_INBOUND = """
SELECT 'in' AS kind, i.id AS id, i.account_id AS account_id, i.originator AS from_number,
    i.recipient AS to_number, i.body AS body, i.encoding AS encoding, NULL AS state,
    NULL AS outcome, i.parts_total AS parts, NULL AS send_at, i.received_at AS created_at,
    NULL AS sent_at, i.received_at AS received_at, i.is_read AS is_read, i.deleted AS deleted,
    COALESCE((SELECT r.extra FROM messages r WHERE r.id = i.replied_to), '{}') AS extra,
    i.replied_to AS replied_to, i.received_at AS at
FROM (SELECT i.*, (SELECT r.id FROM messages r WHERE r.account_id = i.account_id
        AND r.recipient = i.originator AND r.created_at <= i.received_at
        ORDER BY r.id DESC LIMIT 1) AS replied_to
    FROM inbound i WHERE i.account_id = ?) i"""


_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _json_path(key: str) -> str:
    """The SQL literal '$.key' of a key of `extra`: dialect.py turns json_extract(doc, '$.key')
    into PostgreSQL's (doc::jsonb ->> 'key') only for a literal path, never a bound one."""
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a key of extra: {key!r}")
    return f"'$.{key}'"


@dataclass(frozen=True, slots=True)
class MailboxQuery:
    """Filters over an account's mailbox (every given one must match)."""

    kind: str | None = None  # "out" or "in"
    outcomes: tuple[str, ...] | None = None  # outbound only
    sent_from: datetime | None = None  # outbound, on its (scheduled) send time
    sent_to: datetime | None = None
    received_from: datetime | None = None  # inbound only
    received_to: datetime | None = None
    from_number: str | None = None
    to_number: str | None = None
    text: str | None = None  # part of the body
    extra: tuple[tuple[str, str], ...] = ()  # exact values of keys of the `extra` JSON
    deleted: bool | None = None
    read: bool | None = None
    replied_to: int | None = None  # inbound replies to that outbound message


class MailboxStore(StoreBase):
    """Outbound and inbound messages of an account as one list."""

    def _mailbox_where(self, q: MailboxQuery) -> tuple[str, list[Any]]:
        where: list[str] = []
        args: list[Any] = []
        if q.kind is not None:
            where.append("kind = ?")
            args.append(q.kind)
        if q.outcomes is not None:
            where.append(f"outcome IN ({', '.join('?' * len(q.outcomes)) or 'NULL'})")
            args.extend(q.outcomes)
        for bound, op, kind, column in (
            (q.sent_from, ">=", "out", "at"),
            (q.sent_to, "<", "out", "at"),
            (q.received_from, ">=", "in", "received_at"),
            (q.received_to, "<", "in", "received_at"),
        ):
            if bound is not None:
                where.append(f"kind = '{kind}' AND {column} {op} ?")
                args.append(utc_iso(bound))
        if q.from_number is not None:
            where.append("from_number = ?")
            args.append(q.from_number)
        if q.to_number is not None:
            where.append("to_number = ?")
            args.append(q.to_number)
        if q.text is not None:
            where.append("body LIKE ? ESCAPE '\\'")
            args.append(f"%{escape_like(q.text)}%")
        for key, value in q.extra:
            where.append(f"json_extract(extra, {_json_path(key)}) = ?")
            args.append(value)
        if q.deleted is not None:
            where.append("deleted = ?")
            args.append(int(q.deleted))
        if q.read is not None:
            where.append("is_read = ?")
            args.append(int(q.read))
        if q.replied_to is not None:
            where.append("replied_to = ?")
            args.append(q.replied_to)
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def mailbox(
        self, account_id: int, q: MailboxQuery, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page newest first) of an account's messages of both directions, each
        with the contact of its other party."""
        clause, args = self._mailbox_where(q)
        union = f"WITH box AS ({_OUTBOUND} UNION ALL {_INBOUND})"
        base = [account_id, account_id]
        total = int(
            self.conn.execute(
                f"{union} SELECT COUNT(*) FROM box{clause}", (*base, *args)
            ).fetchone()[0]
        )
        rows = self.conn.execute(
            f"{union} SELECT box.*, (SELECT c.id FROM contacts c WHERE c.account_id = ?"
            " AND c.number = CASE box.kind WHEN 'out' THEN box.to_number"
            " ELSE box.from_number END ORDER BY c.id LIMIT 1) AS contact_id"
            f" FROM box{clause} ORDER BY at DESC, kind DESC, id DESC LIMIT ? OFFSET ?",
            (*base, account_id, *args, limit, offset),
        ).fetchall()
        return total, [dict(r) for r in rows]

    def mailbox_entry(self, account_id: int, kind: str, entry_id: int) -> dict[str, Any] | None:
        """One message of the mailbox by direction and id."""
        branch = _OUTBOUND if kind == "out" else _INBOUND
        row = self.conn.execute(
            "SELECT box.*, (SELECT c.id FROM contacts c WHERE c.account_id = box.account_id"
            " AND c.number = CASE box.kind WHEN 'out' THEN box.to_number"
            " ELSE box.from_number END ORDER BY c.id LIMIT 1) AS contact_id"
            f" FROM ({branch}) box WHERE box.id = ?",
            (account_id, entry_id),
        ).fetchone()
        return dict(row) if row is not None else None

    def set_mailbox_flags(
        self, kind: str, entry_id: int, *, read: bool | None = None, deleted: bool | None = None
    ) -> None:
        """Set the read and/or deleted flag of one outbound ("out") or inbound ("in") message."""
        table = "messages" if kind == "out" else "inbound"
        sets = []
        args: list[Any] = []
        if read is not None:
            sets.append("is_read = ?")
            args.append(int(read))
        if deleted is not None:
            sets.append("deleted = ?")
            args.append(int(deleted))
        if not sets:
            return
        with self.transaction():
            self.conn.execute(
                f"UPDATE {table} SET {', '.join(sets)} WHERE id = ?", (*args, entry_id)
            )

    def outcome_totals(
        self,
        account_ids: Sequence[int],
        *,
        start: datetime,
        end: datetime,
        extra_key: str,
        extra_value: str | None = None,
    ) -> list[dict[str, Any]]:
        """Messages and parts per (account, value of `extra_key`, outcome) sent in [start, end)
        by the given accounts (deleted ones too: they were sent and paid for)."""
        marks = ", ".join("?" * len(account_ids)) or "NULL"
        path = _json_path(extra_key)
        sql = (
            f"SELECT m.account_id AS account_id, json_extract(m.extra, {path}) AS label,"
            f" {_OUTCOME} AS outcome, COUNT(*) AS messages, SUM(m.units) AS parts"
            f" FROM messages m WHERE m.account_id IN ({marks})"
            " AND COALESCE(m.send_at, m.created_at) >= ? AND COALESCE(m.send_at, m.created_at) < ?"
        )
        args: list[Any] = [*account_ids, utc_iso(start), utc_iso(end)]
        if extra_value is not None:
            sql += f" AND json_extract(m.extra, {path}) = ?"
            args.append(extra_value)
        rows = self.conn.execute(sql + " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", args).fetchall()
        return [dict(r) for r in rows]
