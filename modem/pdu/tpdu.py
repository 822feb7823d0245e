"""SMS-SUBMIT, SMS-DELIVER and SMS-STATUS-REPORT TPDUs (TS 23.040 9.2.2)."""

from __future__ import annotations

from codecs import charmap_decode as _charmap_decode
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import TypeVar

from modem.pdu import gsm7
from modem.pdu._fast import fast_constructor
from modem.pdu.address import Address, decode_address, decode_smsc, encode_address, encode_smsc
from modem.pdu.anomaly import Anomaly, AnomalyCode, note
from modem.pdu.dcs import Alphabet, DataCodingScheme
from modem.pdu.errors import PduError
from modem.pdu.gsm7 import DEFAULT_ALPHABET
from modem.pdu.gsm7 import decode_septets as _decode_septets
from modem.pdu.gsm7 import undefined_escape_pattern as _undefined_escape_pattern
from modem.pdu.gsm7 import undefined_escapes as _undefined_escapes
from modem.pdu.gsm7 import unpack_septets as _unpack_septets
from modem.pdu.ucs2 import decode_ucs2, encode_ucs2, lone_surrogates
from modem.pdu.udh import UserDataHeader

__all__ = [
    "DeliveryStatus",
    "EncodedPdu",
    "Pdu",
    "SmsDeliver",
    "SmsStatusReport",
    "SmsSubmit",
    "Tpdu",
    "UserData",
    "ValidityPeriodFormat",
    "decode_pdu",
    "decode_timestamp",
    "decode_tpdu",
    "encode_pdu",
    "encode_timestamp",
    "relative_validity",
    "validity_from_relative",
]

T = TypeVar("T")

MAX_USER_DATA_OCTETS = 140
MAX_SEPTETS = 160


class DeliveryStatus(Enum):
    """TP-ST classes (TS 23.040 9.2.3.15)."""

    COMPLETED = "completed"
    TEMPORARY_TRYING = "temporary-trying"
    PERMANENT = "permanent"
    TEMPORARY_STOPPED = "temporary-stopped"


_STATUS_CLASSES = (
    DeliveryStatus.COMPLETED,
    DeliveryStatus.TEMPORARY_TRYING,
    DeliveryStatus.PERMANENT,
    DeliveryStatus.TEMPORARY_STOPPED,
)


class ValidityPeriodFormat(Enum):
    """TP-VPF values (TS 23.040 9.2.3.3)."""

    NONE = 0
    ENHANCED = 1
    RELATIVE = 2
    ABSOLUTE = 3


# ---------------------------------------------------------------------------------------------
# Timestamps (TP-SCTS, TP-DT, absolute TP-VP): seven swapped-BCD octets, TS 23.040 9.2.3.11.

_BCD = [(o & 0x0F) * 10 + (o >> 4) if (o & 0x0F) < 10 and (o >> 4) < 10 else -1 for o in range(256)]
# The same as a bytes.translate table: 0xFF marks an octet that is not two decimal digits.
_BCD_BYTES = bytes(v if v >= 0 else 0xFF for v in _BCD)
_TZ = {q: timezone(timedelta(minutes=15 * q)) for q in range(-79, 80)}
_TZ[0] = UTC


def _zone(octet: int) -> timezone:
    if octet >> 4 > 9:
        # Real Kenyan Safaricom status reports carry non-BCD zone octets (0xE1); smslib reads
        # those timestamps as UTC, which is the only reading that matches their epoch values.
        return UTC
    quarters = (octet & 0x07) * 10 + (octet >> 4)
    return _TZ[-quarters if octet & 0x08 else quarters]


# Time zone octet (quarter hours, swapped BCD, sign in bit 3) -> tzinfo.
_ZONE = tuple(_zone(octet) for octet in range(256))


