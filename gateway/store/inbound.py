"""Inbound parts and messages, and delivery status reports waiting to be matched to parts"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.store.base import StoreBase, utc_iso


class InboundStore(StoreBase):
    """Inbound parts and messages, and delivery status reports waiting to be matched to parts."""

    def add_inbound_part(
        self,
        *,
        sim_id: int | None,
        originator: str,
        reference: int | None,
        total: int,
        seq: int,
        pdu: str,
        now: datetime,
        anomalies: Sequence[Mapping[str, Any]] = (),
    ) -> int | None:
        """Store one received part durably; return its id, or None if it is a duplicate.

        `anomalies`: what the decoder repaired in its PDU ({code, octet, detail} each).
        """
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO inbound_parts"
                " (sim_id, originator, reference, total, seq, pdu, received_at, anomalies)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sim_id,
                    originator,
                    reference,
                    total,
                    seq,
                    pdu,
                    utc_iso(now),
                    json.dumps(list(anomalies), ensure_ascii=False),
                ),
            )
            return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else None

    def pending_inbound_parts(self) -> list[dict[str, Any]]:
        """Parts stored but not yet part of a complete (or surfaced) inbound message."""
        rows = self.conn.execute(
            "SELECT * FROM inbound_parts WHERE message_id IS NULL ORDER BY id"
        ).fetchall()
        return [dict(r) for r in rows]

    def insert_inbound(
        self,
        fields: Mapping[str, Any],
        part_ids: Sequence[int],
        *,
        now: datetime,
        notify: bool = True,
    ) -> int | None:
        """Store a reassembled (or surfaced incomplete) inbound message and claim its parts;
        `notify=False` for rows that did not come over the air (no reply webhook).

        The message's anomalies are its parts' (each tagged with the part's seq). None, and
        nothing stored, when one of its parts already belongs to a message: stored meanwhile
        by another process (in fleet mode another box restored the same half-received parts,
        or received the rest on the SIM's new box), never twice.
        """
        with self.transaction():
            if part_ids:
                taken = self.conn.execute(
                    "SELECT 1 FROM inbound_parts WHERE message_id IS NOT NULL AND id IN"
                    f" ({', '.join('?' * len(part_ids))}) LIMIT 1",
                    tuple(part_ids),
                ).fetchone()
                if taken is not None:
                    return None
            anomalies: list[dict[str, Any]] = []
            for part_id in part_ids:
                part = self.conn.execute(
                    "SELECT seq, anomalies FROM inbound_parts WHERE id = ?", (part_id,)
                ).fetchone()
                if part is not None:
                    anomalies += [{"seq": part["seq"], **a} for a in json.loads(part["anomalies"])]
            row = {
                **fields,
                "received_at": utc_iso(now),
                "anomalies": json.dumps(anomalies, ensure_ascii=False),
            }
            inbound_id = self._insert("inbound", row)
            self.conn.executemany(
                "UPDATE inbound_parts SET message_id = ? WHERE id = ?",
                [(inbound_id, part_id) for part_id in part_ids],
            )
            if fields.get("sim_id") is not None:
                self.conn.execute(
                    "UPDATE sims SET received_count = received_count + 1 WHERE id = ?",
                    (fields["sim_id"],),
                )
            if notify:
                self._inbound_stored(inbound_id)
        return inbound_id

    def inbound(self, inbound_id: int) -> dict[str, Any] | None:
        """Return one inbound message row."""
        row = self.conn.execute("SELECT * FROM inbound WHERE id = ?", (inbound_id,)).fetchone()
        return dict(row) if row is not None else None

    def account_for_inbound(self, sim_id: int | None, originator: str) -> int | None:
        """Which account a message from `originator` on `sim_id` belongs to.

        The account that last sent to that number from that SIM (a reply comes back to the
        conversation), else the account the SIM is granted to, else the first account (a
        single-tenant appliance).
        """
        queries: list[tuple[str, tuple[Any, ...]]] = []
        if sim_id is not None:
            queries.append(
                (
                    "SELECT m.account_id FROM parts p JOIN messages m ON m.id = p.message_id"
                    " WHERE p.sim_id = ? AND m.recipient = ? ORDER BY p.id DESC LIMIT 1",
                    (sim_id, originator),
                )
            )
            queries.append(("SELECT MIN(account_id) FROM account_sims WHERE sim_id = ?", (sim_id,)))
        queries.append(("SELECT MIN(id) FROM accounts", ()))
        for sql, args in queries:
            row = self.conn.execute(sql, args).fetchone()
            if row is not None and row[0] is not None:
                return int(row[0])
        return None

    def list_inbound(
        self, account_id: int, *, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """An account's inbound messages, newest first."""
        rows = self.conn.execute(
            "SELECT * FROM inbound WHERE account_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (account_id, limit, offset),
        ).fetchall()
        return [dict(r) for r in rows]

    def inbound_page(
        self,
        account_id: int,
        *,
        after_id: int = 0,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """An account's inbound messages with id > after_id and received in [start, end),
        oldest first."""
        where = ["account_id = ?", "id > ?"]
        args: list[Any] = [account_id, after_id]
        if start is not None:
            where.append("received_at >= ?")
            args.append(utc_iso(start))
        if end is not None:
            where.append("received_at < ?")
            args.append(utc_iso(end))
        rows = self.conn.execute(
            f"SELECT * FROM inbound WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
            (*args, limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def read_marker(self, account_id: int, reader: str) -> int:
        """The last inbound id `reader` (an API's "since the last check") handed the account."""
        row = self.conn.execute(
            "SELECT inbound_id FROM read_markers WHERE account_id = ? AND reader = ?",
            (account_id, reader),
        ).fetchone()
        return int(row[0]) if row is not None else 0

    def advance_read_marker(
        self, account_id: int, reader: str, inbound_id: int, *, now: datetime
    ) -> None:
        """Move `reader`'s marker forward to `inbound_id` (never back)."""
        with self.transaction():
            self.conn.execute(
                "INSERT INTO read_markers (account_id, reader, inbound_id, updated_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (account_id, reader) DO UPDATE SET"
                " inbound_id = MAX(read_markers.inbound_id, excluded.inbound_id),"
                " updated_at = excluded.updated_at",
                (account_id, reader, inbound_id, utc_iso(now)),
            )

    def report_candidates(self, sim_id: int, tp_mr: int, since: datetime) -> list[dict[str, Any]]:
        """Parts of `sim_id` given TP-MR `tp_mr` whose AT+CMGS started since `since`."""
        rows = self.conn.execute(
            "SELECT p.id, p.sim_id, p.tp_mr, p.sending_at, p.state, m.recipient FROM parts p"
            " JOIN messages m ON m.id = p.message_id"
            " WHERE p.sim_id = ? AND p.tp_mr = ? AND p.sending_at >= ?",
            (sim_id, tp_mr, utc_iso(since)),
        ).fetchall()
        return [dict(r) for r in rows]

    def part_with_recipient(self, part_id: int) -> dict[str, Any] | None:
        """One part joined with its message's recipient."""
        row = self.conn.execute(
            "SELECT p.*, m.recipient FROM parts p JOIN messages m ON m.id = p.message_id"
            " WHERE p.id = ?",
            (part_id,),
        ).fetchone()
        return dict(row) if row is not None else None

    def unmatched_reports(self, sim_id: int, tp_mr: int, since: datetime) -> list[dict[str, Any]]:
        """Reports from `sim_id` for `tp_mr` received since `since` that matched no part yet."""
        rows = self.conn.execute(
            "SELECT * FROM delivery_reports WHERE part_id IS NULL AND sim_id = ? AND tp_mr = ?"
            " AND received_at >= ? ORDER BY id",
            (sim_id, tp_mr, utc_iso(since)),
        ).fetchall()
        return [dict(r) for r in rows]

    def link_report(self, report_id: int, part_id: int) -> None:
        """Attach a stored report to the part it belongs to."""
        with self.transaction():
            self.conn.execute(
                "UPDATE delivery_reports SET part_id = ? WHERE id = ?", (part_id, report_id)
            )

    def insert_delivery_report(self, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Keep every status report received, matched or not."""
        row = {**fields, "received_at": utc_iso(now)}
        with self.transaction():
            return self._insert("delivery_reports", row)
