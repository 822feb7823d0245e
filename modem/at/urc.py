"""Unsolicited result codes: typed events and the prefix table that recognises them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from modem.errors import AtParseError

from .params import line_prefix, opt_int, split_top, strip_prefix, unquote
from .parsers import Registration, UssdResponse, parse_creg, parse_cusd


class ReadyKind(StrEnum):
    """What a readiness URC announces."""

    SMS = "sms"
    CALL = "call"
    PHONEBOOK = "phonebook"
    SIM = "sim"


@dataclass(frozen=True, slots=True)
class Urc:
    """Base of every unsolicited event; `line` is the (first) line as received."""

    line: str


@dataclass(frozen=True, slots=True)
class NewMessageIndication(Urc):
    """`+CMTI: <mem>,<index>`: an SMS-DELIVER was stored (TS 27.005 3.4.1).

    SIM7000G on AT&T sends `+CMTI: ,-1`: storage and index are then None.
    """

    storage: str | None
    index: int | None


@dataclass(frozen=True, slots=True)
class StatusReportIndication(Urc):
    """`+CDSI: <mem>,<index>`: an SMS-STATUS-REPORT was stored."""

    storage: str | None
    index: int | None


@dataclass(frozen=True, slots=True)
class DeliverPdu(Urc):
    """`+CMT: [<alpha>],<length>` + PDU line: an SMS-DELIVER routed to the host (needs +CNMA)."""

    length: int | None
    pdu: str | None
    alpha: str | None = None


@dataclass(frozen=True, slots=True)
class StatusReportPdu(Urc):
    """`+CDS: <length>` + PDU line: an SMS-STATUS-REPORT routed to the host (needs +CNMA)."""

    length: int | None
    pdu: str | None


@dataclass(frozen=True, slots=True)
class CellBroadcastPdu(Urc):
    """`+CBM: <length>` + PDU line."""

    length: int | None
    pdu: str | None


@dataclass(frozen=True, slots=True)
class RegistrationUpdate(Urc):
    """Unsolicited `+CREG`/`+CGREG`/`+CEREG`."""

    domain: str
    registration: Registration | None


@dataclass(frozen=True, slots=True)
class UssdIndication(Urc):
    """Unsolicited `+CUSD` (the network's USSD answer)."""

    ussd: UssdResponse | None


@dataclass(frozen=True, slots=True)
class Ring(Urc):
    """`RING` / `+CRING`: an incoming call."""


@dataclass(frozen=True, slots=True)
class BootIndication(Urc):
    """A boot URC: `RDY`, `^SYSSTART`, Huawei `^BOOT` (`restarted` False: it also repeats while
    the modem runs on, so it proves no restart by itself)."""

    restarted: bool = True


@dataclass(frozen=True, slots=True)
class ReadyIndication(Urc):
    """`SMS Ready`, `+QIND: SMS DONE`, `Call Ready`, `PB DONE`, `+CPIN: READY` ..."""

    kind: ReadyKind


@dataclass(frozen=True, slots=True)
class SignalIndication(Urc):
    """Huawei `^RSSI:<n>` (0..31, 99 unknown)."""

    rssi: int | None


@dataclass(frozen=True, slots=True)
class SimIndication(Urc):
    """SIM state change: unsolicited `+CPIN: <state>`, `^SIMST`, `+QUSIM`, `+ZUSIMR`."""

    state: str


@dataclass(frozen=True, slots=True)
class StorageFullIndication(Urc):
    """The message store is full (`^SMMEMFULL`, `+CIEV: "MESSAGE",...`): scan and delete."""

    storage: str | None


@dataclass(frozen=True, slots=True)
class VendorIndication(Urc):
    """A known but uninteresting URC (`^MODE`, `^SRVST`, `+QIND`, `^DSFLOWRPT`, ...)."""

    name: str


class RestartWatch:
    """Tells, from the URCs that arrive while one command is in flight, whether the modem
    restarted under it (so its answer will never come); sans-I/O, fed one URC at a time.

    Proof is a boot banner (`BootIndication.restarted`), or SIMCom SIM800's boot without one
    (auto-bauding, it prints no `RDY`): `+CPIN: READY` then `Call Ready`/`SMS Ready` (GPRS_SIM900
    #39; TinyGSM #537 saw them mid-session after the module restarted itself). Not proof:
    Huawei's periodic `^BOOT`; a readiness line alone (`PB DONE`, `SMS DONE`, `Call Ready`),
    which may trail an initialisation that already went through (SIM7600 prints `PB DONE`
    seconds after `SMS DONE`); `+CPIN: READY` alone (a SIM that reset under a running modem
    ends with it too, the modem's settings kept); readiness after the SIM left (`+CPIN: NOT
    READY`/`NOT INSERTED` first: that SIM reset again).
    """

    def __init__(self) -> None:
        self._sim_ready = False
        self._sim_left = False

    def start(self) -> None:
        """A command was written: what came before it says nothing about it."""
        self._sim_ready = False
        self._sim_left = False

    def restarted(self, urc: Urc) -> bool:
        """True once `urc` (with the ones before it since `start`) proves a restart."""
        if isinstance(urc, BootIndication):
            return urc.restarted
        if isinstance(urc, SimIndication) and urc.state.startswith("NOT "):
            self._sim_left = True
        elif isinstance(urc, ReadyIndication):
            if urc.kind is ReadyKind.SIM:
                self._sim_ready = True
            elif urc.kind in (ReadyKind.SMS, ReadyKind.CALL):
                return self._sim_ready and not self._sim_left
        return False


def _index_urc(
    cls: type[NewMessageIndication] | type[StatusReportIndication],
) -> Callable[[str], Urc]:
    def parse(line: str) -> Urc:
        fields = split_top(strip_prefix(line))
        storage = unquote(fields[0]).upper() or None
        index = opt_int(fields[1]) if len(fields) > 1 else None
        if index is not None and index < 0:
            index = None
        return cls(line, storage, index)

    return parse


def _registration(line: str) -> Urc:
    domain = line_prefix(line) or "+CREG"
    try:
        return RegistrationUpdate(line, domain, parse_creg(line, solicited=False))
    except AtParseError:
        return RegistrationUpdate(line, domain, None)


def _ussd(line: str) -> Urc:
    try:
        return UssdIndication(line, parse_cusd(line))
    except AtParseError:
        return UssdIndication(line, None)


def _rssi(line: str) -> Urc:
    value = opt_int(strip_prefix(line))
    return SignalIndication(line, None if value in (None, 99) else value)


def _sim(line: str) -> Urc:
    state = unquote(strip_prefix(line)).upper()
    if line_prefix(line) == "+CPIN" and state == "READY":
        return ReadyIndication(line, ReadyKind.SIM)
    return SimIndication(line, state)


def _qind(line: str) -> Urc:
    body = unquote(strip_prefix(line)).upper()
    if body.startswith("SMS DONE"):
        return ReadyIndication(line, ReadyKind.SMS)
    if body.startswith("PB DONE"):
        return ReadyIndication(line, ReadyKind.PHONEBOOK)
    return VendorIndication(line, "+QIND")


def _cfun(line: str) -> Urc:
    return VendorIndication(line, "+CFUN")


def _vendor(line: str) -> Urc:
    return VendorIndication(line, line_prefix(line) or line.split(":", 1)[0].strip().upper())


def _storage_full(line: str) -> Urc:
    body = strip_prefix(line) if line_prefix(line) else ""
    return StorageFullIndication(line, unquote(body).upper() or None)


# Whole-line URCs (compared case-insensitively after stripping).
EXACT_URCS: dict[str, Callable[[str], Urc]] = {
    "RING": Ring,
    "RDY": BootIndication,  # SIMCom SIM800 (fixed baud rate), SIM7600, Quectel EC2x/M35
    "^SYSSTART": BootIndication,  # Cinterion/Siemens (vendor AT manual)
    "SMS READY": lambda line: ReadyIndication(line, ReadyKind.SMS),
    "SMS DONE": lambda line: ReadyIndication(line, ReadyKind.SMS),
    "CALL READY": lambda line: ReadyIndication(line, ReadyKind.CALL),
    "PB DONE": lambda line: ReadyIndication(line, ReadyKind.PHONEBOOK),
    "^SMMEMFULL": _storage_full,
}

# `+NAME` prefixes of single-line URCs.
PREFIX_URCS: dict[str, Callable[[str], Urc]] = {
    "+CMTI": _index_urc(NewMessageIndication),
    "+CDSI": _index_urc(StatusReportIndication),
    "+CREG": _registration,
    "+CGREG": _registration,
    "+CEREG": _registration,
    "+C5GREG": _registration,
    "+CUSD": _ussd,
    "+CRING": Ring,
    "^RSSI": _rssi,
    # Huawei E1752 11.126.x (gammu #138) sends `^BOOT:...` again and again without restarting.
    "^BOOT": lambda line: BootIndication(line, restarted=False),
    "+CPIN": _sim,
    "^SIMST": _sim,
    "+QUSIM": _sim,
    "+ZUSIMR": _sim,
    "+QIND": _qind,
    "+CFUN": _cfun,
    "^SMMEMFULL": _storage_full,
    **{
        name: _vendor
        for name in (
            "^MODE",
            "^SRVST",
            "^HCSQ",
            "^DSFLOWRPT",
            "^STIN",
            "^NWTIME",
            "^CSNR",
            "^ORIG",
            "^CONF",
            "^CONN",
            "^CEND",
            "^SYSINFOEX",
            "^RFSWITCH",
            "^CURC",
            "+CLIP",
            "+CIEV",
            "+CTZV",
            "+CTZE",
            "*PSUTTZ",
            "+PSUTTZ",
            "+UUPSDD",
            "+UUPSDA",
            "+UMWI",
            "+WIND",
            "+ZEND",
            "+ZPASR",
            "+QUSIM",
            "+CMTE",
            "+CSSI",
            "+CSSU",
            "+CCWA",
            "+CGEV",
            "+NITZ",
            "+DST",
        )
        if name not in ("+QUSIM",)
    },
}

# `+NAME` prefixes of URCs whose second line carries the PDU (TS 27.005 3.4.1).
TWO_LINE_URCS = frozenset({"+CMT", "+CDS", "+CBM"})


def classify_urc(line: str) -> Callable[[str], Urc] | None:
    """The parser for a single-line URC, or None if `line` is not one."""
    exact = EXACT_URCS.get(line.strip().upper())
    if exact is not None:
        return exact
    prefix = line_prefix(line)
    if prefix is None:
        return None
    return PREFIX_URCS.get(prefix)


def is_two_line_urc(line: str) -> bool:
    """True for the header line of `+CMT`, `+CDS` or `+CBM`."""
    return line_prefix(line) in TWO_LINE_URCS


def complete_two_line_urc(header: str, second: str | None) -> Urc:
    """Build the event for a two-line URC; `second` None when the PDU line never came."""
    prefix = line_prefix(header)
    fields = split_top(strip_prefix(header))
    length = opt_int(fields[-1]) if fields else None
    pdu = second.strip() if second is not None else None
    if prefix == "+CDS":
        return StatusReportPdu(header, length, pdu)
    if prefix == "+CBM":
        return CellBroadcastPdu(header, length, pdu)
    alpha = unquote(fields[0]) if len(fields) >= 2 else None
    return DeliverPdu(header, length, pdu, alpha or None)
