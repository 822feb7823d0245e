"""Store faults for tests: a connection whose COMMITs fail as on a full disk, on demand."""

from __future__ import annotations

import sqlite3
from typing import Any

from gateway.store import StoreBase


def full_disk_error() -> sqlite3.OperationalError:
    """The error SQLite raises when the disk (or max_page_count) is full."""
    exc = sqlite3.OperationalError("database or disk is full")
    exc.sqlite_errorcode = 13  # type: ignore[attr-defined]
    exc.sqlite_errorname = "SQLITE_FULL"  # type: ignore[attr-defined]
    return exc


class FullDisk:
    """Wraps a store's connection: while `full`, every COMMIT fails with SQLITE_FULL (the WAL
    write of the commit is where ENOSPC hits); the transaction stays open for our ROLLBACK."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.full = False
        self.allow = 0  # commits still let through while full (to fail a later one)
        self.refused = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.full and sql.strip().upper() == "COMMIT" and self.allow > 0:
            self.allow -= 1
        elif self.full and sql.strip().upper() == "COMMIT":
            self.refused += 1
            raise full_disk_error()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def fill_disk(store: StoreBase) -> FullDisk:
    """Put a FullDisk between `store` and its connection (disk still free) and return it."""
    if isinstance(store.conn, FullDisk):
        return store.conn
    fault = FullDisk(store.conn)
    store.conn = fault  # type: ignore[assignment]
    return fault


def read_error(code: int = 10) -> sqlite3.OperationalError:
    """The error SQLite raises when a read fails: SQLITE_IOERR (10, the SD card) by default,
    SQLITE_BUSY (5) or SQLITE_CANTOPEN (14, no file descriptor left)."""
    text = {5: "database is locked", 14: "unable to open database file"}.get(code, "disk I/O error")
    exc = sqlite3.OperationalError(text)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    return exc


class Refusing:
    """Wraps a store's connection: while `down`, every statement fails with `error` (reads
    too, which a lock held by another process never makes fail in WAL mode)."""

    def __init__(self, conn: sqlite3.Connection, code: int) -> None:
        self._conn = conn
        self.code = code
        self.down = False
        self.refused = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.down:
            self.refused += 1
            raise read_error(self.code)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self.down:
            self.refused += 1
            raise read_error(self.code)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def refuse_statements(store: StoreBase, code: int = 10) -> Refusing:
    """Put a Refusing between `store` and its connection (still answering) and return it."""
    fault = Refusing(store.conn, code)  # type: ignore[arg-type]
    store.conn = fault  # type: ignore[assignment]
    return fault
