"""Outbound messages, their parts, batches and recurring series, each change checked."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.models import PartState, check_transition, rollup
from gateway.store.base import (
    Staged,
    StaleStateError,
    StatusChange,
    StoreBase,
    escape_like,
    utc_iso,
)

# A part in one of these states has not reached the network; giving up on it refunds its credit.
_NOT_LEFT = frozenset({PartState.ACCEPTED, PartState.QUEUED, PartState.SENDING})
_GIVEN_UP = frozenset({PartState.FAILED, PartState.EXPIRED, PartState.CANCELLED})
# A message that rolls up to one of these is never due again (see _fail_stranded).
_ENDS_MESSAGE = frozenset({PartState.FAILED, PartState.EXPIRED, PartState.UNCERTAIN})
# The number of the SIM that took message m's first part, a column of the query reading m (one
# indexed lookup per row, never a query per message): NULL before a SIM took it, '' when that
# SIM's number is unknown. Parts go out in order and, once one has left, the rest follow on its
# SIM (outbox.send_message), so the lowest part with a SIM names the SIM of every part.
SENT_FROM = (
    "(SELECT s.msisdn FROM parts p JOIN sims s ON s.id = p.sim_id"
    " WHERE p.message_id = m.id ORDER BY p.seq LIMIT 1)"
)


@dataclass(frozen=True, slots=True)
class AcceptedMessage:
    """Ids of a message made durable by accept_message()."""

    message_id: int
    part_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SeriesRun:
    """One occurrence of a recurring series, as run_series_occurrence accepted it."""

    message_ids: tuple[int, ...]
    skipped: bool = False  # too few credits: the occurrence passed without messages


@dataclass(frozen=True, slots=True)
class BatchRows:
    """One batch for accept_batches: the batch row, its messages (accept_message's keyword
    arguments but batch_id/now), the units they cost; `into` adds them to that existing batch
    instead of a new one, and `id_key` stores the batch id in each message's extra under it."""

    batch: Mapping[str, Any]
    messages: Sequence[Mapping[str, Any]]
    units: int
    into: int | None = None
    id_key: str | None = None


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


