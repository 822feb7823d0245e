"""Lenient decoding: PDUs other stacks accept are decoded, with what was wrong listed.

Every malformed PDU here is a real vector from /work/shared/vectors/pdus.jsonl with one octet
changed; python-gsmmodem and python-gammu (the oracles) decode each of the two cases the issue
names, and so must we, listing the repair in `anomalies`. strict=True still refuses them.
"""

from __future__ import annotations

import gammu
import pytest
from gsmmodem.pdu import decodeSmsPdu

from modem.pdu import (
    Anomaly,
    AnomalyCode,
    PduError,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    decode_pdu,
    encode_pdu,
    to_fields,
)
from modem.pdu.gsm7 import pack_septets
from tests.pdu.test_vectors import PDUS

VECTORS = {v["id"]: v for v in PDUS}
# mm-pdu1 (ModemManager test_pdu1): SMSC field octets 0-7, FO 8, TP-OA 9-16 (11 digits,
# "0B91 6171957291F8"), PID 17, DCS 18, SCTS 19-25, TP-UDL 26 (0x6A = 106 septets in 93 octets).
MM_PDU1 = VECTORS["mm-pdu1"]["pdu"]
TEXT1 = VECTORS["mm-pdu1"]["expected"]["text"]


def _with_octet(hex_pdu: str, octet: int, value: int) -> str:
    raw = bytearray.fromhex(hex_pdu)
    raw[octet] = value
    return raw.hex().upper()


def _oracles(hex_pdu: str) -> tuple[str, str]:
    """(number, text) as python-gsmmodem and python-gammu read the PDU."""
    theirs = decodeSmsPdu(hex_pdu)
    (gammu_sms,) = [gammu.DecodePDU(bytes.fromhex(hex_pdu))]
    assert theirs["number"] == gammu_sms["Number"]
    return theirs["number"], theirs["text"]


def test_address_length_counting_the_filler_is_repaired() -> None:
    bad = _with_octet(MM_PDU1, 9, 0x0C)  # 12 semi-octets declared: the 12th is the F filler
    assert _oracles(bad)[0] == "+16175927198"
    pdu = decode_pdu(bad)
    assert isinstance(pdu.tpdu, SmsDeliver)
    assert str(pdu.tpdu.originator) == "+16175927198"
    assert pdu.tpdu.user_data.text == TEXT1
    assert pdu.tpdu.anomalies == (
        Anomaly(
            AnomalyCode.ADDRESS_FILLER_COUNTED,
            9,
            "TP-OA address length 12 counts 1 F filler semi-octet(s) as digits at octet 9",
        ),
    )
    assert pdu == decode_pdu(MM_PDU1)  # the same message; the anomalies are not its content
    with pytest.raises(PduError, match="counts 1 F filler") as info:
        decode_pdu(bad, strict=True)
    assert info.value.octet == 9


def test_udl_larger_than_the_user_data_present_is_decoded_and_flagged() -> None:
    bad = _with_octet(MM_PDU1, 26, 0x70)  # 112 septets = 98 octets announced; 93 are there
    assert _oracles(bad)[0] == "+16175927198"
    pdu = decode_pdu(bad)
    assert isinstance(pdu.tpdu, SmsDeliver)
    assert pdu.tpdu.user_data.text == TEXT1 and pdu.tpdu.user_data.truncated
    assert pdu.tpdu.anomalies == (
        Anomaly(
            AnomalyCode.USER_DATA_SHORT,
            26,
            "TP-UDL 112 needs 98 octets of user data but 93 are present at octet 26",
        ),
    )
    with pytest.raises(PduError, match="TP-UDL 112") as info:
        decode_pdu(bad, strict=True)
    assert info.value.octet == 26


def test_both_at_once_are_listed_in_pdu_order() -> None:
    bad = _with_octet(_with_octet(MM_PDU1, 9, 0x0C), 26, 0x70)
    codes = [a.code for a in decode_pdu(bad).tpdu.anomalies]
    assert codes == [AnomalyCode.ADDRESS_FILLER_COUNTED, AnomalyCode.USER_DATA_SHORT]
    fields = to_fields(decode_pdu(bad))
    assert [a["code"] for a in fields["anomalies"]] == ["address-filler-counted", "user-data-short"]
    assert "anomalies" not in to_fields(decode_pdu(MM_PDU1))


def test_filler_in_the_middle_of_a_number_still_cannot_be_decoded() -> None:
    bad = _with_octet(MM_PDU1, 12, 0xF9)  # a filler nibble inside the digits, not at the end
    with pytest.raises(PduError, match="filler digit inside"):
        decode_pdu(bad)


def test_reserved_dcs_is_read_as_gsm7() -> None:
    bad = _with_octet(MM_PDU1, 18, 0x0C)  # general group, alphabet bits 11: reserved
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == TEXT1
    assert tpdu.anomalies == (
        Anomaly(
            AnomalyCode.RESERVED_DCS,
            18,
            "TP-DCS 0x0c is reserved (read as GSM 7-bit) at octet 18",
        ),
    )
    with pytest.raises(PduError, match="reserved"):
        decode_pdu(bad, strict=True)


