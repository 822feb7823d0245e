"""Identity answers are kept as the modem gave them and judged, never thrown away.

Sources of the recorded answers (the shared transcripts hold only two identity exchanges, so the
rest come from the public reports named next to each case):
- /work/shared/transcripts/simcom-sim7600.txt cites TinyGSM #855 (SIM7600 IMEI via AT+CGSN vs
  AT+GSN); TinyGSM #444 shows that modem's answers `+CGSN: "869777028421538"` and
  `+GSN: "869777028421538"`.
- /work/shared/transcripts/qualcomm-m7227.txt: `+CIMI:208150014079271` (prefix, no space).
- ofono-phonesim src/default.xml: GSN "1234567890", IMSI "246813579", CNUM "+358501234567".
- TinyGSM #739, SIMCom A7670SA: an `IMEI: 869731054051594` line (ATI style).
- Zephyr PR 118423, Nordic nRF93M1: AT+CGSN answers the manufacturer serial "2623CKLQ0009707".
- perl5-device-gsm #24, Huawei E303: the placeholder IMEI "888888888888888" (fails Luhn).
- TS 27.007 5.4 example (as in moler's AT+CGSN=1 docs): `+CGSN: "490154203237518"`.
"""

from __future__ import annotations

import pytest

from modem.at.identity import (
    IdentityKind,
    IdentityValue,
    luhn_valid,
    parse_iccid_value,
    parse_imei_value,
    parse_imsi_value,
    parse_own_number_value,
    parse_revision_value,
)
from modem.at.parsers import parse_cimi, parse_cnum, parse_iccid, parse_imei
from modem.errors import AtParseError

K = IdentityKind


@pytest.mark.parametrize(
    ("source", "lines", "value", "valid", "kind"),
    [
        ("ofono-phonesim default.xml GSN", ["1234567890"], "1234567890", False, K.OTHER),
        (
            "simcom-sim7600.txt / TinyGSM #444 AT+CGSN",
            ['+CGSN: "869777028421538"'],
            "869777028421538",
            True,
            K.IMEI,
        ),
        (
            "simcom-sim7600.txt / TinyGSM #444 AT+GSN",
            ['+GSN: "869777028421538"'],
            "869777028421538",
            True,
            K.IMEI,
        ),
        ("A7670SA TinyGSM #739", ["IMEI: 869731054051594"], "869731054051594", True, K.IMEI),
        ("IMEI label", ["IMEI: 356938035643809"], "356938035643809", True, K.IMEI),
        ("quoted +CGSN", ['+CGSN: "356938035643809"'], "356938035643809", True, K.IMEI),
        ("nRF93M1 Zephyr #118423", ["2623CKLQ0009707"], "2623CKLQ0009707", False, K.OTHER),
        ("Huawei E303 device-gsm #24", ["888888888888888"], "888888888888888", False, K.IMEI),
        (
            "TS 27.007 example",
            ['+CGSN: "490154203237518"'],
            "490154203237518",
            True,
            K.IMEI,
        ),
        # IMEISV (AT+CGSN=2): the 27.007 example's TAC+SNR with software version 09.
        ("IMEISV", ['+CGSN: "4901542032375109"'], "4901542032375109", True, K.IMEISV),
        ("14 digits", ["+CGSN: 35693803564380"], "35693803564380", True, K.IMEI_WITHOUT_CHECK),
        ("label-style groups", ["35-693803-564380-9"], "356938035643809", True, K.IMEI),
        ("no digits at all", ["NOT  PROVISIONED"], "NOT PROVISIONED", False, K.OTHER),
    ],
)
def test_imei_answers_are_kept_and_judged(
    source: str, lines: list[str], value: str, valid: bool, kind: IdentityKind
) -> None:
    answer = parse_imei_value(lines)
    assert (answer.value, answer.valid, answer.kind) == (value, valid, kind), source
    assert answer.raw == "\n".join(lines)
    assert parse_imei(lines) == value  # the plain-string parser says the same