class MessageStore(StoreBase):
    """Outbound messages, their parts, batches and recurring series."""

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
        if state is PartState.QUEUED:
            self._queued_work()
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

    def accept_batches(
        self, batches: Sequence[BatchRows], *, now: datetime
    ) -> list[tuple[int, list[int]] | None]:
        """Insert batches, each with its messages and charges, in ONE transaction (one fsync
        for many requests); a batch whose account lacks `units` credits, or whose existing
        batch (`into`) is gone or finished, is skipped (None).

        The whole group goes in with a few executemany statements and ids assigned here (the
        write lock is held): a campaign of 100,000 messages, or a group commit of 32 requests,
        is a handful of statements, not one per row.
        """
        return self.stage_batches(batches, now=now).commit()

    def stage_batches(
        self, batches: Sequence[BatchRows], *, now: datetime
    ) -> Staged[list[tuple[int, list[int]] | None]]:
        """accept_batches up to its COMMIT, which the returned Staged does (in the group
        commit's thread, say). Once open_accept_connection() has run, this runs on that
        connection, held until that COMMIT is done: this connection stays free meanwhile."""
        accept = self._accept
        if accept is None:
            return self.staged(lambda: self._accept_rows(batches, now))
        assert isinstance(accept, MessageStore)
        self._accept_lock.acquire()
        try:
            staged = accept.staged(lambda: accept._accept_rows(batches, now))
        except BaseException:
            self._accept_lock.release()
            raise
        return staged.then(self._accept_lock.release)

    def _accept_rows(
        self, batches: Sequence[BatchRows], now: datetime
    ) -> list[tuple[int, list[int]] | None]:
        results: list[tuple[int, list[int]] | None] = []
        stamp = utc_iso(now)
        # What each account can still spend in this transaction (None: unlimited); an account
        # that does not exist is missing from it.
        balance: dict[int, int | None] = {}
        taken: list[tuple[int | None, BatchRows, int]] = []  # (existing batch, rows, index)
        for rows in batches:
            account_id = rows.batch["account_id"]
            if account_id not in balance:
                account = self.conn.execute(
                    "SELECT credits, unlimited FROM accounts WHERE id = ?", (account_id,)
                ).fetchone()
                if account is not None:
                    balance[account_id] = None if account[1] else int(account[0])
            left = balance.get(account_id, -1)
            if account_id not in balance or (left is not None and left < rows.units):
                results.append(None)
                continue
            if rows.into is not None:
                found = self.conn.execute(
                    "SELECT 1 FROM batches WHERE id = ? AND account_id = ?"
                    " AND state IN ('active', 'paused')",
                    (rows.into, account_id),
                ).fetchone()
                if found is None:
                    results.append(None)
                    continue
            if left is not None:
                balance[account_id] = left - sum(int(m.get("charge", 0)) for m in rows.messages)
            taken.append((rows.into, rows, len(results)))
            results.append(None)  # filled in below
        if taken:
            ids = self._insert_groups(taken, now, stamp)
            for (_, _, index), accepted in zip(taken, ids, strict=True):
                results[index] = accepted
        return results

    def _reserve_ids(self, table: str, count: int) -> int:
        """The first of `count` consecutive new ids of `table`, for rows inserted with their
        ids (inside the caller's write transaction, so no other writer takes ids meanwhile)."""
        if self._pg is not None:
            # Past the identity sequence, which later inserts without an id draw from.
            sequence = f"pg_get_serial_sequence('{table}', 'id')"
            got = self._pg.raw.execute(f"SELECT nextval({sequence})".encode()).fetchone()
            assert got is not None  # nextval always answers one row
            first = int(got[0])
            if count > 1:
                self._pg.raw.execute(f"SELECT setval({sequence}, {first + count - 1})".encode())
            return first
        row = self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
        return int(row[0]) + 1

    def _insert_groups(
        self, taken: Sequence[tuple[int | None, BatchRows, int]], now: datetime, stamp: str
    ) -> list[tuple[int, list[int]]]:
        """Insert new batch rows, then every batch's messages, parts, charges and ledger rows
        (inside the caller's transaction); return (batch id, message ids) per batch."""
        new = [rows.batch for into, rows, _ in taken if into is None]
        next_batch = self._reserve_ids("batches", len(new)) if new else 0
        by_columns: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        batch_ids: list[int] = []
        for into, rows, _ in taken:
            if into is not None:
                batch_ids.append(into)
                continue
            batch_ids.append(next_batch)
            row = {k: v for k, v in rows.batch.items() if k != "created_at"}  # now, always
            by_columns.setdefault(tuple(row), []).append((next_batch, *row.values(), stamp))
            next_batch += 1
        for columns, values in by_columns.items():
            names = ", ".join(("id", *columns, "created_at"))
            self.conn.executemany(
                f"INSERT INTO batches ({names}) VALUES ({', '.join('?' * (len(columns) + 2))})",
                values,
            )
        count = sum(len(rows.messages) for _, rows, _ in taken)
        message_id = self._reserve_ids("messages", count) if count else 0
        # Messages of a campaign share one extra dict: serialise it once, not 100,000 times.
        message_rows: list[tuple[Any, ...]] = []
        part_rows: list[tuple[Any, ...]] = []
        ledger_rows: list[tuple[Any, ...]] = []
        charges: dict[int, int] = {}
        times: dict[datetime, str] = {}  # and they share one send time
        scheduled, queued = PartState.ACCEPTED.value, PartState.QUEUED.value
        out: list[tuple[int, list[int]]] = []
        for batch_id, (_, rows, _) in zip(batch_ids, taken, strict=True):
            encoded: dict[int, str] = {}
            first = message_id
            for m in rows.messages:
                parts = int(m["parts"])
                if parts < 1:
                    raise ValueError("a message has at least one part")
                send_at = m.get("send_at")
                state = scheduled if send_at is not None and send_at > now else queued
                extra = m.get("extra") or {}
                text = encoded.get(id(extra))
                if text is None:
                    base = dict(extra)
                    if rows.id_key is not None:
                        base[rows.id_key] = batch_id
                    text = encoded[id(extra)] = json.dumps(base)
                message_rows.append(
                    (
                        message_id, m["account_id"], batch_id, m.get("sender", ""),
                        m["recipient"], m["body"], m["encoding"],
                        int(bool(m.get("flash", False))), int(bool(m.get("status_report", True))),
                        parts, state,
                        None if send_at is None else times.get(send_at) or times.setdefault(
                            send_at, utc_iso(send_at)), text, stamp, stamp,
                    )
                )  # fmt: skip
                part_rows.extend((message_id, seq, state) for seq in range(1, parts + 1))
                if state == queued:
                    self._queued_work()
                charge = int(m.get("charge", 0))
                if charge:
                    charges[m["account_id"]] = charges.get(m["account_id"], 0) + charge
                    ledger_rows.append((m["account_id"], -charge, "send", message_id, stamp))
                message_id += 1
            out.append((batch_id, list(range(first, message_id))))
        if message_rows:
            self.conn.executemany(
                "INSERT INTO messages (id, account_id, batch_id, sender, recipient, body,"
                " encoding, flash, status_report, units, state, send_at, extra, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                message_rows,
            )
            self.conn.executemany(
                "INSERT INTO parts (message_id, seq, state) VALUES (?, ?, ?)", part_rows
            )
        for account_id, total in charges.items():
            self.conn.execute(
                "UPDATE accounts SET credits = credits - ? WHERE id = ? AND unlimited = 0",
                (total, account_id),
            )
        if ledger_rows:
            self.conn.executemany(
                "INSERT INTO credits_ledger (account_id, delta, reason, message_id, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                ledger_rows,
            )
        return out

    def message(self, message_id: int) -> dict[str, Any] | None:
        """Return one message row as a dict."""
        row = self.conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        return dict(row) if row is not None else None

    def message_with_sim(self, message_id: int) -> dict[str, Any] | None:
        """One message row with `sent_from`, the number of the SIM that took its first part."""
        row = self.conn.execute(
            f"SELECT m.*, {SENT_FROM} AS sent_from FROM messages m WHERE m.id = ?", (message_id,)
        ).fetchone()
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
            if updates.get("cms_error") is not None:
                # Every +CMS ERROR the SIM got, retried or final (operators watch this rate).
                self.conn.execute(
                    "UPDATE sims SET cms_errors = cms_errors + 1 WHERE id ="
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
            report = updates.get("report_status")
            return self._rollup_message_of(
                part_id, stamp, part_state=target,
                tp_status=int(report) if report is not None else None,
            )  # fmt: skip

    def _rollup_message_of(
        self,
        part_id: int,
        stamp: str,
        *,
        part_state: PartState | None = None,
        tp_status: int | None = None,
    ) -> PartState:
        """Roll a part's change up into its message (inside the caller's transaction), and
        record the change for the webhook outbox when the message's state moved or a status
        report settled the part."""
        message_id, previous, account_id = self.conn.execute(
            "SELECT m.id, m.state, m.account_id FROM parts p JOIN messages m ON m.id = p.message_id"
            " WHERE p.id = ?",
            (part_id,),
        ).fetchone()
        states = [
            PartState(r[0])
            for r in self.conn.execute(
                "SELECT state FROM parts WHERE message_id = ?", (message_id,)
            )
        ]
        state = rollup(states)
        stranded = state in _ENDS_MESSAGE and PartState.QUEUED in states
        if stranded and (
            state is not PartState.UNCERTAIN or not self._resends_uncertain(account_id)
        ):
            self._fail_stranded(int(message_id), int(account_id), part_id, state, stamp)
            state = rollup([PartState.FAILED if s is PartState.QUEUED else s for s in states])
        self.conn.execute(
            "UPDATE messages SET state = ?, updated_at = ? WHERE id = ?",
            (state.value, stamp, message_id),
        )
        if state.value != previous or tp_status is not None:
            self._message_status_changed(
                StatusChange(
                    message_id=int(message_id), account_id=int(account_id),
                    previous_state=str(previous), state=state.value, part_id=part_id,
                    part_state=part_state.value if part_state is not None else None,
                    tp_status=tp_status, stamp=stamp,
                )
            )  # fmt: skip
        return state

    def recover_after_crash(self, *, now: datetime) -> list[int]:
        """Mark parts left in SENDING by a crash as UNCERTAIN; return their ids.

        A part in SENDING may or may not have reached the network: resending it could deliver it
        twice, so it is reported as uncertain and only requeued if the account opted in.
        """
        return self._sending_to_uncertain(None, "interrupted during AT+CMGS", now)

    def abandon_sending(self, sim_id: int, *, now: datetime) -> list[int]:
        """A SIM's modem vanished mid-send: its SENDING parts become UNCERTAIN (the crash rule).

        The PDU may or may not have reached the network, so the part is never silently resent.
        """
        return self._sending_to_uncertain(sim_id, "modem vanished during AT+CMGS", now)

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

    def _sending_to_uncertain(
        self, sim_id: int | None, reason: str, now: datetime, *, within: bool = False
    ) -> list[int]:
        """Turn SENDING parts (of one SIM, or all) into UNCERTAIN; return their ids (`within`:
        inside the caller's transaction)."""
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
            select, PartState.SENDING, PartState.UNCERTAIN, reason, now, stamp_done=True,
            within=within,
        )  # fmt: skip

    def _move_parts(
        self,
        select: tuple[str, tuple[Any, ...]],
        source: PartState,
        target: PartState,
        reason: str,
        now: datetime,
        *,
        stamp_done: bool,
        within: bool = False,
    ) -> list[int]:
        """Move every part the query selects (all in `source`) to `target` in one transaction
        (`within`: the caller's), rolling their messages up; return the part ids."""
        if not within:
            with self.transaction():
                return self._move_parts(
                    select, source, target, reason, now, stamp_done=stamp_done, within=True
                )
        stamp = utc_iso(now)
        check_transition(source, target)
        done_column = ", done_at = ?" if stamp_done else ""
        ids = [int(r[0]) for r in self.conn.execute(*select)]
        for part_id in ids:
            self.conn.execute(
                f"UPDATE parts SET state = ?, error = ?{done_column} WHERE id = ?",
                (target.value, reason, *((stamp,) if stamp_done else ()), part_id),
            )
            self._rollup_message_of(part_id, stamp, part_state=target)
        if ids and target is PartState.QUEUED:
            self._queued_work()
        return ids

    def _resends_uncertain(self, account_id: int) -> bool:
        row = self.conn.execute(
            "SELECT resend_uncertain FROM accounts WHERE id = ?", (account_id,)
        ).fetchone()
        return bool(row is not None and row[0])

    def _fail_stranded(
        self, message_id: int, account_id: int, part_id: int, state: PartState, stamp: str
    ) -> int:
        """A part ended its message (failed, expired, uncertain) while others wait in the queue:
        they can no longer make a whole message (a torn one is worse than a late one), and a
        message in that state is never due again, so they are failed unsent and refunded
        rather than left queued for ever (inside the caller's transaction); return how many."""
        (seq,) = self.conn.execute("SELECT seq FROM parts WHERE id = ?", (part_id,)).fetchone()
        cursor = self.conn.execute(
            "UPDATE parts SET state = ?, error = ?, done_at = ? WHERE message_id = ? AND state = ?",
            (PartState.FAILED.value, f"not sent: part {seq} {state.value}", stamp, message_id,
             PartState.QUEUED.value),
        )  # fmt: skip
        stranded = int(cursor.rowcount)
        if stranded:
            self._refund(account_id, message_id, stranded, PartState.FAILED.value, stamp)
        return stranded

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
                self._rollup_message_of(cancellable[0][0], stamp, part_state=PartState.CANCELLED)
        return len(cancellable)

    def cancel_batch_messages(self, batch_id: int, *, now: datetime) -> int:
        """cancel_message for every message of a batch in ONE transaction (a 100,000-message
        campaign is deleted in one commit, not 100,000); return the parts refunded."""
        stamp = utc_iso(now)
        for unsent in (PartState.ACCEPTED, PartState.QUEUED):
            check_transition(unsent, PartState.CANCELLED)
        with self.transaction():
            counts = self.conn.execute(
                "SELECT m.id, m.account_id, COUNT(*), m.state FROM parts p JOIN messages m"
                " ON m.id = p.message_id WHERE m.batch_id = ? AND p.state IN (?, ?)"
                " GROUP BY m.id",
                (batch_id, PartState.ACCEPTED.value, PartState.QUEUED.value),
            ).fetchall()
            if not counts:
                return 0
            previous = {int(r[0]): (int(r[1]), str(r[3])) for r in counts}
            self.conn.execute(
                "UPDATE parts SET state = 'cancelled', done_at = ? WHERE state IN (?, ?)"
                " AND message_id IN (SELECT id FROM messages WHERE batch_id = ?)",
                (stamp, PartState.ACCEPTED.value, PartState.QUEUED.value, batch_id),
            )
            refunds: dict[int, int] = {}
            for _, account_id, units, _ in counts:
                refunds[int(account_id)] = refunds.get(int(account_id), 0) + int(units)
            for account_id, units in refunds.items():
                self.conn.execute(
                    "UPDATE accounts SET credits = credits + ? WHERE id = ? AND unlimited = 0",
                    (units, account_id),
                )
            self.conn.executemany(
                "INSERT INTO credits_ledger (account_id, delta, reason, message_id, created_at)"
                " VALUES (?, ?, 'refund: cancelled', ?, ?)",
                [(int(a), int(n), int(m), stamp) for m, a, n, _ in counts],
            )
            # Messages now wholly cancelled in one statement; only those with a part that had
            # left (a multi-part message torn by the cancel) are rolled up one by one.
            self.conn.execute(
                "UPDATE messages SET state = 'cancelled', updated_at = ? WHERE batch_id = ?"
                " AND state != 'cancelled' AND NOT EXISTS (SELECT 1 FROM parts p"
                " WHERE p.message_id = messages.id AND p.state != 'cancelled')",
                (stamp, batch_id),
            )
            torn = self.conn.execute(
                "SELECT m.id FROM messages m WHERE m.batch_id = ? AND m.state != 'cancelled'"
                " AND EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id"
                " AND p.state = 'cancelled' AND p.done_at = ?)",
                (batch_id, stamp),
            ).fetchall()
            for (message_id,) in torn:
                part_id = self.conn.execute(
                    "SELECT id FROM parts WHERE message_id = ? LIMIT 1", (message_id,)
                ).fetchone()[0]
                self._rollup_message_of(int(part_id), stamp, part_state=PartState.CANCELLED)
                previous.pop(int(message_id), None)  # its rollup told the webhook outbox
            for message_id, (account_id, state) in previous.items():
                if state != PartState.CANCELLED.value:
                    self._message_status_changed(
                        StatusChange(
                            message_id=message_id, account_id=account_id,
                            previous_state=state, state=PartState.CANCELLED.value,
                            part_id=None, part_state=PartState.CANCELLED.value,
                            tp_status=None, stamp=stamp,
                        )
                    )  # fmt: skip
        return sum(refunds.values())

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

    def insert_batch(self, fields: Mapping[str, Any], *, now: datetime) -> int:
        """Insert a batch (a bulk send or a scheduled campaign) and return its id."""
        row = {**fields, "created_at": utc_iso(now)}
        with self.transaction():
            return self._insert("batches", row)

    def promote_due(self, now: datetime) -> int:
        """Move scheduled (accepted) messages whose time has come to the queue; return count.

        Two set-based statements (and each message's status change for the webhook outbox),
        so a 100,000-message campaign falling due is one quick commit on the dispatcher's tick."""
        stamp = utc_iso(now)
        check_transition(PartState.ACCEPTED, PartState.QUEUED)
        select = (
            "SELECT m.id FROM messages m LEFT JOIN batches b ON b.id = m.batch_id"
            " WHERE m.state = 'accepted' AND m.send_at <= ?"
            " AND (b.state IS NULL OR b.state = 'active')"
        )
        # Asked first without the write lock: on most ticks nothing is due, and the dispatcher
        # ticks after every group commit (whose thread holds that lock half the time).
        if self.conn.execute(select + " LIMIT 1", (stamp,)).fetchone() is None:
            return 0
        with self.transaction():
            due = [
                (int(r[0]), int(r[1]))
                for r in self.conn.execute(
                    select.replace("SELECT m.id", "SELECT m.id, m.account_id"), (stamp,)
                )
            ]
            if due:
                self.conn.execute(
                    f"UPDATE parts SET state = 'queued' WHERE state = 'accepted'"
                    f" AND message_id IN ({select})",
                    (stamp,),
                )
                self.conn.execute(
                    f"UPDATE messages SET state = 'queued', updated_at = ? WHERE id IN ({select})",
                    (stamp, stamp),
                )
                self._queued_work()
            for message_id, account_id in due:
                self._message_status_changed(
                    StatusChange(
                        message_id=message_id, account_id=account_id,
                        previous_state=PartState.ACCEPTED.value, state=PartState.QUEUED.value,
                        part_id=None, part_state=None, tp_status=None, stamp=stamp,
                    )
                )  # fmt: skip
        return len(due)

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
            if state == "active":
                self._queued_work()  # a resumed batch's queued messages are work again

    def set_batch_throttle(self, batch_id: int, seconds: float) -> None:
        """Pace a batch's sends at one per `seconds` per SIM."""
        with self.transaction():
            self.conn.execute(
                "UPDATE batches SET throttle_interval = ? WHERE id = ?", (seconds, batch_id)
            )

    def batch_sim(self, batch_id: int) -> int | None:
        """The SIM a batch without rotation keeps to: the one its claims recorded, else (a
        batch started before they did) the SIM that most recently started sending a part of
        it, if any did."""
        pinned = self.conn.execute(
            "SELECT pin_sim FROM batches WHERE id = ?", (batch_id,)
        ).fetchone()
        if pinned is not None and pinned[0] is not None:
            return int(pinned[0])
        row = self.conn.execute(
            "SELECT p.sim_id FROM messages m JOIN parts p ON p.message_id = m.id"
            " WHERE m.batch_id = ? AND p.sim_id IS NOT NULL AND p.sending_at IS NOT NULL"
            " ORDER BY p.sending_at DESC LIMIT 1",
            (batch_id,),
        ).fetchone()
        return int(row[0]) if row is not None else None

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
        sender: str | None = None,
        rotate: bool | None = None,
        unsent: bool = False,
    ) -> int | None:
        """Change the text, time and/or sender of a batch's messages that are still scheduled
        (with `unsent`, also those due but not started: every part queued, none on the wire),
        in one transaction, charging or refunding the difference in parts; returns how many
        messages changed, or None if the account cannot pay for the longer text.

        A changed message gets new parts, so a send loop holding the old ones loses its
        compare-and-set instead of sending the old text; a new time puts due messages back
        to scheduled."""
        stamp = utc_iso(now)
        with self.transaction():
            batch = self.conn.execute(
                "SELECT account_id FROM batches WHERE id = ?", (batch_id,)
            ).fetchone()
            if batch is None:
                raise KeyError(f"no batch {batch_id}")
            account_id = int(batch[0])
            states = ("accepted", "queued") if unsent else ("accepted",)
            marks = ", ".join("?" * len(states))
            rows = self.conn.execute(
                f"SELECT m.id, m.units, m.state FROM messages m WHERE m.batch_id = ?"
                f" AND m.state IN ({marks}) AND NOT EXISTS (SELECT 1 FROM parts p"
                f" WHERE p.message_id = m.id AND p.state NOT IN ({marks}))",
                (batch_id, *states, *states),
            ).fetchall()
            delta = sum((units - int(r[1])) for r in rows) if units is not None else 0
            account = self.conn.execute(
                "SELECT credits, unlimited FROM accounts WHERE id = ?", (account_id,)
            ).fetchone()
            if delta > 0 and not account[1] and account[0] < delta:
                return None
            due = send_at is None or send_at <= now
            for message_id, old_units, old_state in ((int(r[0]), int(r[1]), r[2]) for r in rows):
                state = PartState(old_state)
                target = state if due else PartState.ACCEPTED
                if target is not state:
                    check_transition(state, target)
                new_units = old_units
                if body is not None and units is not None and encoding is not None:
                    new_units = units
                    self.conn.execute(
                        "UPDATE messages SET body = ?, encoding = ?, units = ?, updated_at = ?"
                        " WHERE id = ?",
                        (body, encoding, units, stamp, message_id),
                    )
                if new_units != old_units or state is PartState.QUEUED:
                    self.conn.execute("DELETE FROM parts WHERE message_id = ?", (message_id,))
                    self.conn.executemany(
                        "INSERT INTO parts (message_id, seq, state) VALUES (?, ?, ?)",
                        [(message_id, seq, target.value) for seq in range(1, new_units + 1)],
                    )
                if send_at is not None:
                    self.conn.execute(
                        "UPDATE messages SET send_at = ?, state = ?, updated_at = ? WHERE id = ?",
                        (utc_iso(send_at), target.value, stamp, message_id),
                    )
                if sender is not None:
                    self.conn.execute(
                        "UPDATE messages SET sender = ?, updated_at = ? WHERE id = ?",
                        (sender, stamp, message_id),
                    )
                if due and state is PartState.QUEUED:
                    self._queued_work()
                if target is not state:
                    self._message_status_changed(
                        StatusChange(
                            message_id=message_id, account_id=account_id,
                            previous_state=state.value, state=target.value, part_id=None,
                            part_state=None, tp_status=None, stamp=stamp,
                        )
                    )  # fmt: skip
            if send_at is not None:
                self.conn.execute(
                    "UPDATE batches SET send_at = ? WHERE id = ?", (utc_iso(send_at), batch_id)
                )
            if sender is not None:
                self.conn.execute(
                    "UPDATE batches SET sender = ?, rotate = COALESCE(?, rotate) WHERE id = ?",
                    (sender, None if rotate is None else int(rotate), batch_id),
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

    def run_series_occurrence(
        self,
        batch_id: int,
        *,
        occurrence: str,
        following: datetime | None,
        messages: Sequence[Mapping[str, Any]],
        units: int,
        now: datetime,
    ) -> SeriesRun | None:
        """Run one occurrence of a recurring series: move it from `occurrence` (its next_run
        as the caller read it) to `following` (None: finished) and accept its `messages`
        (each with every field of accept_message but the batch, send_at and now; charged) in
        ONE transaction; without `units` credits the
        occurrence passes with an error and no messages. None: it was no longer due at
        `occurrence` (another box ran it, or it was changed or paused meanwhile).

        The move is a compare-and-set on next_run inside the write transaction, so two boxes
        reading the same due series run it once, and a crash midway leaves it whole to run
        again, never half of its messages accepted."""
        with self.transaction():
            account = self.conn.execute(
                "SELECT a.credits, a.unlimited FROM batches b JOIN accounts a"
                " ON a.id = b.account_id WHERE b.id = ?",
                (batch_id,),
            ).fetchone()
            skipped = account is None or (not account[1] and account[0] < units)
            moved = self.conn.execute(
                "UPDATE batches SET runs = runs + 1, next_run = ?, error = ?,"
                " state = CASE WHEN ? IS NULL THEN 'done' ELSE state END"
                " WHERE id = ? AND state = 'active' AND next_run = ?",
                (
                    utc_iso(following) if following is not None else None,
                    "insufficient credits" if skipped else "",
                    None if following is None else 1,
                    batch_id,
                    occurrence,
                ),
            )
            if moved.rowcount != 1:
                return None
            if skipped:
                return SeriesRun((), skipped=True)
            ids = [
                self._insert_message(**fields, batch_id=batch_id, send_at=None, now=now).message_id
                for fields in messages
            ]
            return SeriesRun(tuple(ids))

    def list_messages(
        self,
        account_id: int,
        *,
        state: str | None = None,
        batch_id: int | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """An account's messages, newest first, optionally filtered, each with `sent_from` (the
        number of the SIM that took its first part)."""
        where = ["account_id = ?"]
        args: list[Any] = [account_id]
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if batch_id is not None:
            where.append("batch_id = ?")
            args.append(batch_id)
        # The page's ids first, then its rows and their SIMs: SQLite would otherwise look the
        # SIM up for every message of the account, and sort whole rows, before it pages.
        rows = self.conn.execute(
            f"SELECT m.*, {SENT_FROM} AS sent_from FROM (SELECT id FROM messages"
            f" WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ? OFFSET ?) page"
            " JOIN messages m ON m.id = page.id ORDER BY m.id DESC",
            (*args, limit, offset),
        ).fetchall()
        return [dict(r) for r in rows]

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
            args.extend([f"%{escape_like(term)}%"] * 4)
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
            f"SELECT m.*, b.created_at AS batch_created_at, {SENT_FROM} AS sim_msisdn,"
            " (SELECT MIN(p.sent_at) FROM parts p WHERE p.message_id = m.id) AS first_sent_at,"
            " (SELECT MAX(p.report_status) FROM parts p WHERE p.message_id = m.id"
            "  AND p.state = m.state) AS report_status,"
            " (SELECT MAX(p.cms_error) FROM parts p WHERE p.message_id = m.id) AS cms_error,"
            " (SELECT group_concat(p.error, '; ') FROM parts p WHERE p.message_id = m.id"
            "  AND p.error != '') AS part_errors,"
            " c.first_name AS contact_first_name, c.last_name AS contact_last_name,"
            " g.name AS contact_group"
            # The page first, then what each of its rows needs: SQLite would otherwise work
            # out every matching message's SIM, parts and contact before sorting (130 ms a
            # call for 20,000 messages, whatever the page size).
            f" FROM (SELECT m.id FROM messages m WHERE {clause}"
            "  ORDER BY m.id DESC LIMIT ? OFFSET ?) page JOIN messages m ON m.id = page.id"
            " LEFT JOIN batches b ON b.id = m.batch_id"
            " LEFT JOIN contacts c ON c.id = (SELECT c2.id FROM contacts c2"
            "  WHERE c2.account_id = m.account_id AND c2.number = m.recipient"
            "  ORDER BY c2.id LIMIT 1)"
            " LEFT JOIN contact_groups g ON g.id = c.group_id"
            " ORDER BY m.id DESC",
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

    def batch_recipients(self, batch_id: int) -> set[str]:
        """Every recipient a batch already has."""
        rows = self.conn.execute(
            "SELECT recipient FROM messages WHERE batch_id = ?", (batch_id,)
        ).fetchall()
        return {str(r[0]) for r in rows}

    def find_batches(self, account_id: int, key: str, value: Any) -> list[dict[str, Any]]:
        """An account's batches whose extra JSON has `key` = `value`, newest first."""
        rows = self.conn.execute(
            "SELECT * FROM batches WHERE account_id = ? AND json_extract(extra, ?) = ?"
            " ORDER BY id DESC",
            (account_id, f'$."{key}"', value),
        ).fetchall()
        return [dict(r) for r in rows]

    def batch_delivery(self, batch_id: int, recipient: str | None = None) -> list[dict[str, Any]]:
        """Per message of a batch (or its message to one recipient): recipient, state, when
        its last part settled, and the report status, +CMS ERROR and errors of the parts that
        are in the message's state (the ones that decided it)."""
        where = "m.batch_id = ?" + (" AND m.recipient = ?" if recipient is not None else "")
        args: tuple[Any, ...] = (batch_id,) if recipient is None else (batch_id, recipient)
        rows = self.conn.execute(
            "SELECT m.id, m.recipient, m.state, m.error, MAX(p.done_at) AS done_at,"
            " MAX(CASE WHEN p.state = m.state THEN p.report_status END) AS report_status,"
            " MAX(CASE WHEN p.state = m.state THEN p.cms_error END) AS cms_error,"
            " group_concat(CASE WHEN p.state = m.state AND p.error != '' THEN p.error END,"
            " '; ') AS part_errors"
            f" FROM messages m JOIN parts p ON p.message_id = m.id WHERE {where}"
            " GROUP BY m.id ORDER BY m.id",
            args,
        ).fetchall()
        return [dict(r) for r in rows]

    def message_replied_to(
        self, account_id: int, number: str, before: datetime
    ) -> dict[str, Any] | None:
        """The account's last message to `number` that went to a modem before `before`: what
        a message from that number answers."""
        row = self.conn.execute(
            "SELECT m.* FROM messages m WHERE m.account_id = ? AND m.recipient = ?"
            " AND EXISTS (SELECT 1 FROM parts p WHERE p.message_id = m.id"
            " AND p.sending_at IS NOT NULL AND p.sending_at <= ?)"
            " ORDER BY m.id DESC LIMIT 1",
            (account_id, number, utc_iso(before)),
        ).fetchone()
        return dict(row) if row is not None else None

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