def decode_timestamp(data: bytes, pos: int, what: str = "timestamp") -> datetime:
    """Decode a 7-octet service-centre timestamp into a timezone-aware datetime."""
    if pos + 7 > len(data):
        raise PduError(f"{what} truncated", pos)
    values = data[pos : pos + 6].translate(_BCD_BYTES)
    if 0xFF in values:
        raise PduError(f"{what} holds a non-decimal digit", pos + values.index(0xFF))
    year, month, day, hour, minute, second = values
    # Two-digit years: 90..99 are 1990s (as gammu reads them), everything else 20xx.
    year += 1900 if year >= 90 else 2000
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=_ZONE[data[pos + 6]])
    except ValueError as exc:
        raise PduError(f"{what} is not a valid date ({exc})", pos) from None


def _swap(value: int) -> int:
    return (value % 10) << 4 | (value // 10)


def encode_timestamp(when: datetime) -> bytes:
    """Encode a timezone-aware datetime as seven swapped-BCD octets."""
    offset = when.utcoffset()
    if offset is None:
        raise PduError("timestamp must be timezone-aware")
    seconds = int(offset.total_seconds())
    if seconds % 900:
        raise PduError(f"time zone offset {offset} is not a multiple of 15 minutes")
    quarters = seconds // 900
    if not -79 <= quarters <= 79:
        raise PduError(f"time zone offset {offset} out of range")
    if not 1990 <= when.year <= 2089:
        raise PduError(f"year {when.year} cannot be written as two digits")
    tz = _swap(abs(quarters)) | (0x08 if quarters < 0 else 0)
    return bytes(
        (
            _swap(when.year % 100),
            _swap(when.month),
            _swap(when.day),
            _swap(when.hour),
            _swap(when.minute),
            _swap(when.second),
            tz,
        )
    )


# ---------------------------------------------------------------------------------------------
# Relative validity period (TS 23.040 9.2.3.12.1).

_MINUTE = 60
_DAY = 86400
_WEEK = 7 * _DAY


def validity_from_relative(vp: int) -> timedelta:
    """TP-VP relative octet -> duration."""
    if vp <= 143:
        return timedelta(minutes=(vp + 1) * 5)
    if vp <= 167:
        return timedelta(hours=12, minutes=(vp - 143) * 30)
    if vp <= 196:
        return timedelta(days=vp - 166)
    return timedelta(weeks=vp - 192)


_RELATIVE_VALIDITY = tuple(validity_from_relative(vp) for vp in range(256))


def relative_validity(period: timedelta) -> int:
    """Duration -> TP-VP relative octet, rounded up to the next representable period."""
    secs = period.total_seconds()
    if secs < 0:
        raise PduError(f"negative validity period {period}")
    whole = int(secs) + (1 if secs % 1 else 0)

    def ceil_div(a: int, b: int) -> int:
        return -(-a // b)

    if whole <= 12 * 3600:
        return max(0, ceil_div(whole, 5 * _MINUTE) - 1)
    if whole <= _DAY:
        return 143 + ceil_div(whole - 12 * 3600, 30 * _MINUTE)
    if whole <= 30 * _DAY:
        return 166 + ceil_div(whole, _DAY)
    return min(255, 192 + ceil_div(whole, _WEEK))


def _decode_enhanced_validity(data: bytes, pos: int) -> timedelta | None:
    """Enhanced TP-VP (9.2.3.12.3): the 7 octets at pos -> duration, None if absent/reserved."""
    indicator = data[pos]
    body = pos + 1
    while data[body - 1] & 0x80 and body < pos + 7:
        body += 1
    kind = indicator & 0x07
    if kind == 1:
        return validity_from_relative(data[body])
    if kind == 2:
        return timedelta(seconds=data[body])
    if kind == 3:
        if body + 3 > pos + 7:
            raise PduError("enhanced validity period overruns its 7 octets", pos)
        hours, minutes, seconds = (_BCD[o] for o in data[body : body + 3])
        if min(hours, minutes, seconds) < 0:
            raise PduError("enhanced validity period holds a non-decimal digit", body)
        return timedelta(hours=hours, minutes=minutes, seconds=seconds)
    return None


# ---------------------------------------------------------------------------------------------
# User data.


@dataclass(frozen=True)
class UserData:
    """TP-UD: text (GSM 7-bit / UCS-2) or 8-bit data, with an optional header."""

    text: str | None = None
    data: bytes | None = None
    header: UserDataHeader | None = None
    truncated: bool = False
    # Undecoded payload (septet values for GSM 7-bit, octets otherwise) so reassembly can join
    # parts before decoding: a character torn across two parts is only whole after the join.
    raw: bytes | None = field(default=None, compare=False, repr=False)


_make_user_data = fast_constructor(UserData)


def _shifts(header: UserDataHeader | None) -> tuple[int, int]:
    if header is None:
        return 0, 0
    return header.locking_shift or 0, header.single_shift or 0


def _encode_user_data(user_data: UserData, dcs: DataCodingScheme) -> bytes:
    """UDL + UD for the given alphabet."""
    header = user_data.header
    head = header.encode() if header is not None else b""
    alphabet = dcs.alphabet
    if alphabet is Alphabet.GSM7 and not dcs.compressed:
        if user_data.text is None:
            raise PduError("GSM 7-bit user data needs text")
        locking, single = _shifts(header)
        septets = gsm7.encode_septets(user_data.text, locking, single)
        head_septets = (len(head) * 8 + 6) // 7
        fill = head_septets * 7 - len(head) * 8
        udl = head_septets + len(septets)
        if udl > MAX_SEPTETS:
            raise PduError(f"user data of {udl} septets exceeds {MAX_SEPTETS}")
        return bytes((udl,)) + head + gsm7.pack_septets(septets, fill)
    if alphabet is Alphabet.UCS2 and not dcs.compressed:
        if user_data.text is None:
            raise PduError("UCS-2 user data needs text")
        body = encode_ucs2(user_data.text)
    else:
        if user_data.data is None:
            raise PduError("8-bit user data needs data")
        body = user_data.data
    udl = len(head) + len(body)
    if udl > MAX_USER_DATA_OCTETS:
        raise PduError(f"user data of {udl} octets exceeds {MAX_USER_DATA_OCTETS}")
    return bytes((udl,)) + head + body


def _ucs2_part_text(
    payload: bytes, header: UserDataHeader | None, octet: int, notes: list[Anomaly] | None
) -> str:
    """Decode UCS-2, tolerating a surrogate pair torn at a concatenation boundary."""
    start, end = 0, len(payload)
    concat = header.concatenation if header is not None else None
    if concat is not None:
        if concat.sequence > 1 and end >= 2 and 0xDC <= payload[0] <= 0xDF:
            start = 2
        if concat.sequence < concat.total and end - start >= 2 and 0xD8 <= payload[end - 2] <= 0xDB:
            end -= 2
    units = payload[start:end]
    if notes is None:
        return decode_ucs2(units, octet + start)
    for at in lone_surrogates(units):
        note(
            notes,
            AnomalyCode.UCS2_LONE_SURROGATE,
            f"UCS-2 lone surrogate {units[at]:02X}{units[at + 1]:02X} (shown as U+FFFD)",
            octet + start + at,
        )
    return units.decode("utf-16-be", "replace")


# Per raw TP-DCS octet: a shared DataCodingScheme and how its user data is laid out.
_DCS = tuple(DataCodingScheme(raw) for raw in range(256))
_SEPTETS, _UCS2, _OCTETS = 0, 1, 2
_UNDEFINED_ESCAPE = _undefined_escape_pattern(0)  # the default extension table's gaps
# Codings TS 23.038 reserves, which "shall be assumed" GSM 7-bit: general alphabet bits 11 and
# the groups 1000..1011.
_RESERVED_DCS = bytes(
    1 if (raw < 0x80 and (raw >> 2) & 3 == 3) or 0x80 <= raw < 0xC0 else 0 for raw in range(256)
)
_LAYOUT = tuple(
    _OCTETS
    if d.compressed or d.alphabet is Alphabet.DATA_8BIT
    else _UCS2
    if d.alphabet is Alphabet.UCS2
    else _SEPTETS
    for d in _DCS
)


def _check_dcs(raw: int, pos: int, notes: list[Anomaly] | None) -> None:
    if _RESERVED_DCS[raw]:
        note(
            notes,
            AnomalyCode.RESERVED_DCS,
            f"TP-DCS {raw:#04x} is reserved (read as GSM 7-bit)",
            pos,
        )


def _udl_mismatch(
    pos: int, udl: int, needed: int, avail: int, *, septets: bool, notes: list[Anomaly] | None
) -> tuple[int, int, bool]:
    """TP-UDL that does not match the octets present: (udl, octets to read, truncated)."""
    limit, unit = (MAX_SEPTETS, "septets") if septets else (MAX_USER_DATA_OCTETS, "octets")
    if needed > MAX_USER_DATA_OCTETS and (
        notes is None or needed <= avail or avail > MAX_USER_DATA_OCTETS
    ):
        # More than an SMS holds and as much is there (or strict): no reading of it is safe.
        raise PduError(f"TP-UDL {udl} exceeds {limit} {unit}", pos)
    if needed > avail:
        # Also a TP-UDL beyond any SMS (0xFF from a modem that never filled it in) over no more
        # than an SMS holds: python-gsmmodem and python-gammu read what is there, and so do we.
        beyond = f" (more than {limit} {unit})" if needed > MAX_USER_DATA_OCTETS else ""
        note(
            notes,
            AnomalyCode.USER_DATA_SHORT,
            f"TP-UDL {udl}{beyond} needs {needed} octets of user data but {avail} are present",
            pos,
        )
        return (avail * 8 // 7 if septets else udl), avail, True
    note(
        notes,
        AnomalyCode.DATA_BEYOND_UDL,
        f"{avail - needed} octet(s) after the {needed} of user data TP-UDL {udl} counts (ignored)",
        pos + 1 + needed,
    )
    return udl, needed, False


def _decode_user_data(
    data: bytes, pos: int, udhi: int, dcs: DataCodingScheme, notes: list[Anomaly] | None
) -> UserData:
    if pos >= len(data):
        raise PduError("TP-UDL missing", pos)
    udl = data[pos]
    start = pos + 1
    avail = len(data) - start
    layout = _LAYOUT[dcs.raw]
    septets = layout == _SEPTETS
    needed = (udl * 7 + 7) // 8 if septets else udl
    truncated = False
    # One test for the usual case: TP-UDL covers exactly the octets present and at most 140
    # (more than 160 septets always needs more than 140 octets).
    if needed != avail or needed > MAX_USER_DATA_OCTETS:
        udl, needed, truncated = _udl_mismatch(
            pos, udl, needed, avail, septets=septets, notes=notes
        )
    body = data[start : start + needed]
    header: UserDataHeader | None = None
    head_len = 0
    if udhi:
        if needed < 1:
            raise PduError("TP-UDHI is set but the user data is empty", pos)
        head_len = body[0] + 1
        if head_len > needed:
            raise PduError(f"UDH length {body[0]} overruns the user data", start)
        header = UserDataHeader.decode(body[1:head_len], start + 1)
    if septets:
        head_septets = (head_len * 8 + 6) // 7
        count = udl - head_septets
        if count < 0:
            raise PduError(f"UDH of {head_len} octets exceeds TP-UDL {udl} septets", pos)
        fill = head_septets * 7 - head_len * 8
        values = _unpack_septets(body[head_len:], count, fill)
        locking = single = 0
        if header is not None:
            head = body[1:head_len]
            # Shift IEs are rare: a byte scan skips the element walk when none can be there.
            if 0x24 in head or 0x25 in head:
                locking = header.locking_shift or 0
                single = header.single_shift or 0
        if locking == single == 0 and 0x1B not in values:
            # Common case inlined: default alphabet, no escapes -> one charmap decode.
            text = _charmap_decode(values, "strict", DEFAULT_ALPHABET)[0]
        else:
            undefined = _UNDEFINED_ESCAPE if single == 0 else _undefined_escape_pattern(single)
            if undefined.search(values) is not None:
                for index in _undefined_escapes(values, single):
                    note(
                        notes,
                        AnomalyCode.UNDEFINED_EXTENSION,
                        f"escape to undefined extension septet {values[index + 1]:#04x}"
                        " (shown as the main table's character)",
                        start + (head_septets + index) * 7 // 8,
                    )
            text = _decode_septets(values, locking, single)
        return _make_user_data(text, None, header, truncated, values)
    payload = body[head_len:]
    if layout == _UCS2:
        if len(payload) % 2:
            note(
                notes,
                AnomalyCode.UCS2_ODD_LENGTH,
                f"UCS-2 user data has an odd length ({len(payload)} octets; the last is dropped)",
                start + head_len + len(payload) - 1,
            )
            payload = payload[:-1]
        try:
            text = payload.decode("utf-16-be")
        except UnicodeDecodeError:
            # A lone surrogate: the slow path tolerates a pair torn at a part boundary; any
            # other raises PduError (strict) or shows as U+FFFD, noted (lenient).
            text = _ucs2_part_text(payload, header, start + head_len, notes)
        return _make_user_data(text, None, header, truncated, payload)
    return _make_user_data(None, payload, header, truncated, payload)


def _need(data: bytes, pos: int, count: int, what: str) -> None:
    if pos + count > len(data):
        raise PduError(f"PDU ends before {what}", pos)


# ---------------------------------------------------------------------------------------------
# TPDUs.


@dataclass(frozen=True)
class SmsSubmit:
    """SMS-SUBMIT (MS -> SC), TS 23.040 9.2.2.2."""

    destination: Address
    user_data: UserData
    dcs: DataCodingScheme = field(default_factory=DataCodingScheme)
    message_reference: int = 0
    status_report_request: bool = False
    reject_duplicates: bool = False
    validity: timedelta | datetime | None = None
    protocol_identifier: int = 0
    reply_path: bool = False
    # What a lenient decode repaired (empty for a well-formed PDU and for anything built here).
    # Not part of equality: a repaired PDU is the same message as its well-formed re-encoding.
    anomalies: tuple[Anomaly, ...] = field(default=(), compare=False)

    @property
    def validity_format(self) -> ValidityPeriodFormat:
        """TP-VPF this submit encodes with."""
        if self.validity is None:
            return ValidityPeriodFormat.NONE
        if isinstance(self.validity, datetime):
            return ValidityPeriodFormat.ABSOLUTE
        return ValidityPeriodFormat.RELATIVE

    def encode(self) -> bytes:
        """The TPDU (no SMSC field)."""
        validity = self.validity
        if validity is None:
            vpf, vp = 0x00, b""
        elif isinstance(validity, datetime):
            vpf, vp = 0x18, encode_timestamp(validity)
        else:
            vpf, vp = 0x10, bytes((relative_validity(validity),))
        first = (
            0x01
            | (0x04 if self.reject_duplicates else 0)
            | vpf
            | (0x20 if self.status_report_request else 0)
            | (0x40 if self.user_data.header is not None else 0)
            | (0x80 if self.reply_path else 0)
        )
        if not 0 <= self.message_reference <= 255:
            raise PduError(f"TP-MR {self.message_reference} out of range")
        return (
            bytes((first, self.message_reference))
            + encode_address(self.destination)
            + bytes((self.protocol_identifier, self.dcs.raw))
            + vp
            + _encode_user_data(self.user_data, self.dcs)
        )

    @classmethod
    def decode(cls, tpdu: bytes, offset: int = 0, *, strict: bool = False) -> SmsSubmit:
        """Decode an SMS-SUBMIT TPDU starting at `offset`."""
        return _lenient(_decode_submit, tpdu, offset, strict)


@dataclass(frozen=True)
class SmsDeliver:
    """SMS-DELIVER (SC -> MS), TS 23.040 9.2.2.1."""

    originator: Address
    scts: datetime
    user_data: UserData
    dcs: DataCodingScheme = field(default_factory=DataCodingScheme)
    protocol_identifier: int = 0
    more_messages_to_send: bool = False
    status_report_indication: bool = False
    reply_path: bool = False
    # What a lenient decode repaired (empty for a well-formed PDU and for anything built here).
    # Not part of equality: a repaired PDU is the same message as its well-formed re-encoding.
    anomalies: tuple[Anomaly, ...] = field(default=(), compare=False)

    def encode(self) -> bytes:
        """The TPDU (no SMSC field)."""
        first = (
            0x00
            | (0 if self.more_messages_to_send else 0x04)
            | (0x20 if self.status_report_indication else 0)
            | (0x40 if self.user_data.header is not None else 0)
            | (0x80 if self.reply_path else 0)
        )
        return (
            bytes((first,))
            + encode_address(self.originator)
            + bytes((self.protocol_identifier, self.dcs.raw))
            + encode_timestamp(self.scts)
            + _encode_user_data(self.user_data, self.dcs)
        )

    @classmethod
    def decode(cls, tpdu: bytes, offset: int = 0, *, strict: bool = False) -> SmsDeliver:
        """Decode an SMS-DELIVER TPDU starting at `offset`."""
        return _lenient(_decode_deliver, tpdu, offset, strict)


@dataclass(frozen=True)
class SmsStatusReport:
    """SMS-STATUS-REPORT (SC -> MS), TS 23.040 9.2.2.3."""

    message_reference: int
    recipient: Address
    scts: datetime
    discharge_time: datetime
    status: int
    protocol_identifier: int | None = None
    dcs: DataCodingScheme | None = None
    user_data: UserData | None = None
    status_report_qualifier: bool = False
    more_messages_to_send: bool = False
    # What a lenient decode repaired (empty for a well-formed PDU and for anything built here).
    # Not part of equality: a repaired PDU is the same message as its well-formed re-encoding.
    anomalies: tuple[Anomaly, ...] = field(default=(), compare=False)

    @property
    def delivery_status(self) -> DeliveryStatus:
        """Class of TP-ST: completed, temporary (still trying / stopped) or permanent."""
        return _STATUS_CLASSES[(self.status >> 5) & 3]

    def encode(self) -> bytes:
        """The TPDU (no SMSC field)."""
        user_data = self.user_data
        first = (
            0x02
            | (0 if self.more_messages_to_send else 0x04)
            | (0x20 if self.status_report_qualifier else 0)
            | (0x40 if user_data is not None and user_data.header is not None else 0)
        )
        out = (
            bytes((first, self.message_reference))
            + encode_address(self.recipient)
            + encode_timestamp(self.scts)
            + encode_timestamp(self.discharge_time)
            + bytes((self.status,))
        )
        indicator = (
            (0x01 if self.protocol_identifier is not None else 0)
            | (0x02 if self.dcs is not None else 0)
            | (0x04 if user_data is not None else 0)
        )
        if indicator:
            out += bytes((indicator,))
            if self.protocol_identifier is not None:
                out += bytes((self.protocol_identifier,))
            if self.dcs is not None:
                out += bytes((self.dcs.raw,))
            if user_data is not None:
                out += _encode_user_data(user_data, self.dcs or DataCodingScheme())
        return out

    @classmethod
    def decode(cls, tpdu: bytes, offset: int = 0, *, strict: bool = False) -> SmsStatusReport:
        """Decode an SMS-STATUS-REPORT TPDU starting at `offset`."""
        return _lenient(_decode_status_report, tpdu, offset, strict)


Tpdu = SmsSubmit | SmsDeliver | SmsStatusReport
_make_submit = fast_constructor(SmsSubmit)
_make_deliver = fast_constructor(SmsDeliver)
_make_status_report = fast_constructor(SmsStatusReport)


@dataclass(frozen=True)
class Pdu:
    """A PDU as exchanged with the modem: optional SMSC address and the TPDU."""

    smsc: Address | None
    tpdu: Tpdu


@dataclass(frozen=True, slots=True)
class EncodedPdu:
    """Hex for AT+CMGS (SMSC field first) and the TPDU length that goes in the command."""

    hex: str
    tpdu_length: int


_make_pdu = fast_constructor(Pdu)


def _decode_submit(tpdu: bytes, offset: int, notes: list[Anomaly] | None) -> SmsSubmit:
    """SMS-SUBMIT decoder behind SmsSubmit.decode and decode_pdu."""
    data = tpdu
    if offset + 2 > len(data):
        raise PduError("PDU ends before TP-MR", offset)
    first = data[offset]
    mr = data[offset + 1]
    destination, pos = decode_address(data, offset + 2, "TP-DA", notes)
    if pos + 2 > len(data):
        raise PduError("PDU ends before TP-PID/TP-DCS", pos)
    pid = data[pos]
    dcs = _DCS[data[pos + 1]]
    if _RESERVED_DCS[dcs.raw]:
        _check_dcs(dcs.raw, pos + 1, notes)
    pos += 2
    vpf = (first >> 3) & 3
    validity: timedelta | datetime | None = None
    if vpf == 2:
        if pos >= len(data):
            raise PduError("PDU ends before TP-VP", pos)
        validity = _RELATIVE_VALIDITY[data[pos]]
        pos += 1
    elif vpf == 3:
        validity = decode_timestamp(data, pos, "TP-VP")
        pos += 7
    elif vpf == 1:
        _need(data, pos, 7, "enhanced TP-VP")
        validity = _decode_enhanced_validity(data, pos)
        pos += 7
    user_data = _decode_user_data(data, pos, first & 0x40, dcs, notes)
    return _make_submit(
        destination,
        user_data,
        dcs,
        mr,
        bool(first & 0x20),
        bool(first & 0x04),
        validity,
        pid,
        bool(first & 0x80),
        () if notes is None else tuple(notes),
    )


def _decode_status_report(tpdu: bytes, offset: int, notes: list[Anomaly] | None) -> SmsStatusReport:
    """SMS-STATUS-REPORT decoder behind SmsStatusReport.decode and decode_pdu."""
    data = tpdu
    _need(data, offset, 2, "TP-MR")
    first = data[offset]
    mr = data[offset + 1]
    recipient, pos = decode_address(data, offset + 2, "TP-RA", notes)
    scts = decode_timestamp(data, pos, "TP-SCTS")
    discharge = decode_timestamp(data, pos + 7, "TP-DT")
    pos += 14
    _need(data, pos, 1, "TP-ST")
    status = data[pos]
    pos += 1
    pid: int | None = None
    dcs: DataCodingScheme | None = None
    user_data: UserData | None = None
    # A TP-PI with reserved bits 3..6 set is taken as padding (some SCs append 0xFF):
    # nothing after it is read.
    if pos < len(data) and not data[pos] & 0x78:
        indicator = data[pos]
        pos += 1
        # Extension octets (bit 7) carry only reserved bits today: skip them.
        while data[pos - 1] & 0x80 and pos < len(data):
            pos += 1
        if indicator & 0x01:
            _need(data, pos, 1, "TP-PID")
            pid = data[pos]
            pos += 1
        if indicator & 0x02:
            _need(data, pos, 1, "TP-DCS")
            dcs = _DCS[data[pos]]
            _check_dcs(dcs.raw, pos, notes)
            pos += 1
        if indicator & 0x04:
            user_data = _decode_user_data(
                data, pos, bool(first & 0x40), dcs or DataCodingScheme(), notes
            )
    return _make_status_report(
        message_reference=mr,
        recipient=recipient,
        scts=scts,
        discharge_time=discharge,
        status=status,
        protocol_identifier=pid,
        dcs=dcs,
        user_data=user_data,
        status_report_qualifier=bool(first & 0x20),
        more_messages_to_send=not first & 0x04,
        anomalies=() if notes is None else tuple(notes),
    )


def _decode_deliver(tpdu: bytes, offset: int, notes: list[Anomaly] | None) -> SmsDeliver:
    """SMS-DELIVER decoder behind SmsDeliver.decode and decode_pdu."""
    data = tpdu
    if offset >= len(data):
        raise PduError("PDU ends before the first octet", offset)
    first = data[offset]
    originator, pos = decode_address(data, offset + 1, "TP-OA", notes)
    if pos + 2 > len(data):
        raise PduError("PDU ends before TP-PID/TP-DCS", pos)
    pid = data[pos]
    dcs = _DCS[data[pos + 1]]
    if _RESERVED_DCS[dcs.raw]:
        _check_dcs(dcs.raw, pos + 1, notes)
    scts = decode_timestamp(data, pos + 2, "TP-SCTS")
    user_data = _decode_user_data(data, pos + 9, first & 0x40, dcs, notes)
    return _make_deliver(
        originator,
        scts,
        user_data,
        dcs,
        pid,
        not first & 0x04,
        bool(first & 0x20),
        bool(first & 0x80),
        () if notes is None else tuple(notes),
    )


def _to_bytes(data: bytes | str) -> bytes:
    if isinstance(data, str):
        try:
            return bytes.fromhex(data)
        except ValueError:
            raise PduError("PDU is not hexadecimal") from None
    return bytes(data)


def _lenient(
    decoder: Callable[[bytes, int, list[Anomaly] | None], T], data: bytes, pos: int, strict: bool
) -> T:
    """Decode strictly; on failure (unless strict) once more, repairing and noting anomalies."""
    # A well-formed PDU pays nothing for leniency: anomalies are only collected on the second
    # pass, which a PDU reaches only when the strict pass found something wrong with it.
    try:
        return decoder(data, pos, None)
    except PduError:
        if strict:
            raise
    return decoder(data, pos, [])


_TPDU_DECODERS: tuple[Callable[[bytes, int, list[Anomaly] | None], Tpdu], ...] = (
    _decode_deliver,
    _decode_submit,
    _decode_status_report,
)


def decode_tpdu(data: bytes | str, offset: int = 0, *, strict: bool = False) -> Tpdu:
    """Decode a TPDU (no SMSC field), choosing the type from TP-MTI.

    Repairable deviations (see AnomalyCode) are decoded and listed in `anomalies`; with
    strict=True they raise PduError like PDUs that cannot be decoded at all.
    """
    raw = _to_bytes(data)
    if offset >= len(raw):
        raise PduError("PDU ends before the TPDU", offset)
    mti = raw[offset] & 0x03
    if mti == 3:
        raise PduError("reserved TP-MTI 3", offset)
    return _lenient(_TPDU_DECODERS[mti], raw, offset, strict)


def decode_pdu(data: bytes | str, smsc_included: bool = True, *, strict: bool = False) -> Pdu:
    """Decode a +CMGR/+CMGL/+CMT PDU (SMSC field first unless smsc_included=False).

    Repairable deviations (an address length counting the F filler, user data shorter or
    longer than TP-UDL, reserved DCS, odd-length UCS-2 or a lone surrogate, undefined extension
    characters) are decoded and
    listed in the TPDU's `anomalies`, octets counted from the start of `data`; with strict=True
    they raise PduError like PDUs that cannot be decoded at all.
    """
    if isinstance(data, str):
        try:
            raw = bytes.fromhex(data)
        except ValueError:
            raise PduError("PDU is not hexadecimal") from None
    else:
        raw = bytes(data)
    smsc: Address | None = None
    pos = 0
    if smsc_included:
        smsc, pos = decode_smsc(raw, 0)
    if pos >= len(raw):
        raise PduError("PDU ends before the TPDU", pos)
    mti = raw[pos] & 0x03
    if mti == 3:
        raise PduError("reserved TP-MTI 3", pos)
    decoder = _TPDU_DECODERS[mti]
    try:
        tpdu = decoder(raw, pos, None)
    except PduError:
        if strict:
            raise
        tpdu = decoder(raw, pos, [])
    return _make_pdu(smsc, tpdu)


def encode_pdu(tpdu: Tpdu, smsc: Address | None = None) -> EncodedPdu:
    """Encode a TPDU with its SMSC field, ready for AT+CMGS=<tpdu_length>."""
    body = tpdu.encode()
    return EncodedPdu((encode_smsc(smsc) + body).hex().upper(), len(body))
