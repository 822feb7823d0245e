"""The connection every part of the store shares: one writer, explicit transactions.

Two engines: SQLite (the embedded default: a file in the data directory, WAL) and PostgreSQL
(fleet mode, `postgresql://…`). The mixins write SQLite-flavoured SQL against `Connection`;
`gateway.store.postgres` translates it for PostgreSQL.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

import psycopg
import sqlite_utils

from gateway.config import DATABASE_FILE
from gateway.store.daemonlock import DaemonLock, DatabaseInUseError
from gateway.store.errors import StoreOpenError, StoreUnavailableError
from gateway.store.migrations import (
    MIGRATIONS,
    current_version,
    migrate,
    migrate_pg,
    table_order,
)
from gateway.store.postgres import (
    PgConnection,
    PgEncodingError,
    is_lock_timeout,
    is_pg_unavailable,
)

DATABASE_NAME = DATABASE_FILE
T = TypeVar("T")
BUSY_TIMEOUT_MS = 5000
WAL_AUTOCHECKPOINT = 1000  # pages (SQLite's default)
# A write waits this long at most for another of this process's connections to commit (a slow
# fsync); past it something holds the lock it should not (a write nested in another).
WRITER_WAIT_S = 30.0
# Once a write was refused for another process's lock, later writes only glance at the lock
# (SQLite's busy handler retries within this) until one gets it: the daemon's one thread then
# waits the full busy timeout once per lock episode, not once per write.
CONTENDED_BUSY_MS = 20
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
SQLITE_SCHEME = "sqlite://"


class Cursor(Protocol):
    """What the store reads back from a statement (sqlite3.Cursor or PgCursor)."""

    @property
    def rowcount(self) -> int: ...
    @property
    def lastrowid(self) -> int | None: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """What the store runs statements on (sqlite3.Connection or PgConnection)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...
    def close(self) -> None: ...


def is_postgres_url(target: Path | str) -> bool:
    """Whether `target` names a PostgreSQL database rather than an SQLite file or directory."""
    return isinstance(target, str) and target.startswith(POSTGRES_SCHEMES)


def sqlite_path(target: Path | str) -> Path:
    """The SQLite file `target` names: `sqlite:///abs/path`, a file, or a data directory."""
    text = str(target)
    if isinstance(target, str) and text.startswith(SQLITE_SCHEME):
        text = text[len(SQLITE_SCHEME) :]
    path = Path(text)
    return path / DATABASE_NAME if path.is_dir() else path