def test_odd_length_ucs2_drops_the_last_octet() -> None:
    # mm-pdu2 ("тест", UCS-2): TP-UDL at octet 30, user data 31-38; UDL 7 leaves half a character.
    # The eighth octet goes too: left there, it would be data beyond TP-UDL as well.
    good = VECTORS["mm-pdu2"]["pdu"]
    bad = _with_octet(good, 30, 0x07)[:-2]
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == "тес"
    assert tpdu.anomalies == (
        Anomaly(
            AnomalyCode.UCS2_ODD_LENGTH,
            37,
            "UCS-2 user data has an odd length (7 octets; the last is dropped) at octet 37",
        ),
    )
    with pytest.raises(PduError, match="odd length"):
        decode_pdu(bad, strict=True)


def test_undefined_extension_character_falls_back_to_the_main_table() -> None:
    # mm-pdu1's header with new user data: "A", escape + "A" (no extension character), "B".
    septets = bytes((0x41, 0x1B, 0x41, 0x42))
    bad = MM_PDU1[: 2 * 26] + f"{len(septets):02X}" + pack_septets(septets).hex().upper()
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == "AAB"
    assert tpdu.anomalies == (
        Anomaly(
            AnomalyCode.UNDEFINED_EXTENSION,
            27,
            "escape to undefined extension septet 0x41 (shown as the main table's character)"
            " at octet 27",
        ),
    )
    with pytest.raises(PduError, match="undefined extension"):
        decode_pdu(bad, strict=True)


def test_submit_and_status_report_carry_anomalies_too() -> None:
    # mm-stored-submit-ucs2 and mm-status-report: TP-DA / TP-RA of 9 digits (SMSC field 00, so
    # the address length sits at octet 3: field, FO, MR). Declared as 10, the F filler counted.
    for vector_id, kind in (
        ("mm-stored-submit-ucs2", SmsSubmit),
        ("mm-status-report", SmsStatusReport),
    ):
        good = VECTORS[vector_id]["pdu"]
        at = int(good[:2], 16) + 3
        bad = _with_octet(good, at, 10)
        tpdu = decode_pdu(bad).tpdu
        assert isinstance(tpdu, kind)
        assert [(a.code, a.octet) for a in tpdu.anomalies] == [
            (AnomalyCode.ADDRESS_FILLER_COUNTED, at)
        ]
        assert tpdu == decode_pdu(good).tpdu


def test_encoding_stays_strict_and_writes_the_repaired_pdu_well_formed() -> None:
    bad = _with_octet(_with_octet(MM_PDU1, 9, 0x0C), 26, 0x70)
    pdu = decode_pdu(bad)
    again = encode_pdu(pdu.tpdu, pdu.smsc)
    assert again.hex == MM_PDU1
    assert decode_pdu(again.hex, strict=True).tpdu.anomalies == ()


# --- a lone surrogate, TP-UDL beyond any SMS, octets beyond TP-UDL -----------------------------

# mm-pdu2 ("тест", UCS-2): user data at octets 31-38, one UTF-16 unit per character.
MM_PDU2 = VECTORS["mm-pdu2"]["pdu"]


def _with_octets(hex_pdu: str, octet: int, values: str) -> str:
    raw = bytearray.fromhex(hex_pdu)
    raw[octet : octet + len(values) // 2] = bytes.fromhex(values)
    return raw.hex().upper()


def test_lone_surrogate_is_shown_as_fffd_like_gammu() -> None:
    bad = _with_octets(MM_PDU2, 33, "D83D")  # "е" becomes a high surrogate with no low one
    assert gammu.DecodePDU(bytes.fromhex(bad))["Text"] == "т\ufffdст"
    # python-gsmmodem hands back the lone surrogate itself: a str no UTF-8 store can hold.
    assert decodeSmsPdu(bad)["text"] == "т\ud83dст"
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == "т\ufffdст"
    assert tpdu.anomalies == (
        Anomaly(
            AnomalyCode.UCS2_LONE_SURROGATE,
            33,
            "UCS-2 lone surrogate D83D (shown as U+FFFD) at octet 33",
        ),
    )
    assert tpdu.user_data.text.encode("utf-8")  # storable
    with pytest.raises(PduError, match="lone surrogate") as info:
        decode_pdu(bad, strict=True)
    assert info.value.octet == 33


def test_each_lone_surrogate_is_listed_and_a_real_pair_is_not() -> None:
    # Low surrogate first, then a whole pair (😀), then a high surrogate at the very end.
    bad = _with_octets(MM_PDU2, 30, "08" + "DC00" + "D83DDE00" + "D801")
    assert gammu.DecodePDU(bytes.fromhex(bad))["Text"] == "\ufffd😀\ufffd"
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == "\ufffd😀\ufffd"
    assert [(a.code, a.octet) for a in tpdu.anomalies] == [
        (AnomalyCode.UCS2_LONE_SURROGATE, 31),
        (AnomalyCode.UCS2_LONE_SURROGATE, 37),
    ]


def test_udl_beyond_any_sms_over_little_data_is_read_as_short() -> None:
    # 0xFF septets announced (more than 160), mm-pdu1's 93 octets present. python-gsmmodem reads
    # them (it ignores TP-UDL; its table shows "§" as "`"); python-gammu refuses the PDU. A
    # refusal loses a message on receive, so we read it, as for any short user data.
    bad = _with_octet(MM_PDU1, 26, 0xFF)
    assert decodeSmsPdu(bad)["text"] == TEXT1.replace("§", "`")
    with pytest.raises(gammu.ERR_CORRUPTED):
        gammu.DecodePDU(bytes.fromhex(bad))
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver)
    assert tpdu.user_data.text == TEXT1 and tpdu.user_data.truncated
    assert tpdu.anomalies == (
        Anomaly(
            AnomalyCode.USER_DATA_SHORT,
            26,
            "TP-UDL 255 (more than 160 septets) needs 224 octets of user data but 93 are"
            " present at octet 26",
        ),
    )
    with pytest.raises(PduError, match="TP-UDL 255 exceeds 160 septets") as info:
        decode_pdu(bad, strict=True)
    assert info.value.octet == 26


