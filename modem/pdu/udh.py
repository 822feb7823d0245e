"""User data header information elements (TS 23.040 9.2.3.24)."""

from __future__ import annotations

from dataclasses import dataclass

from modem.pdu._fast import fast_constructor
from modem.pdu.errors import PduError

__all__ = [
    "IEI_APPLICATION_PORT_8BIT",
    "IEI_APPLICATION_PORT_16BIT",
    "IEI_CONCATENATED_8BIT",
    "IEI_CONCATENATED_16BIT",
    "IEI_NATIONAL_LOCKING_SHIFT",
    "IEI_NATIONAL_SINGLE_SHIFT",
    "ApplicationPorts",
    "Concatenation",
    "InformationElement",
    "UserDataHeader",
]

IEI_CONCATENATED_8BIT = 0x00
IEI_APPLICATION_PORT_8BIT = 0x04
IEI_APPLICATION_PORT_16BIT = 0x05
IEI_CONCATENATED_16BIT = 0x08
IEI_NATIONAL_SINGLE_SHIFT = 0x24
IEI_NATIONAL_LOCKING_SHIFT = 0x25


@dataclass(frozen=True)
class InformationElement:
    """One UDH information element: identifier and raw data."""

    iei: int
    data: bytes

    def encode(self) -> bytes:
        """IEI, IEDL, IED."""
        return bytes((self.iei, len(self.data))) + self.data


@dataclass(frozen=True, slots=True)
class Concatenation:
    """Concatenated short message IE (9.2.3.24.1 / 9.2.3.24.8)."""

    reference: int
    total: int
    sequence: int
    ref_bits: int = 8

    def to_element(self) -> InformationElement:
        """The 0x00 (8-bit reference) or 0x08 (16-bit reference) IE."""
        if self.ref_bits == 16:
            data = self.reference.to_bytes(2, "big") + bytes((self.total, self.sequence))
            return InformationElement(IEI_CONCATENATED_16BIT, data)
        return InformationElement(
            IEI_CONCATENATED_8BIT, bytes((self.reference, self.total, self.sequence))
        )


@dataclass(frozen=True, slots=True)
class ApplicationPorts:
    """Application port addressing IE (9.2.3.24.3 / 9.2.3.24.4)."""

    destination: int
    originator: int
    port_bits: int = 16

    def to_element(self) -> InformationElement:
        """The 0x04 (8-bit) or 0x05 (16-bit) IE."""
        if self.port_bits == 8:
            return InformationElement(
                IEI_APPLICATION_PORT_8BIT, bytes((self.destination, self.originator))
            )
        data = self.destination.to_bytes(2, "big") + self.originator.to_bytes(2, "big")
        return InformationElement(IEI_APPLICATION_PORT_16BIT, data)


@dataclass(frozen=True)
class UserDataHeader:
    """A user data header: an ordered tuple of information elements."""

    elements: tuple[InformationElement, ...] = ()

    def _find(self, iei: int) -> InformationElement | None:
        for element in self.elements:
            if element.iei == iei:
                return element
        return None

    @property
    def concatenation(self) -> Concatenation | None:
        """The concatenation IE, or None (also when its values are invalid, as 9.2.3.24.1 says)."""
        for element in self.elements:
            data = element.data
            if element.iei == IEI_CONCATENATED_8BIT and len(data) == 3:
                ref, total, seq = data[0], data[1], data[2]
                bits = 8
            elif element.iei == IEI_CONCATENATED_16BIT and len(data) == 4:
                ref, total, seq = (data[0] << 8) | data[1], data[2], data[3]
                bits = 16
            else:
                continue
            if total == 0 or seq == 0 or seq > total:
                return None
            return Concatenation(ref, total, seq, bits)
        return None

    @property
    def ports(self) -> ApplicationPorts | None:
        """The application port addressing IE, or None."""
        for element in self.elements:
            data = element.data
            if element.iei == IEI_APPLICATION_PORT_16BIT and len(data) == 4:
                return ApplicationPorts((data[0] << 8) | data[1], (data[2] << 8) | data[3], 16)
            if element.iei == IEI_APPLICATION_PORT_8BIT and len(data) == 2:
                return ApplicationPorts(data[0], data[1], 8)
        return None

    @property
    def single_shift(self) -> int | None:
        """National language single shift id (IEI 0x24), or None."""
        element = self._find(IEI_NATIONAL_SINGLE_SHIFT)
        return element.data[0] if element is not None and len(element.data) == 1 else None

    @property
    def locking_shift(self) -> int | None:
        """National language locking shift id (IEI 0x25), or None."""
        element = self._find(IEI_NATIONAL_LOCKING_SHIFT)
        return element.data[0] if element is not None and len(element.data) == 1 else None

    def encode(self) -> bytes:
        """UDHL followed by the information elements."""
        body = b"".join(element.encode() for element in self.elements)
        if len(body) > 139:
            raise PduError(f"user data header of {len(body)} octets does not fit")
        return bytes((len(body),)) + body

    @classmethod
    def decode(cls, data: bytes, octet: int | None = None) -> UserDataHeader:
        """Decode the information elements of a UDH (without its UDHL octet)."""
        elements: list[InformationElement] = []
        pos = 0
        n = len(data)
        while pos < n:
            if pos + 2 > n:
                where = None if octet is None else octet + pos
                raise PduError("user data header element truncated", where)
            iei, length = data[pos], data[pos + 1]
            end = pos + 2 + length
            if end > n:
                where = None if octet is None else octet + pos
                raise PduError(
                    f"UDH element 0x{iei:02X} length {length} overruns the header", where
                )
            elements.append(_make_element(iei, data[pos + 2 : end]))
            pos = end
        return _make_header(tuple(elements))

    @classmethod
    def for_concatenation(
        cls,
        reference: int,
        total: int,
        sequence: int,
        ref_bits: int = 8,
        *,
        extra: tuple[InformationElement, ...] = (),
    ) -> UserDataHeader:
        """A UDH holding a concatenation IE (plus any extra elements)."""
        limit = 0xFFFF if ref_bits == 16 else 0xFF
        if ref_bits not in (8, 16) or not 0 <= reference <= limit:
            raise PduError(f"invalid concatenation reference {reference} for {ref_bits} bits")
        if not 1 <= sequence <= total <= 255:
            raise PduError(f"invalid concatenation sequence {sequence}/{total}")
        element = Concatenation(reference, total, sequence, ref_bits).to_element()
        return cls((element, *extra))

    @classmethod
    def for_national_language(
        cls, locking: int | None = None, single: int | None = None
    ) -> tuple[InformationElement, ...]:
        """The 0x25 / 0x24 IEs for the given national language ids."""
        out: list[InformationElement] = []
        if locking:
            out.append(InformationElement(IEI_NATIONAL_LOCKING_SHIFT, bytes((locking,))))
        if single:
            out.append(InformationElement(IEI_NATIONAL_SINGLE_SHIFT, bytes((single,))))
        return tuple(out)


_make_element = fast_constructor(InformationElement)
_make_header = fast_constructor(UserDataHeader)
