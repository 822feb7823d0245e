"""The SQLite store: one file, WAL, one writer, every state change checked against the lifecycle."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from gateway.migrations import migrate
from gateway.models import PartState, check_transition, rollup

DATABASE_NAME = "smsgw.sqlite3"
BUSY_TIMEOUT_MS = 5000


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as a sortable UTC ISO-8601 string."""
    if moment.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


# A part in one of these states has not reached the network; giving up on it refunds its credit.
_NOT_LEFT = frozenset({PartState.ACCEPTED, PartState.QUEUED, PartState.SENDING})
_GIVEN_UP = frozenset({PartState.FAILED, PartState.EXPIRED, PartState.CANCELLED})


class StaleStateError(RuntimeError):
    """A compare-and-set state change found the row in another state than expected."""


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """Ids of a message made durable by accept_message()."""

    message_id: int
    part_ids: tuple[int, ...]


class Store:
    """Synchronous store; the daemon calls it from a single writer thread."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def open(cls, path: Path | str) -> Store:
        """Open (creating and migrating) the database at `path`, a file or a data directory."""
        target = Path(path)
        if target.is_dir():
            target = target / DATABASE_NAME
        target.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so durability points are explicit.
        conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: with WAL, NORMAL may lose the last commits on power loss; an accepted message
        # must survive a power cut once the API has answered.
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn)

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block in one IMMEDIATE transaction; committed (durable) when the block exits."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def integrity_check(self) -> list[str]:
        """Return SQLite's integrity_check problems (empty when the file is sound)."""
        rows = self.conn.execute("PRAGMA integrity_check").fetchall()
        problems = [str(r[0]) for r in rows]
        return [] if problems == ["ok"] else problems

    def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        """INSERT one row given as a column -> value mapping (inside the caller's transaction
        if there is one); return its id."""
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return int(cursor.lastrowid or 0)

    # -- accounts -------------------------------------------------------------------------

    def insert_account(self, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Insert an account row and return its id."""
        row = dict(fields)
        row["created_at"] = utc_iso(now)
        with self.transaction():
            return self._insert("accounts", row)

    def account(self, account_id: int) -> dict[str, Any] | None:
        """Return one account row as a dict."""
        row = self.conn.execute("SELECT * FROM accounts WHERE id = ?", (account_id,)).fetchone()
        return dict(row) if row is not None else None

    # -- SIMs -----------------------------------------------------------------------------

    def bind_sim(
        self, *, iccid: str | None, imsi: str | None, msisdn: str = "", now: datetime
    ) -> int:
        """Find or create the row of this SIM card (by ICCID, else IMSI); return its id."""
        if not iccid and not imsi:
            raise ValueError("a SIM is bound by ICCID or IMSI")
        with self.transaction():
            row = None
            if iccid:
                row = self.conn.execute("SELECT id FROM sims WHERE iccid = ?", (iccid,)).fetchone()
            if row is None and imsi:
                row = self.conn.execute(
                    "SELECT id FROM sims WHERE imsi = ? AND (iccid IS NULL OR iccid = ?)",
                    (imsi, iccid or ""),
                ).fetchone()
            if row is not None:
                sim_id = int(row[0])
                self.conn.execute(
                    "UPDATE sims SET iccid = COALESCE(iccid, ?), imsi = COALESCE(?, imsi),"
                    " msisdn = CASE WHEN ? != '' THEN ? ELSE msisdn END, last_seen = ?"
                    " WHERE id = ?",
                    (iccid or None, imsi or None, msisdn, msisdn, utc_iso(now), sim_id),
                )
                return sim_id
            cursor = self.conn.execute(
                "INSERT INTO sims (iccid, imsi, msisdn, state, last_seen, created_at)"
                " VALUES (?, ?, ?, 'present', ?, ?)",
                (iccid or None, imsi or None, msisdn, utc_iso(now), utc_iso(now)),
            )
            return int(cursor.lastrowid or 0)

    def bind_modem(
        self,
        *,
        imei: str,
        manufacturer: str,
        model: str,
        revision: str,
        port: str,
        sim_id: int | None,
        now: datetime,
    ) -> int:
        """Record a modem by IMEI (its port is only a last-seen hint) and the SIM inside it."""
        stamp = utc_iso(now)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO modems (imei, manufacturer, model, revision, last_port, state,"
                " last_seen) VALUES (?, ?, ?, ?, ?, 'ready', ?) ON CONFLICT(imei) DO UPDATE SET"
                " manufacturer = excluded.manufacturer, model = excluded.model,"
                " revision = excluded.revision, last_port = excluded.last_port,"
                " state = 'ready', last_seen = excluded.last_seen",
                (imei, manufacturer, model, revision, port, stamp),
            )
            modem_id = int(
                self.conn.execute("SELECT id FROM modems WHERE imei = ?", (imei,)).fetchone()[0]
            )
            if sim_id is not None:
                self.conn.execute(
                    "UPDATE sims SET modem_id = ?, state = 'present' WHERE id = ?",
                    (modem_id, sim_id),
                )
        return modem_id

    def set_modem_state(self, modem_id: int, state: str, *, now: datetime) -> None:
        """Mark a modem ready / gone; its SIM follows."""
        with self.transaction():
            self.conn.execute(
                "UPDATE modems SET state = ?, last_seen = ? WHERE id = ?",
                (state, utc_iso(now), modem_id),
            )
            self.conn.execute(
                "UPDATE sims SET state = ? WHERE modem_id = ?",
                ("present" if state == "ready" else "gone", modem_id),
            )

    def sim(self, sim_id: int) -> dict[str, Any] | None:
        """Return one SIM row as a dict."""
        row = self.conn.execute("SELECT * FROM sims WHERE id = ?", (sim_id,)).fetchone()
        return dict(row) if row is not None else None

    # -- messages -------------------------------------------------------------------------

    def accept_message(
        self,
        *,
        account_id: int,
        recipient: str,
        body: str,
        encoding: str,
        parts: int,
        sender: str = "",
        batch_id: int | None = None,
        send_at: datetime | None = None,
        status_report: bool = True,
        flash: bool = False,
        charge: int = 0,
        extra: Mapping[str, Any] | None = None,
        now: datetime,
    ) -> AcceptedMessage:
        """Make a message and its parts durable in one transaction, charging credits with it."""
        with self.transaction():
            return self._insert_message(
                account_id=account_id, recipient=recipient, body=body, encoding=encoding,
                parts=parts, sender=sender, batch_id=batch_id, send_at=send_at,
                status_report=status_report, flash=flash, charge=charge, extra=extra, now=now,
            )  # fmt: skip

    def _insert_message(
        self,
        *,
        account_id: int,
        recipient: str,
        body: str,
        encoding: str,
        parts: int,
        sender: str,
        batch_id: int | None,
        send_at: datetime | None,
        status_report: bool,
        flash: bool,
        charge: int,
        extra: Mapping[str, Any] | None,
        now: datetime,
    ) -> AcceptedMessage:
        """Insert a message, its parts and its charge (inside the caller's transaction)."""
        if parts < 1:
            raise ValueError("a message has at least one part")
        stamp = utc_iso(now)
        state = PartState.ACCEPTED if send_at is not None and send_at > now else PartState.QUEUED
        cursor = self.conn.execute(
            "INSERT INTO messages (account_id, batch_id, sender, recipient, body, encoding,"
            " flash, status_report, units, state, send_at, extra, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                account_id,
                batch_id,
                sender,
                recipient,
                body,
                encoding,
                int(flash),
                int(status_report),
                parts,
                state.value,
                utc_iso(send_at) if send_at is not None else None,
                json.dumps(dict(extra or {})),
                stamp,
                stamp,
            ),
        )
        message_id = int(cursor.lastrowid or 0)
        part_ids = []
        for seq in range(1, parts + 1):
            part = self.conn.execute(
                "INSERT INTO parts (message_id, seq, state) VALUES (?, ?, ?)",
                (message_id, seq, state.value),
            )
            part_ids.append(int(part.lastrowid or 0))
        if charge:
            self.conn.execute(
                "UPDATE accounts SET credits = credits - ? WHERE id = ? AND unlimited = 0",
                (charge, account_id),
            )
            self.conn.execute(
                "INSERT INTO credits_ledger (account_id, delta, reason, message_id, created_at)"
                " VALUES (?, ?, 'send', ?, ?)",
                (account_id, -charge, message_id, stamp),
            )
        return AcceptedMessage(message_id, tuple(part_ids))

    def message(self, message_id: int) -> dict[str, Any] | None:
        """Return one message row as a dict."""
        row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return dict(row) if row is not None else None

    def parts(self, message_id: int) -> list[dict[str, Any]]:
        """Return a message's parts in order."""
        rows = self.conn.execute(
            "SELECT * FROM parts WHERE message_id = ? ORDER BY seq", (message_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def transition_part(
        self,
        part_id: int,
        expected: PartState,
        target: PartState,
        *,
        now: datetime,
        fields: Mapping[str, Any] | None = None,
    ) -> PartState:
        """Compare-and-set one part's state (and extra columns); return the message's new state."""
        check_transition(expected, target)
        updates = dict(fields or {})
        stamp = utc_iso(now)
        time_column = {
            PartState.SENDING: "sending_at",
            PartState.SENT: "sent_at",
            PartState.QUEUED: None,  # a retry: it is not done, and keeps its history
        }.get(target, "done_at")
        if time_column is not None:
            updates.setdefault(time_column, stamp)
        assignments = ", ".join(["state = ?", *(f"{column} = ?" for column in updates)])
        with self.transaction():
            cursor = self.conn.execute(
                f"UPDATE parts SET {assignments} WHERE id = ? AND state = ?",
                (target.value, *updates.values(), part_id, expected.value),
            )
            if cursor.rowcount != 1:
                raise StaleStateError(f"part {part_id} is no longer {expected.value}")
            counter = {PartState.SENT: "sent_count", PartState.FAILED: "failed_count"}.get(target)
            if counter is not None:
                self.conn.execute(
                    f"UPDATE sims SET {counter} = {counter} + 1 WHERE id ="
                    " (SELECT sim_id FROM parts WHERE id = ?)",
                    (part_id,),
                )
            if expected in _NOT_LEFT and target in _GIVEN_UP:
                # The part never reached the network: its credit goes back.
                message_id, account_id = self.conn.execute(
                    "SELECT m.id, m.account_id FROM parts p JOIN messages m ON m.id = p.message_id"
                    " WHERE p.id = ?",
                    (part_id,),
                ).fetchone()
                self._refund(int(account_id), int(message_id), 1, target.value, stamp)
            return self._rollup_message_of(part_id, stamp)

    def _rollup_message_of(self, part_id: int, stamp: str) -> PartState:
        message_id = self.conn.execute(
            "SELECT message_id FROM parts WHERE id = ?", (part_id,)
        ).fetchone()[0]
        states = [
            PartState(r[0])
            for r in self.conn.execute(
                "SELECT state FROM parts WHERE message_id = ?", (message_id,)
            )
        ]
        state = rollup(states)
        self.conn.execute(
            "UPDATE messages SET state = ?, updated_at = ? WHERE id = ?",
            (state.value, stamp, message_id),
        )
        return state

    def recover_after_crash(self, *, now: datetime) -> list[int]:
        """Mark parts left in SENDING by a crash as UNCERTAIN; return their ids.

        A part in SENDING may or may not have reached the network: resending it could deliver it
        twice, so it is reported as uncertain and only requeued if the account opted in.
        """
        return self._sending_to_uncertain(None, "interrupted during AT+CMGS", now)

    def _sending_to_uncertain(self, sim_id: int | None, reason: str, now: datetime) -> list[int]:
        """Turn SENDING parts (of one SIM, or all) into UNCERTAIN; return their ids."""
        if sim_id is None:
            select: tuple[str, tuple[Any, ...]] = (
                "SELECT id FROM parts WHERE state = ?",
                (PartState.SENDING.value,),
            )
        else:
            select = (
                "SELECT id FROM parts WHERE state = ? AND sim_id = ?",
                (PartState.SENDING.value, sim_id),
            )
        return self._move_parts(
            select, PartState.SENDING, PartState.UNCERTAIN, reason, now, stamp_done=True
        )

    def _move_parts(
        self,
        select: tuple[str, tuple[Any, ...]],
        source: PartState,
        target: PartState,
        reason: str,
        now: datetime,
        *,
        stamp_done: bool,
    ) -> list[int]:
        """Move every part the query selects (all in `source`) to `target` in one transaction,
        rolling their messages up; return the part ids."""
        stamp = utc_iso(now)
        check_transition(source, target)
        done_column = ", done_at = ?" if stamp_done else ""
        with self.transaction():
            ids = [int(r[0]) for r in self.conn.execute(*select)]
            for part_id in ids:
                self.conn.execute(
                    f"UPDATE parts SET state = ?, error = ?{done_column} WHERE id = ?",
                    (target.value, reason, *((stamp,) if stamp_done else ()), part_id),
                )
                self._rollup_message_of(part_id, stamp)
        return ids

    def insert_batch(self, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Insert a batch (a bulk send or a scheduled campaign) and return its id."""
        row = {**fields, "created_at": utc_iso(now)}
        with self.transaction():
            return self._insert("batches", row)

    def promote_due(self, now: datetime) -> int:
        """Move scheduled (accepted) messages whose time has come to the queue; return count."""
        stamp = utc_iso(now)
        check_transition(PartState.ACCEPTED, PartState.QUEUED)
        with self.transaction():
            ids = [
                int(r[0])
                for r in self.conn.execute(
                    "SELECT m.id FROM messages m LEFT JOIN batches b ON b.id = m.batch_id"
                    " WHERE m.state = 'accepted' AND m.send_at <= ?"
                    " AND (b.state IS NULL OR b.state = 'active')",
                    (stamp,),
                )
            ]
            for message_id in ids:
                self.conn.execute(
                    "UPDATE parts SET state = 'queued' WHERE message_id = ? AND state = 'accepted'",
                    (message_id,),
                )
                self.conn.execute(
                    "UPDATE messages SET state = 'queued', updated_at = ? WHERE id = ?",
                    (stamp, message_id),
                )
        return len(ids)

    def due_messages(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        """Queued messages with a part that may be sent at `now`, oldest first (paused or
        cancelled batches hold theirs back)."""
        rows = self.conn.execute(
            "SELECT m.*, b.rotate AS batch_rotate FROM messages m"
            " LEFT JOIN batches b ON b.id = m.batch_id"
            " WHERE m.state = 'queued' AND (b.state IS NULL OR b.state = 'active') AND EXISTS ("
            " SELECT 1 FROM parts p WHERE p.message_id = m.id AND p.state = 'queued'"
            " AND (p.next_attempt_at IS NULL OR p.next_attempt_at <= ?))"
            " ORDER BY m.id LIMIT ?",
            (utc_iso(now), limit),
        ).fetchall()
        return [dict(r) for r in rows]

    def cancel_message(self, message_id: int, *, now: datetime) -> int:
        """Cancel parts not yet on the wire, refunding one credit each; return the count."""
        stamp = utc_iso(now)
        with self.transaction():
            message = self.conn.execute(
                "SELECT account_id FROM messages WHERE id = ?", (message_id,)
            ).fetchone()
            if message is None:
                raise KeyError(f"no message {message_id}")
            cancellable = [
                (int(r[0]), PartState(r[1]))
                for r in self.conn.execute(
                    "SELECT id, state FROM parts WHERE message_id = ? AND state IN (?, ?)",
                    (message_id, PartState.ACCEPTED.value, PartState.QUEUED.value),
                )
            ]
            for part_id, state in cancellable:
                check_transition(state, PartState.CANCELLED)
                self.conn.execute(
                    "UPDATE parts SET state = 'cancelled', done_at = ? WHERE id = ?",
                    (stamp, part_id),
                )
            if cancellable:
                self._refund(int(message[0]), message_id, len(cancellable), "cancelled", stamp)
                self._rollup_message_of(cancellable[0][0], stamp)
        return len(cancellable)

    def _refund(
        self, account_id: int, message_id: int, units: int, reason: str, stamp: str
    ) -> None:
        """Give back credits for parts that never left (inside the caller's transaction)."""
        self.conn.execute(
            "UPDATE accounts SET credits = credits + ? WHERE id = ? AND unlimited = 0",
            (units, account_id),
        )
        self.conn.execute(
            "INSERT INTO credits_ledger (account_id, delta, reason, message_id, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (account_id, units, f"refund: {reason}", message_id, stamp),
        )

    # -- batches and recurring series -------------------------------------------------------

    def batch(self, batch_id: int) -> dict[str, Any] | None:
        """One batch row."""
        row = self.conn.execute("SELECT * FROM batches WHERE id = ?", (batch_id,)).fetchone()
        return dict(row) if row is not None else None

    def set_batch_state(self, batch_id: int, state: str) -> None:
        """Pause ('paused'), resume ('active'), finish ('done') or cancel ('cancelled') a batch."""
        if state not in ("active", "paused", "cancelled", "done"):
            raise ValueError(f"unknown batch state {state!r}")
        with self.transaction():
            self.conn.execute("UPDATE batches SET state = ? WHERE id = ?", (state, batch_id))

    def batch_message_ids(self, batch_id: int) -> list[int]:
        """Ids of a batch's messages."""
        rows = self.conn.execute(
            "SELECT id FROM messages WHERE batch_id = ? ORDER BY id", (batch_id,)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def modify_scheduled(
        self,
        batch_id: int,
        *,
        body: str | None,
        encoding: str | None,
        units: int | None,
        send_at: datetime | None,
        now: datetime,
    ) -> int | None:
        """Change the text and/or time of a batch's messages that are still scheduled, in one
        transaction, charging or refunding the difference in parts; returns how many messages
        changed, or None if the account cannot pay for the longer text."""
        stamp = utc_iso(now)
        with self.transaction():
            batch = self.conn.execute(
                "SELECT account_id FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            if batch is None:
                raise KeyError(f"no batch {batch_id}")
            account_id = int(batch[0])
            rows = self.conn.execute(
                "SELECT id, units FROM messages WHERE batch_id = ? AND state = 'accepted'",
                (batch_id,),
            ).fetchall()
            delta = sum((units - int(r[1])) for r in rows) if units is not None else 0
            account = self.conn.execute(
                "SELECT credits, unlimited FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            if delta > 0 and not account[1] and account[0] < delta:
                return None
            for message_id, old_units in ((int(r[0]), int(r[1])) for r in rows):
                if body is not None and units is not None and encoding is not None:
                    self.conn.execute(
                        "UPDATE messages SET body = ?, encoding = ?, units = ?, updated_at = ?"
                        " WHERE id = ?",
                        (body, encoding, units, stamp, message_id),
                    )
                    if units != old_units:
                        self.conn.execute("DELETE FROM parts WHERE message_id = ?", (message_id,))
                        self.conn.executemany(
                            "INSERT INTO parts (message_id, seq, state) VALUES (?, ?, 'accepted')",
                            [(message_id, seq) for seq in range(1, units + 1)],
                        )
                if send_at is not None:
                    self.conn.execute(
                        "UPDATE messages SET send_at = ?, updated_at = ? WHERE id = ?",
                        (utc_iso(send_at), stamp, message_id),
                    )
            if send_at is not None:
                self.conn.execute(
                    "UPDATE batches SET send_at = ? WHERE id = ?", (utc_iso(send_at), batch_id)
                )
            if delta:
                self.conn.execute(
                    "UPDATE accounts SET credits = credits - ? WHERE id = ? AND unlimited = 0",
                    (delta, account_id),
                )
                self.conn.execute(
                    "INSERT INTO credits_ledger (account_id, delta, reason, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (account_id, -delta, f"batch {batch_id} modified", stamp),
                )
        return len(rows)

    def update_series(self, batch_id: int, *, text: str | None, next_run: datetime | None) -> None:
        """Change the text future runs of a series send, and/or when the next one happens."""
        with self.transaction():
            if text is not None:
                row = self.conn.execute(
                    "SELECT template FROM batches WHERE id = ?", (batch_id,)
                ).fetchone()
                template = json.loads(row[0])
                template["text"] = text
                self.conn.execute(
                    "UPDATE batches SET template = ? WHERE id = ?",
                    (json.dumps(template), batch_id),
                )
            if next_run is not None:
                self.conn.execute(
                    "UPDATE batches SET next_run = ? WHERE id = ?", (utc_iso(next_run), batch_id)
                )

    def due_series(self, now: datetime) -> list[dict[str, Any]]:
        """Active recurring series whose next run has come."""
        rows = self.conn.execute(
            "SELECT * FROM batches WHERE state = 'active' AND next_run IS NOT NULL"
            " AND next_run <= ? ORDER BY next_run",
            (utc_iso(now),),
        ).fetchall()
        return [dict(r) for r in rows]

    def record_series_run(
        self, batch_id: int, next_run: datetime | None, *, error: str = ""
    ) -> None:
        """Advance a series to its next run (None: finished)."""
        with self.transaction():
            self.conn.execute(
                "UPDATE batches SET runs = runs + 1, next_run = ?, error = ?,"
                " state = CASE WHEN ? IS NULL THEN 'done' ELSE state END WHERE id = ?",
                (
                    utc_iso(next_run) if next_run is not None else None,
                    error,
                    None if next_run is None else 1,
                    batch_id,
                ),
            )

    # -- inbound ----------------------------------------------------------------------------

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
    ) -> int | None:
        """Store one received part durably; return its id, or None if it is a duplicate."""
        with self.transaction():
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO inbound_parts"
                " (sim_id, originator, reference, total, seq, pdu, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (sim_id, originator, reference, total, seq, pdu, utc_iso(now)),
            )
            return int(cursor.lastrowid or 0) if cursor.rowcount == 1 else None

    def pending_inbound_parts(self) -> list[dict[str, Any]]:
        """Parts stored but not yet part of a complete (or surfaced) inbound message."""
        rows = self.conn.execute(
            "SELECT * FROM inbound_parts WHERE message_id IS NULL ORDER BY id"
        ).fetchall()
        return [dict(r) for r in rows]

    def insert_inbound(
        self, fields: Mapping[str, Any], part_ids: Sequence[int], *, now: datetime
    ) -> int:
        """Store a reassembled (or surfaced incomplete) inbound message and claim its parts."""
        row = {**fields, "received_at": utc_iso(now)}
        with self.transaction():
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

    def grant_sim(self, account_id: int, sim_id: int) -> None:
        """Let an account send from (and receive on) a SIM."""
        with self.transaction():
            self.conn.execute(
                "INSERT OR IGNORE INTO account_sims (account_id, sim_id) VALUES (?, ?)",
                (account_id, sim_id),
            )

    def sims_of_account(self, account_id: int) -> list[int]:
        """SIMs granted to an account (empty: it may use every SIM)."""
        rows = self.conn.execute(
            "SELECT sim_id FROM account_sims WHERE account_id = ? ORDER BY sim_id", (account_id,)
        ).fetchall()
        return [int(r[0]) for r in rows]

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

    def is_opted_out(self, account_id: int, number: str) -> bool:
        """Whether a number has opted out of an account's messages."""
        row = self.conn.execute(
            "SELECT 1 FROM opt_outs WHERE account_id = ? AND number = ?", (account_id, number)
        ).fetchone()
        return row is not None

    # -- delivery reports ---------------------------------------------------------------------

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

    # -- listings -----------------------------------------------------------------------------

    def list_messages(
        self,
        account_id: int,
        *,
        state: str | None = None,
        batch_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """An account's messages, newest first, optionally filtered."""
        where = ["account_id = ?"]
        args: list[Any] = [account_id]
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if batch_id is not None:
            where.append("batch_id = ?")
            args.append(batch_id)
        rows = self.conn.execute(
            f"SELECT * FROM messages WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [dict(r) for r in rows]

    def list_inbound(
        self, account_id: int, *, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """An account's inbound messages, newest first."""
        rows = self.conn.execute(
            "SELECT * FROM inbound WHERE account_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (account_id, limit, offset),
        ).fetchall()
        return [dict(r) for r in rows]

    def list_sims(self) -> list[dict[str, Any]]:
        """Every SIM with its modem (if any)."""
        rows = self.conn.execute(
            "SELECT s.*, m.imei, m.model, m.last_port, m.state AS modem_state FROM sims s"
            " LEFT JOIN modems m ON m.id = s.modem_id ORDER BY s.id"
        ).fetchall()
        return [dict(r) for r in rows]

    def account_by_api_key(self, api_key: str) -> dict[str, Any] | None:
        """The account an API key belongs to."""
        row = self.conn.execute("SELECT * FROM accounts WHERE api_key = ?", (api_key,)).fetchone()
        return dict(row) if row is not None else None

    def account_by_name(self, sub_account: str) -> dict[str, Any] | None:
        """An account by its sub-account name."""
        row = self.conn.execute(
            "SELECT * FROM accounts WHERE sub_account = ?", (sub_account,)
        ).fetchone()
        return dict(row) if row is not None else None

    def requeue_uncertain(self, *, now: datetime) -> list[int]:
        """Requeue uncertain parts of accounts that opted into resending them (they accept that
        a recipient may get a part twice rather than never); return the part ids."""
        select = (
            "SELECT p.id FROM parts p JOIN messages m ON m.id = p.message_id"
            " JOIN accounts a ON a.id = m.account_id"
            " WHERE p.state = ? AND a.resend_uncertain = 1",
            (PartState.UNCERTAIN.value,),
        )
        return self._move_parts(
            select, PartState.UNCERTAIN, PartState.QUEUED, "requeued after uncertain send", now,
            stamp_done=False,
        )  # fmt: skip

    # -- administration (CLI) ----------------------------------------------------------------

    def recent_send_times(self, sim_id: int, since: datetime) -> list[datetime]:
        """When this SIM started each AT+CMGS since `since` (to rebuild its pacing)."""
        rows = self.conn.execute(
            "SELECT sending_at FROM parts WHERE sim_id = ? AND sending_at >= ? ORDER BY sending_at",
            (sim_id, utc_iso(since)),
        ).fetchall()
        return [datetime.fromisoformat(r[0]) for r in rows]

    def last_sims_by_recipient(self, since: datetime) -> dict[tuple[int, str], int]:
        """(account, recipient) -> the SIM that last sent to them since `since` (sticky routes
        rebuilt at start, so a conversation keeps its number across restarts)."""
        rows = self.conn.execute(
            "SELECT m.account_id, m.recipient, p.sim_id FROM parts p"
            " JOIN messages m ON m.id = p.message_id"
            " WHERE p.sim_id IS NOT NULL AND p.sending_at >= ? ORDER BY p.sending_at",
            (utc_iso(since),),
        ).fetchall()
        return {(int(r[0]), str(r[1])): int(r[2]) for r in rows}  # later sends win

    def set_sim_number(self, iccid: str, msisdn: str) -> bool:
        """Set the long code of the SIM with this ICCID (when the SIM cannot tell its own)."""
        with self.transaction():
            cursor = self.conn.execute(
                "UPDATE sims SET msisdn = ? WHERE iccid = ?", (msisdn, iccid)
            )
        return cursor.rowcount == 1

    def set_sim_limits(self, iccid: str, limits: Mapping[str, float | int | None]) -> bool:
        """Change a SIM's throttle interval and caps (columns of the sims table)."""
        allowed = {
            "throttle_interval",
            "cap_per_minute",
            "cap_per_hour",
            "cap_per_day",
            "cap_recipients_per_day",
        }
        if not limits or not set(limits) <= allowed:
            raise ValueError(f"limits must be among {sorted(allowed)}")
        assignments = ", ".join(f"{column} = ?" for column in limits)
        with self.transaction():
            cursor = self.conn.execute(
                f"UPDATE sims SET {assignments} WHERE iccid = ?", (*limits.values(), iccid)
            )
        return cursor.rowcount == 1

    def list_modems(self) -> list[dict[str, Any]]:
        """Every modem seen, by IMEI."""
        return [dict(r) for r in self.conn.execute("SELECT * FROM modems ORDER BY id")]

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

    def backup(self, destination: Path, progress: Callable[[int, int], None] | None = None) -> None:
        """Copy the live database to `destination` with SQLite's online backup (consistent even
        while the daemon writes)."""
        target = sqlite3.connect(destination)
        try:
            self.conn.backup(
                target,
                pages=256,
                progress=(lambda _status, remaining, total: progress(total - remaining, total))
                if progress is not None
                else None,
            )
        finally:
            target.close()

    def count_by_state(self, table: str = "parts") -> dict[str, int]:
        """Count rows per state in `parts` or `messages`."""
        if table not in ("parts", "messages"):
            raise ValueError(f"no state column on {table!r}")
        rows = self.conn.execute(f"SELECT state, COUNT(*) FROM {table} GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def table_names(self) -> Sequence[str]:
        """Names of the tables in the schema."""
        return self.db.table_names()

    # -- provider dialects (issue 7): batches in one go, contacts, groups, appointments, OTPs,
    # -- and the message filters of BestSMS fetch_sms / stop_sms / delete_sms ---------------

    def accept_batches(
        self,
        batches: Sequence[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]], int]],
        *,
        now: datetime,
    ) -> list[tuple[int, list[int]] | None]:
        """Insert batches, each with its messages and charges, in ONE transaction (one fsync
        for many requests); a batch whose account lacks `units` credits is skipped (None).

        Each message mapping holds accept_message's keyword arguments except batch_id/now.
        """
        results: list[tuple[int, list[int]] | None] = []
        with self.transaction():
            for batch, messages, units in batches:
                account = self.conn.execute(
                    "SELECT credits, unlimited FROM accounts WHERE id = ?", (batch["account_id"],)
                ).fetchone()
                if account is None or (not account["unlimited"] and account["credits"] < units):
                    results.append(None)
                    continue
                batch_id = self._insert("batches", {**batch, "created_at": utc_iso(now)})
                ids = [
                    self._insert_message(**{**m, "batch_id": batch_id}, now=now).message_id
                    for m in messages
                ]
                results.append((batch_id, ids))
        return results

    def set_credentials(
        self, account_id: int, *, password_hash: str, api_key: str, token: str
    ) -> None:
        """Replace an account's stored (hashed) credentials."""
        with self.transaction():
            self.conn.execute(
                "UPDATE accounts SET password_hash = ?, api_key = ?, token = ? WHERE id = ?",
                (password_hash, api_key, token, account_id),
            )

    def set_batch_throttle(self, batch_id: int, seconds: float) -> None:
        """Pace a batch's sends at one per `seconds` per SIM."""
        with self.transaction():
            self.conn.execute(
                "UPDATE batches SET throttle_interval = ? WHERE id = ?", (seconds, batch_id)
            )

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

    def account_sim_numbers(self, account_id: int) -> list[dict[str, Any]]:
        """SIMs an account may send from (all SIMs when none is granted), with their numbers."""
        rows = self.conn.execute(
            "SELECT s.id, s.msisdn, s.state FROM sims s WHERE s.id IN"
            " (SELECT sim_id FROM account_sims WHERE account_id = ?)"
            " OR NOT EXISTS (SELECT 1 FROM account_sims WHERE account_id = ?) ORDER BY s.id",
            (account_id, account_id),
        ).fetchall()
        return [dict(r) for r in rows]

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
            args.extend([f"%{_like(term)}%"] * 3)
        if name is not None:
            where.append("(c.first_name || ' ' || c.last_name) LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(name)}%")
        if email is not None:
            where.append("c.email LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(email)}%")
        if number_like is not None:
            where.append("c.number LIKE ? ESCAPE '\\'")
            args.append(f"%{_like(number_like)}%")
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

    def _message_filter(self, account_id: int, q: MessageQuery) -> tuple[str, list[Any]]:
        where = ["m.account_id = ?"]
        args: list[Any] = [account_id]
        if q.batch_id is not None:
            where.append("m.batch_id = ?")
            args.append(q.batch_id)
        if q.ids is not None:
            where.append(f"m.id IN ({', '.join('?' * len(q.ids)) or 'NULL'})")
            args.extend(q.ids)
        if q.states is not None:
            where.append(f"m.state IN ({', '.join('?' * len(q.states)) or 'NULL'})")
            args.extend(q.states)
        if q.flash is not None:
            where.append("m.flash = ?")
            args.append(int(q.flash))
        if q.recipient is not None:
            where.append("m.recipient = ?")
            args.append(q.recipient)
        if q.sender is not None:
            where.append(
                "(m.sender = ? OR json_extract(m.extra, '$.sender_id') = ? OR EXISTS (SELECT 1"
                " FROM parts p JOIN sims s ON s.id = p.sim_id WHERE p.message_id = m.id"
                " AND s.msisdn = ?))"
            )
            args.extend([q.sender] * 3)
        for term in q.terms:
            where.append(
                "(m.recipient LIKE ? ESCAPE '\\' OR m.body LIKE ? ESCAPE '\\'"
                " OR m.sender LIKE ? ESCAPE '\\'"
                " OR COALESCE(json_extract(m.extra, '$.sender_id'), '') LIKE ? ESCAPE '\\')"
            )
            args.extend([f"%{_like(term)}%"] * 4)
        if q.start is not None:
            where.append("COALESCE(m.send_at, m.created_at) >= ?")
            args.append(utc_iso(q.start))
        if q.end is not None:
            where.append("COALESCE(m.send_at, m.created_at) <= ?")
            args.append(utc_iso(q.end))
        return " AND ".join(where), args

    def query_messages(
        self, account_id: int, q: MessageQuery, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page newest first) of an account's messages matching `q`, each with the
        number of the SIM it went from, its first send time, report status, errors and the
        contact it went to."""
        clause, args = self._message_filter(account_id, q)
        total = int(
            self.conn.execute(f"SELECT COUNT(*) FROM messages m WHERE {clause}", args).fetchone()[0]
        )
        rows = self.conn.execute(
            "SELECT m.*, b.created_at AS batch_created_at,"
            " (SELECT s.msisdn FROM parts p JOIN sims s ON s.id = p.sim_id"
            "  WHERE p.message_id = m.id ORDER BY p.seq LIMIT 1) AS sim_msisdn,"
            " (SELECT MIN(p.sent_at) FROM parts p WHERE p.message_id = m.id) AS first_sent_at,"
            " (SELECT MAX(p.report_status) FROM parts p WHERE p.message_id = m.id"
            "  AND p.state = m.state) AS report_status,"
            " (SELECT MAX(p.cms_error) FROM parts p WHERE p.message_id = m.id) AS cms_error,"
            " (SELECT group_concat(p.error, '; ') FROM parts p WHERE p.message_id = m.id"
            "  AND p.error != '') AS part_errors,"
            " c.first_name AS contact_first_name, c.last_name AS contact_last_name,"
            " g.name AS contact_group"
            " FROM messages m LEFT JOIN batches b ON b.id = m.batch_id"
            " LEFT JOIN contacts c ON c.id = (SELECT c2.id FROM contacts c2"
            "  WHERE c2.account_id = m.account_id AND c2.number = m.recipient"
            "  ORDER BY c2.id LIMIT 1)"
            " LEFT JOIN contact_groups g ON g.id = c.group_id"
            f" WHERE {clause} ORDER BY m.id DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return total, [dict(r) for r in rows]

    def matching_messages(self, account_id: int, q: MessageQuery) -> list[dict[str, Any]]:
        """Ids, states and units of every message of an account matching `q`."""
        clause, args = self._message_filter(account_id, q)
        rows = self.conn.execute(
            f"SELECT m.id, m.state, m.units FROM messages m WHERE {clause} ORDER BY m.id", args
        ).fetchall()
        return [dict(r) for r in rows]

    def delete_messages(self, message_ids: Sequence[int]) -> int:
        """Delete messages that are not on the wire right now (keeping the ledger and reports,
        unlinked); return how many went."""
        deleted = 0
        with self.transaction():
            for message_id in message_ids:
                row = self.conn.execute(
                    "SELECT state FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
                if row is None or row[0] == PartState.SENDING.value:
                    continue
                self.conn.execute(
                    "UPDATE credits_ledger SET message_id = NULL WHERE message_id = ?",
                    (message_id,),
                )
                self.conn.execute(
                    "UPDATE otps SET message_id = NULL WHERE message_id = ?", (message_id,)
                )
                self.conn.execute(
                    "UPDATE delivery_reports SET part_id = NULL WHERE part_id IN"
                    " (SELECT id FROM parts WHERE message_id = ?)",
                    (message_id,),
                )
                self.conn.execute("DELETE FROM parts WHERE message_id = ?", (message_id,))
                self.conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
                deleted += 1
        return deleted

    def message_states_of_batch(self, batch_id: int) -> dict[str, int]:
        """How many of a batch's messages are in each state."""
        rows = self.conn.execute(
            "SELECT state, COUNT(*) FROM messages WHERE batch_id = ? GROUP BY state", (batch_id,)
        ).fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def last_message_to(self, account_id: int, recipient: str) -> dict[str, Any] | None:
        """The most recent message of an account to a number, with its parts' report status
        and errors."""
        total, rows = self.query_messages(
            account_id, MessageQuery(recipient=recipient), limit=1, offset=0
        )
        return rows[0] if total else None

    # -- hot-plug (appliance) -------------------------------------------------------------------

    @staticmethod
    def check_file(path: Path | str) -> list[str]:
        """SQLite's integrity_check of a database file, opened read-only (`smsgw doctor`).

        Never migrates or writes; an unreadable or malformed file is reported, not raised.
        """
        target = Path(path)
        # No -wal file: nobody has the database open, so read it as immutable. That creates no
        # -wal/-shm files (made by root, they would lock the service's user out of its own
        # database). With a -wal (the daemon runs, or crashed), read through it.
        wal = target.with_name(target.name + "-wal")
        mode = "ro" if wal.exists() else "ro&immutable=1"
        try:
            conn = sqlite3.connect(f"file:{target}?mode={mode}", uri=True)
        except sqlite3.Error as exc:
            return [str(exc)]
        try:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        except sqlite3.Error as exc:
            return [str(exc)]
        finally:
            conn.close()
        problems = [str(r[0]) for r in rows]
        return [] if problems == ["ok"] else problems

    def abandon_sending(self, sim_id: int, *, now: datetime) -> list[int]:
        """A SIM's modem vanished mid-send: its SENDING parts become UNCERTAIN (the crash rule).

        The PDU may or may not have reached the network, so the part is never silently resent.
        """
        return self._sending_to_uncertain(sim_id, "modem vanished during AT+CMGS", now)


def _like(term: str) -> str:
    """Escape LIKE wildcards so a search term matches literally."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class MessageQuery:
    """Filters over an account's messages (every given one must match)."""

    batch_id: int | None = None
    ids: tuple[int, ...] | None = None
    states: tuple[str, ...] | None = None
    flash: bool | None = None
    recipient: str | None = None
    sender: str | None = None
    terms: tuple[str, ...] = ()
    start: datetime | None = None
    end: datetime | None = None

    def is_empty(self) -> bool:
        """Whether no filter at all is set (it would match every message)."""
        return self == MessageQuery()
