"""Typed AT commands: what is written, and which answer lines belong to it."""

from __future__ import annotations

import re
from dataclasses import dataclass

from modem.errors import SessionError

from .params import line_prefix

_NAME = re.compile(r"^([+^$%*#][A-Za-z0-9_]+)")
_FORBIDDEN = re.compile(r"[\r\n\x1a\x1b]")


@dataclass(frozen=True, slots=True)
class Command:
    """One AT command line.

    `text` follows the `AT` (e.g. `+CSQ`, `E0`, `+CMGS=23`); `prefixes` name the information
    lines that belong to it even where the same prefix is also a URC (`+CREG`, `+CPIN`, `+CUSD`);
    `body` is written after the `>` prompt (AT+CMGS / AT+CMGW). `strict` commands accept no
    information line with another command's prefix (a late answer to an earlier command means
    the session drifted); `requires_info` ones must carry one of their own lines when OK.
    """

    text: str
    prefixes: tuple[str, ...] = ()
    body: str | None = None
    strict: bool = False
    requires_info: bool = False

    def __post_init__(self) -> None:
        if _FORBIDDEN.search(self.text) or (self.body is not None and _FORBIDDEN.search(self.body)):
            raise SessionError("command text must not contain CR, LF, Ctrl-Z or ESC")

    @property
    def line(self) -> str:
        """The command as written, without the terminating CR."""
        return f"AT{self.text}"

    def encode(self) -> bytes:
        """Bytes to write for the command line (S3 = CR terminates it)."""
        return f"{self.line}\r".encode("ascii", "strict")

    def encode_body(self) -> bytes:
        """Bytes to write after the prompt: the body and Ctrl-Z (TS 27.005 3.5.1)."""
        if self.body is None:
            raise SessionError(f"{self.line} has no body")
        return self.body.encode("ascii", "strict") + b"\x1a"

    def consistent(self, lines: tuple[str, ...], ok: bool) -> bool:
        """False if these answer lines cannot be this strict command's own answer."""
        if not self.strict:
            return True
        own = False
        for line in lines:
            prefix = line_prefix(line)
            if prefix is None:
                continue
            if prefix not in self.prefixes:
                return False
            own = True
        return not (ok and self.requires_info and not own)

    @property
    def expects_prompt(self) -> bool:
        """True for commands that wait for `>` before their body."""
        return self.body is not None

    def __str__(self) -> str:
        return self.line


def raw(text: str) -> Command:
    """A free-form command (support CLI, replays): its own `+NAME:` lines belong to it."""
    text = text.strip()
    if text[:2].upper() == "AT":
        text = text[2:]
    match = _NAME.match(text)
    prefixes = (match.group(1).upper(),) if match else ()
    return Command(text, prefixes)


def _q(value: str) -> str:
    if '"' in value:
        raise SessionError("quoted AT parameter must not contain a double quote")
    return f'"{value}"'


# Basic control ----------------------------------------------------------------------------
AT = Command("")
ECHO_OFF = Command("E0")
VERBOSE_ERRORS = Command("+CMEE=1")
PDU_MODE = Command("+CMGF=0")
READ_PIN = Command("+CPIN?", ("+CPIN",))
READ_ERROR_MODE = Command("+CMEE?", ("+CMEE",), strict=True, requires_info=True)
READ_CHARSET = Command("+CSCS?", ("+CSCS",))

# Identity ---------------------------------------------------------------------------------
MANUFACTURER = Command("+CGMI", ("+CGMI",))
MODEL = Command("+CGMM", ("+CGMM",))
REVISION = Command("+CGMR", ("+CGMR",))
IMEI = Command("+CGSN", ("+CGSN",))
IMSI = Command("+CIMI", ("+CIMI",))
ICCID = Command("+CCID", ("+CCID", "+ICCID", "^ICCID", "+QCCID"))
HUAWEI_ICCID = Command("^ICCID?", ("^ICCID",))
QUECTEL_ICCID = Command("+QCCID", ("+QCCID",))
OWN_NUMBER = Command("+CNUM", ("+CNUM",))

