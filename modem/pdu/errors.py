"""The one error raised for malformed PDUs and unencodable input."""

from __future__ import annotations

__all__ = ["PduError"]


class PduError(ValueError):
    """Malformed or unencodable SMS PDU data; `octet` is where decoding failed, if known."""

    def __init__(self, message: str, octet: int | None = None) -> None:
        self.octet = octet
        self.reason = message
        super().__init__(message if octet is None else f"{message} at octet {octet}")
