"""Identity answers (+CGSN, +CIMI, +CCID, +CGMR, +CNUM) kept as the modem gave them, judged."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from modem.errors import AtParseError

from .params import decode_ucs2_hex, is_quoted, line_prefix, split_top, strip_prefix, unquote

__all__ = [
    "IdentityKind",
    "IdentityValue",
    "luhn_valid",
    "parse_iccid_value",
    "parse_imei_value",
    "parse_imsi_value",
    "parse_own_number_value",
    "parse_revision_value",
    "subscriber_number",
]


class IdentityKind(StrEnum):
    """What shape an identity answer has."""

    IMEI = "imei"  # 15 digits: TAC, serial number, Luhn check digit (TS 23.003 6.2.1)
    IMEI_WITHOUT_CHECK = "imei-without-check-digit"  # 14 digits: TAC and serial number only
    IMEISV = "imeisv"  # 16 digits: TAC, serial number, software version (TS 23.003 6.2.2)
    IMSI = "imsi"
    ICCID = "iccid"
    MSISDN = "msisdn"
    TEXT = "text"  # free text by definition (+CGMR)
    OTHER = "other"  # none of the expected shapes: kept as given


@dataclass(frozen=True, slots=True)
class IdentityValue:
    """One identity answer: `value` normalised (digits when it holds them), `raw` as received."""

    value: str
    raw: str
    valid: bool
    kind: IdentityKind
    # The Luhn check where the form ends in a check digit (15-digit IMEI, 19/20-digit ICCID),
    # else None. For an ICCID it never affects `valid`: E.118 cards that fail it are in use.
    check_digit: bool | None = None

    def __str__(self) -> str:
        return self.value


def luhn_valid(digits: str) -> bool:
    """True when the last digit is the Luhn check digit of the others."""
    if not digits.isdigit() or not digits.isascii() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Labels some firmware puts before the number ("IMEI: 3569...", "SN: ...", ATI-style lines).
_LABEL = re.compile(r"^(?:IMEI\s*SV|IMEI|IMSI|ICCID|SN|S/N|ESN)(?:\s*[:=]\s*|\s+)", re.I)
# Digits as printed on labels and some answers: grouped by spaces, dashes or slashes.
_GROUPED_DIGITS = re.compile(r"[0-9]+(?:[ \-/][0-9]+)*")


def _raw(lines: Sequence[str]) -> str:
    return "\n".join(line.strip() for line in lines if line.strip())


def _texts(lines: Sequence[str]) -> list[str]:
    """Each non-empty line without its `+NAME:` prefix, quotes or label."""
    out: list[str] = []
    for line in lines:
        text = strip_prefix(line) if line_prefix(line) else line.strip()
        text = unquote(text)
        text = _LABEL.sub("", text, count=1)
        text = unquote(text)
        if text:
            out.append(text)
    return out


def _digits(text: str) -> str | None:
    """The digits of a text that is only (grouped) digits, else None."""
    if _GROUPED_DIGITS.fullmatch(text) is None:
        return None
    return "".join(ch for ch in text if ch.isdigit())


def _need(lines: Sequence[str], what: str) -> list[str]:
    texts = _texts(lines)
    if not texts:
        raise AtParseError(f"no {what} in answer", " | ".join(lines))
    return texts


# An IMEI, IMEI without check digit or IMEISV inside other text, not glued to more digits:
# "IMEI: 356938035643809 OK-ish", "356936001568843,NL2A62Z0N5" (ModemManager's GSN tests).
_IMEI_RUN = re.compile(r"(?<![0-9])[0-9]{14,16}(?![0-9])")


def _serial(digits: str, raw: str) -> IdentityValue:
    if len(digits) == 15:
        ok = luhn_valid(digits)
        return IdentityValue(digits, raw, ok, IdentityKind.IMEI, ok)
    if len(digits) == 14:
        return IdentityValue(digits, raw, True, IdentityKind.IMEI_WITHOUT_CHECK)
    if len(digits) == 16:
        return IdentityValue(digits, raw, True, IdentityKind.IMEISV)
    # ofono-phonesim answers "1234567890": a serial number, not an IMEI.
    return IdentityValue(digits, raw, False, IdentityKind.OTHER)


def parse_imei_value(lines: Sequence[str]) -> IdentityValue:
    """AT+CGSN / AT+GSN: the serial number as given, marked a valid IMEI, IMEISV or not."""
    texts = _need(lines, "serial number")
    raw = _raw(lines)
    for text in texts:
        digits = _digits(text)
        if digits is not None:
            return _serial(digits, raw)
    # No digits-only answer: an IMEI-shaped run inside the text is the serial number, judged
    # as if it had come alone (`raw` still shows what surrounded it).
    for text in texts:
        match = _IMEI_RUN.search(text)
        if match is not None:
            return _serial(match.group(), raw)
    # Nothing like an IMEI (nRF93M1 gives a manufacturer serial such as "2623CKLQ0009707").
    return IdentityValue(" ".join(texts[0].split()), raw, False, IdentityKind.OTHER)


_IMSI = re.compile(r"[0-9]{6,15}")


def parse_imsi_value(lines: Sequence[str]) -> IdentityValue:
    """AT+CIMI (bare digits, or with a `+CIMI:` prefix as on Qualcomm M7227)."""
    texts = _need(lines, "IMSI")
    raw = _raw(lines)
    for text in texts:
        if _IMSI.fullmatch(text):
            return IdentityValue(text, raw, True, IdentityKind.IMSI)
    for text in texts:
        digits = _digits(text)
        if digits is not None:
            return IdentityValue(digits, raw, False, IdentityKind.OTHER)
    return IdentityValue(" ".join(texts[0].split()), raw, False, IdentityKind.OTHER)


_ICCID = re.compile(r"[0-9A-F]{18,20}")
# An ICCID token inside other text ("+CCID: 8944… (SIM)", "+CCID: 1,8944…"): decimal digits,
# perhaps F-padded, not glued to other hex digits or letters. Hex letters other than the F
# padding are left to the whole-token form above, so no word of the text is read as digits.
_ICCID_RUN = re.compile(r"(?<![0-9A-Z])[0-9]{15,20}F*(?![0-9A-Z])")


def _iccid(token: str, raw: str) -> IdentityValue:
    # The value binds the SIM: for a given token it must never change between releases, so the
    # normalisation below (Huawei nibble swap, trailing F dropped) stays as it is.
    value = token
    if value.startswith("98"):
        # Huawei ^ICCID reports the EF-ICCID bytes nibble-swapped (ICCIDs begin "89").
        value = "".join(value[i + 1] + value[i] for i in range(0, len(value) - 1, 2))
    value = value.rstrip("F")
    valid = value.isdigit()
    # E.118: 19 digits with a Luhn check digit; a 20-digit serial may take its place. Either
    # way a failing check is only marked: cards that fail it are in use and must still bind.
    check = luhn_valid(value) if valid and len(value) in (19, 20) else None
    return IdentityValue(value, raw, valid, IdentityKind.ICCID, check)


def parse_iccid_value(lines: Sequence[str]) -> IdentityValue:
    """`+CCID`, `^ICCID`, `+QCCID`, `+ICCID` or bare ICCID answers (or one inside other text)."""
    texts = _need(lines, "ICCID")
    raw = _raw(lines)
    for text in texts:
        value = text.upper()
        if _ICCID.fullmatch(value):
            return _iccid(value, raw)
    # No answer that is only the token: one inside the text gets the value it would have had
    # alone. Answers of the form above never reach here, so their values (keys) stay put.
    for text in texts:
        for match in _ICCID_RUN.finditer(text.upper()):
            if _ICCID.fullmatch(match.group()):
                return _iccid(match.group(), raw)
    return IdentityValue(" ".join(texts[0].split()), raw, False, IdentityKind.OTHER)


def text_parts(lines: Sequence[str]) -> list[str]:
    """Each non-empty answer line without its prefix, quotes and repeated spaces."""
    parts: list[str] = []
    for line in lines:
        value = strip_prefix(line) if line_prefix(line) else line.strip()
        value = unquote(value) if is_quoted(value) else value
        if value:
            parts.append(" ".join(value.split()))
    return parts


def parse_revision_value(lines: Sequence[str]) -> IdentityValue:
    """AT+CGMR: free text, prefix and repeated spaces removed."""
    parts = text_parts(lines)
    if not parts:
        raise AtParseError("no revision in answer", " | ".join(lines))
    return IdentityValue(" ".join(parts), _raw(lines), True, IdentityKind.TEXT)


_MSISDN = re.compile(r"\+?[0-9]{3,20}")


def subscriber_number(field: str) -> str:
    """A +CNUM <number> field unquoted, decoded when it is UCS2 hex of a number (CSCS="UCS2")."""
    number = unquote(field)
    # u-blox LARA with CSCS="UCS2" sends the number as UCS2 hex, as it does +CSCA's (QUIRKS 22):
    # "002B0034…" is "+4…". Decoded only when that gives a number, as parse_csca does.
    decoded = decode_ucs2_hex(number) if len(number) >= 8 else None
    if decoded is not None and _MSISDN.fullmatch(decoded):
        return decoded
    return number


def parse_own_number_value(lines: Sequence[str]) -> IdentityValue:
    """AT+CNUM: the first subscriber number the SIM knows, marked valid when it is digits."""
    for line in lines:
        if line_prefix(line) == "+CNUM":
            fields = split_top(strip_prefix(line))
            number = subscriber_number(fields[1]) if len(fields) > 1 else ""
            if number:
                valid = _MSISDN.fullmatch(number) is not None
                kind = IdentityKind.MSISDN if valid else IdentityKind.OTHER
                return IdentityValue(number, line.strip(), valid, kind)
    raise AtParseError("no subscriber number in answer", " | ".join(lines))
