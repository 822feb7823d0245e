"""The store's SQL is written for SQLite; this turns a statement into its PostgreSQL form.

Pure string work (no connection), so every rule is unit-tested. The mixins keep one SQL text per
query; what differs between the two engines is rewritten here, once per distinct statement:

* `?` placeholders become `%s` (and a literal `%` becomes `%%`), never inside a string literal;
* `INSERT OR IGNORE` becomes `INSERT … ON CONFLICT DO NOTHING`; `INSERT OR REPLACE` becomes an
  upsert on the table's primary key (the only unique key of the tables that use it);
* an INSERT into a table with an `id` column gets `RETURNING id` (the cursor's lastrowid);
* `x IS ?` / `x IS NOT ?` become `IS [NOT] DISTINCT FROM` (SQLite's IS compares any values),
  and `? IS NULL` casts its parameter to text (PostgreSQL must know a parameter's type);
* several-argument MAX/MIN become GREATEST/LEAST; `col = ? COLLATE NOCASE` compares lower()
  of both (an index on `col COLLATE NOCASE` is one on lower(col)); `INDEXED BY` hints are
  dropped; `LIKE` becomes `ILIKE` (SQLite's LIKE ignores ASCII case), `group_concat`
  `string_agg`, and `json_extract(doc, '$.key')` `(doc::jsonb ->> 'key')`.

Migrations are SQLite DDL too; `pg_ddl` maps their column types (INTEGER is 64-bit in SQLite:
BIGINT; REAL is a double: DOUBLE PRECISION; INTEGER PRIMARY KEY: an identity column).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_INSERT = re.compile(
    r"^\s*INSERT\s+(?:OR\s+(?P<verb>IGNORE|REPLACE)\s+)?INTO\s+(?P<table>\w+)\s*"
    r"(?:\((?P<columns>[^)]*)\))?",
    re.IGNORECASE,
)
_OR_VERB = re.compile(r"^(\s*INSERT)\s+OR\s+(?:IGNORE|REPLACE)\b", re.IGNORECASE)
_PARAM_IS_NULL = re.compile(r"(?<![\w)])\?(\s+IS\s+(?:NOT\s+)?NULL\b)", re.IGNORECASE)
_IS_PARAM = re.compile(r"\bIS\s+(NOT\s+)?\?", re.IGNORECASE)
_LIKE = re.compile(r"(?<![\w.])LIKE\b", re.IGNORECASE)
_GROUP_CONCAT = re.compile(r"\bgroup_concat\s*\(", re.IGNORECASE)
_JSON_EXTRACT = re.compile(r"\bjson_extract\s*\(\s*([\w.]+)\s*,\s*$", re.IGNORECASE)
_JSON_PATH = re.compile(r"^'\$\.(\w+)'$")
_INDEXED = re.compile(r"\s+(?:INDEXED\s+BY\s+\w+|NOT\s+INDEXED)\b", re.IGNORECASE)
# SQLite's NOCASE folds ASCII case; PostgreSQL has no such collation built in: compare lower().
_EQ_NOCASE = re.compile(r"([\w.]+)\s*=\s*\?\s+COLLATE\s+NOCASE\b", re.IGNORECASE)
_NOCASE = re.compile(r"([\w.]+)\s+COLLATE\s+NOCASE\b", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_ON_CONFLICT = re.compile(r"\bON\s+CONFLICT\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Translated:
    """A statement in PostgreSQL form; `returns_id`: it ends in RETURNING id."""

    sql: str
    returns_id: bool


def _segments(sql: str) -> list[tuple[bool, str]]:
    """Split SQL into (is_literal, text) runs: '…' string literals and everything else."""
    out: list[tuple[bool, str]] = []
    i, start, n = 0, 0, len(sql)
    while i < n:
        if sql[i] == "'":
            if i > start:
                out.append((False, sql[start:i]))
            j = i + 1
            while j < n:
                if sql[j] == "'":
                    if j + 1 < n and sql[j + 1] == "'":
                        j += 2
                        continue
                    break
                j += 1
            out.append((True, sql[i : j + 1]))
            i = start = j + 1
        else:
            i += 1
    if start < n:
        out.append((False, sql[start:]))
    return out


_MIN_MAX = re.compile(r"\b(MIN|MAX)\s*\(", re.IGNORECASE)


def _scalar_min_max(code: str) -> str:
    """SQLite's MAX(a, b) / MIN(a, b) with several arguments are GREATEST / LEAST."""
    out, last = [], 0
    for call in _MIN_MAX.finditer(code):
        depth, i, several = 1, call.end(), False
        while i < len(code) and depth:
            depth += {"(": 1, ")": -1}.get(code[i], 0)
            several = several or (code[i] == "," and depth == 1)
            i += 1
        if several and depth == 0:
            name = "GREATEST" if call.group(1).upper() == "MAX" else "LEAST"
            out.append(code[last : call.start()] + name + "(")
            last = call.end()
    return "".join(out) + code[last:]


