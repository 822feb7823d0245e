"""Outgoing webhooks: subscriptions, signing secrets and the durable event outbox.

An event row is written inside the transaction of the change it reports (the hooks below are
called by the message and inbound stores), so a committed change always has its webhook and a
rolled-back one never does. The sender (gateway.webhooks) claims due rows (one attempt of one
sender at a time, fleet-wide), and records attempts.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gateway.models import WEBHOOK_TRANSITIONS, WebhookKind, WebhookState
from gateway.store.base import StatusChange, StoreBase, utc_iso

SECRET_PREFIX = "whsec_"


def _check_attempts(attempts: Sequence[WebhookAttempt]) -> None:
    for a in attempts:
        if a.state not in WEBHOOK_TRANSITIONS[WebhookState.PENDING]:
            raise ValueError(f"an attempt cannot make an event {a.state.value}")


def new_event_id() -> str:
    """A stable, unguessable event id (the receiver's deduplication key)."""
    return "evt_" + uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """The outcome of one delivery attempt, as the sender records it."""

    row_id: int
    state: WebhookState  # PENDING: try again at next_attempt_at
    at: datetime
    status: int | None = None
    error: str = ""
    next_attempt_at: datetime | None = None


class WebhookStore(StoreBase):
    """Webhook subscriptions, per-account signing secrets and the event outbox."""

    # Called (after commit) whenever events were added: the daemon wakes its sender with it.
    on_webhook_enqueued: Callable[[], None] | None = None

    # -- subscriptions ----------------------------------------------------------------------

    def set_webhook_subscription(
        self, account_id: int, kind: WebhookKind, url: str, host: str, fmt: str, *, now: datetime
    ) -> str:
        """Create or replace the account's subscription for `kind`; return the account's
        signing secret (made on first use)."""
        stamp = utc_iso(now)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO webhook_subscriptions"
                " (account_id, kind, url, host, format, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account_id, kind) DO UPDATE SET"
                " url = excluded.url, host = excluded.host, format = excluded.format,"
                " updated_at = excluded.updated_at",
                (account_id, kind.value, url, host, fmt, stamp, stamp),
            )
            return self._secret(account_id, stamp)

    def delete_webhook_subscription(
        self, account_id: int, kind: WebhookKind, *, now: datetime
    ) -> bool:
        """Remove a subscription; its pending events fail with it (nowhere to send them)."""
        with self.transaction():
            cursor = self.conn.execute(
                "DELETE FROM webhook_subscriptions WHERE account_id = ? AND kind = ?",
                (account_id, kind.value),
            )
            if cursor.rowcount == 1:
                self.conn.execute(
                    "UPDATE webhook_events SET state = 'failed', last_error = ?,"
                    " updated_at = ? WHERE account_id = ? AND kind = ? AND state = 'pending'",
                    (f"the account's {kind.value} webhook was removed", utc_iso(now),
                     account_id, kind.value),
                )  # fmt: skip
            return cursor.rowcount == 1

    def webhook_subscriptions(self, account_id: int) -> list[dict[str, Any]]:
        """The account's subscriptions, by kind."""
        rows = self.conn.execute(
            "SELECT * FROM webhook_subscriptions WHERE account_id = ? ORDER BY kind", (account_id,)
        ).fetchall()
        return [dict(r) for r in rows]

    def webhook_subscription(self, account_id: int, kind: WebhookKind) -> dict[str, Any] | None:
        """One subscription, or None."""
        row = self.conn.execute(
            "SELECT * FROM webhook_subscriptions WHERE account_id = ? AND kind = ?",
            (account_id, kind.value),
        ).fetchone()
        return dict(row) if row is not None else None

    def webhook_secret(self, account_id: int, *, now: datetime) -> str:
        """The account's signing secret, made on first use."""
        with self.transaction():
            return self._secret(account_id, utc_iso(now))

    def rotate_webhook_secret(self, account_id: int, *, now: datetime) -> str:
        """Replace the account's signing secret; return the new one."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        with self.transaction():
            self.conn.execute(
                "INSERT INTO webhook_secrets (account_id, secret, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (account_id) DO UPDATE SET secret = excluded.secret,"
                " created_at = excluded.created_at",
                (account_id, secret, utc_iso(now)),
            )
        return secret

    def _secret(self, account_id: int, stamp: str) -> str:
        row = self.conn.execute(
            "SELECT secret FROM webhook_secrets WHERE account_id = ?", (account_id,)
        ).fetchone()
        if row is not None:
            return str(row[0])
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        self.conn.execute(
            "INSERT INTO webhook_secrets (account_id, secret, created_at) VALUES (?, ?, ?)",
            (account_id, secret, stamp),
        )
        return secret

    # -- enqueueing (inside the transaction of the change) ----------------------------------

    def _subscribed(self, account_id: int, kind: WebhookKind) -> bool:
        return (
            self.conn.execute(
                "SELECT 1 FROM webhook_subscriptions WHERE account_id = ? AND kind = ?",
                (account_id, kind.value),
            ).fetchone()
            is not None
        )

    def _enqueue(
        self,
        account_id: int,
        kind: WebhookKind,
        order_key: str,
        data: Mapping[str, Any],
        stamp: str,
        *,
        event_id: str | None = None,
    ) -> str:
        """Add one pending event (inside the caller's transaction); return its event id."""
        event_id = event_id or new_event_id()
        self._insert(
            "webhook_events",
            {
                "event_id": event_id,
                "account_id": account_id,
                "kind": kind.value,
                "order_key": order_key,
                "payload": json.dumps(data, ensure_ascii=False, separators=(",", ":")),
                "next_attempt_at": stamp,
                "window_start": stamp,
                "created_at": stamp,
                "updated_at": stamp,
            },
        )
        if self.on_webhook_enqueued is not None:
            self.after_commit(self.on_webhook_enqueued)
        return event_id

    def enqueue_webhook(
        self,
        account_id: int,
        kind: WebhookKind,
        data: Mapping[str, Any],
        *,
        order_key: str | None = None,
        now: datetime,
    ) -> str:
        """Add an event of the caller's making (a test fire) in its own transaction; it is
        delivered to the account's subscription for `kind` like any other."""
        event_id = new_event_id()
        key = order_key or f"event:{event_id}"  # unordered: a key of its own
        with self.transaction():
            return self._enqueue(account_id, kind, key, data, utc_iso(now), event_id=event_id)

    def _message_status_changed(self, change: StatusChange) -> None:
        if not self._subscribed(change.account_id, WebhookKind.STATUS):
            return
        message = self.conn.execute(
            "SELECT recipient, sender, error, extra FROM messages WHERE id = ?",
            (change.message_id,),
        ).fetchone()
        part = None
        if change.part_id is not None:
            part = self.conn.execute(
                "SELECT p.error, s.msisdn FROM parts p LEFT JOIN sims s ON s.id = p.sim_id"
                " WHERE p.id = ?",
                (change.part_id,),
            ).fetchone()
        error = (part["error"] if part is not None else "") or message["error"] or None
        data = {
            "message_id": change.message_id,
            "state": change.state,
            "previous_state": change.previous_state,
            "recipient": message["recipient"],
            "sender": message["sender"] or (part["msisdn"] if part is not None else "") or "",
            "part_id": change.part_id,
            "part_state": change.part_state,
            "tp_status": change.tp_status,
            "error": error,
            "at": change.stamp,
            "extra": json.loads(message["extra"] or "{}"),
        }
        self._enqueue(
            change.account_id, WebhookKind.STATUS, f"message:{change.message_id}", data,
            change.stamp,
        )  # fmt: skip

    def _inbound_stored(self, inbound_id: int) -> None:
        row = self.conn.execute("SELECT * FROM inbound WHERE id = ?", (inbound_id,)).fetchone()
        account_id = row["account_id"]
        if account_id is None or not self._subscribed(int(account_id), WebhookKind.REPLY):
            return
        last = self.conn.execute(
            "SELECT id, extra FROM messages WHERE account_id = ? AND recipient = ?"
            " ORDER BY id DESC LIMIT 1",
            (account_id, row["originator"]),
        ).fetchone()
        data = {
            "inbound_id": inbound_id,
            "from": row["originator"],
            "to": row["recipient"],
            "text": row["body"],
            "encoding": row["encoding"],
            "received_at": row["received_at"],
            "parts": int(row["parts_received"]),
            "complete": bool(row["complete"]),
            "replied_to_message_id": int(last["id"]) if last is not None else None,
            "replied_to_extra": json.loads(last["extra"] or "{}") if last is not None else {},
        }
        # One conversation's replies keep their order.
        key = f"reply:{account_id}:{row['originator']}"
        self._enqueue(int(account_id), WebhookKind.REPLY, key, data, row["received_at"])

    # -- the sender's queries ---------------------------------------------------------------

    def due_webhook_events(
        self,
        now: datetime,
        limit: int,
        *,
        exclude_ids: Collection[int] = (),
        room: Callable[[str], int] | None = None,
    ) -> list[dict[str, Any]]:
        """Pending events whose time has come and whose predecessors (same order key) are
        settled, with their subscription and secret: per subscription, oldest first, at most
        `room(host)` of them (the sender's free slots for that host; a full host's events are
        not even read), `limit` in all; events in flight (claimed by a sender, here or on
        another box, whose claim has not run out) are left out."""
        return self._due_events(now, limit, exclude_ids=exclude_ids, room=room, lock=False)

    def claim_webhook_events(
        self,
        now: datetime,
        limit: int,
        *,
        box: str,
        owner: str,
        until: datetime,
        exclude_ids: Collection[int] = (),
        room: Callable[[str], int] | None = None,
        record: Sequence[WebhookAttempt] = (),
    ) -> list[dict[str, Any]]:
        """Claim the events due_webhook_events would read for one delivery attempt each by
        `owner` (a sender process on `box`), until `until`; return them. `record`: the
        outcomes of `owner`'s finished attempts, recorded first in the same transaction (as
        record_webhook_attempts: one commit a round of the sender).

        One transaction: on PostgreSQL the candidates are locked FOR UPDATE SKIP LOCKED, so
        another box's claim in progress neither waits for them nor takes them too, and once
        committed the claim keeps every other sender off the event until it is recorded or
        runs out (its box died mid-attempt: another box then tries it again). Not fsynced: a
        claim lost in a power cut only lets an attempt be made twice, which the sender
        promises anyway (same event id)."""
        _check_attempts(record)
        with self.transaction(durable=False, exclusive=False):
            self._record_attempts(record, owner)
            rows = []
            if limit > 0:
                rows = self._due_events(now, limit, exclude_ids=exclude_ids, room=room, lock=True)
            if rows:
                # One statement text whatever the count: prepared once, not once per count.
                self.conn.executemany(
                    "UPDATE webhook_events SET claim_box = ?, claim_owner = ?, claim_until = ?"
                    " WHERE id = ?",
                    [(box, owner, utc_iso(until), r["id"]) for r in rows],
                )
        for row in rows:
            row.update(claim_box=box, claim_owner=owner, claim_until=utc_iso(until))
        return rows

    def _due_events(
        self,
        now: datetime,
        limit: int,
        *,
        exclude_ids: Collection[int],
        room: Callable[[str], int] | None,
        lock: bool,
    ) -> list[dict[str, Any]]:
        stamp = utc_iso(now)
        skip = ""
        if exclude_ids:
            skip = f" AND e.id NOT IN ({', '.join('?' * len(exclude_ids))})"
        # Locked rows another box is claiming right now are skipped, not waited for.
        locking = " FOR UPDATE OF e SKIP LOCKED" if lock and self._pg is not None else ""
        rows: list[dict[str, Any]] = []
        subscriptions = self.conn.execute(
            "SELECT s.*, k.secret FROM webhook_subscriptions s"
            " LEFT JOIN webhook_secrets k ON k.account_id = s.account_id"
            " ORDER BY s.account_id, s.kind"
        ).fetchall()
        for sub in subscriptions:
            take = min(limit - len(rows), room(sub["host"]) if room is not None else limit)
            if take <= 0:
                continue
            found = self.conn.execute(
                "SELECT e.* FROM webhook_events e INDEXED BY webhook_events_due"
                " WHERE e.state = 'pending' AND e.account_id = ? AND e.kind = ?"
                " AND e.next_attempt_at <= ? AND (e.claim_until IS NULL OR e.claim_until <= ?)"
                + skip
                + " AND NOT EXISTS (SELECT 1"
                " FROM webhook_events o WHERE o.order_key = e.order_key AND o.state = 'pending'"
                " AND o.id < e.id) ORDER BY e.next_attempt_at, e.id LIMIT ?" + locking,
                (sub["account_id"], sub["kind"], stamp, stamp, *exclude_ids, take),
            ).fetchall()
            extra = {k: sub[k] for k in ("url", "host", "format", "secret")}
            rows.extend({**dict(r), **extra} for r in found)
        return rows

    def next_webhook_due(
        self, *, exclude_ids: Collection[int] = (), now: datetime | None = None
    ) -> datetime | None:
        """When the earliest pending event not in flight is due (None: nothing pending); one
        waiting behind its predecessor may make this early, never late. With `now`, an event
        another sender has claimed counts as due when its claim runs out (its box may die;
        PostgreSQL only: on SQLite the one box's previous process is the only other claimer,
        and its claims are let go at start)."""
        skip = ""
        args: tuple[Any, ...] = tuple(exclude_ids)
        if exclude_ids:
            skip = f" AND id NOT IN ({', '.join('?' * len(exclude_ids))})"
        unclaimed = ""
        if now is not None:
            unclaimed = " AND (claim_until IS NULL OR claim_until <= ?)"
            args = (utc_iso(now), *args)
        first = self.conn.execute(
            "SELECT next_attempt_at FROM webhook_events INDEXED BY webhook_events_next"
            " WHERE state = 'pending'" + unclaimed + skip + " ORDER BY next_attempt_at LIMIT 1",
            args,
        ).fetchone()
        due = datetime.fromisoformat(first[0]) if first is not None else None
        if now is None or self._pg is None:
            return due
        claimed = self.conn.execute(
            "SELECT MIN(claim_until) FROM webhook_events INDEXED BY webhook_events_claimed"
            " WHERE state = 'pending' AND claim_until IS NOT NULL AND claim_until > ?" + skip,
            args,
        ).fetchone()
        if claimed is None or claimed[0] is None:
            return due
        expiry = datetime.fromisoformat(claimed[0])
        return expiry if due is None or expiry < due else due

    def pull_in_webhook_retries(self, now: datetime, horizon: timedelta) -> int:
        """Pending events due further ahead than `horizon` (longer than any back-off: they were
        put off before the wall clock was stepped back) become due `now`; return how many.
        A look at one index entry when there are none."""
        later = utc_iso(now + horizon)
        found = self.conn.execute(
            "SELECT 1 FROM webhook_events INDEXED BY webhook_events_next"
            " WHERE state = 'pending' AND next_attempt_at > ? LIMIT 1",
            (later,),
        ).fetchone()
        if found is None:
            return 0
        with self.transaction(durable=False):
            cursor = self.conn.execute(
                "UPDATE webhook_events SET next_attempt_at = ?"
                " WHERE state = 'pending' AND next_attempt_at > ?",
                (utc_iso(now), later),
            )
            return int(cursor.rowcount)

    def release_webhook_claims(
        self, row_ids: Collection[int] = (), *, owner: str, box: str | None = None
    ) -> int:
        """Let go of `owner`'s claims on `row_ids` (its attempts were dropped at a clean stop:
        any sender may try them at once); or, given `box`, of every claim made on that box by
        another process than `owner` (this box's previous daemon, dead: nothing of it is in
        flight). Return how many were released."""
        if box is None and not row_ids:
            return 0
        args: tuple[Any, ...]
        if box is not None:
            where, args = "claim_box = ? AND claim_owner != ?", (box, owner)
        else:
            marks = ", ".join("?" * len(row_ids))
            where, args = f"claim_owner = ? AND id IN ({marks})", (owner, *row_ids)
        with self.transaction(durable=False, exclusive=False):
            cursor = self.conn.execute(
                "UPDATE webhook_events SET claim_box = NULL, claim_owner = NULL,"
                f" claim_until = NULL WHERE state = 'pending' AND {where}",
                args,
            )
        return int(cursor.rowcount)

    def record_webhook_attempts(
        self, attempts: Sequence[WebhookAttempt], *, owner: str | None = None
    ) -> None:
        """Record many attempts' outcomes in one transaction, without an fsync of its own: a
        power cut may lose the record, and then the attempt is made again (same event id),
        which the sender promises anyway. `owner`'s claims on them end with the record (an
        outcome recorded after the claim ran out still counts: a delivery is a delivery).

        Row locks are guard enough (PostgreSQL: no fleet-wide writer lock): each statement
        changes the attempted event, or its followers' due time, by its own conditions."""
        _check_attempts(attempts)
        with self.transaction(durable=False, exclusive=False):
            self._record_attempts(attempts, owner)

    def _record_attempts(self, attempts: Sequence[WebhookAttempt], owner: str | None) -> None:
        for a in attempts:
            stamp = utc_iso(a.at)
            self.conn.execute(
                "UPDATE webhook_events SET state = ?, attempts = attempts + 1,"
                " last_status = ?, last_error = ?, last_attempt_at = ?, updated_at = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at),"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
                " claim_box = CASE WHEN claim_owner = ? THEN NULL ELSE claim_box END,"
                " claim_until = CASE WHEN claim_owner = ? THEN NULL ELSE claim_until END,"
                " claim_owner = CASE WHEN claim_owner = ? THEN NULL ELSE claim_owner END"
                " WHERE id = ? AND state = 'pending'",
                (
                    a.state.value, a.status, a.error, stamp, stamp,
                    utc_iso(a.next_attempt_at) if a.next_attempt_at is not None else None,
                    a.state.value, stamp, owner, owner, owner, a.row_id,
                ),
            )  # fmt: skip
            if a.state is WebhookState.PENDING and a.next_attempt_at is not None:
                # Events queued behind it wait as long: the due query never reads them while
                # their predecessor backs off.
                self.conn.execute(
                    "UPDATE webhook_events SET next_attempt_at = ? WHERE state = 'pending'"
                    " AND next_attempt_at < ? AND id > ? AND order_key ="
                    " (SELECT order_key FROM webhook_events WHERE id = ?)",
                    (utc_iso(a.next_attempt_at), utc_iso(a.next_attempt_at), a.row_id,
                     a.row_id),
                )  # fmt: skip

    # -- operator and API queries -----------------------------------------------------------

    def webhook_event(self, event_id: str) -> dict[str, Any] | None:
        """One event by its event id."""
        row = self.conn.execute(
            "SELECT * FROM webhook_events WHERE event_id = ?", (event_id,)
        ).fetchone()
        return dict(row) if row is not None else None

    def list_webhook_events(
        self,
        *,
        account_id: int | None = None,
        state: WebhookState | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Events newest first, with their outcome (attempts, last status and error)."""
        where, args = self._event_filter(account_id, (state,) if state else None, None)
        rows = self.conn.execute(
            f"SELECT * FROM webhook_events WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
        return [dict(r) for r in rows]

    def retry_webhook_events(
        self,
        *,
        now: datetime,
        account_id: int | None = None,
        event_ids: Sequence[str] | None = None,
    ) -> int:
        """Send events again from now, with a fresh retry window: the given ones (whatever
        their state: a delivered one is sent again), or else every one not delivered (failed,
        or pending and waiting out its backoff); return how many."""
        stamp = utc_iso(now)
        if event_ids is not None:
            where, args = self._event_filter(account_id, None, event_ids)
        else:
            undelivered = (WebhookState.FAILED, WebhookState.PENDING)
            where, args = self._event_filter(account_id, undelivered, None)
        with self.transaction():
            cursor = self.conn.execute(
                "UPDATE webhook_events SET state = 'pending', next_attempt_at = ?,"
                f" window_start = ?, updated_at = ? WHERE {where}",
                (stamp, stamp, stamp, *args),
            )
            if cursor.rowcount and self.on_webhook_enqueued is not None:
                self.after_commit(self.on_webhook_enqueued)
        return cursor.rowcount

    def purge_webhook_events(
        self,
        *,
        states: Sequence[WebhookState],
        before: datetime | None = None,
        account_id: int | None = None,
    ) -> int:
        """Delete delivered and/or failed events last touched before `before`; pending events
        are never purged (that would lose them)."""
        if WebhookState.PENDING in states:
            raise ValueError("pending webhook events are never purged")
        where, args = self._event_filter(account_id, tuple(states), None)
        if before is not None:
            where += " AND updated_at < ?"
            args.append(utc_iso(before))
        with self.transaction():
            cursor = self.conn.execute(f"DELETE FROM webhook_events WHERE {where}", args)
        return cursor.rowcount

    def webhook_counts(self) -> dict[str, int]:
        """Events per delivery state (every state present, zero or not)."""
        counts = dict.fromkeys((s.value for s in WebhookState), 0)
        for state, n in self.conn.execute(
            "SELECT state, COUNT(*) FROM webhook_events GROUP BY state"
        ):
            counts[str(state)] = int(n)
        return counts

    @staticmethod
    def _event_filter(
        account_id: int | None,
        states: Sequence[WebhookState] | None,
        event_ids: Sequence[str] | None,
    ) -> tuple[str, list[Any]]:
        where = ["1 = 1"]
        args: list[Any] = []
        if account_id is not None:
            where.append("account_id = ?")
            args.append(account_id)
        if states is not None:
            where.append(f"state IN ({', '.join('?' * len(states)) or 'NULL'})")
            args.extend(s.value for s in states)
        if event_ids is not None:
            where.append(f"event_id IN ({', '.join('?' * len(event_ids)) or 'NULL'})")
            args.extend(event_ids)
        return " AND ".join(where), args