def test_udl_beyond_any_sms_in_octets_is_read_as_short_too() -> None:
    bad = _with_octet(MM_PDU2, 30, 0xFF)  # 255 octets of UCS-2 announced, 8 present
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == "тест"
    assert [(a.code, a.octet) for a in tpdu.anomalies] == [(AnomalyCode.USER_DATA_SHORT, 30)]
    with pytest.raises(PduError, match="exceeds 140 octets"):
        decode_pdu(bad, strict=True)


def test_udl_beyond_any_sms_over_that_much_data_stays_an_error() -> None:
    # 161 septets need 141 octets, and 141 are there: more than an SMS holds, however read.
    bad = MM_PDU1[: 2 * 26] + "A1" + "00" * 141
    with pytest.raises(PduError, match="TP-UDL 161 exceeds 160 septets"):
        decode_pdu(bad)
    bad = MM_PDU1[: 2 * 26] + "FF" + "00" * 141  # short of 224 octets, but over 140 present
    with pytest.raises(PduError, match="TP-UDL 255 exceeds 160 septets"):
        decode_pdu(bad)


def test_octets_beyond_udl_are_ignored_and_listed() -> None:
    bad = MM_PDU1 + "00FF41"
    # python-gammu honours TP-UDL as we do (its Text then runs on past a NUL into whatever its
    # buffer held, different on each run); python-gsmmodem reads the three octets as text.
    assert gammu.DecodePDU(bytes.fromhex(bad))["Text"].split("\x00")[0] == TEXT1
    assert decodeSmsPdu(bad)["text"].startswith(TEXT1.replace("§", "`") + "@")
    tpdu = decode_pdu(bad).tpdu
    assert isinstance(tpdu, SmsDeliver)
    assert tpdu.user_data.text == TEXT1 and not tpdu.user_data.truncated
    assert tpdu.anomalies == (
        Anomaly(
            AnomalyCode.DATA_BEYOND_UDL,
            120,  # TP-UDL at 26, 93 octets of user data at 27-119: the first ignored octet
            "3 octet(s) after the 93 of user data TP-UDL 106 counts (ignored) at octet 120",
        ),
    )
    assert decode_pdu(bad) == decode_pdu(MM_PDU1)
    with pytest.raises(PduError, match="3 octet") as info:
        decode_pdu(bad, strict=True)
    assert info.value.octet == 120


def test_octets_beyond_udl_in_ucs2_and_in_a_status_report() -> None:
    tpdu = decode_pdu(MM_PDU2 + "0041").tpdu
    assert isinstance(tpdu, SmsDeliver) and tpdu.user_data.text == "тест"
    assert [(a.code, a.octet) for a in tpdu.anomalies] == [(AnomalyCode.DATA_BEYOND_UDL, 39)]
    # A status report whose TP-PI announces user data: its TP-UDL is checked the same way.
    good = VECTORS["mm-status-report"]["pdu"]
    report = decode_pdu(good).tpdu
    assert isinstance(report, SmsStatusReport)
    with_ud = good + "04" + "02" + pack_septets(b"\x41\x42").hex().upper() + "FF"
    report = decode_pdu(with_ud).tpdu
    assert isinstance(report, SmsStatusReport) and report.user_data is not None
    assert report.user_data.text == "AB"
    assert [a.code for a in report.anomalies] == [AnomalyCode.DATA_BEYOND_UDL]
