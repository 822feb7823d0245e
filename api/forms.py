"""Form and query-string decoding shared by the provider dialects: tolerant of non-UTF-8 input."""

from __future__ import annotations

from urllib.parse import unquote_to_bytes


def decode_pairs(raw: bytes) -> list[tuple[str, str | None]]:
    """Decode `a=1&b=2` keeping order and repeats; a value that is not UTF-8 becomes None
    (so the dialect can answer with its own error) and a name that is not UTF-8 is dropped."""
    pairs: list[tuple[str, str | None]] = []
    for chunk in raw.split(b"&"):
        if not chunk:
            continue
        name_raw, _, value_raw = chunk.partition(b"=")
        try:
            name = unquote_to_bytes(name_raw.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            continue
        try:
            value: str | None = unquote_to_bytes(value_raw.replace(b"+", b" ")).decode()
        except UnicodeDecodeError:
            value = None
        pairs.append((name, value))
    return pairs
