"""Unit tests for modem.pdu building blocks: alphabets, addresses, DCS, UDH, TPDU fields, errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from modem.pdu import (
    Address,
    Alphabet,
    DataCodingScheme,
    DeliveryStatus,
    InformationElement,
    MessageClass,
    MessageWaitingType,
    NumberingPlan,
    PduError,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    TypeOfNumber,
    UserData,
    UserDataHeader,
    decode_pdu,
    decode_tpdu,
    encode_pdu,
    gsm7,
    to_fields,
)
from modem.pdu.address import decode_address, decode_smsc, encode_address, encode_smsc
from modem.pdu.ucs2 import decode_ucs2, encode_ucs2
from tests.pdu.test_vectors import PDUS

# --- GSM 7-bit alphabet ----------------------------------------------------------------------


def test_extension_characters_take_two_septets_including_form_feed() -> None:
    for ch in "€[]{}~^|\\\f":
        septets = gsm7.encode_septets(ch)
        assert len(septets) == 2 and septets[0] == 0x1B, ch
        assert gsm7.decode_septets(septets) == ch
    assert gsm7.encode_septets("\f") == b"\x1b\x0a"


def test_default_alphabet_positions() -> None:
    assert gsm7.encode_septets("@£$¥") == bytes((0, 1, 2, 3))
    assert gsm7.encode_septets("Δ_") == bytes((0x10, 0x11))
    assert gsm7.encode_septets("¡¿§à") == bytes((0x40, 0x60, 0x5F, 0x7F))


def test_unknown_escape_falls_back_to_the_base_character() -> None:
    # TS 23.038 6.2.1.1: an undefined extension code shows the main-table character.
    assert gsm7.decode_septets(bytes((0x1B, 0x41))) == "A"
    # Escape followed by escape (SS2, reserved) shows a space, then decoding continues.
    assert gsm7.decode_septets(bytes((0x1B, 0x1B, 0x41))) == " A"


def test_trailing_lone_escape_yields_no_character() -> None:
    assert gsm7.decode_septets(bytes((0x41, 0x1B))) == "A"


def test_unencodable_character_raises_pdu_error() -> None:
    with pytest.raises(PduError, match="U\\+0416"):
        gsm7.encode_septets("Ж")
    assert not gsm7.encodable("Ж")
    assert gsm7.encodable("ç", single=1)  # Turkish single shift has ç; the default has Ç only


def test_turkish_locking_shift_decodes_national_letters() -> None:
    text = "ğüşıöç"
    septets = gsm7.encode_septets(text, locking=1)
    assert len(septets) == len(text)  # all in the locking table: one septet each
    assert gsm7.decode_septets(septets, locking=1) == text
    assert gsm7.decode_septets(septets) != text


def test_septet_values_above_127_are_rejected() -> None:
    with pytest.raises(PduError):
        gsm7.decode_septets(b"\x80")


def test_fill_bits_after_udh() -> None:
    # 6-octet UDH = 48 bits -> 1 fill bit to reach 49 (7 septets); 7-octet UDH -> 0 fill bits.
    packed = gsm7.pack_septets(b"\x7f", 1)
    assert packed == b"\xfe"
    assert gsm7.pack_septets(b"\x7f", 0) == b"\x7f"


# --- UCS-2 -----------------------------------------------------------------------------------


def test_ucs2_surrogate_pairs() -> None:
    assert encode_ucs2("😀") == bytes.fromhex("D83DDE00")
    assert decode_ucs2(bytes.fromhex("D83DDE00")) == "😀"


@pytest.mark.parametrize("raw", ["D83D", "DE000041", "0041D83D"])
def test_ucs2_lone_surrogate_raises(raw: str) -> None:
    with pytest.raises(PduError, match="lone surrogate"):
        decode_ucs2(bytes.fromhex(raw), 10)


def test_ucs2_odd_length_raises() -> None:
    with pytest.raises(PduError, match="odd length"):
        decode_ucs2(b"\x00\x41\x00")


# --- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+447700900123", Address("447700900123", TypeOfNumber.INTERNATIONAL, NumberingPlan.ISDN)),
        ("07700900123", Address("07700900123", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)),
        ("*#123#", Address("*#123#", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)),
        ("Bank", Address("Bank", TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN)),
        ("+44 ab", Address("+44 ab", TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN)),
        ("abc", Address("abc", TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN)),
        ("+44 (0)7700 900-123", Address("4407700900123", TypeOfNumber.INTERNATIONAL)),
        (" 0770 0900 ", Address("07700900", TypeOfNumber.UNKNOWN)),
    ],
)
def test_address_parse(text: str, expected: Address) -> None:
    assert Address.parse(text) == expected


def test_address_str() -> None:
    assert str(Address.parse("+447700900123")) == "+447700900123"
    assert str(Address.parse("0770")) == "0770"
    assert str(Address.parse("Bank")) == "Bank"


def test_empty_address_is_rejected() -> None:
    with pytest.raises(PduError):
        Address.parse("  ")


def test_address_encoding() -> None:
    assert encode_address(Address.parse("+447700900123")).hex().upper() == "0C91447700091032"
    assert encode_address(Address.parse("12345")).hex().upper() == "05812143F5"


@pytest.mark.parametrize("name", ["ABCDEFG", "ABCDEFGH", "A", "Bank €", "InternetSMS"])
def test_alphanumeric_length_in_semi_octets(name: str) -> None:
    encoded = encode_address(Address(name, TypeOfNumber.ALPHANUMERIC, NumberingPlan.UNKNOWN))
    septets = gsm7.septet_length(name)
    assert encoded[0] == (septets * 7 + 3) // 4
    decoded, end = decode_address(encoded, 0, "TP-OA")
    # No trailing '@' from the spare bits of the last octet.
    assert decoded.number == name
    assert end == len(encoded)


def test_alphanumeric_longer_than_11_septets_is_rejected() -> None:
    with pytest.raises(PduError, match="11 septets"):
        encode_address(Address("ABCDEFGHIJKL", TypeOfNumber.ALPHANUMERIC))


def test_bcd_extension_digits_roundtrip() -> None:
    address = Address("*#abc#*51", TypeOfNumber.ABBREVIATED, NumberingPlan.ISDN)
    encoded = encode_address(address)
    assert encoded.hex().upper() == "09E1BADCBE5AF1"
    assert decode_address(encoded, 0, "TP-OA") == (address, len(encoded))


def test_filler_inside_a_number_is_rejected() -> None:
    with pytest.raises(PduError, match="filler digit"):
        decode_address(bytes.fromhex("0481F121"), 0, "TP-OA")


def test_smsc_field_forms() -> None:
    assert decode_smsc(b"\x00") == (None, 1)
    assert decode_smsc(bytes.fromhex("0181")) == (
        Address("", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN),
        2,
    )
    assert encode_smsc(None) == b"\x00"
    assert encode_smsc(Address.parse("+447802000332")).hex().upper() == "0791448720003023"


def test_toa_only_smsc_decodes_whole_pdu() -> None:
    pdu = decode_pdu("0181" + "01000B917228001011F100000CC8329BFD065DDF72363904")
    assert pdu.smsc == Address("", TypeOfNumber.UNKNOWN, NumberingPlan.ISDN)
    assert to_fields(pdu)["smsc"] == ""
    assert to_fields(pdu)["text"] == "Hello World!"


# --- DCS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "alphabet", "message_class"),
    [
        (0x00, Alphabet.GSM7, None),
        (0x03, Alphabet.GSM7, None),  # class bits without bit 4: no class
        (0x04, Alphabet.DATA_8BIT, None),
        (0x08, Alphabet.UCS2, None),
        (0x0C, Alphabet.GSM7, None),  # reserved alphabet -> default
        (0x10, Alphabet.GSM7, MessageClass.CLASS_0),
        (0x11, Alphabet.GSM7, MessageClass.CLASS_1),
        (0x16, Alphabet.DATA_8BIT, MessageClass.CLASS_2),
        (0x48, Alphabet.UCS2, None),  # auto-deletion group
        (0x80, Alphabet.GSM7, None),  # reserved coding group
        (0xC8, Alphabet.GSM7, None),  # MWI discard
        (0xD0, Alphabet.GSM7, None),  # MWI store
        (0xE0, Alphabet.UCS2, None),  # MWI store, UCS-2
        (0xF1, Alphabet.GSM7, MessageClass.CLASS_1),
        (0xF4, Alphabet.DATA_8BIT, MessageClass.CLASS_0),
        (0xFB, Alphabet.GSM7, MessageClass.CLASS_3),
    ],
)
def test_dcs_groups(raw: int, alphabet: Alphabet, message_class: MessageClass | None) -> None:
    dcs = DataCodingScheme(raw)
    assert dcs.alphabet is alphabet
    assert dcs.message_class == message_class


def test_dcs_message_waiting_fields() -> None:
    dcs = DataCodingScheme(0xC8)
    assert dcs.message_waiting is MessageWaitingType.VOICEMAIL
    assert dcs.message_waiting_active and dcs.discard_message
    cleared = DataCodingScheme(0xD2)
    assert cleared.message_waiting is MessageWaitingType.EMAIL
    assert not cleared.message_waiting_active and not cleared.discard_message
    assert DataCodingScheme(0x00).message_waiting is None
    assert DataCodingScheme(0x28).compressed
    assert DataCodingScheme(0x40).auto_deletion


def test_dcs_for_alphabet() -> None:
    assert DataCodingScheme.for_alphabet(Alphabet.GSM7).raw == 0x00
    assert DataCodingScheme.for_alphabet(Alphabet.UCS2).raw == 0x08
    assert DataCodingScheme.for_alphabet(Alphabet.DATA_8BIT).raw == 0x04
    assert DataCodingScheme.for_alphabet(Alphabet.GSM7, MessageClass.CLASS_0).raw == 0x10


# --- UDH -------------------------------------------------------------------------------------


def test_16bit_reference_is_big_endian_not_times_255() -> None:
    header = UserDataHeader.decode(bytes.fromhex("0804B9DB0201"))
    concat = header.concatenation
    assert concat is not None
    assert concat.reference == 0xB9DB == 47579
    assert (concat.total, concat.sequence, concat.ref_bits) == (2, 1, 16)


def test_invalid_concatenation_values_are_ignored() -> None:
    # TS 23.040 9.2.3.24.1: seq 0 or seq > total -> ignore the IE.
    assert UserDataHeader.decode(bytes.fromhex("0003010200")).concatenation is None
    assert UserDataHeader.decode(bytes.fromhex("0003010203")).concatenation is None


def test_unknown_elements_are_kept_and_reencoded() -> None:
    raw = bytes.fromhex("00032A0201700100")
    header = UserDataHeader.decode(raw)
    assert header.elements[1] == InformationElement(0x70, b"\x00")
    assert header.encode() == bytes((len(raw),)) + raw


def test_truncated_element_raises() -> None:
    with pytest.raises(PduError, match="overruns"):
        UserDataHeader.decode(bytes.fromhex("000301"), 30)


def test_shift_and_port_elements() -> None:
    header = UserDataHeader.decode(bytes.fromhex("240101250103050415B3FDE8"))
    assert (header.single_shift, header.locking_shift) == (1, 3)
    ports = header.ports
    assert ports is not None
    assert (ports.destination, ports.originator, ports.port_bits) == (5555, 65000, 16)


def test_for_concatenation_validates() -> None:
    with pytest.raises(PduError):
        UserDataHeader.for_concatenation(256, 2, 1)
    with pytest.raises(PduError):
        UserDataHeader.for_concatenation(1, 2, 3)
    header = UserDataHeader.for_concatenation(0x1234, 3, 2, 16)
    assert header.encode().hex().upper() == "0608041234" + "0302"


# --- TPDU fields -----------------------------------------------------------------------------


def _submit_with_vp(first: int, vp: str) -> SmsSubmit:
    tpdu = decode_tpdu(f"{first:02X}00" + "0B917228001011F1" + "0000" + vp + "04D4F29C0E")
    assert isinstance(tpdu, SmsSubmit)
    assert tpdu.user_data.text == "Test"
    return tpdu


@pytest.mark.parametrize(
    ("vp", "expected"),
    [
        ("01AA0000000000", timedelta(days=4)),
        ("023C0000000000", timedelta(seconds=60)),
        ("03214365000000", timedelta(hours=12, minutes=34, seconds=56)),
        ("00000000000000", None),
    ],
)
def test_enhanced_validity_period_is_recognised(vp: str, expected: timedelta | None) -> None:
    assert _submit_with_vp(0x09, vp).validity == expected


@pytest.mark.parametrize(
    ("vp", "expected"),
    [
        (0, timedelta(minutes=5)),
        (143, timedelta(hours=12)),
        (144, timedelta(hours=12, minutes=30)),
        (167, timedelta(days=1)),
        (168, timedelta(days=2)),
        (196, timedelta(days=30)),
        (197, timedelta(weeks=5)),
        (255, timedelta(weeks=63)),
    ],
)
def test_relative_validity_ranges(vp: int, expected: timedelta) -> None:
    assert _submit_with_vp(0x11, f"{vp:02X}").validity == expected
    submit = SmsSubmit(Address.parse("+1"), UserData(text="x"), validity=expected)
    assert submit.encode()[1 + 1 + 3 + 2] == vp


def test_absolute_validity_roundtrip() -> None:
    when = datetime(2030, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=-3, minutes=-30)))
    submit = SmsSubmit(Address.parse("+1"), UserData(text="x"), validity=when)
    back = decode_tpdu(submit.encode())
    assert isinstance(back, SmsSubmit)
    assert back.validity == when
    assert to_fields(decode_pdu(encode_pdu(submit).hex))["vp_absolute"] == when.isoformat()


def test_submit_flags_in_first_octet() -> None:
    submit = SmsSubmit(
        Address.parse("+1"),
        UserData(text="x"),
        status_report_request=True,
        reject_duplicates=True,
        reply_path=True,
        validity=timedelta(days=1),
        message_reference=0x42,
    )
    encoded = submit.encode()
    assert encoded[0] == 0x01 | 0x04 | 0x10 | 0x20 | 0x80
    assert encoded[1] == 0x42


def test_naive_timestamp_is_rejected() -> None:
    deliver = SmsDeliver(Address.parse("+1"), datetime(2020, 1, 1), UserData(text="x"))
    with pytest.raises(PduError, match="timezone-aware"):
        deliver.encode()


def test_invalid_bcd_time_zone_reads_as_utc() -> None:
    # smslib-status-report-1: zone octet 0xE1 is not BCD; smslib's epoch values mean UTC.
    (vector,) = [v for v in PDUS if v["id"] == "smslib-status-report-1"]
    report = decode_pdu(vector["pdu"]).tpdu
    assert isinstance(report, SmsStatusReport)
    assert report.scts == datetime(2011, 12, 21, 11, 33, 19, tzinfo=UTC)
    assert report.discharge_time.utcoffset() == timedelta(hours=3)


def test_invalid_date_digits_raise() -> None:
    with pytest.raises(PduError, match="TP-SCTS"):
        decode_tpdu("040B917228001011F1000011F0101010101000")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (0x00, DeliveryStatus.COMPLETED),
        (0x02, DeliveryStatus.COMPLETED),
        (0x20, DeliveryStatus.TEMPORARY_TRYING),
        (0x30, DeliveryStatus.TEMPORARY_TRYING),
        (0x41, DeliveryStatus.PERMANENT),
        (0x43, DeliveryStatus.PERMANENT),
        (0x60, DeliveryStatus.TEMPORARY_STOPPED),
        (0x65, DeliveryStatus.TEMPORARY_STOPPED),
    ],
)
def test_delivery_status_classes(status: int, expected: DeliveryStatus) -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    report = SmsStatusReport(1, Address.parse("+1"), now, now, status)
    assert report.delivery_status is expected


def test_status_report_padding_after_status_is_ignored() -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    report = SmsStatusReport(7, Address.parse("+15551234"), now, now, 0x41)
    # Some SCs pad with 0xFF: reserved TP-PI bits set -> no optional fields are read.
    assert decode_tpdu(report.encode() + b"\xff\xff") == report


def test_enhanced_validity_overrunning_its_octets_is_rejected() -> None:
    with pytest.raises(PduError, match="enhanced validity"):
        _submit_with_vp(0x09, "83808080800000")


def test_status_report_parameter_indicator_with_extension_octet() -> None:
    now = datetime(2020, 1, 1, tzinfo=UTC)
    base = SmsStatusReport(7, Address.parse("+15551234"), now, now, 0).encode()
    # PI 0x85 (PID + UDL, extension bit) then a reserved extension PI octet 0x00.
    tpdu = base + bytes.fromhex("85003F04D4F29C0E")
    report = decode_tpdu(tpdu)
    assert isinstance(report, SmsStatusReport)
    assert report.protocol_identifier == 0x3F
    assert report.user_data is not None and report.user_data.text == "Test"


def test_reserved_mti_is_rejected() -> None:
    with pytest.raises(PduError, match="TP-MTI") as info:
        decode_pdu("0003")
    assert info.value.octet == 1


def test_not_hex_is_rejected() -> None:
    with pytest.raises(PduError, match="hexadecimal"):
        decode_pdu("0G")


def test_user_data_too_long_is_rejected_on_encode() -> None:
    with pytest.raises(PduError, match="160"):
        SmsSubmit(Address.parse("+1"), UserData(text="x" * 161)).encode()
    with pytest.raises(PduError, match="140"):
        SmsSubmit(
            Address.parse("+1"),
            UserData(text="я" * 71),
            DataCodingScheme.for_alphabet(Alphabet.UCS2),
        ).encode()


def test_udhi_without_room_for_a_header_is_rejected() -> None:
    # UDL 1 septet but a 1-octet UDH needs 2 septets (8 bits + fill).
    with pytest.raises(PduError, match="exceeds TP-UDL"):
        decode_tpdu("440B917228001011F10000111010214365000100")


def _vector_hexes() -> list[str]:
    return [v["pdu"] for v in PDUS]


@pytest.mark.parametrize("hex_pdu", _vector_hexes()[::4])
def test_every_prefix_decodes_or_raises_pdu_error(hex_pdu: str) -> None:
    raw = bytes.fromhex(hex_pdu)
    for end in range(len(raw)):
        try:
            decode_pdu(raw[:end])
        except PduError as exc:
            assert "octet" in str(exc) or exc.octet is None


def test_to_fields_is_json_serialisable_for_every_vector() -> None:
    for vector in PDUS:
        try:
            pdu = decode_pdu(vector["pdu"])
        except PduError:
            assert vector["kind"] == "invalid"
            continue
        json.dumps(to_fields(pdu))
