"""GSM 7-bit default alphabet, extension and national shift tables, septet packing (TS 23.038)."""

from __future__ import annotations

import re
from codecs import charmap_decode as _charmap_decode
from functools import cache

from modem.pdu.errors import PduError
from modem.pdu.nls import NATIONAL_LOCKING_SHIFT, NATIONAL_SINGLE_SHIFT, UNASSIGNED

__all__ = [
    "DEFAULT_ALPHABET",
    "DEFAULT_EXTENSION",
    "ESCAPE",
    "char_septets",
    "decode_septets",
    "encodable",
    "encode_septets",
    "pack_septets",
    "septet_length",
    "undefined_escape_pattern",
    "undefined_escapes",
    "unpack_septets",
]

ESCAPE = 0x1B

# TS 23.038 section 6.2.1; position 0x1B is the escape to the extension table, not a character.
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(DEFAULT_ALPHABET) == 128

# TS 23.038 section 6.2.1.1 extension table (form feed included; 0x0D CR2 and 0x1B SS2 reserved).
DEFAULT_EXTENSION: dict[int, str] = {
    0x0A: "\x0c",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}


def _locking_table(language: int) -> str:
    """The 128-character locking shift table for a language id (0 and unknown ids: default)."""
    table = NATIONAL_LOCKING_SHIFT.get(language)
    if table is None:
        return DEFAULT_ALPHABET
    # Positions the spec leaves empty fall back to the default alphabet (TS 23.038 6.2.1.1 rule
    # for unrepresentable codes), so decoding never invents a character.
    return "".join(DEFAULT_ALPHABET[i] if ch == UNASSIGNED else ch for i, ch in enumerate(table))


def _single_table(language: int) -> dict[int, str]:
    """The single shift table for a language id (0 and unknown ids: default extension)."""
    table = NATIONAL_SINGLE_SHIFT.get(language)
    if table is None:
        return DEFAULT_EXTENSION
    return {k: v for k, v in table.items() if v != UNASSIGNED and k != ESCAPE}


@cache
def _decode_tables(locking: int, single: int) -> tuple[str, dict[int, str]]:
    """Charmap (128-char str) for plain septets and the escaped-septet table."""
    base = _locking_table(locking)
    plain = base
    ext = _single_table(single)
    escaped = {s: ext.get(s, base[s] if s != ESCAPE else " ") for s in range(128)}
    return plain, escaped


_DEFAULT_TABLES = _decode_tables(0, 0)


@cache
def _encode_table(locking: int, single: int) -> dict[int, str]:
    """Map code point -> septet string (one char, or escape + char) for str.translate."""
    table: dict[int, str] = {}
    for septet, ch in sorted(_single_table(single).items(), reverse=True):
        table[ord(ch)] = "\x1b" + chr(septet)
    base = _locking_table(locking)
    raw = NATIONAL_LOCKING_SHIFT.get(locking)
    for septet in range(127, -1, -1):
        if septet == ESCAPE or (raw is not None and raw[septet] == UNASSIGNED):
            continue
        table[ord(base[septet])] = chr(septet)
    return table


@cache
def _encodable_set(locking: int, single: int) -> frozenset[str]:
    return frozenset(chr(c) for c in _encode_table(locking, single))


@cache
def _lengths(locking: int, single: int) -> dict[str, int]:
    return {chr(c): len(s) for c, s in _encode_table(locking, single).items()}


def encodable(text: str, locking: int = 0, single: int = 0) -> bool:
    """True when every character of text exists in the given GSM 7-bit tables."""
    return _encodable_set(locking, single).issuperset(text)


def encode_septets(text: str, locking: int = 0, single: int = 0) -> bytes:
    """Text -> septet values (one byte each), extension characters as escape + septet."""
    table = _encode_table(locking, single)
    if not _encodable_set(locking, single).issuperset(text):
        allowed = _encodable_set(locking, single)
        bad = next(ch for ch in text if ch not in allowed)
        raise PduError(f"character {bad!r} (U+{ord(bad):04X}) is not in the GSM 7-bit alphabet")
    return text.translate(table).encode("latin-1")


def septet_length(text: str, locking: int = 0, single: int = 0) -> int:
    """Number of septets text needs (extension characters count two)."""
    return len(encode_septets(text, locking, single))


def char_septets(text: str, locking: int = 0, single: int = 0) -> list[int]:
    """Septets needed per character (1 or 2); raises PduError for unencodable text."""
    lengths = _lengths(locking, single)
    try:
        return [lengths[ch] for ch in text]
    except KeyError as exc:
        raise PduError(f"character {exc.args[0]!r} is not in the GSM 7-bit alphabet") from None


