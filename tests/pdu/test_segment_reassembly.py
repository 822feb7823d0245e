"""Segmentation with national shift tables, 8-bit splits, and pure reassembly edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from modem.pdu import (
    Address,
    Alphabet,
    DataCodingScheme,
    Reassembler,
    SmsDeliver,
    SmsSubmit,
    TypeOfNumber,
    UserData,
    UserDataHeader,
    build_data_submits,
    build_submits,
    count,
    decode_tpdu,
    gsm7,
    segment,
    split_data,
)
from modem.pdu.udh import IEI_NATIONAL_LOCKING_SHIFT, IEI_NATIONAL_SINGLE_SHIFT

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SENDER = Address("447700900123", TypeOfNumber.INTERNATIONAL)

# --- national language shift tables ----------------------------------------------------------

TURKISH = "ığşüö" * 40  # ı ğ ş are not in the default alphabet


def test_national_tables_only_when_allowed() -> None:
    assert segment(TURKISH).encoding is Alphabet.UCS2
    assert segment(TURKISH).parts == 3  # 200 UTF-16 units / 67


def test_turkish_locking_shift_saves_parts_and_counts_its_ie() -> None:
    seg = segment(TURKISH, allow_national=True)
    assert seg.encoding is Alphabet.GSM7
    assert (seg.locking_shift, seg.parts) == (1, 2)
    # UDH = UDHL + concat IE (5) + locking shift IE (3) = 9 octets = 72 bits -> 11 septets.
    assert seg.capacity == 160 - 11
    submits = build_submits("+905321234567", TURKISH, allow_national=True, reference=3)
    joined = ""
    for submit in submits:
        header = submit.user_data.header
        assert header is not None
        assert header.locking_shift == 1 and header.single_shift is None
        assert any(e.iei == IEI_NATIONAL_LOCKING_SHIFT for e in header.elements)
        tpdu = submit.encode()
        back = decode_tpdu(tpdu)
        assert isinstance(back, SmsSubmit)
        assert back.user_data.text == submit.user_data.text
        joined += back.user_data.text or ""
    assert joined == TURKISH


def test_single_shift_chosen_when_it_alone_saves_parts() -> None:
    # Default letters plus a few Turkish ones: the single shift table keeps the default table.
    text = "Merhaba dunya ş " * 12
    seg = segment(text, allow_national=True)
    assert seg.encoding is Alphabet.GSM7
    assert seg.parts < segment(text).parts
    assert (
        gsm7.decode_septets(
            gsm7.encode_septets(text, seg.locking_shift, seg.single_shift),
            seg.locking_shift,
            seg.single_shift,
        )
        == text
    )


def test_national_table_not_used_when_it_saves_nothing() -> None:
    seg = segment("ığş", allow_national=True)
    assert seg.encoding is Alphabet.UCS2
    assert (seg.locking_shift, seg.single_shift) == (0, 0)


def test_single_part_national_message_carries_only_the_shift_ie() -> None:
    text = "नमस्ते दुनिया " * 8  # Hindi: UCS-2 needs 2 parts, Hindi locking shift 1
    seg = segment(text, allow_national=True)
    assert seg.parts == 1 and seg.encoding is Alphabet.GSM7
    (submit,) = build_submits("+911234567890", text, allow_national=True)
    header = submit.user_data.header
    assert header is not None
    assert {e.iei for e in header.elements} <= {
        IEI_NATIONAL_LOCKING_SHIFT,
        IEI_NATIONAL_SINGLE_SHIFT,
    }
    assert header.concatenation is None
    back = decode_tpdu(submit.encode())
    assert isinstance(back, SmsSubmit)
    assert back.user_data.text == text


def test_count_reports_the_shift_tables() -> None:
    result = count(TURKISH, allow_national=True)
    assert (result.encoding, result.parts, result.locking_shift) == (Alphabet.GSM7, 2, 1)
    assert result.characters == 200
    assert result.remaining == 2 * 149 - 200


# --- 8-bit splits ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "ref16", "sizes"),
    [
        (140, False, [140]),
        (141, False, [134, 7]),
        (141, True, [133, 8]),
        (268, False, [134, 134]),
    ],
)
def test_split_data(size: int, ref16: bool, sizes: list[int]) -> None:
    assert [len(p) for p in split_data(bytes(size), ref16=ref16)] == sizes


def test_build_data_submits_roundtrip() -> None:
    data = bytes(range(256)) + bytes(range(44))
    submits = build_data_submits("+15551234", data, reference=0x1234, ref16=True)
    assert len(submits) == 3
    parts = []
    for submit in submits:
        back = decode_tpdu(submit.encode())
        assert isinstance(back, SmsSubmit)
        assert back.dcs.alphabet is Alphabet.DATA_8BIT
        parts.append(back.user_data.data or b"")
    assert b"".join(parts) == data


def test_too_many_parts_is_an_error() -> None:
    from modem.pdu import PduError

    with pytest.raises(PduError, match="255"):
        segment("x" * (153 * 255 + 1))


# --- reassembly ------------------------------------------------------------------------------


def _deliver(
    septets: bytes | None = None,
    *,
    ucs2: bytes | None = None,
    ref: int = 1,
    total: int = 2,
    seq: int = 1,
) -> SmsDeliver:
    header = UserDataHeader.for_concatenation(ref, total, seq)
    if ucs2 is not None:
        dcs = DataCodingScheme.for_alphabet(Alphabet.UCS2)
        raw = ucs2
    else:
        dcs = DataCodingScheme.for_alphabet(Alphabet.GSM7)
        raw = septets or b""
    # Build the wire form by hand so a part can end mid-character, as broken senders do.
    head = header.encode()
    if ucs2 is not None:
        ud = bytes((len(head) + len(raw),)) + head + raw
    else:
        head_septets = (len(head) * 8 + 6) // 7
        fill = head_septets * 7 - len(head) * 8
        ud = bytes((head_septets + len(raw),)) + head + gsm7.pack_septets(raw, fill)
    tpdu = (
        bytes((0x44,))
        + bytes.fromhex("0C91447700091032")
        + bytes((0, dcs.raw))
        + bytes.fromhex("62301221000000")
        + ud
    )
    deliver = decode_tpdu(tpdu)
    assert isinstance(deliver, SmsDeliver)
    assert deliver.originator == SENDER
    return deliver


def test_escape_torn_across_parts_survives_the_join() -> None:
    first = _deliver(gsm7.encode_septets("price: 5") + b"\x1b", seq=1)
    second = _deliver(b"\x65" + gsm7.encode_septets(" only"), seq=2)
    assert first.user_data.text == "price: 5"  # the lone escape alone is no character
    reassembler = Reassembler()
    assert reassembler.add(first, now=NOW) is None
    message = reassembler.add(second, now=NOW)
    assert message is not None
    assert message.text == "price: 5€ only"


def test_surrogate_pair_torn_across_ucs2_parts_survives_the_join() -> None:
    raw = "ok 😀 fine".encode("utf-16-be")
    cut = raw.index(bytes.fromhex("DE00"))  # between the high and the low surrogate
    first = _deliver(ucs2=raw[:cut], seq=1)
    second = _deliver(ucs2=raw[cut:], seq=2)
    assert first.user_data.text == "ok "
    assert second.user_data.text == " fine"
    reassembler = Reassembler()
    assert reassembler.add(second, now=NOW) is None
    message = reassembler.add(first, now=NOW)
    assert message is not None
    assert message.text == "ok 😀 fine"
    assert message.encoding is Alphabet.UCS2


def test_lone_surrogate_in_a_single_message_is_shown_as_fffd_or_rejected_when_strict() -> None:
    from modem.pdu import AnomalyCode, PduError

    tpdu = (
        bytes((0x04,))
        + bytes.fromhex("0C91447700091032")
        + bytes((0, 0x08))
        + bytes.fromhex("62301221000000")
        + bytes.fromhex("02D83D")
    )
    # Not a part of a concatenated message, so no torn pair: the high surrogate has no partner.
    with pytest.raises(PduError, match="lone surrogate") as info:
        decode_tpdu(tpdu, strict=True)
    assert info.value.octet == 19
    deliver = decode_tpdu(tpdu)
    assert isinstance(deliver, SmsDeliver) and deliver.user_data.text == "\ufffd"
    assert [(a.code, a.octet) for a in deliver.anomalies] == [(AnomalyCode.UCS2_LONE_SURROGATE, 19)]


def test_key_is_originator_reference_and_total() -> None:
    a1 = _deliver(gsm7.encode_septets("A1"), ref=5, total=2, seq=1)
    b2 = _deliver(gsm7.encode_septets("B2"), ref=5, total=3, seq=2)  # same ref, other total
    c2 = _deliver(gsm7.encode_septets("C2"), ref=6, total=2, seq=2)  # other ref
    reassembler = Reassembler()
    for part in (a1, b2, c2):
        assert reassembler.add(part, now=NOW) is None
    assert len(reassembler) == 3
    a2 = _deliver(gsm7.encode_septets("A2"), ref=5, total=2, seq=2)
    message = reassembler.add(a2, now=NOW)
    assert message is not None and message.text == "A1A2"
    assert message.reference == 5


def test_other_originator_does_not_mix() -> None:
    first = _deliver(gsm7.encode_septets("one"), seq=1)
    other = SmsDeliver(
        Address("447700900999", TypeOfNumber.INTERNATIONAL),
        NOW,
        UserData(text="two", header=UserDataHeader.for_concatenation(1, 2, 2)),
    )
    reassembler = Reassembler()
    assert reassembler.add(first, now=NOW) is None
    assert reassembler.add(other, now=NOW) is None
    assert len(reassembler) == 2


def test_repeated_part_keeps_the_first_copy() -> None:
    first = _deliver(gsm7.encode_septets("first "), seq=1)
    again = _deliver(gsm7.encode_septets("again "), seq=1)
    last = _deliver(gsm7.encode_septets("end"), seq=2)
    reassembler = Reassembler()
    assert reassembler.add(first, now=NOW) is None
    assert reassembler.add(again, now=NOW) is None
    message = reassembler.add(last, now=NOW)
    assert message is not None and message.text == "first end"


def test_expire_hands_back_what_arrived_with_first_arrival_time() -> None:
    p1 = _deliver(gsm7.encode_septets("one "), total=3, seq=1)
    p3 = _deliver(gsm7.encode_septets("three"), total=3, seq=3)
    reassembler = Reassembler()
    reassembler.add(p1, now=NOW)
    reassembler.add(p3, now=NOW + timedelta(minutes=50))
    assert reassembler.expire(NOW + timedelta(minutes=59), timedelta(hours=1)) == []
    (incomplete,) = reassembler.expire(NOW + timedelta(hours=1), timedelta(hours=1))
    assert incomplete.missing == (2,)
    assert incomplete.parts == (p1, p3)
    assert incomplete.text == "one three"
    assert incomplete.first_received == NOW
    assert incomplete.originator == SENDER
    assert (incomplete.reference, incomplete.total) == (1, 3)
    assert len(reassembler) == 0


def test_single_part_message_is_returned_at_once() -> None:
    deliver = SmsDeliver(SENDER, NOW, UserData(text="hello"))
    message = Reassembler().add(deliver, now=NOW)
    assert message is not None
    assert (message.text, message.parts, message.reference) == ("hello", (deliver,), None)
    assert message.scts == NOW
