"""One account's outbound and inbound messages as one list (a mailbox): filters, read and deleted
flags, replies matched to what they answer, and per-outcome totals for statistics"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.models import PartState
from gateway.store.base import StoreBase, escape_like, utc_iso
from gateway.store.messages import SENT_FROM

# What became of an outbound message (dialect-neutral names): from its state alone, scheduled
# (not on the network yet), sent (no report yet), delivered, uncertain (interrupted during
# AT+CMGS) and refunded (cancelled: credits given back)...
_OUTCOME_OF_STATE: Mapping[str, str] = {
    "accepted": "scheduled",
    "queued": "scheduled",
    "sending": "scheduled",
    "sent": "sent",
    "delivered": "delivered",
    "uncertain": "uncertain",
    "cancelled": "refunded",
}
# ...and in any other state (failed, expired) from its parts: failed after one reached the
# network, opted_out when one was refused for an opt-out, else refunded (failed before the
# network: credits given back).
_OUTCOME_OF_PARTS = ("failed", "opted_out", "refunded")
_STATES_OF_PARTS = tuple(s.value for s in PartState if s.value not in _OUTCOME_OF_STATE)


def _quoted(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_OUTCOME = f"""CASE
    {" ".join(f"WHEN m.state = '{s}' THEN '{o}'" for s, o in _OUTCOME_OF_STATE.items())}
    WHEN EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.sent_at IS NOT NULL)
        THEN 'failed'
    WHEN EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.error LIKE '%opted out%')
        THEN 'opted_out'
    ELSE 'refunded' END"""


def _outcome_filter(outcomes: Sequence[str]) -> tuple[str, list[Any]]:
    """`outcome IN outcomes` over _FILTER_OUT, said by state: the states that give one of them
    alone are an indexed condition, and the parts of a message are looked at only in the
    states that leave it to them (its few failed messages, not the whole account; PostgreSQL
    prices the parts' subqueries for every row it expects to read, and JIT-compiles a query it
    thinks that dear, 15-40 ms)."""
    states = [s for s, o in _OUTCOME_OF_STATE.items() if o in outcomes]
    terms = [f"state IN ({_quoted(states)})"] if states else []
    by_parts = [o for o in outcomes if o in _OUTCOME_OF_PARTS]
    if by_parts:
        terms.append(
            f"(state IN ({_quoted(_STATES_OF_PARTS)})"
            f" AND outcome IN ({', '.join('?' * len(by_parts))}))"
        )
    return (f"({' OR '.join(terms)})" if terms else "1 = 0"), by_parts


# An outbound message's place in the mailbox: its (scheduled) send time, else its creation,
# the very expression of the messages_account_at index (migration 13). A TEXT cast, as
# received_at is: SQLite merges the two directions' ordered halves of a UNION ALL only when its
# columns' affinities agree (else it sorts the whole account before paging).
_OUT_AT = "CAST(COALESCE(m.send_at, m.created_at) AS TEXT)"
# The outbound message inbound message i answers: the account's last one to its sender made
# before it arrived.
_REPLIED_TO = """(SELECT o.id FROM messages o WHERE o.account_id = i.account_id
    AND o.recipient = i.originator AND o.created_at <= i.received_at ORDER BY o.id DESC LIMIT 1)"""
_CONTACT = """(SELECT c.id FROM contacts c WHERE c.account_id = {alias}.account_id
    AND c.number = {number} ORDER BY c.id LIMIT 1)"""

# What the filters and the order read of each direction, under the same names: a page's ids
# come from these alone. Each half is one table without a WHERE of its own (the filters apply
# to the union), so both engines push the filters into each half, compute only the columns a
# filter names, and merge the halves in index order; the casts and the typed NULL give both
# halves the same column types (PostgreSQL) and affinities (SQLite), without which neither
# does.
_FILTER_OUT = f"""SELECT 'out' AS kind, m.id AS id, m.account_id AS account_id,
    {_OUT_AT} AS at, CAST(COALESCE({SENT_FROM}, '') AS TEXT) AS from_number,
    m.recipient AS to_number, m.body AS body, m.state AS state, {_OUTCOME} AS outcome,
    m.is_read AS is_read, m.deleted AS deleted, m.extra AS extra,
    CAST(NULL AS BIGINT) AS replied_to
FROM messages m"""
_FILTER_IN = f"""SELECT 'in' AS kind, i.id AS id, i.account_id AS account_id,
    i.received_at AS at, i.originator AS from_number, i.recipient AS to_number, i.body AS body,
    CAST(NULL AS TEXT) AS state, NULL AS outcome, i.is_read AS is_read, i.deleted AS deleted,
    CAST(COALESCE((SELECT r.extra FROM messages r WHERE r.id = {_REPLIED_TO}), '{{}}') AS TEXT)
        AS extra, {_REPLIED_TO} AS replied_to