def test_an_empty_answer_is_no_answer() -> None:
    with pytest.raises(AtParseError):
        parse_imei_value([])
    with pytest.raises(AtParseError):
        parse_imei_value(["", "  "])


def test_luhn() -> None:
    assert luhn_valid("490154203237518")
    assert not luhn_valid("490154203237519")
    assert not luhn_valid("12a4")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # qualcomm-m7227.txt
        (
            ["+CIMI:208150014079271"],
            IdentityValue("208150014079271", "+CIMI:208150014079271", True, K.IMSI),
        ),
        # ofono-phonesim default.xml: a 9-digit IMSI
        (["246813579"], IdentityValue("246813579", "246813579", True, K.IMSI)),
        (
            ["0010100000000000077"],
            IdentityValue("0010100000000000077", "0010100000000000077", False, K.OTHER),
        ),
        (["ERROR-ish"], IdentityValue("ERROR-ish", "ERROR-ish", False, K.OTHER)),
    ],
)
def test_imsi_answers(lines: list[str], expected: IdentityValue) -> None:
    assert parse_imsi_value(lines) == expected
    assert parse_cimi(lines) == expected.value


@pytest.mark.parametrize(
    ("lines", "value", "valid", "kind"),
    [
        (['+CCID: "89441000301234567890"'], "89441000301234567890", True, K.ICCID),
        # Huawei ^ICCID is nibble-swapped: normalised exactly as before (it binds the SIM).
        (["^ICCID: 98441000301234567809"], "89440100032143658790", True, K.ICCID),
        (["+QCCID: 8944100030123456789F"], "8944100030123456789", True, K.ICCID),
        (["+CCID: 8944100030123456789A"], "8944100030123456789A", False, K.ICCID),
        (["+CCID: SIM not inserted"], "SIM not inserted", False, K.OTHER),
    ],
)
def test_iccid_answers(lines: list[str], value: str, valid: bool, kind: IdentityKind) -> None:
    answer = parse_iccid_value(lines)
    assert (answer.value, answer.valid, answer.kind) == (value, valid, kind)
    assert parse_iccid(lines) == value
    assert parse_iccid_value(list(lines)) == answer  # stable: the same answer, the same key


def test_revision_and_own_number() -> None:
    assert parse_revision_value(["+CGMR: REV1"]) == IdentityValue(
        "REV1", "+CGMR: REV1", True, K.TEXT
    )
    # ofono-phonesim default.xml
    line = '+CNUM: ,"+358501234567",145,,4'
    assert parse_own_number_value([line]) == IdentityValue("+358501234567", line, True, K.MSISDN)
    odd = '+CNUM: "","Vodafone",129'
    assert parse_own_number_value([odd]) == IdentityValue("Vodafone", odd, False, K.OTHER)
    with pytest.raises(AtParseError):
        parse_own_number_value(['+CNUM: "Voice",,129'])


# --- identities inside other text ------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "value", "valid", "kind", "check_digit"),
    [
        # The brief's example: a label before and words after the digits.
        (["IMEI: 356938035643809 OK-ish"], "356938035643809", True, K.IMEI, True),
        # ModemManager test-modem-helpers.c (test_cdma_parse_gsn): IMEI, then a serial number;
        # its made-up digits fail the Luhn check, which is marked, as for a bare answer.
        (["356936001568843,NL2A62Z0N5"], "356936001568843", False, K.IMEI, False),
        (['+CGSN: "869777028421538" (primary)'], "869777028421538", True, K.IMEI, True),
        (["SN 4901542032375109 rev 2"], "4901542032375109", True, K.IMEISV, None),
        (["IMEI 35693803564380 (no CD)"], "35693803564380", True, K.IMEI_WITHOUT_CHECK, None),
        # A 17-digit run is no IMEI, and no part of it is taken for one.
        (["serial 12345678901234567 x"], "serial 12345678901234567 x", False, K.OTHER, None),
        (["nRF93M1 2623CKLQ0009707"], "nRF93M1 2623CKLQ0009707", False, K.OTHER, None),
    ],
)
def test_imei_inside_other_text_is_extracted_and_judged(
    lines: list[str], value: str, valid: bool, kind: IdentityKind, check_digit: bool | None
) -> None:
    answer = parse_imei_value(lines)
    assert (answer.value, answer.valid, answer.kind, answer.check_digit) == (
        value,
        valid,
        kind,
        check_digit,
    )
    assert answer.raw == "\n".join(lines)  # what surrounded the digits is still there


