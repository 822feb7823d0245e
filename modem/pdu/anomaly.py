"""What a leniently decoded PDU had wrong: a code per repair, with the octet it was found at."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from modem.pdu.errors import PduError

__all__ = ["Anomaly", "AnomalyCode", "note"]


class AnomalyCode(StrEnum):
    """One kind of deviation from TS 23.040 / 23.038 that the decoder repairs (and how)."""

    # The address length counts the F filler nibble as a digit: the filler is dropped.
    ADDRESS_FILLER_COUNTED = "address-filler-counted"
    # TP-UDL announces more user data than the PDU holds: what is there is decoded (truncated).
    USER_DATA_SHORT = "user-data-short"
    # A reserved TP-DCS coding: read as the GSM 7-bit default alphabet (TS 23.038 4).
    RESERVED_DCS = "reserved-dcs"
    # UCS-2 user data with an odd number of octets: the last, half a character, is dropped.
    UCS2_ODD_LENGTH = "ucs2-odd-length"
    # An escape followed by a septet the extension table leaves undefined: the character of the
    # main table is shown instead (TS 23.038 6.2.1.1).
    UNDEFINED_EXTENSION = "undefined-extension"
    # UCS-2 user data holding a UTF-16 surrogate without its pair (and not torn at a
    # concatenation boundary): the unit is shown as U+FFFD, as python-gammu does.
    UCS2_LONE_SURROGATE = "ucs2-lone-surrogate"
    # Whole octets after the user data that TP-UDL counts: ignored, as TP-UDL says.
    DATA_BEYOND_UDL = "data-beyond-udl"


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One repair: its code, the octet (from the start of the decoded bytes) and what was seen."""

    code: AnomalyCode
    octet: int
    detail: str


def note(notes: list[Anomaly] | None, code: AnomalyCode, message: str, octet: int) -> None:
    """Record an anomaly; in strict decoding (notes is None) it is a PduError instead."""
    if notes is None:
        raise PduError(message, octet)
    notes.append(Anomaly(code, octet, f"{message} at octet {octet}"))
