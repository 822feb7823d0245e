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
    good = VECTORS["mm-pdu2"]["pdu"]
    bad = _with_octet(good, 30, 0x07)
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