def test_a_digits_only_line_wins_over_digits_inside_text() -> None:
    answer = parse_imei_value(["Model X 356938035643808 build", "356938035643809"])
    assert (answer.value, answer.valid) == ("356938035643809", True)


def test_imei_check_digit_marker() -> None:
    assert parse_imei_value(["356938035643809"]).check_digit is True
    bad = parse_imei_value(["356938035643808"])
    assert (bad.valid, bad.check_digit) == (False, False)
    assert parse_imei_value(["35693803564380"]).check_digit is None  # no check digit to check


@pytest.mark.parametrize(
    ("lines", "value", "check_digit"),
    [
        # The brief's example: "+CCID: 8944… (SIM)".
        (["+CCID: 8944100030123456789 (SIM)"], "8944100030123456789", True),
        (["+CCID: 89441000301234567890 (SIM)"], "89441000301234567890", False),
        (["+CCID: 1,8944100030123456789"], "8944100030123456789", True),
        (['+CCID: "8944100030123456789F" OK'], "8944100030123456789", True),
        # Huawei's nibble-swapped form inside text: swapped back as the bare form is.
        (["^ICCID: 98441000301234567809 (swapped)"], "89440100032143658790", False),
        (["ICCID=8944100030123456789, status ready"], "8944100030123456789", True),
    ],
)
def test_iccid_inside_other_text_is_extracted(
    lines: list[str], value: str, check_digit: bool | None
) -> None:
    answer = parse_iccid_value(lines)
    assert (answer.value, answer.valid, answer.kind, answer.check_digit) == (
        value,
        True,
        K.ICCID,
        check_digit,
    )
    assert answer.raw == "\n".join(lines)


@pytest.mark.parametrize(
    "lines",
    [
        ["+QCCID: 8944100030123"],  # 13 digits: too short for any ICCID
        ["+CCID: 8944100030123456789012345 x"],  # 25 digits: no 18-20 digit part is taken
        ["+CCID: SIM8944100030123456789"],  # glued to letters: not read as an ICCID
        ["+CCID: SIM not inserted"],
    ],
)
def test_text_without_an_iccid_token_stays_text(lines: list[str]) -> None:
    answer = parse_iccid_value(lines)
    assert (answer.valid, answer.kind, answer.check_digit) == (False, K.OTHER, None)


def test_iccid_check_digit_is_marked_never_rejected() -> None:
    # E.118: a Luhn digit ends a 19-digit ICCID; 20-digit serials overwrite it and such cards
    # are in use. A failing check is marked; the ICCID stays valid and binds the SIM.
    good = parse_iccid_value(["+CCID: 8944100030123456789"])
    bad = parse_iccid_value(["+CCID: 8944100030123456788"])
    assert (good.valid, good.check_digit) == (True, True)
    assert (bad.valid, bad.check_digit, bad.value) == (True, False, "8944100030123456788")
    assert parse_iccid_value(["+CCID: 894410003012345678"]).check_digit is None  # 18 digits
    assert parse_iccid_value(["+CCID: 8944100030123456789A"]).check_digit is None  # not digits


