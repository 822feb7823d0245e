"""The PostgreSQL connection of the store, shaped like the sqlite3 one the mixins are written for.

The gateway calls the store synchronously from the daemon's writer thread (and the CLI), so this
is one synchronous psycopg connection used exactly like the sqlite3 connection: autocommit, with
explicit BEGIN/COMMIT issued by `StoreBase.transaction`. Each statement is translated once
(`gateway.store.dialect`) and cached; rows come back as `PgRow`, which reads like sqlite3.Row
(by index, by name, `dict(row)`), with booleans and numerics as SQLite would return them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import RowMaker

from gateway.store.dialect import Translated, translate

# Advisory lock keys (one bigint namespace per database): migrations, and the write transaction
# (the fleet-wide analogue of SQLite's BEGIN IMMEDIATE: one writer at a time).
MIGRATION_LOCK = 0x736D7367_00000001
WRITER_LOCK = 0x736D7367_00000002
# NOTIFY channel of queued work: every daemon LISTENs on it and wakes its dispatcher.
WORK_CHANNEL = "smsgw_work"


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
    """A psycopg connection that takes the store's SQLite-flavoured SQL."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.raw: psycopg.Connection[PgRow] = psycopg.connect(
            url, autocommit=True, row_factory=_row_factory
        )
        encoding = self.raw.execute("SHOW server_encoding").fetchone()
        if encoding is None or str(encoding[0]).upper() not in ("UTF8", "UTF-8"):
            # SQL_ASCII (initdb's default under the C locale) stores bytes unchecked, and psycopg
            # then returns every text column as bytes: nothing would read back as written.
            found = encoding[0] if encoding is not None else "unknown"
            if isinstance(found, bytes):
                found = found.decode("ascii", "replace")
            self.raw.close()
            raise PgEncodingError(
                f"the database's encoding is {found!r}; smsgw needs UTF8: CREATE DATABASE smsgw"
                " ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            )
        # Durable at COMMIT whatever the server's default: an accepted message must survive.
        self.raw.execute("SET synchronous_commit = on")
        self._cache: dict[str, Translated] = {}
        self.id_tables: frozenset[str] = frozenset()
        self.primary_keys: dict[str, list[str]] = {}

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
        cursor = self.raw.cursor()
        cursor.execute(translated.sql, _params(parameters))
        return PgCursor(cursor, translated)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> PgCursor:
        """Run one statement once per parameter tuple."""
        translated = self._translate(sql)
        cursor = self.raw.cursor()
        cursor.executemany(translated.sql, [_params(p) for p in seq_of_parameters])
        return PgCursor(cursor, Translated(translated.sql, returns_id=False))

    def script(self, sql: str) -> None:
        """Run PostgreSQL SQL as written (no translation, no parameters)."""
        self.raw.execute(sql.encode())

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()
