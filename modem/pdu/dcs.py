"""TP-Data-Coding-Scheme (TS 23.038 section 4): every coding group."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

__all__ = [
    "Alphabet",
    "DataCodingScheme",
    "MessageClass",
    "MessageWaitingType",
]


class Alphabet(StrEnum):
    """Character set of the user data."""

    GSM7 = "gsm7"
    DATA_8BIT = "8bit"
    UCS2 = "ucs2"


class MessageClass(IntEnum):
    """Message class (0 = flash/immediate display)."""

    CLASS_0 = 0
    CLASS_1 = 1
    CLASS_2 = 2
    CLASS_3 = 3


class MessageWaitingType(IntEnum):
    """Indication type of the message waiting coding groups."""

    VOICEMAIL = 0
    FAX = 1
    EMAIL = 2
    OTHER = 3


_ALPHABET_BITS = {Alphabet.GSM7: 0x00, Alphabet.DATA_8BIT: 0x04, Alphabet.UCS2: 0x08}
# General data coding bits 3..2; the reserved value 11 is read as the default alphabet
# ("any reserved codings shall be assumed to be the GSM 7 bit default alphabet", TS 23.038 4).
_GENERAL_ALPHABET = (Alphabet.GSM7, Alphabet.DATA_8BIT, Alphabet.UCS2, Alphabet.GSM7)


@dataclass(frozen=True, slots=True)
class DataCodingScheme:
    """A raw TP-DCS octet with decoded properties."""

    raw: int = 0

    @property
    def group(self) -> int:
        """Coding group: the high nibble."""
        return self.raw >> 4

    @property
    def _general(self) -> bool:
        return self.raw < 0x80

    @property
    def alphabet(self) -> Alphabet:
        """Character set of the user data."""
        raw = self.raw
        if raw < 0x80:
            return _GENERAL_ALPHABET[(raw >> 2) & 3]
        group = raw >> 4
        if group == 0x0E:
            return Alphabet.UCS2
        if group == 0x0F:
            return Alphabet.DATA_8BIT if raw & 0x04 else Alphabet.GSM7
        # 1100/1101 message waiting (GSM 7-bit) and reserved groups 1000..1011 (default).
        return Alphabet.GSM7

    @property
    def message_class(self) -> MessageClass | None:
        """Message class, when the DCS gives one."""
        raw = self.raw
        if raw < 0x80:
            return MessageClass(raw & 3) if raw & 0x10 else None
        if raw >> 4 == 0x0F:
            return MessageClass(raw & 3)
        return None

    @property
    def compressed(self) -> bool:
        """True when the text is compressed (TS 23.042), general groups only."""
        return self.raw < 0x80 and bool(self.raw & 0x20)

    @property
    def auto_deletion(self) -> bool:
        """Marked for automatic deletion (group 01xx)."""
        return 0x40 <= self.raw < 0x80

    @property
    def message_waiting(self) -> MessageWaitingType | None:
        """Indication type for the message waiting groups 1100..1110, else None."""
        if 0xC0 <= self.raw < 0xF0:
            return MessageWaitingType(self.raw & 3)
        return None

    @property
    def message_waiting_active(self) -> bool:
        """Indication sense: True sets the indication, False clears it."""
        return 0xC0 <= self.raw < 0xF0 and bool(self.raw & 0x08)

    @property
    def discard_message(self) -> bool:
        """Group 1100: the message may be discarded after updating the indication."""
        return self.raw >> 4 == 0x0C

    @classmethod
    def for_alphabet(
        cls, alphabet: Alphabet, message_class: MessageClass | int | None = None
    ) -> DataCodingScheme:
        """General-group DCS for an alphabet and optional message class."""
        raw = _ALPHABET_BITS[Alphabet(alphabet)]
        if message_class is not None:
            raw |= 0x10 | int(MessageClass(message_class))
        return cls(raw)
