"""The store's errors shared by both engines (and the PostgreSQL connection, the daemon lock)."""

from __future__ import annotations


class StoreUnavailableError(RuntimeError):
    """The database cannot take a write now (disk full, I/O error, locked by another process,
    the server unreachable); the transaction was rolled back whole, and the same write may
    succeed later."""


class StoreOpenError(RuntimeError):
    """The database cannot be opened: a server that does not answer or refuses us, a database
    that is not UTF8, a schema newer than this smsgw. Nothing was written."""
