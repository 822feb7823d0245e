"""Tolerant splitting of AT information-text parameters (TS 27.007 4.1, as sent in practice)."""

from __future__ import annotations

import re

from modem.errors import AtParseError

_PREFIX = re.compile(r"^\s*([+^$%*#][A-Za-z0-9_]+)\s*:\s?")


def strip_prefix(line: str, prefix: str | None = None) -> str:
    """The text after `+NAME:`; with `prefix` given, the line must carry that prefix (any case)."""
    match = _PREFIX.match(line)
    if match is None:
        if prefix is None:
            return line.strip()
        raise AtParseError(f"expected {prefix}: prefix", line)
    if prefix is not None and match.group(1).upper() != prefix.upper():
        raise AtParseError(f"expected {prefix}: prefix", line)
    return line[match.end() :].strip()


def line_prefix(line: str) -> str | None:
    """The `+NAME` / `^NAME` prefix of an information line, upper-cased, if it has one."""
    match = _PREFIX.match(line)
    return match.group(1).upper() if match else None


def split_top(text: str, sep: str = ",") -> list[str]:
    """Split at `sep` outside quotes and parentheses; tokens are stripped of spaces."""
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def split_groups(text: str) -> list[str]:
    """Split at commas between parenthesised groups, ignoring quotes (which may be unbalanced)."""
    out: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(text[start:i].strip())
            start = i + 1
    out.append(text[start:].strip())
    return out


def unquote(token: str) -> str:
    """`"abc"` -> `abc`; stray quotes at either end are dropped too."""
    return token.strip().strip('"').strip()


def is_quoted(token: str) -> bool:
    """True if the token is written between double quotes."""
    token = token.strip()
    return len(token) >= 2 and token[0] == '"' and token[-1] == '"'


def to_int(token: str, *, what: str, line: str, base: int = 10) -> int:
    """Integer value of a token, or AtParseError naming the field."""
    value = unquote(token)
    try:
        return int(value, base)
    except ValueError:
        raise AtParseError(f"{what} is not a number", line) from None


def opt_int(token: str | None, base: int = 10) -> int | None:
    """Integer value of an optional token; empty or malformed -> None."""
    if token is None:
        return None
    value = unquote(token)
    if not value:
        return None
    try:
        return int(value, base)
    except ValueError:
        return None


def parse_range_set(group: str) -> frozenset[int]:
    """`(0-1,3)` / `0` / `(0,2)` -> the set of allowed integers (TS 27.007 test-command ranges)."""
    inner = group.strip().strip("()").strip()
    values: set[int] = set()
    if not inner:
        return frozenset()
    for part in inner.split(","):
        part = part.strip().strip('"')
        if not part:
            continue
        if "-" in part:
            lo, _, hi = part.partition("-")
            try:
                lo_i, hi_i = int(lo), int(hi)
            except ValueError:
                raise AtParseError("bad range", group) from None
            if hi_i < lo_i or hi_i - lo_i > 10_000:
                raise AtParseError("bad range", group)
            values.update(range(lo_i, hi_i + 1))
        else:
            try:
                values.add(int(part))
            except ValueError:
                raise AtParseError("bad range value", group) from None
    return frozenset(values)


_HEX = re.compile(r"^[0-9A-Fa-f]*$")


def is_hex(text: str) -> bool:
    """True for a non-empty even-length hex string."""
    return bool(text) and len(text) % 2 == 0 and _HEX.match(text) is not None


def decode_ucs2_hex(text: str) -> str | None:
    """Decode UCS-2/UTF-16BE hex (as sent with CSCS="UCS2"); None if it is not that."""
    if not text or len(text) % 4 or _HEX.match(text) is None:
        return None
    try:
        return bytes.fromhex(text).decode("utf-16-be")
    except UnicodeDecodeError:
        return None
