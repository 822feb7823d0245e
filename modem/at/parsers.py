"""Parsers for information responses (TS 27.007 / 27.005), tolerant of real-world forms."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from modem.errors import AtParseError
from modem.pdu.gsm7 import decode_septets, unpack_septets

from .identity import (
    parse_iccid_value,
    parse_imei_value,
    parse_imsi_value,
    subscriber_number,
    text_parts,
)
from .params import (
    decode_ucs2_hex,
    is_hex,
    is_quoted,
    line_prefix,
    opt_int,
    parse_range_set,
    split_groups,
    split_top,
    strip_prefix,
    to_int,
    unquote,
)

# --- signal -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignalQuality:
    """`+CSQ: <rssi>,<ber>` (TS 27.007 8.5); 99 means not known."""

    rssi: int | None
    ber: int | None

    @property
    def dbm(self) -> int | None:
        """Received signal strength in dBm (0 -> -113, 31 -> -51)."""
        if self.rssi is None or not 0 <= self.rssi <= 31:
            return None
        return -113 + 2 * self.rssi


def parse_csq(lines: Sequence[str]) -> SignalQuality:
    """Parse the answer to AT+CSQ."""
    line = _find(lines, "+CSQ")
    fields = split_top(strip_prefix(line, "+CSQ"))
    rssi = opt_int(fields[0])
    ber = opt_int(fields[1]) if len(fields) > 1 else None
    if rssi is None:
        raise AtParseError("+CSQ without rssi", line)
    return SignalQuality(None if rssi == 99 else rssi, None if ber in (None, 99) else ber)


# --- registration -------------------------------------------------------------------------


class RegistrationStatus(IntEnum):
    """`<stat>` of +CREG/+CGREG/+CEREG (TS 27.007 7.2)."""

    NOT_REGISTERED = 0
    HOME = 1
    SEARCHING = 2
    DENIED = 3
    UNKNOWN = 4
    ROAMING = 5
    SMS_ONLY_HOME = 6
    SMS_ONLY_ROAMING = 7
    EMERGENCY_ONLY = 8
    CSFB_NOT_PREFERRED_HOME = 9
    CSFB_NOT_PREFERRED_ROAMING = 10


class AccessTechnology(IntEnum):
    """`<AcT>` (TS 27.007 7.3)."""

    GSM = 0
    GSM_COMPACT = 1
    UTRAN = 2
    GSM_EGPRS = 3
    UTRAN_HSDPA = 4
    UTRAN_HSUPA = 5
    UTRAN_HSDPA_HSUPA = 6
    E_UTRAN = 7
    EC_GSM_IOT = 8
    E_UTRAN_NB_S1 = 9


_REGISTERED = frozenset({1, 5, 6, 7, 9, 10})


@dataclass(frozen=True, slots=True)
class Registration:
    """Network registration state; `lac`/`ci` are upper-case hex strings."""

    stat: int
    lac: str | None = None
    ci: str | None = None
    act: int | None = None
    n: int | None = None

    @property
    def status(self) -> RegistrationStatus | None:
        """`stat` as an enum (None for values outside TS 27.007)."""
        try:
            return RegistrationStatus(self.stat)
        except ValueError:
            return None

    @property
    def registered(self) -> bool:
        """Registered (home, roaming or SMS-only) -> SMS can be sent."""
        return self.stat in _REGISTERED

    @property
    def technology(self) -> AccessTechnology | None:
        """`act` as an enum."""
        if self.act is None:
            return None
        try:
            return AccessTechnology(self.act)
        except ValueError:
            return None


_REG_PREFIXES = ("+CREG", "+CGREG", "+CEREG", "+C5GREG")


def parse_creg(line: str, *, solicited: bool | None = None) -> Registration:
    """Parse `+CREG:`/`+CGREG:`/`+CEREG:` (answer to the read command, or the URC).

    `solicited` says which form to expect when the field count alone is ambiguous.
    """
    prefix = line_prefix(line)
    if prefix not in _REG_PREFIXES:
        raise AtParseError("not a registration line", line)
    # Plain comma split: LAC/CI never contain commas, and quotes may be unbalanced
    # (gammu at-creg-corner "mismatched-quotes" / "single-quote").
    raw = [t.strip() for t in strip_prefix(line).split(",")]
    if raw == [""]:
        raise AtParseError("empty registration line", line)
    count = len(raw)
    if count == 4:
        if solicited is None:
            # "+CREG: 6,"8B37","0A265185",7" (u-blox URC) vs "+CREG: 1,1,84CD,00D30173" (Sierra).
            solicited = not (raw[1].startswith('"') or len(unquote(raw[1])) > 2)
        unsolicited = not solicited
    elif count == 3 and solicited:
        unsolicited = False
    else:
        unsolicited = count in (1, 3)
    fields = [unquote(t) for t in raw]
    n: int | None = None
    if not unsolicited:
        n = opt_int(fields[0])
        fields = fields[1:]
    stat = opt_int(fields[0])
    if stat is None:
        raise AtParseError("registration without <stat>", line)
    lac = _hex_field(fields[1]) if len(fields) > 1 else None
    ci = _hex_field(fields[2]) if len(fields) > 2 else None
    act = opt_int(fields[3]) if len(fields) > 3 else None
    return Registration(stat=stat, lac=lac, ci=ci, act=act, n=n)


def _hex_field(value: str) -> str | None:
    value = value.strip().strip('"').strip().upper()
    if not value or re.fullmatch(r"[0-9A-F]+", value) is None:
        return None
    return value


# --- operator -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operator:
    """`+COPS?` answer: selection mode, name format, name and access technology."""

    mode: int
    format: int | None = None
    name: str | None = None
    act: int | None = None


@dataclass(frozen=True, slots=True)
class OperatorEntry:
    """One network in the `+COPS=?` list."""

    stat: int
    long_name: str
    short_name: str
    numeric: str
    act: int | None


def _maybe_ucs2(text: str) -> str:
    # u-blox LARA with CSCS="UCS2" sends names and even the PLMN as UCS2 hex.
    if len(text) >= 8:
        decoded = decode_ucs2_hex(text)
        if decoded is not None and decoded.isprintable() and all(ord(c) < 0x800 for c in decoded):
            return decoded
    return text


def parse_cops(lines: Sequence[str]) -> Operator:
    """Parse the answer to AT+COPS?."""
    line = _find(lines, "+COPS")
    fields = split_top(strip_prefix(line, "+COPS"))
    mode = opt_int(fields[0])
    if mode is None:
        raise AtParseError("+COPS without mode", line)
    fmt = opt_int(fields[1]) if len(fields) > 1 else None
    name = _maybe_ucs2(unquote(fields[2])) if len(fields) > 2 else None
    act = opt_int(fields[3]) if len(fields) > 3 else None
    return Operator(mode=mode, format=fmt, name=name or None, act=act)


def parse_cops_test(lines: Sequence[str]) -> tuple[OperatorEntry, ...]:
    """Parse the answer to AT+COPS=? (trailing mode/format lists and empty groups ignored)."""
    line = _find(lines, "+COPS")
    entries: list[OperatorEntry] = []
    for group in split_groups(strip_prefix(line, "+COPS")):
        if not group.startswith("(") or '"' not in group:
            continue
        fields = split_top(group.strip().removeprefix("(").removesuffix(")"))
        if len(fields) < 4 or opt_int(fields[0]) is None:
            continue
        entries.append(
            OperatorEntry(
                stat=opt_int(fields[0]) or 0,
                long_name=_maybe_ucs2(unquote(fields[1])),
                short_name=_maybe_ucs2(unquote(fields[2])),
                numeric=_maybe_ucs2(unquote(fields[3])),
                act=opt_int(fields[4]) if len(fields) > 4 else None,
            )
        )
    return tuple(entries)


# --- message storage ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageUsage:
    """Used/total slots of one preferred message storage (`storage` None when not named)."""

    storage: str | None
    used: int
    total: int


def parse_cpms(lines: Sequence[str]) -> tuple[StorageUsage, ...]:
    """Parse `+CPMS:` answers to the set command (pairs) or the read command (name,used,total)."""
    line = _find(lines, "+CPMS")
    fields = [f for f in split_top(strip_prefix(line, "+CPMS"))]
    if fields == [""]:
        return ()
    out: list[StorageUsage] = []
    i = 0
    while i < len(fields):
        name: str | None = None
        if is_quoted(fields[i]) or not unquote(fields[i]).isdigit():
            name = unquote(fields[i]) or None
            i += 1
        if i + 1 >= len(fields):
            raise AtParseError("+CPMS pair is incomplete", line)
        used = to_int(fields[i], what="+CPMS used", line=line)
        total = to_int(fields[i + 1], what="+CPMS total", line=line)
        out.append(StorageUsage(name, used, total))
        i += 2
    return tuple(out)


def parse_cpms_test(lines: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """Parse AT+CPMS=? into the storages offered for <mem1>, <mem2>, <mem3>."""
    line = _find(lines, "+CPMS")
    body = strip_prefix(line, "+CPMS")
    groups = split_groups(body)
    # Wavecom nests the lists in one extra pair of parentheses: (("SM","BM","SR"),("SM")).
    if len(groups) == 1 and groups[0].startswith("((") and groups[0].endswith(")"):
        groups = split_groups(groups[0][1:-1])
    out: list[tuple[str, ...]] = []
    for group in groups:
        names = re.findall(r"[A-Za-z][A-Za-z0-9_]*", group)
        out.append(tuple(n.upper() for n in names))
    if out == [()]:
        return ()
    return tuple(out)


class MessageStat(IntEnum):
    """`<stat>` of +CMGL/+CMGR in PDU mode (TS 27.005 3.1)."""

    REC_UNREAD = 0
    REC_READ = 1
    STO_UNSENT = 2
    STO_SENT = 3
    ALL = 4


_TEXT_STATS = {
    "REC UNREAD": MessageStat.REC_UNREAD,
    "REC READ": MessageStat.REC_READ,
    "STO UNSENT": MessageStat.STO_UNSENT,
    "STO SENT": MessageStat.STO_SENT,
}


@dataclass(frozen=True, slots=True)
class StoredPdu:
    """A message listed or read in PDU mode; `pdu` is the hex line exactly as received."""

    index: int | None
    stat: int | None
    length: int | None
    pdu: str
    alpha: str | None = None


@dataclass(frozen=True, slots=True)
class StoredText:
    """A message listed or read in text mode (header fields kept raw; UDH is lost in this mode)."""

    index: int | None
    stat: int | None
    fields: tuple[str, ...]
    text: str


StoredMessage = StoredPdu | StoredText


def _stat(token: str) -> int | None:
    value = unquote(token).upper()
    if value in _TEXT_STATS:
        return int(_TEXT_STATS[value])
    return opt_int(value)


def parse_cmgl(lines: Sequence[str]) -> tuple[StoredMessage, ...]:
    """Parse an AT+CMGL listing (PDU or text mode); blank lines are already gone."""
    out: list[StoredMessage] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line_prefix(line) != "+CMGL":
            i += 1  # an orphan line (a PDU without header): never guess what it belongs to
            continue
        fields = split_top(strip_prefix(line, "+CMGL"))
        body: list[str] = []
        i += 1
        while i < len(lines) and line_prefix(lines[i]) != "+CMGL":
            body.append(lines[i])
            i += 1
        out.append(_stored(fields, body, line, listed=True))
    return tuple(out)


def parse_cmgr(lines: Sequence[str], index: int | None = None) -> StoredMessage | None:
    """Parse an AT+CMGR answer; None for an empty slot (bare OK, Quectel mis-announced SR)."""
    for pos, line in enumerate(lines):
        if line_prefix(line) == "+CMGR":
            fields = split_top(strip_prefix(line, "+CMGR"))
            stored = _stored(fields, list(lines[pos + 1 :]), line, listed=False)
            if isinstance(stored, StoredPdu):
                return StoredPdu(index, stored.stat, stored.length, stored.pdu, stored.alpha)
            return StoredText(index, stored.stat, stored.fields, stored.text)
    return None


def _stored(fields: list[str], body: list[str], line: str, *, listed: bool) -> StoredMessage:
    index: int | None = None
    if listed:
        index = opt_int(fields[0])
        if index is None:
            raise AtParseError("+CMGL without index", line)
        fields = fields[1:]
    if fields and (is_quoted(fields[0]) and unquote(fields[0]).upper() in _TEXT_STATS):
        return StoredText(
            index, _stat(fields[0]), tuple(unquote(f) for f in fields), "\n".join(body)
        )
    # PDU mode: [<index>,]<stat>,[<alpha>],<length>; seen shortened to "<stat>,<length>",
    # "<length>" and ",,<length>" (empty stat, ZTE) and with an extra index field (Samsung).
    if not fields or opt_int(fields[-1]) is None:
        return StoredText(index, None, tuple(unquote(f) for f in fields), "\n".join(body))
    length = opt_int(fields[-1])
    stat: int | None = None
    alpha: str | None = None
    if len(fields) == 2:
        stat = _stat(fields[0])
    elif len(fields) == 3:
        stat = _stat(fields[0])
        alpha = unquote(fields[1]) or None
    elif len(fields) >= 4:
        stat = _stat(fields[-3])
        alpha = unquote(fields[-2]) or None
    pdu = body[0].strip() if body else ""
    return StoredPdu(index, stat, length, pdu, alpha)


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """`+CMGS: <mr>[,<scts>]` (TS 27.005 3.5.1)."""

    message_reference: int
    scts: str | None = None


def parse_cmgs(lines: Sequence[str]) -> SubmitResult:
    """Parse the answer to AT+CMGS / AT+CMSS."""
    for line in lines:
        if line_prefix(line) in ("+CMGS", "+CMSS"):
            fields = split_top(strip_prefix(line))
            mr = opt_int(fields[0])
            if mr is None or not 0 <= mr <= 255:
                raise AtParseError("bad TP-MR", line)
            scts = unquote(fields[1]) if len(fields) > 1 and fields[1] else None
            return SubmitResult(mr, scts)
    raise AtParseError("no +CMGS line in answer", " | ".join(lines))


# --- indications settings -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CnmiSupport:
    """Values the modem offers for `AT+CNMI=<mode>,<mt>,<bm>,<ds>,<bfr>`."""

    mode: frozenset[int]
    mt: frozenset[int]
    bm: frozenset[int]
    ds: frozenset[int]
    bfr: frozenset[int]

    def allows(self, values: Sequence[int]) -> bool:
        """True if every value is in its offered set (an absent parameter only allows 0)."""
        sets = (self.mode, self.mt, self.bm, self.ds, self.bfr)
        for value, allowed in zip(values, sets, strict=False):
            if allowed and value not in allowed:
                return False
            if not allowed and value != 0:
                return False
        return True


def parse_cnmi_test(lines: Sequence[str]) -> CnmiSupport:
    """Parse AT+CNMI=? (ranges, lists or bare values per parameter)."""
    line = _find(lines, "+CNMI")
    groups = split_groups(strip_prefix(line, "+CNMI"))
    sets = [parse_range_set(g) for g in groups[:5]]
    while len(sets) < 5:
        sets.append(frozenset())
    return CnmiSupport(*sets)


def parse_cnmi(lines: Sequence[str]) -> tuple[int, ...]:
    """Parse AT+CNMI? into the five current values (missing ones as 0)."""
    line = _find(lines, "+CNMI")
    values = [opt_int(f) or 0 for f in split_top(strip_prefix(line, "+CNMI"))]
    return tuple((values + [0] * 5)[:5])


# --- SIM, SMSC, identity ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceCentre:
    """`+CSCA: <sca>,<tosca>`."""

    number: str
    toa: int | None


def parse_csca(lines: Sequence[str]) -> ServiceCentre:
    """Parse AT+CSCA? (quoted, unquoted and UCS2-hex numbers)."""
    line = _find(lines, "+CSCA")
    fields = split_top(strip_prefix(line, "+CSCA"))
    number = unquote(fields[0])
    decoded = decode_ucs2_hex(number) if len(number) >= 8 else None
    if decoded is not None and re.fullmatch(r"\+?[0-9]+", decoded):
        number = decoded
    toa = opt_int(fields[1]) if len(fields) > 1 else None
    return ServiceCentre(number, toa)


def parse_cpin(lines: Sequence[str]) -> str:
    """Parse AT+CPIN? into the code state (`READY`, `SIM PIN`, `SIM PUK`, ...)."""
    line = _find(lines, "+CPIN")
    return unquote(strip_prefix(line, "+CPIN")).upper()


def parse_cimi(lines: Sequence[str]) -> str:
    """AT+CIMI as given (see parse_imsi_value for whether it is a valid IMSI)."""
    return parse_imsi_value(lines).value


def parse_iccid(lines: Sequence[str]) -> str:
    """`+CCID`, `^ICCID`, `+QCCID`, `+ICCID` or bare ICCID answers (see parse_iccid_value)."""
    return parse_iccid_value(lines).value


def parse_text(lines: Sequence[str]) -> str:
    """Identity answers (+CGMI/+CGMM/+CGMR/+CGSN/ATI): prefix and repeated spaces removed."""
    return " ".join(text_parts(lines))


def parse_imei(lines: Sequence[str]) -> str:
    """AT+CGSN / AT+GSN as given (see parse_imei_value for whether it is a valid IMEI)."""
    return parse_imei_value(lines).value


def parse_cnum(lines: Sequence[str]) -> tuple[str, ...]:
    """Parse AT+CNUM into the subscriber numbers the SIM knows (often none)."""
    out: list[str] = []
    for line in lines:
        if line_prefix(line) == "+CNUM":
            fields = split_top(strip_prefix(line))
            number = subscriber_number(fields[1]) if len(fields) > 1 else ""
            if number:
                out.append(number)
    return tuple(out)


def parse_csms(lines: Sequence[str]) -> tuple[int, ...]:
    """Parse `+CSMS: [<service>,]<mt>,<mo>,<bm>` into its integers."""
    line = _find(lines, "+CSMS")
    return tuple(opt_int(f) or 0 for f in split_top(strip_prefix(line, "+CSMS")))


# --- USSD ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UssdResponse:
    """`+CUSD: <m>[,<str>,<dcs>]` (TS 27.007 7.15) with the text decoded."""

    status: int
    text: str | None
    dcs: int | None
    raw: str | None

    @property
    def further_action_required(self) -> bool:
        """<m>=1: the network waits for the user's reply."""
        return self.status == 1


