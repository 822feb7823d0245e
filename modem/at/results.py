"""Final result codes (TS 27.007 5.7, TS 27.005 3.2.5) and their typed form."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from modem.errors import CmeError, CmsError, CommandError


class FinalKind(StrEnum):
    """Which final result code ended a command."""

    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"
    NOT_SUPPORTED = "COMMAND NOT SUPPORT"
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"


# Verbose +CME ERROR texts (AT+CMEE=2) mapped back to their numeric codes (TS 27.007 9.2.1).
CME_TEXT_CODES: dict[str, int] = {
    "phone failure": 0,
    "operation not allowed": 3,
    "operation not supported": 4,
    "sim not inserted": 10,
    "sim pin required": 11,
    "sim puk required": 12,
    "sim failure": 13,
    "sim busy": 14,
    "sim wrong": 15,
    "incorrect password": 16,
    "sim pin2 required": 17,
    "sim puk2 required": 18,
    "memory full": 20,
    "invalid index": 21,
    "not found": 22,
    "memory failure": 23,
    "no network service": 30,
    "network timeout": 31,
    "network not allowed - emergency calls only": 32,
    "unknown": 100,
}

_CODE = re.compile(r"^\s*(\d+)\s*$")


@dataclass(frozen=True, slots=True)
class FinalResult:
    """A final result code; `code`/`text` are set for +CME/+CMS ERROR."""

    kind: FinalKind
    code: int | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        """True for `OK`."""
        return self.kind is FinalKind.OK

    def error_for(self, command: str) -> CommandError:
        """The typed exception this result means for `command`."""
        if self.kind is FinalKind.CME_ERROR:
            return CmeError(command, self.code, self.text)
        if self.kind is FinalKind.CMS_ERROR:
            return CmsError(command, self.code)
        return CommandError(command, str(self))

    def __str__(self) -> str:
        if self.kind in (FinalKind.CME_ERROR, FinalKind.CMS_ERROR):
            detail = str(self.code) if self.code is not None else self.text
            return f"{self.kind.value}: {detail}".rstrip()
        return self.kind.value


_PLAIN = {
    "OK": FinalKind.OK,
    "ERROR": FinalKind.ERROR,
    # Huawei firmwares answer unknown commands this way instead of ERROR.
    "COMMAND NOT SUPPORT": FinalKind.NOT_SUPPORTED,
    "NO CARRIER": FinalKind.NO_CARRIER,
    "BUSY": FinalKind.BUSY,
    "NO ANSWER": FinalKind.NO_ANSWER,
    "NO DIALTONE": FinalKind.NO_DIALTONE,
}


def parse_final(line: str) -> FinalResult | None:
    """The final result `line` carries, or None if it is not a final result code."""
    text = line.strip()
    plain = _PLAIN.get(text.upper())
    if plain is not None:
        return FinalResult(plain)
    upper = text.upper()
    for kind in (FinalKind.CME_ERROR, FinalKind.CMS_ERROR):
        if upper.startswith(kind.value):
            rest = text[len(kind.value) :]
            if rest and rest[0] not in ": ":
                return None
            detail = rest.lstrip(":").strip()
            match = _CODE.match(detail)
            if match:
                return FinalResult(kind, int(match.group(1)), "")
            # SIM7000G sends a bare "+CMS ERROR:"; AT+CMEE=2 modems send text.
            code = CME_TEXT_CODES.get(detail.lower()) if kind is FinalKind.CME_ERROR else None
            return FinalResult(kind, code, detail)
    return None
