"""The PostgreSQL connection of the store, shaped like the sqlite3 one the mixins are written for.

The gateway calls the store synchronously from the daemon's writer thread (and the CLI), so this
is one synchronous psycopg connection used exactly like the sqlite3 connection: autocommit, with
explicit BEGIN/COMMIT issued by `StoreBase.transaction`. Each statement is translated once
(`gateway.store.dialect`) and cached; rows come back as `PgRow`, which reads like sqlite3.Row
(by index, by name, `dict(row)`), with booleans and numerics as SQLite would return them.

The daemon calls the store on its event loop, so nothing here may wait without bound: every
lock wait (the fleet-wide writer lock above all) gives up after `lock_timeout`, every statement
after `statement_timeout`, and a server that is gone is noticed (TCP keepalives, unacknowledged
data) and reconnected to on a later use, with a short backoff. Each of these answers
StoreUnavailableError, as SQLite's busy timeout does: the transaction was rolled back whole (a
COMMIT whose answer was lost is asked about on a new connection, by its transaction id).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import RowMaker

from gateway.store.dialect import Translated, translate
from gateway.store.errors import StoreUnavailableError

log = logging.getLogger(__name__)

# Advisory lock keys (one bigint namespace per database): migrations, and the write transaction
# (the fleet-wide analogue of SQLite's BEGIN IMMEDIATE: one writer at a time).
MIGRATION_LOCK = 0x736D7367_00000001
WRITER_LOCK = 0x736D7367_00000002
# NOTIFY channel of queued work: every daemon LISTENs on it and wakes its dispatcher.
WORK_CHANNEL = "smsgw_work"

# A statement may run this many lock timeouts (never less than STATEMENT_FLOOR_MS) before the
# server cancels it: far above any statement of the store, far below "forever".
STATEMENT_TIMEOUT_FACTOR = 10
STATEMENT_FLOOR_MS = 1000
# After a failed reconnect the next one waits this long, doubling up to the cap; until then
# every use answers StoreUnavailableError at once (a connect to a dead host blocks the loop).
RECONNECT_FIRST = 0.25
RECONNECT_CAP = 10.0
# For a server over TCP, unless the URL says otherwise: a connect gives up after 2 s, and a
# peer that vanished (cable, power) is noticed within seconds instead of a statement hanging
# until the kernel's own TCP timeout (minutes).
CONNECT_DEFAULTS: Mapping[str, str] = {
    "connect_timeout": "2",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "15000",
}
# SQLSTATE classes that say "not now" rather than "wrong": connection exceptions (08), the
# rollback class (40: deadlock, serialization failure), insufficient resources (53: disk full,
# too many connections), operator intervention (57: statement timeout, shutdown, starting up).
_UNAVAILABLE_CLASSES = frozenset({"08", "40", "53", "57"})
_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout ran out


def is_pg_unavailable(exc: BaseException) -> bool:
    """Whether `exc` is PostgreSQL (or the way to it) refusing for now: worth a retry."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate
    if state is None:  # the client's own: the connection failed or was lost
        return isinstance(exc, psycopg.OperationalError)
    return state[:2] in _UNAVAILABLE_CLASSES or state == _LOCK_NOT_AVAILABLE


def is_lock_timeout(exc: BaseException) -> bool:
    """Whether `exc` (or what it was raised from) is a lock wait that ran out."""
    cause = exc.__cause__ if isinstance(exc, StoreUnavailableError) else exc
    return isinstance(cause, psycopg.Error) and cause.sqlstate == _LOCK_NOT_AVAILABLE


class PgEncodingError(ValueError):
    """The PostgreSQL database is not UTF8, so text would not read back as it was written."""


