"""An account's sent and received messages as one mailbox: listing with filters, read and deleted
flags, deletion (unsent parts stopped and refunded) and per-outcome totals for statistics."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.store import MailboxQuery, Store

KINDS = ("out", "in")


class MailboxError(LookupError):
    """No message of that id in the account's mailbox."""


class Mailbox:
    """Both directions of every account's messages; the store does the SQL."""

    def __init__(self, store: Store, *, wall: Callable[[], datetime]) -> None:
        self.store = store
        self.wall = wall

    def query(
        self, account_id: int, q: MailboxQuery, *, limit: int, offset: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page newest first) of the account's messages matching `q`."""
        return self.store.mailbox(account_id, q, limit=limit, offset=offset)

    def entry(self, account_id: int, kind: str, entry_id: int) -> dict[str, Any]:
        """One sent ("out") or received ("in") message of the account."""
        row = self.store.mailbox_entry(account_id, kind, entry_id) if kind in KINDS else None
        if row is None:
            raise MailboxError(f"no {kind} message {entry_id}")
        return row

    def mark_read(self, account_id: int, kind: str, entry_id: int, read: bool) -> dict[str, Any]:
        """Flag a message read or unread; the message after the change."""
        self.entry(account_id, kind, entry_id)
        self.store.set_mailbox_flags(kind, entry_id, read=read)
        return self.entry(account_id, kind, entry_id)

    def delete(self, account_id: int, kind: str, entry_id: int) -> None:
        """Flag a message deleted; what of a sent one has not left is stopped and refunded."""
        self.entry(account_id, kind, entry_id)
        if kind == "out":
            self.store.cancel_message(entry_id, now=self.wall())
        self.store.set_mailbox_flags(kind, entry_id, deleted=True)

    def outcome_totals(
        self,
        account_ids: Sequence[int],
        *,
        start: datetime,
        end: datetime,
        label_key: str,
        label: str | None = None,
    ) -> list[dict[str, Any]]:
        """Messages and parts per (account, `extra[label_key]`, outcome) in [start, end)."""
        return self.store.outcome_totals(
            account_ids, start=start, end=end, extra_key=label_key, extra_value=label
        )
