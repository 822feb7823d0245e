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
from modem.at.parsers import parse_cimi, parse_iccid, parse_imei
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
