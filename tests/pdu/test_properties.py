"""Property tests: decode(encode(x)) == x for every field; parts never exceed the limits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from modem.pdu import (
    Address,
    Alphabet,
    ApplicationPorts,
    Concatenation,
    DataCodingScheme,
    InformationElement,
    MessageClass,
    NumberingPlan,
    Reassembler,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    TypeOfNumber,
    UserData,
    UserDataHeader,
    build_submits,
    count,
    decode_pdu,
    decode_tpdu,
    encode_pdu,
    gsm7,
    join_parts,
)
from modem.pdu.nls import NATIONAL_LOCKING_SHIFT, NATIONAL_SINGLE_SHIFT
from modem.pdu.tpdu import (
    decode_timestamp,
    encode_timestamp,
    relative_validity,
    validity_from_relative,
)

SETTINGS = settings(max_examples=150, deadline=None)

GSM7_BASIC = [c for i, c in enumerate(gsm7.DEFAULT_ALPHABET) if i != gsm7.ESCAPE]
GSM7_EXTENDED = list(gsm7.DEFAULT_EXTENSION.values())
gsm7_chars = st.sampled_from(GSM7_BASIC + GSM7_EXTENDED)
gsm7_text = st.text(gsm7_chars, max_size=400)
# UCS-2 texts: BMP letters, emoji (surrogate pairs) and GSM characters mixed in.
ucs2_chars = st.one_of(
    st.characters(min_codepoint=0x20, max_codepoint=0xD7FF),
    st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
    gsm7_chars,
)
any_text = st.one_of(gsm7_text, st.text(ucs2_chars, max_size=300))

digits = st.text(st.sampled_from("0123456789"), min_size=1, max_size=20)
numeric_address = st.builds(
    Address,
    digits,
    st.sampled_from([TypeOfNumber.UNKNOWN, TypeOfNumber.INTERNATIONAL, TypeOfNumber.NATIONAL]),
    st.sampled_from(list(NumberingPlan)),
)
alphanumeric_address = st.builds(
    Address,
    st.text(st.sampled_from(GSM7_BASIC), min_size=1, max_size=11),
    st.just(TypeOfNumber.ALPHANUMERIC),
    st.just(NumberingPlan.UNKNOWN),
)
addresses = st.one_of(numeric_address, alphanumeric_address)

offsets = st.integers(min_value=-48, max_value=56).map(
    lambda q: timezone(timedelta(minutes=15 * q))
)
timestamps = st.builds(
    lambda dt, tz: dt.replace(tzinfo=tz),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2089, 12, 31, 23, 59, 59)),
    offsets,
).map(lambda dt: dt.replace(microsecond=0))


@st.composite
def headers(draw: st.DrawFn) -> UserDataHeader | None:
    elements: list[InformationElement] = []
    if draw(st.booleans()):
        bits = draw(st.sampled_from([8, 16]))
        total = draw(st.integers(1, 255))
        concat = Concatenation(
            draw(st.integers(0, 255 if bits == 8 else 0xFFFF)),
            total,
            draw(st.integers(1, total)),
            bits,
        )
        elements.append(concat.to_element())
    if draw(st.booleans()):
        bits = draw(st.sampled_from([8, 16]))
        top = 255 if bits == 8 else 0xFFFF
        ports = ApplicationPorts(draw(st.integers(0, top)), draw(st.integers(0, top)), bits)
        elements.append(ports.to_element())
    if draw(st.booleans()):
        elements.append(InformationElement(0x70, draw(st.binary(max_size=3))))
    if not elements and draw(st.booleans()):
        return None
    return UserDataHeader(tuple(elements))


def _head_octets(header: UserDataHeader | None) -> int:
    return 0 if header is None else len(header.encode())


@st.composite
def user_data_and_dcs(draw: st.DrawFn) -> tuple[UserData, DataCodingScheme]:
    header = draw(headers())
    head = _head_octets(header)
    message_class = draw(st.one_of(st.none(), st.sampled_from(list(MessageClass))))
    alphabet = draw(st.sampled_from(list(Alphabet)))
    dcs = DataCodingScheme.for_alphabet(alphabet, message_class)
    if alphabet is Alphabet.GSM7:
        room = 160 - (head * 8 + 6) // 7
        text = draw(st.text(gsm7_chars, max_size=room))
        while gsm7.septet_length(text) > room:
            text = text[:-1]
        return UserData(text=text, header=header), dcs
    if alphabet is Alphabet.UCS2:
        room = (140 - head) // 2
        text = draw(st.text(ucs2_chars, max_size=room))
        while len(text.encode("utf-16-be")) > 140 - head:
            text = text[:-1]
        return UserData(text=text, header=header), dcs
    data = draw(st.binary(max_size=140 - head))
    return UserData(data=data, header=header), dcs


relative_periods = st.integers(0, 255).map(validity_from_relative)
validities = st.one_of(st.none(), relative_periods, timestamps)


@SETTINGS
@given(
    destination=addresses,
    ud=user_data_and_dcs(),
    mr=st.integers(0, 255),
    srr=st.booleans(),
    rd=st.booleans(),
    validity=validities,
    pid=st.integers(0, 255),
    rp=st.booleans(),
    smsc=st.one_of(st.none(), numeric_address),
)
def test_submit_roundtrip(
    destination: Address,
    ud: tuple[UserData, DataCodingScheme],
    mr: int,
    srr: bool,
    rd: bool,
    validity: timedelta | datetime | None,
    pid: int,
    rp: bool,
    smsc: Address | None,
) -> None:
    user_data, dcs = ud
    submit = SmsSubmit(destination, user_data, dcs, mr, srr, rd, validity, pid, rp)
    encoded = encode_pdu(submit, smsc)
    pdu = decode_pdu(encoded.hex)
    assert pdu.tpdu == submit
    assert pdu.smsc == smsc
    assert decode_tpdu(submit.encode()) == submit
    assert encoded.tpdu_length == len(submit.encode())


@SETTINGS
@given(
    originator=addresses,
    scts=timestamps,
    ud=user_data_and_dcs(),
    pid=st.integers(0, 255),
    mms=st.booleans(),
    sri=st.booleans(),
    rp=st.booleans(),
)
def test_deliver_roundtrip(
    originator: Address,
    scts: datetime,
    ud: tuple[UserData, DataCodingScheme],
    pid: int,
    mms: bool,
    sri: bool,
    rp: bool,
) -> None:
    user_data, dcs = ud
    deliver = SmsDeliver(originator, scts, user_data, dcs, pid, mms, sri, rp)
    assert decode_tpdu(deliver.encode()) == deliver


@SETTINGS
@given(
    mr=st.integers(0, 255),
    recipient=numeric_address,
    scts=timestamps,
    discharge=timestamps,
    status=st.integers(0, 255),
    pid=st.one_of(st.none(), st.integers(0, 255)),
    ud=st.one_of(st.none(), user_data_and_dcs()),
    srq=st.booleans(),
)
def test_status_report_roundtrip(
    mr: int,
    recipient: Address,
    scts: datetime,
    discharge: datetime,
    status: int,
    pid: int | None,
    ud: tuple[UserData, DataCodingScheme] | None,
    srq: bool,
) -> None:
    user_data, dcs = ud if ud is not None else (None, None)
    report = SmsStatusReport(mr, recipient, scts, discharge, status, pid, dcs, user_data, srq)
    assert decode_tpdu(report.encode()) == report


@SETTINGS
@given(st.binary(max_size=300).map(lambda b: bytes(x & 0x7F for x in b)), st.integers(0, 6))
def test_septet_packing_roundtrip(septets: bytes, fill: int) -> None:
    packed = gsm7.pack_septets(septets, fill)
    assert len(packed) == (len(septets) * 7 + fill + 7) // 8
    assert gsm7.unpack_septets(packed, len(septets), fill) == septets
    if septets:
        # Fill bits are zero: the packed value is the septets shifted past them.
        assert int.from_bytes(packed, "little") & ((1 << fill) - 1) == 0


NATIONAL_PAIRS = sorted(
    {(lang, 0) for lang in NATIONAL_LOCKING_SHIFT}
    | {(0, lang) for lang in NATIONAL_SINGLE_SHIFT}
    | {(lang, lang) for lang in NATIONAL_LOCKING_SHIFT if lang in NATIONAL_SINGLE_SHIFT}
)


@st.composite
def national_texts(draw: st.DrawFn) -> tuple[int, int, str]:
    locking, single = draw(st.sampled_from(NATIONAL_PAIRS))
    alphabet = sorted(chr(c) for c in gsm7._encode_table(locking, single))
    text = draw(st.text(st.sampled_from(alphabet), max_size=200))
    return locking, single, text


@SETTINGS
@given(national_texts())
def test_national_shift_tables_roundtrip(case: tuple[int, int, str]) -> None:
    locking, single, text = case
    septets = gsm7.encode_septets(text, locking, single)
    assert max(septets, default=0) < 128
    assert gsm7.decode_septets(septets, locking, single) == text


@SETTINGS
@given(any_text, st.booleans(), st.integers(0, 255))
def test_build_submits_limits_and_join(text: str, ref16: bool, reference: int) -> None:
    submits = build_submits("+447700900123", text, reference=reference, ref16=ref16)
    counted = count(text, ref16=ref16)
    assert counted.parts == len(submits)
    assert {s.dcs.alphabet for s in submits} == {counted.encoding}
    decoded: list[SmsSubmit] = []
    for seq, submit in enumerate(submits, start=1):
        tpdu = submit.encode()
        udl = tpdu[_udl_index(submit)]
        user_data_octets = len(tpdu) - _udl_index(submit) - 1
        assert user_data_octets <= 140
        if submit.dcs.alphabet is Alphabet.GSM7:
            assert udl <= 160
        back = decode_tpdu(tpdu)
        assert isinstance(back, SmsSubmit)
        assert back == submit
        # Nothing torn: each part decodes on its own to exactly its segment of the text.
        assert back.user_data.text == submit.user_data.text
        segment = submit.user_data.text or ""
        if segment:
            assert not ("\ud800" <= segment[-1] <= "\udbff")
        if len(submits) > 1:
            header = back.user_data.header
            assert header is not None
            concat = header.concatenation
            assert concat is not None
            assert (concat.reference, concat.total, concat.sequence) == (
                reference,
                len(submits),
                seq,
            )
            assert concat.ref_bits == (16 if ref16 else 8)
        decoded.append(back)
    assert join_parts(decoded)[0] == text


def _udl_index(submit: SmsSubmit) -> int:
    """Offset of TP-UDL in the encoded SMS-SUBMIT: FO, MR, DA, PID, DCS, VP."""
    encoded = submit.encode()
    da_octets = 2 + (encoded[2] + 1) // 2
    vp_octets = {0: 0, 2: 1, 3: 7}[submit.validity_format.value]
    return 2 + da_octets + 2 + vp_octets


@settings(max_examples=60, deadline=None)
@given(any_text.filter(lambda t: len(t) > 0), st.randoms(use_true_random=False))
def test_reassembly_in_any_order(text: str, rnd: random.Random) -> None:
    submits = build_submits("+447700900123", text, reference=7)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    delivers = [
        SmsDeliver(Address("447700900123", TypeOfNumber.INTERNATIONAL), now, s.user_data, s.dcs)
        for s in submits
    ]
    # Through the wire and back, so reassembly joins decoded raw user data.
    wire = [decode_tpdu(d.encode()) for d in delivers]
    rnd.shuffle(wire)
    reassembler = Reassembler()
    results = []
    for part in wire:
        assert isinstance(part, SmsDeliver)
        results.append(reassembler.add(part, now=now))
    done = [r for r in results if r is not None]
    assert len(done) == 1
    assert done[0].text == text
    assert results[-1] is done[0]
    assert len(reassembler) == 0


@settings(max_examples=60, deadline=None)
@given(st.text(gsm7_chars, min_size=200, max_size=600), st.data())
def test_expired_parts_are_handed_back(text: str, data: st.DataObject) -> None:
    submits = build_submits("12345", text, reference=9)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    wire = [
        decode_tpdu(SmsDeliver(Address("12345"), now, s.user_data, s.dcs).encode()) for s in submits
    ]
    keep = data.draw(
        st.lists(st.integers(0, len(wire) - 1), min_size=1, max_size=len(wire) - 1, unique=True)
    )
    reassembler = Reassembler()
    for i in keep:
        part = wire[i]
        assert isinstance(part, SmsDeliver)
        assert reassembler.add(part, now=now) is None
    assert reassembler.expire(now + timedelta(minutes=1), timedelta(hours=1)) == []
    (incomplete,) = reassembler.expire(now + timedelta(hours=2), timedelta(hours=1))
    assert len(reassembler) == 0
    assert [p.user_data.header.concatenation.sequence for p in incomplete.parts] == sorted(  # type: ignore[union-attr]
        i + 1 for i in keep
    )
    assert incomplete.missing == tuple(s for s in range(1, len(wire) + 1) if s - 1 not in keep)
    assert incomplete.text is not None
    for i in keep:
        assert (submits[i].user_data.text or "") in incomplete.text


@given(st.integers(0, 255))
def test_relative_validity_roundtrip(vp: int) -> None:
    assert relative_validity(validity_from_relative(vp)) == vp


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(weeks=63)))
def test_relative_validity_rounds_up(period: timedelta) -> None:
    vp = relative_validity(period)
    assert validity_from_relative(vp) >= period
    if vp > 0:
        assert validity_from_relative(vp - 1) < period


@given(timestamps)
def test_timestamp_roundtrip(when: datetime) -> None:
    assert decode_timestamp(encode_timestamp(when), 0) == when