def parse_cusd(line: str) -> UssdResponse:
    """Parse `+CUSD:` whatever the payload form (text, UCS2 hex, 7-bit packed hex)."""
    if line_prefix(line) != "+CUSD":
        raise AtParseError("not a +CUSD line", line)
    body = strip_prefix(line)
    first, _, rest = body.partition(",")
    status = opt_int(first)
    if status is None:
        raise AtParseError("+CUSD without <m>", line)
    rest = rest.strip()
    if not rest:
        return UssdResponse(status, None, None, None)
    dcs: int | None = None
    if rest.startswith('"'):
        close = rest.rfind('"')
        if close > 0:
            raw = rest[1:close]
            tail = rest[close + 1 :].strip().lstrip(",").strip()
            dcs = opt_int(tail) if tail else None
        else:  # unterminated quote
            raw = rest[1:]
    else:
        # Huawei E160: unquoted packed hex without <dcs>.
        raw_part, _, tail = rest.partition(",")
        raw = raw_part.strip()
        dcs = opt_int(tail) if tail else None
    return UssdResponse(status, decode_ussd(raw, dcs), dcs, raw)


def _cbs_alphabet(dcs: int | None) -> str:
    """Alphabet of a Cell Broadcast DCS (TS 23.038 5): "gsm7", "ucs2", "8bit" or "ucs2-lang"."""
    if dcs is None:
        return "gsm7"
    group = dcs >> 4
    if group == 0x0 or group in (0x2, 0x3):
        return "gsm7"
    if dcs == 0x10:
        return "gsm7"
    if dcs == 0x11:
        return "ucs2-lang"
    if group in (0x4, 0x5, 0x6, 0x7, 0x9):
        return {0: "gsm7", 1: "8bit", 2: "ucs2"}.get((dcs >> 2) & 0x3, "gsm7")
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"