class PgRow:
    """One result row: `row[0]`, `row["name"]`, `dict(row)`, unpacking — like sqlite3.Row."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: Mapping[str, int]) -> None:
        self._values = tuple(values)
        self._index = index

    def keys(self) -> list[str]:
        """The column names, in order."""
        return list(self._index)

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            try:
                return self._values[self._index[key]]
            except KeyError:
                return self._values[self._index[key.lower()]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PgRow):
            return self._values == other._values
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"PgRow({dict(zip(self._index, self._values, strict=True))!r})"


def _as_sqlite(value: Any) -> Any:
    """SQLite has no booleans or decimals: EXISTS gives 0/1 and SUM() an integer there."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    names = [c.name for c in cursor.description or ()]
    index = {name: i for i, name in enumerate(names)}
    index.update({name.lower(): i for i, name in enumerate(names) if name.lower() not in index})

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow([_as_sqlite(v) for v in values], index)

    return make


def _params(parameters: Sequence[Any]) -> tuple[Any, ...]:
    # The schema keeps SQLite's 0/1 INTEGER flags; a Python bool would be sent as boolean.
    return tuple(int(v) if isinstance(v, bool) else v for v in parameters)


class PgCursor:
    """The executed statement's result, with sqlite3.Cursor's rowcount and lastrowid."""

    def __init__(self, cursor: psycopg.Cursor[PgRow], translated: Translated) -> None:
        self._cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid: int | None = None
        if translated.returns_id:
            row = cursor.fetchone()
            self.lastrowid = int(row[0]) if row is not None else None

    def fetchone(self) -> Any:
        """The next row, or None."""
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection that takes the store's SQLite-flavoured SQL, bounded in every wait,
    and reconnected after the server (or the way to it) was lost."""

    dialect = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        lock_timeout_ms: int = 5000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        # 0 means "no limit" to PostgreSQL; SQLite's busy_timeout 0 means "do not wait".
        self.lock_timeout_ms = max(1, int(lock_timeout_ms))
        self.statement_timeout_ms = max(
            STATEMENT_FLOOR_MS, STATEMENT_TIMEOUT_FACTOR * self.lock_timeout_ms
        )
        self.monotonic = monotonic
        given = conninfo_to_dict(url)
        self._conninfo = make_conninfo(
            url, **{k: v for k, v in CONNECT_DEFAULTS.items() if k not in given}
        )
        self.raw: psycopg.Connection[PgRow] = self._connect()
        self.in_transaction = False
        self.xid: int | None = None  # the open transaction's id (asked about after a loss)
        self.reconnects = 0  # connections made again after one was lost
        self._closed = False
        self._failures = 0  # reconnects failed in a row
        self._retry_at = 0.0
        self._cache: dict[str, Translated] = {}
        self.id_tables: frozenset[str] = frozenset()
        self.primary_keys: dict[str, list[str]] = {}

    def _connect(self) -> psycopg.Connection[PgRow]:
        raw = psycopg.connect(self._conninfo, autocommit=True, row_factory=_row_factory)
        try:
            encoding = raw.execute("SHOW server_encoding").fetchone()
            if encoding is None or str(encoding[0]).upper() not in ("UTF8", "UTF-8"):
                # SQL_ASCII (initdb's default under the C locale) stores bytes unchecked, and
                # psycopg then returns every text column as bytes: nothing would read back as
                # written.
                found = encoding[0] if encoding is not None else "unknown"
                if isinstance(found, bytes):
                    found = found.decode("ascii", "replace")
                raise PgEncodingError(
                    f"the database's encoding is {found!r}; smsgw needs UTF8: CREATE DATABASE"
                    " smsgw ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
                )
            # Durable at COMMIT whatever the server's default: an accepted message must survive.
            raw.execute(b"SET synchronous_commit = on")
            self.apply_timeouts(raw)
        except BaseException:
            raw.close()
            raise
        return raw

    def apply_timeouts(self, raw: psycopg.Connection[PgRow] | None = None) -> None:
        """Bound every lock wait and statement of this session (see the module docstring)."""
        (raw or self.raw).execute(
            f"SET lock_timeout = {self.lock_timeout_ms};"
            f" SET statement_timeout = {self.statement_timeout_ms}".encode()
        )

    def _ready(self) -> None:
        """Make sure there is a connection to use: reconnect one that was lost (not inside a
        transaction: that one is over, the store must roll it back first), at most once per
        backoff step; StoreUnavailableError while there is none."""
        if not self.raw.closed or self._closed:
            return
        if self.in_transaction:
            raise StoreUnavailableError(
                "the database connection was lost mid-transaction (the server rolled it back)"
            )
        now = self.monotonic()
        if now < self._retry_at:
            raise StoreUnavailableError(
                f"the database cannot be reached; next attempt in {self._retry_at - now:.1f} s"
            )
        with contextlib.suppress(psycopg.Error, OSError):
            self.raw.close()  # whatever the lost one still holds (its socket)
        try:
            self.raw = self._connect()
        except psycopg.Error as exc:
            self._failures += 1
            self._retry_at = now + min(RECONNECT_FIRST * 2 ** (self._failures - 1), RECONNECT_CAP)
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "store: cannot reconnect to the database (%s)", exc)
            raise StoreUnavailableError(f"the database cannot be reached: {exc}") from exc
        self._failures, self._retry_at = 0, 0.0
        self.reconnects += 1
        log.warning("store: reconnected to the database")

    def _failed(self, exc: psycopg.Error) -> None:
        """Raise StoreUnavailableError from a "not now" error (a lost connection among them:
        the next use reconnects); return for any other, for the caller to re-raise."""
        if self._closed or not is_pg_unavailable(exc):
            return  # closed by its owner: using it is a bug, not an outage
        if self.raw.closed:
            log.warning("store: the database connection was lost (%s)", exc)
        raise StoreUnavailableError(str(exc).strip() or type(exc).__name__) from exc

    def refresh_schema(self) -> None:
        """Learn which tables have an id column and their primary keys (after migrating)."""
        rows = self.raw.execute(
            "SELECT table_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND column_name = 'id'"
        ).fetchall()
        self.id_tables = frozenset(str(r[0]) for r in rows)
        keys = self.raw.execute(
            "SELECT c.relname, a.attname FROM pg_index i"
            " JOIN pg_class c ON c.oid = i.indrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = current_schema()"
            " JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum"
            " WHERE i.indisprimary ORDER BY c.relname, k.ord"
        ).fetchall()
        self.primary_keys = {}
        for table, column in keys:
            self.primary_keys.setdefault(str(table), []).append(str(column))
        self._cache.clear()

    def reset_identities(self) -> None:
        """Move every identity column's sequence past the largest id (after rows were copied
        in with their ids), so the next insert does not collide."""
        rows = self.raw.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        ).fetchall()
        for table, column in rows:
            self.raw.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), MAX({column}))"
                f" FROM {table} HAVING MAX({column}) IS NOT NULL".encode()
            )

    def _translate(self, sql: str) -> Translated:
        translated = self._cache.get(sql)
        if translated is None:
            translated = translate(sql, id_tables=self.id_tables, primary_keys=self.primary_keys)
            self._cache[sql] = translated
        return translated

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> PgCursor:
        """Run one statement (SQLite-flavoured SQL, `?` placeholders)."""
        translated = self._translate(sql)
        self._ready()
        cursor = self.raw.cursor()
        try:
            cursor.execute(translated.sql, _params(parameters))
        except psycopg.Error as exc:
            self._failed(exc)
            raise
        return PgCursor(cursor, translated)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        """Run one statement once per parameter tuple."""
        translated = self._translate(sql)
        self._ready()
        cursor = self.raw.cursor()
        try:
            cursor.executemany(translated.sql, [_params(p) for p in seq_of_parameters])
        except psycopg.Error as exc:
            self._failed(exc)
            raise
        return PgCursor(cursor, Translated(translated.sql, returns_id=False))

    def script(self, sql: str) -> None:
        """Run PostgreSQL SQL as written (no translation, no parameters)."""
        self._ready()
        try:
            self.raw.execute(sql.encode())
        except psycopg.Error as exc:
            self._failed(exc)
            raise

    # -- transactions (StoreBase.transaction) ---------------------------------------------

    def begin(self, *, exclusive: bool, durable: bool, glance_ms: int | None = None) -> None:
        """BEGIN, taking the fleet-wide writer lock first if `exclusive` (waiting at most the
        lock timeout, or `glance_ms`), in one round trip that also learns a durable
        transaction's id; StoreUnavailableError (nothing begun) if the lock or the server is
        not there."""
        steps = ["BEGIN"]
        if not durable:
            steps.append("SET LOCAL synchronous_commit = off")
        # A durable transaction's id from the start (a write would assign one anyway), in the
        # same SELECT as the lock: if the answer to COMMIT is lost with the connection, a new
        # connection can ask whether it committed. (Not for bookkeeping, durable=False, whose
        # loss only repeats work: ~40 us a transaction saved.)
        learn = ["txid_current()"] if durable else []
        if exclusive:
            if glance_ms is not None:
                steps.append(f"SET LOCAL lock_timeout = {max(1, int(glance_ms))}")
            learn.insert(0, f"pg_advisory_xact_lock({WRITER_LOCK})")
        if learn:
            steps.append("SELECT " + ", ".join(learn))
        if exclusive and glance_ms is not None:
            steps.append(f"SET LOCAL lock_timeout = {self.lock_timeout_ms}")
        self._ready()
        self.in_transaction, self.xid = True, None
        row = None
        try:
            cursor = self.raw.execute("; ".join(steps).encode())
            while True:
                if cursor.description is not None:
                    row = cursor.fetchone()
                if not cursor.nextset():
                    break
        except psycopg.Error as exc:
            self.rollback()
            self._failed(exc)
            raise
        self.xid = int(row[-1]) if durable and row is not None else None

    def commit(self, *, notify: bool = False) -> None:
        """COMMIT (with a NOTIFY of queued work, delivered only if it commits). A connection
        lost on the way leaves the outcome unknown: asked on a new connection, by the
        transaction's id; StoreUnavailableError unless it did commit."""
        xid, self.xid = self.xid, None
        try:
            self.raw.execute(f"NOTIFY {WORK_CHANNEL}; COMMIT".encode() if notify else b"COMMIT")
        except psycopg.Error as exc:
            self.in_transaction = False
            if not self.raw.closed:  # refused by the server (rolled back): no doubt about it
                self._failed(exc)
                raise
            log.warning("store: the database connection was lost at COMMIT (%s)", exc)
            if self._committed(xid):
                return  # only the answer was lost
            raise StoreUnavailableError(
                f"the database connection was lost at COMMIT: {exc}"
            ) from exc
        self.in_transaction = False

    def _committed(self, xid: int | None) -> bool:
        """Whether transaction `xid` committed, asked on a new connection at once (False: it
        did not, or nobody can tell now; the latter is logged with its id)."""
        if xid is None:
            return False
        try:
            self._retry_at = 0.0
            self._ready()
            row = self.raw.execute(b"SELECT txid_status(%s)", (xid,)).fetchone()
        except (psycopg.Error, StoreUnavailableError) as exc:
            log.error("store: whether transaction %d committed is unknown (%s)", xid, exc)
            return False
        status = str(row[0]) if row is not None else "unknown"
        if status == "committed":
            log.warning("store: transaction %d had committed; its answer was lost", xid)
            return True
        if status != "aborted":
            log.error("store: transaction %d is %s after its connection was lost", xid, status)
        return False

    def rollback(self) -> None:
        """ROLLBACK the open transaction (a lost connection's was rolled back by the server)."""
        self.in_transaction, self.xid = False, None
        if self.raw.closed:
            return
        try:
            self.raw.execute(b"ROLLBACK")
        except psycopg.Error:
            if not self.raw.closed:
                raise  # lost while rolling back: the server rolls it back itself

    def writer_lock_free(self) -> bool:
        """Whether the fleet-wide writer lock could be taken right now (taken and let go)."""
        self._ready()
        try:
            row = self.raw.execute(
                f"SELECT pg_try_advisory_xact_lock({WRITER_LOCK})".encode()
            ).fetchone()
        except psycopg.Error as exc:
            self._failed(exc)
            raise
        return bool(row is not None and row[0])

    def close(self) -> None:
        """Close the connection (for good: it is not reconnected)."""
        self._closed = True
        self.raw.close()
