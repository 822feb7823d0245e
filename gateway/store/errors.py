"""The store's "not now" error, shared by both engines (and the PostgreSQL connection)."""

from __future__ import annotations


class StoreUnavailableError(RuntimeError):
    """The database cannot take a write now (disk full, I/O error, locked by another process,
    the server unreachable); the transaction was rolled back whole, and the same write may
    succeed later."""