def decode_ussd(raw: str, dcs: int | None) -> str:
    """Decode a USSD string as the modem delivered it."""
    alphabet = _cbs_alphabet(dcs)
    if alphabet in ("ucs2", "ucs2-lang") and is_hex(raw) and len(raw) % 4 == 0:
        data = bytes.fromhex(raw)
        if alphabet == "ucs2-lang":
            data = data[2:]  # two GSM 7-bit packed octets of language (Telit HE910-D, DCS 17)
        return _ucs2_until_nul(data)
    if alphabet == "8bit" and is_hex(raw):
        return bytes.fromhex(raw).decode("latin-1").split("\x00", 1)[0]
    if is_hex(raw) and len(raw) >= 4:
        # DCS says GSM 7-bit, yet Quectel M35 sends UCS2 hex and Huawei E160 packed septets.
        if len(raw) % 4 == 0:
            text = _ucs2_until_nul(bytes.fromhex(raw))
            if text and all(c.isprintable() or c in "\n\r" for c in text) and _mostly_narrow(text):
                return text
        unpacked = _gsm7_unpack_text(bytes.fromhex(raw))
        if unpacked is not None:
            return unpacked
    return raw


def _ucs2_until_nul(data: bytes) -> str:
    if len(data) % 2:
        data = data[:-1]
    text = data.decode("utf-16-be", "replace")
    return text.split("\x00", 1)[0]


def _mostly_narrow(text: str) -> bool:
    # UCS2 text in a 7-bit DCS comes from Latin/Cyrillic/Arabic networks; random packed septets
    # decoded as UCS2 land all over the BMP (CJK, private use).
    return all(ord(c) < 0x800 for c in text)


def _gsm7_unpack_text(data: bytes) -> str | None:
    septets = unpack_septets(data, len(data) * 8 // 7)
    try:
        text = decode_septets(septets)
    except (ValueError, KeyError):
        return None
    if text.endswith("\r"):  # CR padding of a final septet (TS 23.038 6.1.2.3.1)
        text = text[:-1]
    if not text or not all(c.isprintable() or c in "\n\r" for c in text):
        return None
    return text


# --- helpers ------------------------------------------------------------------------------


def _find(lines: Sequence[str], prefix: str) -> str:
    for line in lines:
        if line_prefix(line) == prefix:
            return line
    raise AtParseError(f"no {prefix} line in answer", " | ".join(lines))