# Network ----------------------------------------------------------------------------------
SIGNAL = Command("+CSQ", ("+CSQ",), strict=True, requires_info=True)
REGISTRATION = Command("+CREG?", ("+CREG",))
GPRS_REGISTRATION = Command("+CGREG?", ("+CGREG",))
EPS_REGISTRATION = Command("+CEREG?", ("+CEREG",))
OPERATOR_FORMAT_LONG = Command("+COPS=3,0")
OPERATOR = Command("+COPS?", ("+COPS",))
SMSC = Command("+CSCA?", ("+CSCA",))

# SMS configuration ------------------------------------------------------------------------
STORAGES = Command("+CPMS=?", ("+CPMS",))
STORAGE_USAGE = Command("+CPMS?", ("+CPMS",))
CNMI_SUPPORT = Command("+CNMI=?", ("+CNMI",))
CNMI_READ = Command("+CNMI?", ("+CNMI",), strict=True, requires_info=True)
SMS_SERVICE = Command("+CSMS=1", ("+CSMS",))
SMS_SERVICE_READ = Command("+CSMS?", ("+CSMS",))
ACK_MESSAGE = Command("+CNMA")
# PDU mode: RP-ERROR for the +CMT/+CDS waiting for one (TS 27.005 3.4.4 <n>=2); the SMSC keeps it.
REJECT_MESSAGE = Command("+CNMA=2")


def pin(code: str) -> Command:
    """AT+CPIN=<pin>."""
    if not code.isdigit() or not 4 <= len(code) <= 8:
        raise SessionError("PIN must be 4-8 digits")
    return Command(f"+CPIN={_q(code)}")


def charset(name: str) -> Command:
    """AT+CSCS=<chset>."""
    return Command(f"+CSCS={_q(name)}")


def preferred_storage(mem1: str, mem2: str | None = None, mem3: str | None = None) -> Command:
    """AT+CPMS=<mem1>[,<mem2>[,<mem3>]]; answers `+CPMS: <used>,<total>` pairs."""
    mems = [m for m in (mem1, mem2, mem3) if m is not None]
    return Command(
        "+CPMS=" + ",".join(_q(m) for m in mems), ("+CPMS",), strict=True, requires_info=True
    )


def new_message_indications(values: tuple[int, ...]) -> Command:
    """AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>."""
    return Command("+CNMI=" + ",".join(str(v) for v in values))


def list_messages(stat: int = 4) -> Command:
    """AT+CMGL=<stat> in PDU mode (4 = all)."""
    return Command(f"+CMGL={stat}", ("+CMGL",), strict=True)


def read_message(index: int) -> Command:
    """AT+CMGR=<index>."""
    return Command(f"+CMGR={int(index)}", ("+CMGR",), strict=True)


def delete_message(index: int) -> Command:
    """AT+CMGD=<index>."""
    return Command(f"+CMGD={int(index)}", strict=True)


def send_pdu(tpdu_length: int, pdu_hex: str) -> Command:
    """AT+CMGS=<length> then the PDU (SMSC field included) after the prompt."""
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", pdu_hex):
        raise SessionError("PDU must be hex")
    return Command(
        f"+CMGS={int(tpdu_length)}",
        ("+CMGS",),
        body=pdu_hex.upper(),
        strict=True,
        requires_info=True,
    )


def in_storage(select: Command, command: Command) -> Command:
    """`AT+CPMS=...;+CMGR=n` on one line: the modem cannot reset between the two halves."""
    return Command(
        f"{select.text};{command.text}",
        select.prefixes + command.prefixes,
        strict=True,
        requires_info=True,
    )


def ussd(code: str, dcs: int = 15) -> Command:
    """AT+CUSD=1,<str>,<dcs>; the answer arrives as a +CUSD URC."""
    return Command(f"+CUSD=1,{_q(code)},{int(dcs)}")


def ussd_cancel() -> Command:
    """AT+CUSD=2: end the USSD session."""
    return Command("+CUSD=2")