FROM inbound i"""

# What the mailbox shows of outbound message m and inbound message i (beside r, the message it
# answers), once its page is known.
_OUT_ROW = f"""'out' AS kind, m.id AS id, m.account_id AS account_id,
    COALESCE({SENT_FROM}, '') AS from_number, m.recipient AS to_number, m.body AS body,
    m.encoding AS encoding, m.state AS state, {_OUTCOME} AS outcome, m.units AS parts,
    m.send_at AS send_at, m.created_at AS created_at,
    (SELECT MIN(p.sent_at) FROM parts p WHERE p.message_id = m.id) AS sent_at,
    NULL AS received_at, m.is_read AS is_read, m.deleted AS deleted, m.extra AS extra,
    NULL AS replied_to, COALESCE(m.send_at, m.created_at) AS at,
    {_CONTACT.format(alias="m", number="m.recipient")} AS contact_id
FROM messages m"""
_IN_ROW = f"""'in' AS kind, i.id AS id, i.account_id AS account_id, i.originator AS from_number,
    i.recipient AS to_number, i.body AS body, i.encoding AS encoding, NULL AS state,
    NULL AS outcome, i.parts_total AS parts, NULL AS send_at, i.received_at AS created_at,
    NULL AS sent_at, i.received_at AS received_at, i.is_read AS is_read, i.deleted AS deleted,
    COALESCE(r.extra, '{{}}') AS extra, r.id AS replied_to, i.received_at AS at,
    {_CONTACT.format(alias="i", number="i.originator")} AS contact_id
FROM inbound i LEFT JOIN messages r ON r.id = {_REPLIED_TO}"""
# Newest first; at the same time outbound before inbound, then the newer id.
_ORDER = "ORDER BY at DESC, kind DESC, id DESC"


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

    def _mailbox_where(self, account_id: int, q: MailboxQuery) -> tuple[list[str], str, list[Any]]:
        """The directions `q` can match (a filter of one direction rules out the other), and
        the filter, over the columns of _FILTER_OUT and _FILTER_IN, with its arguments."""
        kinds = [k for k in ("out", "in") if q.kind in (None, k)]
        where: list[str] = ["account_id = ?"]
        args: list[Any] = [account_id]
        if q.outcomes is not None:
            kinds = [k for k in kinds if k == "out"]
            term, values = _outcome_filter(q.outcomes)
            where.append(term)
            args.extend(values)
        for bound, op, kind in (
            (q.sent_from, ">=", "out"),
            (q.sent_to, "<", "out"),
            (q.received_from, ">=", "in"),
            (q.received_to, "<", "in"),
        ):
            if bound is not None:
                kinds = [k for k in kinds if k == kind]
                where.append(f"at {op} ?")
                args.append(utc_iso(bound))
        if q.replied_to is not None:
            kinds = [k for k in kinds if k == "in"]
            where.append("replied_to = ?")
            args.append(q.replied_to)
        if q.from_number is not None:
            where.append("from_number = ?")
            args.append(q.from_number)
        if q.from_number:
            # An outbound message is from its SIM's number: none is from a number no SIM has
            # (a customer's, listing a conversation), and then none's SIM is worked out.
            where.append("(kind = 'in' OR EXISTS (SELECT 1 FROM sims s WHERE s.msisdn = ?))")
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
        return kinds, " AND ".join(where), args

    def mailbox(
        self, account_id: int, q: MailboxQuery, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page newest first) of an account's messages of both directions, each
        with the contact of its other party."""
        kinds, clause, args = self._mailbox_where(account_id, q)
        if not kinds:
            return 0, []
        halves = {"out": _FILTER_OUT, "in": _FILTER_IN}
        # One count per direction: over the union, SQLite would compute every column of it.
        counts = (f"(SELECT COUNT(*) FROM ({halves[k]}) box WHERE {clause})" for k in kinds)
        total = int(
            self.conn.execute("SELECT " + " + ".join(counts), args * len(kinds)).fetchone()[0]
        )
        # The page's ids first, from what the filters and the order need; then what the rows
        # show (SIM, outcome, first send, reply, contact) for those alone. Worked out for the
        # union before paging, both engines computed it for every message of the account.
        union = " UNION ALL ".join(halves[k] for k in kinds)
        shown = " UNION ALL ".join(
            f"SELECT {_OUT_ROW} JOIN page ON page.kind = 'out' AND page.id = m.id"
            if k == "out"
            else f"SELECT {_IN_ROW} JOIN page ON page.kind = 'in' AND page.id = i.id"
            for k in kinds
        )
        rows = self.conn.execute(
            f"WITH page AS (SELECT kind, id, at FROM ({union}) box WHERE {clause} {_ORDER}"
            f" LIMIT ? OFFSET ?) {shown} {_ORDER}",
            (*args, limit, offset),
        ).fetchall()
        return total, [dict(r) for r in rows]

    def mailbox_entry(self, account_id: int, kind: str, entry_id: int) -> dict[str, Any] | None:
        """One message of the mailbox by direction and id."""
        sql = (
            f"SELECT {_OUT_ROW} WHERE m.account_id = ? AND m.id = ?"
            if kind == "out"
            else f"SELECT {_IN_ROW} WHERE i.account_id = ? AND i.id = ?"
        )
        row = self.conn.execute(sql, (account_id, entry_id)).fetchone()
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
