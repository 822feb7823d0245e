"""The store: one `Store` facade over one module per aggregate, sharing one SQLite connection.

Only this package holds SQL. `base` owns the connection and transactions; `messages` (outbound
messages, parts, batches, series), `inbound` (inbound parts, messages and status reports),
`sims` (SIMs and modems), `accounts` (accounts, credits, OTPs), `contacts` (contacts, groups,
opt-outs, appointments), `settings` (box-wide values), `webhooks` (subscriptions, secrets,
the webhook outbox), `groups` (contacts and groups by id, memberships), `teams` (sub-accounts,
sending tokens, transfers), `templates` and `mailbox` (both directions as one list, read/deleted
flags, statistics) each add the queries for what they store; `operator` holds the read-only
queries of the operator's view across every account; `fleet` the SIM leases and message claims
that let several boxes share one PostgreSQL store.
"""

from __future__ import annotations

from gateway.store.accounts import AccountStore
from gateway.store.base import (
    BUSY_TIMEOUT_MS,
    DATABASE_NAME,
    DuplicateError,
    Staged,
    StaleStateError,
    StatusChange,
    StoreBase,
    is_unavailable,
    utc_iso,
)
from gateway.store.contacts import ContactStore
from gateway.store.daemonlock import DaemonLock, DatabaseInUseError
from gateway.store.errors import StoreOpenError, StoreUnavailableError
from gateway.store.fleet import BoxBeat, FleetStore, LeaseGrant, LeaseHolder
from gateway.store.groups import GroupStore
from gateway.store.inbound import InboundStore
from gateway.store.mailbox import MailboxQuery, MailboxStore
from gateway.store.messages import (
    AcceptedMessage,
    BatchRows,
    MessageQuery,
    MessageStore,
    SeriesRun,
)
from gateway.store.operator import InboxSearch, MessageSearch, OperatorStore
from gateway.store.settings import SettingsStore
from gateway.store.sims import SIM_LIMIT_COLUMNS, SimStore
from gateway.store.teams import TeamStore
from gateway.store.templates import TemplateStore
from gateway.store.webhooks import WebhookAttempt, WebhookStore

__all__ = [
    "BUSY_TIMEOUT_MS",
    "DATABASE_NAME",
    "SIM_LIMIT_COLUMNS",
    "AcceptedMessage",
    "BatchRows",
    "BoxBeat",
    "DaemonLock",
    "DatabaseInUseError",
    "DuplicateError",
    "InboxSearch",
    "LeaseGrant",
    "LeaseHolder",
    "MailboxQuery",
    "MessageQuery",
    "MessageSearch",
    "SeriesRun",
    "Staged",
    "StaleStateError",
    "StatusChange",
    "Store",
    "StoreBase",
    "StoreOpenError",
    "StoreUnavailableError",
    "WebhookAttempt",
    "is_unavailable",
    "utc_iso",
]


class Store(
    FleetStore,
    MessageStore,
    InboundStore,
    SimStore,
    AccountStore,
    ContactStore,
    SettingsStore,
    OperatorStore,
    WebhookStore,
    GroupStore,
    TeamStore,
    TemplateStore,
    MailboxStore,
):
    """Every query of the gateway, on one connection; the daemon calls it from one writer thread."""