def _connect_sqlite(target: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection to the SQLite file `target` as the store uses it (WAL, synchronous FULL)."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves so durability points are explicit.
    conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: with WAL, NORMAL may lose the last commits on power loss; an accepted message
    # must survive a power cut once the API has answered.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _migrate_sqlite(conn: sqlite3.Connection, target: Path, *, locked: bool) -> None:
    """Apply the pending migrations to the SQLite file `target`, holding its daemon lock while
    any change the schema (`locked`: this process already holds it, as the daemon).

    A daemon running on the file (an older smsgw, not restarted after an upgrade) would go on
    with statements prepared for the old schema, so a command that would migrate under it is
    refused (DatabaseInUseError) before anything changes; and while the lock is held no daemon
    starts mid-migration. Nothing to migrate (the usual case: the daemon migrated at its start)
    takes no lock, so backup, accounts, top, ... run beside the daemon."""
    version = current_version(conn)
    if locked or version >= len(MIGRATIONS):
        migrate(conn, MIGRATIONS)  # nothing to do (or a newer schema: refused there)
        return
    try:
        lock = DaemonLock.take(target)
    except DatabaseInUseError as exc:
        raise DatabaseInUseError(
            f"{exc}: stop it before this smsgw migrates the schema"
            f" (version {version} to {len(MIGRATIONS)})"
        ) from None
    try:
        migrate(conn, MIGRATIONS)  # reads the version again: a daemon may have migrated first
    finally:
        lock.release()


def utc_iso(moment: datetime) -> str:
    """Format an aware datetime as a sortable UTC ISO-8601 string."""
    if moment.tzinfo is None:
        raise ValueError("store times must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def escape_like(term: str) -> str:
    """Escape LIKE wildcards so a search term matches literally."""
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One message state change (or reported part) as the store saw it, inside its transaction."""

    message_id: int
    account_id: int
    previous_state: str
    state: str
    part_id: int | None
    part_state: str | None
    tp_status: int | None
    stamp: str


class Staged(Generic[T]):
    """A write transaction whose statements ran and whose COMMIT is still to come: commit()
    (from any thread, once) makes it durable and returns what the work returned, or rolls it
    back and raises as the transaction would have (StoreUnavailableError for a full disk)."""

    def __init__(self, store: StoreBase, value: T) -> None:
        self._store = store
        self._value = value
        self._then: Callable[[], None] | None = None

    def then(self, release: Callable[[], None]) -> Staged[T]:
        """Also call `release` once committed or rolled back (a lock held for the store)."""
        self._then = release
        return self

    def commit(self) -> T:
        """COMMIT (the fsync) and return the work's result."""
        try:
            self._store._finish(True)
        finally:
            if self._then is not None:
                self._then()
        return self._value

    def abort(self) -> None:
        """ROLLBACK instead (nobody is left to commit it, say)."""
        try:
            self._store._abort(True)
        finally:
            if self._then is not None:
                self._then()


class StaleStateError(RuntimeError):
    """A compare-and-set state change found the row in another state than expected."""


class DuplicateError(ValueError):
    """An insert broke a UNIQUE constraint (a name or key that is taken), on either engine."""


def is_unique_violation(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's or PostgreSQL's UNIQUE (or primary key) violation."""
    if isinstance(exc, sqlite3.IntegrityError):
        return "UNIQUE" in str(exc) or "PRIMARY KEY" in str(exc)
    return isinstance(exc, psycopg.errors.UniqueViolation)


# Primary result codes that say "not now" rather than "wrong": SQLITE_BUSY, SQLITE_LOCKED,
# SQLITE_IOERR (ENOSPC on the -wal or -shm write), SQLITE_FULL, SQLITE_CANTOPEN (no fd left).
_UNAVAILABLE_CODES = frozenset({5, 6, 10, 13, 14})
_LOCK_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED: another connection holds it


def _is_lock(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in _LOCK_CODES
    return "locked" in str(exc)


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is SQLite, PostgreSQL (or the OS) refusing for now: worth a retry, not a
    failure."""
    if isinstance(exc, StoreUnavailableError) or is_pg_unavailable(exc):
        return True
    if isinstance(exc, sqlite3.OperationalError):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in _UNAVAILABLE_CODES
        text = str(exc)
        return "disk is full" in text or "locked" in text or "disk I/O" in text
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE)


class StoreBase:
    """Synchronous store; the daemon calls it from a single writer thread."""

    def __init__(
        self, conn: sqlite3.Connection | PgConnection, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS
    ) -> None:
        self.conn: Connection = conn
        self._sqlite = conn if isinstance(conn, sqlite3.Connection) else None
        self._pg = conn if isinstance(conn, PgConnection) else None
        self.dialect = "sqlite" if self._sqlite is not None else "postgresql"
        self.db = sqlite_utils.Database(self._sqlite) if self._sqlite is not None else None
        # Told how long each COMMIT took (the fsync: /metrics shows it); None: not measured.
        self.on_commit: Callable[[float], None] | None = None
        # Run once the current transaction has committed (never after a rollback): in-process
        # listeners learn about durable rows without polling (the webhook sender's wake-up).
        self._after_commit: list[Callable[[], None]] = []
        self.busy_timeout_ms = busy_timeout_ms
        self.path: Path | None = None  # the SQLite file (None: PostgreSQL, or not opened by path)
        # The SQLite file's daemon lock when opened with daemon=True (let go by close()).
        self.daemon_lock: DaemonLock | None = None
        # Another process held the write lock at our last attempt (see CONTENDED_BUSY_MS).
        self.contended = False
        self.lock_refusals = 0  # writes refused for another process's lock
        self.lock_waits = 0  # of those, the ones that waited the full busy timeout
        # The current transaction queued work another box may take (PostgreSQL: NOTIFY at its
        # COMMIT, so every daemon's listener wakes its dispatcher; SQLite has no other box).
        self._work_queued = False
        # The PostgreSQL URL open() was given (to open it again; SQLite: `path`), and the second
        # connection that accept_batches runs on once open_accept_connection() made it.
        self._url: str | None = None
        self._accept: StoreBase | None = None
        self._accept_lock = threading.Lock()
        self._accept_thread: ThreadPoolExecutor | None = None
        # SQLite: this process's connections take turns for the write lock here, so SQLite's
        # busy handler (its sleeps, the busy timeout, the lock counts above) only ever meets
        # another process's lock. The accept connection shares its store's lock and counts.
        self._writer = threading.Lock()
        self._owner: StoreBase = self
        self._glancing = False  # this connection's busy timeout is the glance (see contended)

    @classmethod
    def open(
        cls, path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, daemon: bool = False
    ) -> Self:
        """Open (creating and migrating) the database `path` names: a `postgresql://…` URL, a
        `sqlite:///…` URL, an SQLite file or a data directory (holding smsgw.sqlite3).

        `daemon` (SQLite): first take the file's daemon lock, held until close(), or raise
        DatabaseInUseError while another daemon runs on it (see gateway.store.daemonlock);
        nothing is read or written then. PostgreSQL ignores it (the box_id row does that job).
        Without it the lock is taken only while migrations change the schema (refused, with
        nothing changed, while a daemon runs on the file: see _migrate_sqlite).

        `busy_timeout_ms` bounds how long an SQLite write waits for another process's lock (a
        backup, an outside writer) before StoreUnavailableError: the daemon's single thread
        waits in it, so the daemon keeps it well under an HTTP client's timeout; it waits that
        long once per lock episode (later writes glance, see CONTENDED_BUSY_MS)."""
        if is_postgres_url(path):
            # The same bound on PostgreSQL: a lock held by another box (the fleet-wide writer
            # lock above all) is waited for busy_timeout_ms at most (see PgConnection).
            try:
                pg = PgConnection(str(path), lock_timeout_ms=busy_timeout_ms)
            except PgEncodingError as exc:
                raise StoreOpenError(str(exc)) from exc
            except psycopg.OperationalError as exc:  # no server, wrong password, no database
                reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
                raise StoreOpenError(f"cannot connect to PostgreSQL: {reason}") from exc
            try:
                migrate_pg(pg)
            except BaseException:
                pg.close()
                raise
            store = cls(pg, busy_timeout_ms=busy_timeout_ms)
            store._url = str(path)
            return store
        target = sqlite_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = DaemonLock.take(target) if daemon else None
        try:
            conn = _connect_sqlite(target, busy_timeout_ms)
            try:
                _migrate_sqlite(conn, target, locked=lock is not None)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        store = cls(conn, busy_timeout_ms=busy_timeout_ms)
        store.path = target
        store.daemon_lock = lock
        return store

    def accept_thread(self) -> Executor | None:
        """The thread to call accept_batches from (opening the accept connection and the
        thread on first use; both closed with this store), or None when this store cannot
        open a second connection: then accept_batches runs where it is called."""
        if self._accept_thread is None and self.open_accept_connection():
            self._accept_thread = ThreadPoolExecutor(1, thread_name_prefix="smsgw-accept")
        return self._accept_thread

    def open_accept_connection(self) -> bool:
        """Give accept_batches a connection of its own to the same database (once; closed
        with this store), so that the group commit can run it in a thread, its COMMIT's fsync
        included, while this connection goes on serving the event loop: WAL readers never wait
        for that writer, and writers take turns on the database's one write lock as before.
        False when there is no second connection to open (a store made from a bare one)."""
        if self._accept is not None:
            return True
        if self._url is not None:
            pg = PgConnection(self._url, lock_timeout_ms=self.busy_timeout_ms)
            pg.refresh_schema()  # migrated by open() already
            accept = type(self)(pg, busy_timeout_ms=self.busy_timeout_ms)
        elif self.path is not None and self._sqlite is not None:
            accept = type(self)(
                _connect_sqlite(self.path, self.busy_timeout_ms),
                busy_timeout_ms=self.busy_timeout_ms,
            )
            accept.path = self.path
            # The WAL is checkpointed by the connection whose COMMIT finds it past the limit:
            # let that be the accept connection's thread (it commits the most), not the loop.
            # Past ten times the limit the loop's connection still checkpoints (no API traffic
            # for long, and the sending goes on).
            self._sqlite.execute(f"PRAGMA wal_autocheckpoint = {10 * WAL_AUTOCHECKPOINT}")
        else:
            return False
        # /metrics times its COMMITs like this connection's.
        accept.on_commit = lambda seconds: self.on_commit(seconds) if self.on_commit else None
        accept._writer, accept._owner = self._writer, self
        self._accept = accept
        return True

    def close(self) -> None:
        """Close the connection (and the accept connection and its thread, if open)."""
        if self._accept_thread is not None:
            self._accept_thread.shutdown(wait=True)  # a group commit in flight ends first
            self._accept_thread = None
        if self._accept is not None:
            with self._accept_lock:
                self._accept.close()
                self._accept = None
        try:
            self.conn.close()
        finally:
            # Last: another daemon may start once this one has let go of the database.
            if self.daemon_lock is not None:
                self.daemon_lock.release()
                self.daemon_lock = None

    @contextmanager
    def transaction(self, *, durable: bool = True, exclusive: bool = True) -> Iterator[Connection]:
        """Run a block in one write transaction; committed (durable) when the block exits.

        SQLite: BEGIN IMMEDIATE takes the database's one write lock up front. PostgreSQL: the
        same discipline fleet-wide, a transaction-scoped advisory lock taken first, so every
        read-check-write block of the mixins (credits, compare-and-set states) stays as
        serialised as it is on SQLite. `exclusive=False` (PostgreSQL) skips that lock for a
        block whose row locks are guard enough (claiming work with SKIP LOCKED, renewing a
        lease): boxes then do not queue behind each other's writes for it.

        `durable=False` skips the fsync for bookkeeping whose loss in a power cut only repeats
        work (the webhook sender's attempt records): WAL keeps it consistent, and the next
        durable commit's fsync makes it durable too (PostgreSQL: synchronous_commit off for
        this one transaction, the same promise)."""
        self._begin(durable, exclusive)
        try:
            yield self.conn
        except BaseException as exc:
            self._abort(durable)
            if (unavailable := self._unavailable(exc)) is not None:
                raise unavailable from exc
            raise
        self._finish(durable)

    def staged(self, work: Callable[[], T]) -> Staged[T]:
        """Run `work` in a write transaction (as `transaction()` would) and leave its COMMIT to
        the returned Staged: committed in another thread, say, while this one goes on. Until
        then the transaction holds the write lock and this connection is its alone."""
        self._begin(True, True)
        try:
            value = work()
        except BaseException as exc:
            self._abort(True)
            if (unavailable := self._unavailable(exc)) is not None:
                raise unavailable from exc
            raise
        return Staged(self, value)

    def _begin(self, durable: bool, exclusive: bool) -> None:
        self._work_queued = False
        if self._pg is not None:
            # Once refused for another box's lock, later writes only glance (as on SQLite).
            owner = self._owner
            glance = min(CONTENDED_BUSY_MS, self.busy_timeout_ms) if owner.contended else None
            try:
                self._pg.begin(exclusive=exclusive, durable=durable, glance_ms=glance)
            except StoreUnavailableError as exc:
                if exclusive and is_lock_timeout(exc):
                    owner._lock_refused()
                raise
            if exclusive and owner.contended:
                owner._lock_regained()
            return
        owner = self._owner
        if self._glancing != owner.contended:
            self._busy_timeout(glance=owner.contended)
        if not durable:
            self.conn.execute("PRAGMA synchronous = NORMAL")
        # (Inside a transaction already, BEGIN below fails as it always did: no lock taken.)
        held = self._sqlite is not None and not self._sqlite.in_transaction
        if held and not self._writer.acquire(timeout=WRITER_WAIT_S):
            raise StoreUnavailableError("this process's write lock was not given back in time")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException as exc:
            if held:
                self._writer.release()
            if not durable:
                self.conn.execute("PRAGMA synchronous = FULL")
            if isinstance(exc, sqlite3.OperationalError):
                if _is_lock(exc):  # another process holds the write lock
                    owner._lock_refused()
                if is_unavailable(exc):
                    raise StoreUnavailableError(str(exc)) from exc
            raise
        if owner.contended:
            owner._lock_regained()

    def _finish(self, durable: bool) -> None:
        """COMMIT the open transaction, then tell on_commit and the after-commit callbacks."""
        started = time.perf_counter()
        try:
            if self._pg is not None:
                # Delivered to the listeners at COMMIT, and only if it commits.
                self._pg.commit(notify=self._work_queued)
            else:
                self.conn.execute("COMMIT")
        except BaseException as exc:
            self._abort(durable)
            if (unavailable := self._unavailable(exc)) is not None:
                raise unavailable from exc
            raise
        if self._pg is None:
            self._writer.release()
            if not durable:
                self.conn.execute("PRAGMA synchronous = FULL")
        if self.on_commit is not None:
            self.on_commit(time.perf_counter() - started)
        if self._after_commit:
            callbacks, self._after_commit = self._after_commit, []
            for callback in callbacks:
                callback()

    def _abort(self, durable: bool) -> None:
        """Roll the open transaction back (after an exception in it or in its COMMIT)."""
        if self._pg is not None:
            self._rollback()
            self._after_commit.clear()
            return
        try:
            # SQLITE_FULL (and some I/O errors) may already have rolled the transaction back;
            # a failed COMMIT may not have: either way nothing of it stays.
            if self._sqlite is not None and self._sqlite.in_transaction:
                self.conn.execute("ROLLBACK")
            self._after_commit.clear()
        finally:
            self._writer.release()
            if not durable:
                self.conn.execute("PRAGMA synchronous = FULL")

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError | None:
        """What a failed SQLite transaction raises instead of `exc` (a full disk, a lock held
        by another process), or None to raise `exc` itself."""
        if self._pg is None and is_unavailable(exc) and not isinstance(exc, StoreUnavailableError):
            return StoreUnavailableError(str(exc))
        return None

    def write_locked(self) -> bool:
        """Whether another process holds the write lock, so writes are refused now (SQLite).

        Only asks SQLite (a glance: BEGIN IMMEDIATE, then ROLLBACK) while the last write was
        refused for a lock, so health checks see the lock go even when nothing else writes."""
        if self._pg is not None and self.contended and not self._pg.in_transaction:
            if not self._pg.writer_lock_free():
                return True
            self._lock_regained()
            return False
        if self._sqlite is None or not self.contended or self._sqlite.in_transaction:
            return self.contended
        if self._glancing != self.contended:
            self._busy_timeout(glance=self.contended)
        with self._writer:  # not this process's own group commit
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_lock(exc):
                    return True
                raise
            self.conn.execute("ROLLBACK")
        self._lock_regained()
        return False

    def _lock_refused(self) -> None:
        """A write (on any of this store's connections) was refused for another process's
        lock: from now on writes only glance at the lock, until one gets it."""
        self.lock_refusals += 1
        if not self.contended:
            self.lock_waits += 1
            self.contended = True

    def _lock_regained(self) -> None:
        self.contended = False
        if self._glancing and self._sqlite is not None:
            self._busy_timeout(glance=False)

    def _busy_timeout(self, *, glance: bool) -> None:
        """Set this connection's busy timeout: the glance while its store is contended, else
        the full one (each connection sets its own, before its next write)."""
        timeout = min(CONTENDED_BUSY_MS, self.busy_timeout_ms) if glance else self.busy_timeout_ms
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        self._glancing = glance

    def _queued_work(self) -> None:
        """The current transaction queued work any box may send (accepted, due, requeued or
        released): on PostgreSQL every daemon is told at its COMMIT."""
        self._work_queued = True

    def read_epoch(self) -> tuple[int, int] | None:
        """A value that changes whenever anything may have been written to the database:
        committed by another connection or process (SQLite's data_version), or changed through
        this one (its count of changed rows), so a row read under one epoch is still current
        while the epoch is. None: not known (PostgreSQL; inside a transaction, whose own writes
        it would not show), so nothing may be kept."""
        if self._sqlite is None or self._sqlite.in_transaction:
            return None
        (version,) = self._sqlite.execute("PRAGMA data_version").fetchone()
        return int(version), self._sqlite.total_changes

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the current transaction commits (once, however often asked)."""
        if callback not in self._after_commit:
            self._after_commit.append(callback)

    # Changes other aggregates record in the SAME transaction (the webhook outbox overrides
    # these); the base store records nothing.

    def _message_status_changed(self, change: StatusChange) -> None:
        """A message's state changed, or a status report settled one of its parts."""

    def _inbound_stored(self, inbound_id: int) -> None:
        """An inbound message (reassembled, or surfaced incomplete) was stored."""

    def schema_version(self) -> int:
        """The schema version the database records."""
        if self._pg is not None:
            return current_version(self._pg)
        assert self._sqlite is not None
        return current_version(self._sqlite)

    def _rollback(self) -> None:
        if self._pg is not None:
            if self._pg.in_transaction:  # a failed COMMIT has ended it already
                self._pg.rollback()
            return
        self.conn.execute("ROLLBACK")

    def copy_to(self, target: StoreBase, *, batch: int = 1000) -> dict[str, int]:
        """Copy every row of this database into `target` (another engine, say), keeping ids,
        in one transaction of the target; return the rows copied per table.

        `target` must be at the same schema version and hold no rows yet (a fresh database)."""
        if target.schema_version() != self.schema_version():
            raise ValueError(
                f"schema versions differ ({self.schema_version()} here,"
                f" {target.schema_version()} there): migrate both first"
            )
        tables = [t for t in table_order() if t in set(self.table_names())]
        for table in tables:
            if target.conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:
                raise ValueError(f"the target already holds rows ({table}); copy into a new one")
        copied: dict[str, int] = {}
        with target.transaction():
            for table in tables:
                rows = self.conn.execute(f"SELECT * FROM {table}").fetchall()
                copied[table] = len(rows)
                if not rows:
                    continue
                columns = list(rows[0].keys())
                insert = (
                    f"INSERT INTO {table} ({', '.join(columns)})"
                    f" VALUES ({', '.join('?' * len(columns))})"
                )
                for start in range(0, len(rows), batch):
                    target.conn.executemany(insert, [tuple(r) for r in rows[start : start + batch]])
            if target._pg is not None:
                target._pg.reset_identities()
        return copied

    def integrity_check(self) -> list[str]:
        """Return SQLite's integrity_check problems (empty when the file is sound); PostgreSQL
        keeps its own files sound (checksums, WAL), so nothing to report there."""
        if self._sqlite is None:
            return []
        rows = self._sqlite.execute("PRAGMA integrity_check").fetchall()
        problems = [str(r[0]) for r in rows]
        return [] if problems == ["ok"] else problems

    def check_offline(self) -> list[str]:
        """integrity_check of this store's SQLite file on a read-only connection of its own, so
        a thread may run it while the daemon writes (PostgreSQL: nothing to check)."""
        return [] if self.path is None else self.check_file(self.path)

    def _insert(self, table: str, row: Mapping[str, Any]) -> int:
        """INSERT one row given as a column -> value mapping (inside the caller's transaction
        if there is one); return its id."""
        cursor = self.conn.execute(
            f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            tuple(row.values()),
        )
        return int(cursor.lastrowid or 0)

    @staticmethod
    def backup_file(
        source: Path, destination: Path, progress: Callable[[int, int], None] | None = None
    ) -> None:
        """Copy the SQLite file `source` to `destination` with SQLite's online backup, on a
        read-only connection of its own: the database as it was when the backup began, while
        the daemon goes on writing; neither migrated nor locked, so a newer smsgw backs up a
        database the running older daemon still uses, before the restart that migrates it.

        The copy runs inside one read transaction, a WAL snapshot: the daemon's writes neither
        wait for it (WAL readers never block the writer) nor restart it. Without the snapshot
        each backup step that sees another connection's commit starts over from page 1, and a
        large backup on a busy box would never finish."""
        if not source.is_file():
            raise StoreOpenError(f"no database at {source}")
        uri = f"{source.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            _online_backup(conn, destination, progress)
        except sqlite3.DatabaseError as exc:  # not a database, or unreadable to this user
            raise StoreOpenError(f"cannot back up {source}: {exc}") from exc
        finally:
            conn.close()

    def count_by_state(self, table: str = "parts") -> dict[str, int]:
        """Count rows per state in `parts` or `messages`."""
        if table not in ("parts", "messages"):
            raise ValueError(f"no state column on {table!r}")
        rows = self.conn.execute(f"SELECT state, COUNT(*) FROM {table} GROUP BY state").fetchall()
        return {str(r[0]): int(r[1]) for r in rows}

    def table_names(self) -> Sequence[str]:
        """Names of the tables in the schema."""
        if self.db is None:
            rows = self.conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name != 'smsgw_schema'"
                " ORDER BY table_name"
            ).fetchall()
            return [str(r[0]) for r in rows]
        return self.db.table_names()

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


def _online_backup(
    source: sqlite3.Connection, destination: Path, progress: Callable[[int, int], None] | None
) -> None:
    """SQLite's online backup of `source` to `destination` inside one read transaction (see
    StoreBase.backup_file)."""
    target = sqlite3.connect(destination)
    try:
        source.execute("BEGIN")
        try:
            source.execute("SELECT COUNT(*) FROM sqlite_schema").fetchone()  # the snapshot
            source.backup(
                target,
                pages=256,
                progress=(lambda _status, remaining, total: progress(total - remaining, total))
                if progress is not None
                else None,
            )
        finally:
            source.execute("ROLLBACK")  # read only: nothing to keep
    finally:
        target.close()
