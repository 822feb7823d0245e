"""Text -> SMS parts: cheapest alphabet, part sizes, counting (TS 23.040 / 23.038)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from modem.pdu import gsm7
from modem.pdu.address import Address
from modem.pdu.dcs import Alphabet, DataCodingScheme, MessageClass
from modem.pdu.errors import PduError
from modem.pdu.nls import NATIONAL_LOCKING_SHIFT, NATIONAL_SINGLE_SHIFT
from modem.pdu.tpdu import MAX_SEPTETS, MAX_USER_DATA_OCTETS, SmsSubmit, UserData
from modem.pdu.ucs2 import encode_ucs2
from modem.pdu.udh import UserDataHeader

__all__ = [
    "MAX_PARTS",
    "MessageCount",
    "Segmentation",
    "build_data_submits",
    "build_submits",
    "count",
    "segment",
    "split_data",
]

MAX_PARTS = 255
_CONCAT_IE_OCTETS = {False: 5, True: 6}  # IEI + IEDL + (1 or 2 reference octets) + total + seq
_SHIFT_IE_OCTETS = 3


@dataclass(frozen=True, slots=True)
class Segmentation:
    """How a text is split: alphabet, shift tables and the text of each part."""

    encoding: Alphabet
    segments: tuple[str, ...]
    units: tuple[int, ...]
    capacity: int
    locking_shift: int = 0
    single_shift: int = 0

    @property
    def parts(self) -> int:
        """Number of parts."""
        return len(self.segments)


@dataclass(frozen=True, slots=True)
class MessageCount:
    """What a text costs: encoding, parts, characters, units and units left in the last part."""

    encoding: Alphabet
    parts: int
    characters: int
    units: int
    remaining: int
    locking_shift: int = 0
    single_shift: int = 0


def _header_octets(concatenated: bool, ref16: bool, shifts: int) -> int:
    body = (_CONCAT_IE_OCTETS[ref16] if concatenated else 0) + _SHIFT_IE_OCTETS * shifts
    return body + 1 if body else 0


def _capacity(alphabet: Alphabet, header_octets: int) -> int:
    if alphabet is Alphabet.GSM7:
        return MAX_SEPTETS - (header_octets * 8 + 6) // 7
    if alphabet is Alphabet.UCS2:
        return (MAX_USER_DATA_OCTETS - header_octets) // 2
    return MAX_USER_DATA_OCTETS - header_octets


def _plan(text: str, alphabet: Alphabet, locking: int, single: int, ref16: bool) -> Segmentation:
    if alphabet is Alphabet.GSM7:
        encoded = gsm7.encode_septets(text, locking, single)
        total = len(encoded)
    else:
        encoded = encode_ucs2(text)  # raises PduError on a lone surrogate in the input
        total = len(encoded) // 2
    shifts = (1 if locking else 0) + (1 if single else 0)
    single_cap = _capacity(alphabet, _header_octets(False, ref16, shifts))
    if total <= single_cap:
        return Segmentation(alphabet, (text,), (total,), single_cap, locking, single)
    cap = _capacity(alphabet, _header_octets(True, ref16, shifts))
    segments: list[str] = []
    units: list[int] = []
    pos = 0
    if total == len(text):
        # Every character is one unit: plain slicing cannot tear anything.
        while pos < total:
            segments.append(text[pos : pos + cap])
            units.append(min(cap, total - pos))
            pos += cap
    elif alphabet is Alphabet.GSM7:
        # Cut the septet string; every 0x1B in it starts an escape pair (no table maps a
        # character to 0x1B), so a part ending on 0x1B would tear a pair: cut one earlier.
        start = 0
        while pos < total:
            cut = min(cap, total - pos)
            if pos + cut < total and encoded[pos + cut - 1] == gsm7.ESCAPE:
                cut -= 1
            chars = cut - encoded.count(gsm7.ESCAPE, pos, pos + cut)
            segments.append(text[start : start + chars])
            units.append(cut)
            pos += cut
            start += chars
    else:
        # Cut the UTF-16 string; a part ending on a high surrogate would tear a pair.
        while pos < total:
            cut = min(cap, total - pos)
            if pos + cut < total and 0xD8 <= encoded[2 * (pos + cut - 1)] <= 0xDB:
                cut -= 1
            segments.append(encoded[2 * pos : 2 * (pos + cut)].decode("utf-16-be"))
            units.append(cut)
            pos += cut
    if len(segments) > MAX_PARTS:
        raise PduError(f"text needs {len(segments)} parts, more than {MAX_PARTS}")
    return Segmentation(alphabet, tuple(segments), tuple(units), cap, locking, single)


def _national_candidates() -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for lang in sorted(set(NATIONAL_LOCKING_SHIFT) | set(NATIONAL_SINGLE_SHIFT)):
        if lang in NATIONAL_SINGLE_SHIFT:
            out.append((0, int(lang)))
        if lang in NATIONAL_LOCKING_SHIFT:
            out.append((int(lang), 0))
            if lang in NATIONAL_SINGLE_SHIFT:
                out.append((int(lang), int(lang)))
    return out


def segment(text: str, *, ref16: bool = False, allow_national: bool = False) -> Segmentation:
    """Split text into parts with the cheapest alphabet."""
    # GSM 7-bit when every character is in the default alphabet; with allow_national, a
    # national language shift table when it needs fewer parts than UCS-2 (its IEs counted in
    # each header); else UCS-2.
    best: Segmentation | None = None
    if gsm7.encodable(text):
        best = _plan(text, Alphabet.GSM7, 0, 0, ref16)
        if best.parts == 1 or not allow_national:
            return best
    ucs2 = _plan(text, Alphabet.UCS2, 0, 0, ref16)
    if best is None or ucs2.parts < best.parts:
        best = ucs2
    if allow_national:
        for locking, single in _national_candidates():
            if gsm7.encodable(text, locking, single):
                plan = _plan(text, Alphabet.GSM7, locking, single, ref16)
                if plan.parts < best.parts:
                    best = plan
    return best


def count(text: str, *, ref16: bool = False, allow_national: bool = False) -> MessageCount:
    """Encoding, parts, characters, units and units left in the last part for a text."""
    seg = segment(text, ref16=ref16, allow_national=allow_national)
    return MessageCount(
        encoding=seg.encoding,
        parts=seg.parts,
        characters=len(text),
        units=sum(seg.units),
        remaining=seg.capacity - seg.units[-1],
        locking_shift=seg.locking_shift,
        single_shift=seg.single_shift,
    )


def split_data(data: bytes, *, ref16: bool = False) -> list[bytes]:
    """Split 8-bit data into parts of 140 octets (134 / 133 when concatenated)."""
    if len(data) <= MAX_USER_DATA_OCTETS:
        return [data]
    cap = _capacity(Alphabet.DATA_8BIT, _header_octets(True, ref16, 0))
    parts = [data[i : i + cap] for i in range(0, len(data), cap)]
    if len(parts) > MAX_PARTS:
        raise PduError(f"data needs {len(parts)} parts, more than {MAX_PARTS}")
    return parts


def _destination(destination: Address | str) -> Address:
    return Address.parse(destination) if isinstance(destination, str) else destination


def build_submits(
    destination: Address | str,
    text: str,
    *,
    reference: int = 0,
    ref16: bool = False,
    status_report: bool = False,
    validity: timedelta | datetime | None = None,
    message_class: MessageClass | int | None = None,
    allow_national: bool = False,
    protocol_identifier: int = 0,
) -> list[SmsSubmit]:
    """One SMS-SUBMIT per part (TP-MR 0: the modem assigns it)."""
    dest = _destination(destination)
    seg = segment(text, ref16=ref16, allow_national=allow_national)
    dcs = DataCodingScheme.for_alphabet(seg.encoding, message_class)
    shift_ies = UserDataHeader.for_national_language(seg.locking_shift, seg.single_shift)
    total = seg.parts
    out: list[SmsSubmit] = []
    for seq, part in enumerate(seg.segments, start=1):
        header: UserDataHeader | None
        if total > 1:
            header = UserDataHeader.for_concatenation(
                reference, total, seq, 16 if ref16 else 8, extra=shift_ies
            )
        else:
            header = UserDataHeader(shift_ies) if shift_ies else None
        out.append(
            SmsSubmit(
                destination=dest,
                user_data=UserData(text=part, header=header),
                dcs=dcs,
                status_report_request=status_report,
                validity=validity,
                protocol_identifier=protocol_identifier,
            )
        )
    return out


def build_data_submits(
    destination: Address | str,
    data: bytes,
    *,
    reference: int = 0,
    ref16: bool = False,
    status_report: bool = False,
    validity: timedelta | datetime | None = None,
    message_class: MessageClass | int | None = None,
    protocol_identifier: int = 0,
) -> list[SmsSubmit]:
    """One 8-bit SMS-SUBMIT per part of data."""
    dest = _destination(destination)
    parts = split_data(data, ref16=ref16)
    dcs = DataCodingScheme.for_alphabet(Alphabet.DATA_8BIT, message_class)
    out: list[SmsSubmit] = []
    for seq, chunk in enumerate(parts, start=1):
        header = (
            UserDataHeader.for_concatenation(reference, len(parts), seq, 16 if ref16 else 8)
            if len(parts) > 1
            else None
        )
        out.append(
            SmsSubmit(
                destination=dest,
                user_data=UserData(data=chunk, header=header),
                dcs=dcs,
                status_report_request=status_report,
                validity=validity,
                protocol_identifier=protocol_identifier,
            )
        )
    return out
