"""Semi-octet addresses (TS 23.040 9.1.2.5): TON/NPI, digits, alphanumeric, SMSC field."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from modem.pdu import gsm7
from modem.pdu._fast import fast_constructor
from modem.pdu.anomaly import Anomaly, AnomalyCode, note
from modem.pdu.errors import PduError

__all__ = [
    "Address",
    "NumberingPlan",
    "TypeOfNumber",
    "decode_address",
    "decode_smsc",
    "encode_address",
    "encode_smsc",
]


class TypeOfNumber(IntEnum):
    """TP address type-of-number (TS 23.040 9.1.2.5)."""

    UNKNOWN = 0
    INTERNATIONAL = 1
    NATIONAL = 2
    NETWORK_SPECIFIC = 3
    SUBSCRIBER = 4
    ALPHANUMERIC = 5
    ABBREVIATED = 6
    RESERVED = 7


class NumberingPlan(IntEnum):
    """TP address numbering-plan-identification (TS 23.040 9.1.2.5)."""

    UNKNOWN = 0
    ISDN = 1
    DATA = 3
    TELEX = 4
    SC_SPECIFIC_5 = 5
    SC_SPECIFIC_6 = 6
    NATIONAL = 8
    PRIVATE = 9
    ERMES = 10
    RESERVED = 15


_NPI_VALUES = {int(v) for v in NumberingPlan}

# Semi-octet digits: 0-9, then * # a b c (TS 23.040 9.1.2.3); 0xF is the filler.
_DIGITS = "0123456789*#abc"
_DIGIT_VALUE = {ch: i for i, ch in enumerate(_DIGITS)} | {"A": 12, "B": 13, "C": 14}
# Digits are decoded by swapping each octet's nibbles (bytes.translate) and reading the result
# as hex: '0'-'9' stay, 'a'-'e' become * # a b c, 'f' is the filler.
_SWAP_NIBBLES = bytes(((o & 0x0F) << 4) | (o >> 4) for o in range(256))
_HEX_TO_DIGIT = str.maketrans({"a": "*", "b": "#", "c": "a", "d": "b", "e": "c", "f": ""})


_SEPARATORS = str.maketrans("", "", " \t-().")


_DIALLABLE = frozenset("0123456789*#")


def _is_digits(text: str) -> bool:
    # Letters a-c are valid semi-octets but nobody types them: "abc" is an alphanumeric name.
    return _DIALLABLE.issuperset(text)


@dataclass(frozen=True)
class Address:
    """An originating, destination, recipient or SMSC address."""

    number: str
    ton: TypeOfNumber = TypeOfNumber.UNKNOWN
    npi: NumberingPlan = NumberingPlan.ISDN

    @classmethod
    def parse(cls, s: str) -> Address:
        """'+4479..' -> international, '0791..' -> unknown, other text -> alphanumeric."""
        s = s.strip()
        if not s:
            raise PduError("empty address")
        # Separators people type in numbers ("+44 7700 900-123", "(0)") are not digits.
        compact = s.translate(_SEPARATORS)
        if compact.startswith("+") and len(compact) > 1 and _is_digits(compact[1:]):
            return cls(compact[1:], TypeOfNumber.INTERNATIONAL, NumberingPlan.ISDN)
        if compact and _is_digits(compact):
            return cls(compact, TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)
        return cls(s, TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN)

    @property
    def type_of_address(self) -> int:
        """The TOA octet."""
        return 0x80 | (int(self.ton) << 4) | int(self.npi)

    def __str__(self) -> str:
        if self.ton == TypeOfNumber.INTERNATIONAL and self.number:
            return "+" + self.number
        return self.number


_make_address = fast_constructor(Address)
_ALPHANUMERIC = TypeOfNumber.ALPHANUMERIC

_TOA = [
    (
        TypeOfNumber((o >> 4) & 0x07),
        NumberingPlan(o & 0x0F) if (o & 0x0F) in _NPI_VALUES else NumberingPlan.UNKNOWN,
    )
    for o in range(256)
]


_DIGIT_TO_HEX = str.maketrans(
    {"*": "a", "#": "b", "a": "c", "b": "d", "c": "e", "A": "c", "B": "d", "C": "e"}
)
_SEMI_OCTET_CHARS = frozenset(_DIGIT_VALUE)


def _digits_to_semi_octets(number: str) -> bytes:
    if not _SEMI_OCTET_CHARS.issuperset(number):
        bad = next(c for c in number if c not in _SEMI_OCTET_CHARS)
        raise PduError(f"address digit {bad!r} is not a semi-octet digit")
    hexdigits = number.translate(_DIGIT_TO_HEX)
    if len(hexdigits) % 2:
        hexdigits += "f"
    # Semi-octets go low nibble first: write the digits as hex, then swap each octet's nibbles.
    return bytes.fromhex(hexdigits).translate(_SWAP_NIBBLES)


def encode_address(address: Address) -> bytes:
    """TP-OA/TP-DA/TP-RA field: length in semi-octets, TOA, digits (or packed alphanumeric)."""
    if address.ton == TypeOfNumber.ALPHANUMERIC:
        septets = gsm7.encode_septets(address.number)
        if len(septets) > 11:
            raise PduError(f"alphanumeric address longer than 11 septets ({len(septets)})")
        packed = gsm7.pack_septets(septets)
        length = (len(septets) * 7 + 3) // 4
        return bytes((length, address.type_of_address)) + packed
    if len(address.number) > 20:
        raise PduError(f"address longer than 20 digits ({len(address.number)})")
    return bytes((len(address.number), address.type_of_address)) + _digits_to_semi_octets(
        address.number
    )


def encode_smsc(address: Address | None) -> bytes:
    """SMSC field as in +CMGS/+CMGR payloads: length in octets (TOA included), or 00."""
    if address is None:
        return b"\x00"
    if len(address.number) > 20:
        raise PduError(f"SMSC address longer than 20 digits ({len(address.number)})")
    digits = _digits_to_semi_octets(address.number)
    return bytes((len(digits) + 1, address.type_of_address)) + digits


def decode_address(
    data: bytes, pos: int, what: str, notes: list[Anomaly] | None = None
) -> tuple[Address, int]:
    """Decode a TP address at pos; returns the address and the position after it.

    With `notes` (lenient decoding) a length that counts the trailing F filler is repaired and
    noted; without, it raises PduError.
    """
    if pos + 2 > len(data):
        raise PduError(f"{what} address truncated", pos)
    length = data[pos]
    toa = data[pos + 1]
    if length > 20:
        raise PduError(f"{what} address length {length} exceeds 20 semi-octets", pos)
    end = pos + 2 + (length + 1) // 2
    if end > len(data):
        raise PduError(f"{what} address needs {length} semi-octets but the PDU ends", pos)
    ton, npi = _TOA[toa]
    body = data[pos + 2 : end]
    if ton is _ALPHANUMERIC:
        count = length * 4 // 7
        number = gsm7.decode_septets(gsm7.unpack_septets(body, count))
    else:
        digits = body.translate(_SWAP_NIBBLES).hex()
        if length & 1:
            digits = digits[:length]
        if not digits.isdigit():
            if "f" in digits:
                kept = digits.rstrip("f")
                if "f" in kept:
                    raise PduError(f"{what} address has a filler digit inside the number", pos + 2)
                # Some SCs count the filler nibble: "0C91...F8" for 11 digits (python-gsmmodem
                # and gammu read the number without it).
                note(
                    notes,
                    AnomalyCode.ADDRESS_FILLER_COUNTED,
                    f"{what} address length {length} counts {len(digits) - len(kept)} F filler"
                    f" semi-octet(s) as digits",
                    pos,
                )
                digits = kept
            digits = digits.translate(_HEX_TO_DIGIT)
        number = digits
    return _make_address(number, ton, npi), end


# Every PDU from one modem carries the same SMSC field, so its decoded (immutable) Address is
# kept by the raw field; bounded, and a pure function of the bytes.
_SMSC_CACHE: dict[bytes, Address] = {}
_SMSC_CACHE_LIMIT = 64


def decode_smsc(data: bytes, pos: int = 0) -> tuple[Address | None, int]:
    """Decode the SMSC field; 00 -> None, a TOA-only field -> Address('')."""
    if pos >= len(data):
        raise PduError("SMSC field missing", pos)
    length = data[pos]
    if length == 0:
        return None, pos + 1
    if length > 11:
        raise PduError(f"SMSC length {length} exceeds 11 octets", pos)
    end = pos + 1 + length
    if end > len(data):
        raise PduError(f"SMSC field needs {length} octets but the PDU ends", pos)
    field = data[pos + 1 : end]
    cached = _SMSC_CACHE.get(field)
    if cached is not None:
        return cached, end
    ton, npi = _TOA[field[0]]
    digits = field[1:].translate(_SWAP_NIBBLES).hex()
    if not digits.isdigit():
        digits = digits.translate(_HEX_TO_DIGIT)
    address = _make_address(digits, ton, npi)
    if len(_SMSC_CACHE) >= _SMSC_CACHE_LIMIT:
        _SMSC_CACHE.clear()
    _SMSC_CACHE[field] = address
    return address, end
