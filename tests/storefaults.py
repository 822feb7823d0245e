"""Store faults for tests: connections whose COMMITs fail as on a full disk, on demand."""

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
    write of the commit is where ENOSPC hits); the transaction stays open for our ROLLBACK.
    Other connections of the same store write to the same disk through `also`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.full = False
        self.allow = 0  # commits still let through while full (to fail a later one)
        self.refused = 0

    def commit(self) -> None:
        """A COMMIT is about to be written (on any connection): refuse it while full."""
        if self.full and self.allow > 0:
            self.allow -= 1
        elif self.full:
            self.refused += 1
            raise full_disk_error()

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.strip().upper() == "COMMIT":
            self.commit()
        return self._conn.execute(sql, *args)

    def also(self, conn: sqlite3.Connection) -> _SameDisk:
        """Another connection writing to this disk."""
        return _SameDisk(conn, self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


class _SameDisk:
    def __init__(self, conn: sqlite3.Connection, disk: FullDisk) -> None:
        self._conn = conn
        self._disk = disk

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql.strip().upper() == "COMMIT":
            self._disk.commit()
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def fill_disk(store: StoreBase) -> FullDisk:
    """Put a FullDisk (disk still free) between `store` and its connections, the accept
    connection included (opened now: the group commit's thread writes to the same disk);
    return it."""
    if isinstance(store.conn, FullDisk):
        return store.conn
    fault = FullDisk(store.conn)  # type: ignore[arg-type]
    store.conn = fault  # type: ignore[assignment]
    if store.open_accept_connection():
        accept = store._accept
        assert accept is not None
        accept.conn = fault.also(accept.conn)  # type: ignore[arg-type, assignment]
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


class _SameRefusal:
    def __init__(self, conn: sqlite3.Connection, fault: Refusing) -> None:
        self._conn = conn
        self._fault = fault

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self._fault.down:
            self._fault.refused += 1
            raise read_error(self._fault.code)
        return self._conn.execute(sql, *args)

    def executemany(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if self._fault.down:
            self._fault.refused += 1
            raise read_error(self._fault.code)
        return self._conn.executemany(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def refuse_statements(store: StoreBase, code: int = 10) -> Refusing:
    """Put a Refusing between `store` and its connections (still answering), the accept
    connection included, and return it."""
    fault = Refusing(store.conn, code)  # type: ignore[arg-type]
    store.conn = fault  # type: ignore[assignment]
    if store.open_accept_connection():
        accept = store._accept
        assert accept is not None
        accept.conn = _SameRefusal(accept.conn, fault)  # type: ignore[arg-type, assignment]
    return fault
