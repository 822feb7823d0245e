"""The store: one `Store` facade over one module per aggregate, sharing one SQLite connection.

Only this package holds SQL. `base` owns the connection and transactions; `messages` (outbound
messages, parts, batches, series), `inbound` (inbound parts, messages and status reports),
`sims` (SIMs and modems), `accounts` (accounts, credits, OTPs) and `contacts` (contacts, groups,
opt-outs, appointments) each add the queries for what they store.
"""

from __future__ import annotations

from gateway.store.accounts import AccountStore
from gateway.store.base import BUSY_TIMEOUT_MS, DATABASE_NAME, StaleStateError, StoreBase, utc_iso
from gateway.store.contacts import ContactStore
from gateway.store.inbound import InboundStore
from gateway.store.messages import AcceptedMessage, MessageQuery, MessageStore
from gateway.store.sims import SimStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DATABASE_NAME",
    "AcceptedMessage",
    "MessageQuery",
    "StaleStateError",
    "Store",
    "StoreBase",
    "utc_iso",
]


class Store(MessageStore, InboundStore, SimStore, AccountStore, ContactStore):
    """Every query of the gateway, on one connection; the daemon calls it from one writer thread."""