def _rewrite_code(code: str) -> str:
    code = _scalar_min_max(code)
    # `? IS NULL` gives the server no type to parse the parameter as: say text (any value casts).
    code = _PARAM_IS_NULL.sub(r"CAST(? AS TEXT)\1", code)
    code = _IS_PARAM.sub(lambda m: f"IS {'' if m.group(1) else 'NOT '}DISTINCT FROM ?", code)
    code = _LIKE.sub("ILIKE", code)
    code = _GROUP_CONCAT.sub("string_agg(", code)
    code = _EQ_NOCASE.sub(r"lower(\1) = lower(?)", code)
    code = _INDEXED.sub("", code)  # SQLite's planner hint; PostgreSQL plans for itself
    return code.replace("%", "%%").replace("?", "%s")


def _rewrite_json(segments: list[tuple[bool, str]]) -> list[tuple[bool, str]]:
    """json_extract(doc, '$.key') -> (doc::jsonb ->> 'key'): a code run ending in
    `json_extract(doc,`, a '$.key' literal, then a code run starting with `)`."""
    out = list(segments)
    for k in range(1, len(out) - 1):
        is_lit, text = out[k]
        before, after = out[k - 1], out[k + 1]
        if not is_lit or before[0] or after[0]:
            continue
        path = _JSON_PATH.match(text)
        call = _JSON_EXTRACT.search(before[1])
        if path is None or call is None or not after[1].lstrip().startswith(")"):
            continue
        # The call's own closing bracket, left in place, closes the group opened here.
        out[k - 1] = (False, before[1][: call.start()] + f"({call.group(1)}::jsonb ->> ")
        out[k] = (True, f"'{path.group(1)}'")
    return out


def translate(
    sql: str,
    *,
    id_tables: frozenset[str],
    primary_keys: Mapping[str, Sequence[str]],
) -> Translated:
    """The PostgreSQL form of one SQLite statement (see the module docstring)."""
    insert = _INSERT.match(sql)
    body = sql.rstrip().rstrip(";")
    if insert is not None and insert.group("verb"):
        body = _OR_VERB.sub(r"\1", body, count=1)
    segments = _rewrite_json(_segments(body))
    text = "".join(t.replace("%", "%%") if lit else _rewrite_code(t) for lit, t in segments)
    returns_id = False
    if insert is not None:
        table = insert.group("table").lower()
        verb = (insert.group("verb") or "").upper()
        has_returning = _RETURNING.search(body) is not None
        if verb == "IGNORE" and not _ON_CONFLICT.search(body):
            text += " ON CONFLICT DO NOTHING"
        elif verb == "REPLACE":
            keys = list(primary_keys.get(table, ()))
            if not keys or insert.group("columns") is None:
                raise ValueError(f"INSERT OR REPLACE into {table}: no primary key or column list")
            columns = [c.strip() for c in insert.group("columns").split(",")]
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            text += f" ON CONFLICT ({', '.join(keys)}) {action}"
        if table in id_tables and not has_returning:
            text += " RETURNING id"
            returns_id = True
    return Translated(text, returns_id)


_PRIMARY_ID = re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(?:\s+AUTOINCREMENT)?\b", re.IGNORECASE)
_INTEGER = re.compile(r"\bINTEGER\b", re.IGNORECASE)
_REAL = re.compile(r"\bREAL\b", re.IGNORECASE)


CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)
_REFERENCES = re.compile(r"\bREFERENCES\s+(\w+)", re.IGNORECASE)
_ON_TABLE = re.compile(r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\b.*?\bON\s+(\w+)", re.I | re.S)


def pg_order(statements: Sequence[str]) -> list[str]:
    """The statements of one migration in an order PostgreSQL accepts: SQLite lets a table
    reference one created later in the script; PostgreSQL needs it to exist first. Otherwise
    the written order is kept."""
    created = {
        m.group(1).lower(): i for i, s in enumerate(statements) if (m := CREATE_TABLE.match(s))
    }

    def needs(statement: str) -> set[str]:
        table = CREATE_TABLE.match(statement)
        own = table.group(1).lower() if table else None
        wanted = {t.lower() for t in _REFERENCES.findall(statement)}
        index = _ON_TABLE.match(statement)
        if index:
            wanted.add(index.group(1).lower())
        return {t for t in wanted if t in created and t != own}

    pending = list(statements)
    done: set[str] = set()
    out: list[str] = []
    while pending:
        k = next((k for k, s in enumerate(pending) if needs(s) <= done), None)
        if k is None:
            raise ValueError("migration tables reference each other in a cycle")
        statement = pending.pop(k)
        out.append(statement)
        if table := CREATE_TABLE.match(statement):
            done.add(table.group(1).lower())
    return out


def pg_ddl(statement: str) -> str:
    """The PostgreSQL form of one SQLite DDL statement of a migration."""
    out = []
    for is_literal, text in _segments(statement):
        if not is_literal:
            text = _PRIMARY_ID.sub("BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY", text)
            text = _INTEGER.sub("BIGINT", text)
            text = _REAL.sub("DOUBLE PRECISION", text)
            text = _NOCASE.sub(r"lower(\1)", text)
        out.append(text)
    return "".join(out)