# Every ICCID answer in tests/at (this file and test_parsers.py), the emulator's vendor forms and
# a few more, with (value, valid, kind) as main gave them before ICCIDs were looked for inside
# other text: the value binds the SIM, so none of these may change.
ICCID_ON_MAIN: list[tuple[list[str], str, bool, IdentityKind]] = [
    (['+CCID: "89441000301234567890"'], "89441000301234567890", True, K.ICCID),
    (["^ICCID: 98441000301234567809"], "89440100032143658790", True, K.ICCID),
    (["+QCCID: 8944100030123456789F"], "8944100030123456789", True, K.ICCID),
    (["+CCID: 8944100030123456789A"], "8944100030123456789A", False, K.ICCID),
    (["+CCID: SIM not inserted"], "SIM not inserted", False, K.OTHER),
    (["89441000301234567890"], "89441000301234567890", True, K.ICCID),
    (["+ICCID: 8901260882291409485"], "8901260882291409485", True, K.ICCID),
    (["+CCID: 89441000301234567FFF"], "89441000301234567", True, K.ICCID),
    (["+CCID: 894410003012345678"], "894410003012345678", True, K.ICCID),
    (["+ZGETICCID: 8944100030123456789"], "8944100030123456789", True, K.ICCID),
    (["+CCID: 8944100030123456789", "OK"], "8944100030123456789", True, K.ICCID),
    (["ICCID: 8944100030123456789"], "8944100030123456789", True, K.ICCID),
    (["+ccid: 8944100030123456789f"], "8944100030123456789", True, K.ICCID),
    (["+CCID: ABCDEF0123456789ABCD"], "ABCDEF0123456789ABCD", False, K.ICCID),
    (["+QCCID: 8944100030123"], "8944100030123", False, K.OTHER),
]


@pytest.mark.parametrize(("lines", "value", "valid", "kind"), ICCID_ON_MAIN)
def test_iccid_values_main_gave_do_not_move(
    lines: list[str], value: str, valid: bool, kind: IdentityKind
) -> None:
    answer = parse_iccid_value(lines)
    assert (answer.value, answer.valid, answer.kind) == (value, valid, kind)
    assert parse_iccid(lines) == value


def test_every_iccid_answer_elsewhere_in_tests_at_is_in_the_regression_table() -> None:
    # An ICCID case added to another tests/at module must join ICCID_ON_MAIN with the value it
    # gave before (this module's older cases are copied into the table above).
    import re
    from pathlib import Path

    known = {line for lines, *_ in ICCID_ON_MAIN for line in lines}
    prefix = r"(?:\+CCID|\^ICCID|\+QCCID|\+ICCID|\+ZGETICCID): "
    pattern = re.compile(rf"'({prefix}[^']*)'|\"({prefix}[^\"]*)\"")
    seen: set[str] = set()
    for path in Path(__file__).parent.glob("*.py"):
        if path.name != Path(__file__).name:
            for match in pattern.finditer(path.read_text(encoding="utf-8")):
                seen.add(match.group(1) or match.group(2))
    assert seen and seen <= known, sorted(seen - known)


# --- +CNUM in UCS2 hex -----------------------------------------------------------------------


def test_own_number_in_ucs2_hex_is_decoded() -> None:
    # QUIRKS.md 22: with CSCS="UCS2" (u-blox LARA) numbers come as UCS2 hex, as +CSCA's do.
    number = "+447700900123".encode("utf-16-be").hex().upper()
    line = f'+CNUM: "","{number}",145'
    assert parse_own_number_value([line]) == IdentityValue("+447700900123", line, True, K.MSISDN)
    assert parse_cnum([line, '+CNUM: "Fax","0034003400370037",129']) == ("+447700900123", "4477")


@pytest.mark.parametrize("number", ["12345678", "+12345678", "447700900123", "00447700900123"])
def test_own_number_that_only_looks_like_hex_is_kept(number: str) -> None:
    # "12345678" is valid hex of two UCS2 characters that are no digits: kept as the digits.
    answer = parse_own_number_value([f'+CNUM: "","{number}",129'])
    assert (answer.value, answer.valid) == (number, True)
