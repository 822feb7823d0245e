"""UCS-2 user data as UTF-16BE, with surrogate pairs for characters beyond the BMP."""

from __future__ import annotations

from modem.pdu.errors import PduError

__all__ = ["decode_ucs2", "encode_ucs2", "lone_surrogates", "utf16_units"]


def encode_ucs2(text: str) -> bytes:
    """Text -> UTF-16BE octets (characters beyond U+FFFF become surrogate pairs)."""
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise PduError(f"text holds a lone surrogate U+{ord(text[exc.start]):04X}") from None


def decode_ucs2(data: bytes, octet: int | None = None) -> str:
    """UTF-16BE octets -> text; odd lengths and lone surrogates raise PduError."""
    if len(data) % 2:
        raise PduError(f"UCS-2 user data has an odd length ({len(data)} octets)", octet)
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        where = None if octet is None else octet + exc.start
        raise PduError("UCS-2 user data holds a lone surrogate", where) from None


def lone_surrogates(data: bytes) -> list[int]:
    """Offsets of the UTF-16BE units in data that are surrogates without their pair."""
    out: list[int] = []
    i, end = 0, len(data) - 1
    while i < end:
        unit = data[i]
        if 0xD8 <= unit <= 0xDB and i + 2 < end and 0xDC <= data[i + 2] <= 0xDF:
            i += 4  # a whole pair
            continue
        if 0xD8 <= unit <= 0xDF:
            out.append(i)
        i += 2
    return out


def utf16_units(ch: str) -> int:
    """UTF-16 code units one character needs (2 for a surrogate pair)."""
    return 2 if ord(ch) > 0xFFFF else 1