def decode_septets(septets: bytes, locking: int = 0, single: int = 0) -> str:
    """Septet values -> text; an escape applies the single shift table to the next septet."""
    plain, escaped = _DEFAULT_TABLES if locking == single == 0 else _decode_tables(locking, single)
    if ESCAPE not in septets:
        try:
            return _charmap_decode(septets, "strict", plain)[0]
        except UnicodeDecodeError as exc:
            raise PduError(f"septet value {septets[exc.start]} is above 127") from None
    # Split on escapes: each chunk after one starts with the escaped septet. An empty chunk is
    # an escape followed by another escape (which is then the escaped septet itself).
    chunks = septets.split(b"\x1b")
    try:
        out = [_charmap_decode(chunks[0], "strict", plain)[0]]
        append = out.append
        i, n = 1, len(chunks)
        while i < n:
            chunk = chunks[i]
            if chunk:
                append(escaped[chunk[0]])
                append(_charmap_decode(chunk[1:], "strict", plain)[0])
                i += 1
            elif i + 1 < n:
                append(escaped[ESCAPE])
                append(_charmap_decode(chunks[i + 1], "strict", plain)[0])
                i += 2
            else:
                # A trailing lone escape is half of a character torn across parts: no character.
                break
    except (UnicodeDecodeError, KeyError):
        raise PduError(f"septet value {max(septets)} is above 127") from None
    return "".join(out)


@cache
def undefined_escape_pattern(single: int = 0) -> re.Pattern[bytes]:
    """An escape followed by a septet the single shift table leaves undefined."""
    defined = b"".join(b"\\x%02x" % septet for septet in sorted(_single_table(single)))
    return re.compile(b"\x1b[^" + defined + b"]", re.DOTALL)


def undefined_escapes(septets: bytes, single: int = 0) -> list[int]:
    """Indices of escapes whose next septet the single shift table leaves undefined."""
    # A regex scan in C: this runs for every text with an extension character. A trailing lone
    # escape (a character torn across parts) matches nothing, as it is not undefined.
    pattern = undefined_escape_pattern(single)
    if pattern.search(septets) is None:
        return []
    return [m.start() for m in pattern.finditer(septets)]


# Septet packing works on whole user data at once with big-integer bit tricks: septets stored one
# per byte are squeezed from 8-bit to 7-bit spacing in log2(n) mask/shift rounds (and back), so
# the per-septet work happens in C instead of a Python loop.


def _levels(blocks: int) -> tuple[tuple[int, int, int, int], ...]:
    """Per merge round: (low mask, high mask, shift, data bits) for `blocks` septet slots."""
    rounds: list[tuple[int, int, int, int]] = []
    width, data = 8, 7
    total_bits = blocks * 8
    while width < total_bits:
        period = width * 2
        low = (1 << data) - 1
        lowmask = 0
        for start in range(0, total_bits, period):
            lowmask |= low << start
        highmask = lowmask << width
        rounds.append((lowmask, highmask, width - data, data))
        width, data = period, data * 2
    return tuple(rounds)


# Indexed by (n - 1).bit_length(): slot count (next power of two), pack and unpack rounds.
_PACK = [((1 << k), tuple((lo, hi, sh) for lo, hi, sh, _ in _levels(1 << k))) for k in range(12)]
_UNPACK = [
    ((1 << k), tuple((lo, lo << d, sh) for lo, _, sh, d in reversed(_levels(1 << k))))
    for k in range(12)
]


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets, after `fill_bits` zero bits (TS 23.038 6.1.2.1.1)."""
    n = len(septets)
    if n == 0:
        # A header with no text still owns its fill bits: TP-UDL counts them as a septet.
        return bytes((fill_bits + 7) // 8)
    value = int.from_bytes(septets, "little")
    for lowmask, highmask, shift in _PACK[(n - 1).bit_length()][1]:
        value = (value & lowmask) | ((value & highmask) >> shift)
    value <<= fill_bits
    return value.to_bytes((n * 7 + fill_bits + 7) // 8, "little")


def unpack_septets(data: bytes, count: int, fill_bits: int = 0) -> bytes:
    """Unpack `count` septets from octets, skipping `fill_bits` leading fill bits."""
    if count <= 0:
        return b""
    value = (int.from_bytes(data, "little") >> fill_bits) & ((1 << (7 * count)) - 1)
    slots, rounds = _UNPACK[(count - 1).bit_length()]
    for lowmask, highmask, shift in rounds:
        value = (value & lowmask) | ((value & highmask) << shift)
    return value.to_bytes(slots, "little")[:count]
