"""The emulated network: magic numbers, report timing, TP-MR per SIM, inbound from outside."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from modem.emulator import EmulatorPool, ReportOutcome
from modem.emulator.sms import build_deliver, encode_address, encode_scts, parse_submit
from modem.pdu import (
    Address,
    Alphabet,
    MessageClass,
    Reassembler,
    SmsDeliver,
    SmsStatusReport,
    TypeOfNumber,
    decode_pdu,
    decode_tpdu,
)
from tests.emulator.ptyclient import PtyClient, client, send_text, submit_pdu

CMGL = re.compile(rb"\+CMGL: (\d+),(\d),,(\d+)\r\n([0-9A-F]+)\r\n")
CDS = re.compile(rb"\+CDS: (\d+)\r\n([0-9A-F]+)\r\n")


def _mr(answer: bytes) -> int:
    m = re.search(rb"\+CMGS: (\d+)", answer)
    assert m, answer
    return int(m.group(1))


def _listing(c: PtyClient) -> list[SmsDeliver]:
    out = []
    for _index, _stat, length, hexpdu in CMGL.findall(c.command("AT+CMGL=4")):
        pdu = decode_pdu(hexpdu.decode())
        assert isinstance(pdu.tpdu, SmsDeliver)
        assert len(bytes.fromhex(hexpdu.decode())) - 1 - bytes.fromhex(hexpdu[:2].decode())[
            0
        ] == int(length)  # <length> counts TPDU octets only (quirk 24)
        out.append(pdu.tpdu)
    return out


@pytest.mark.parametrize(
    ("destination", "statuses"),
    [
        ("+15005550000", [0x00]),
        ("+15005550001", [0x41]),
        ("+15005550002", [0x20, 0x00]),
        ("+15005550003", [0x46]),
        ("+447911123456", [0x00]),  # the outside world
    ],
)
def test_magic_numbers_drive_status_reports(destination: str, statuses: list[int]) -> None:
    with EmulatorPool(1, seed=4, report_delay=10) as pool, client(pool, 0) as a:
        a.command("AT+CNMI=2,1,0,1,0")
        mr = _mr(send_text(a, destination, "magic", status_report=True))
        assert pool.stats().reports == 0  # nothing before the configured delay
        pool.advance(10 * len(statuses))
        got = []
        for _ in statuses:
            raw = a.read_until(CDS)
            m = CDS.search(raw)
            assert m is not None
            report = decode_pdu(m.group(2).decode()).tpdu
            assert isinstance(report, SmsStatusReport)
            assert report.message_reference == mr
            assert str(report.recipient) == destination
            got.append(report.status)
        assert got == statuses


def test_no_report_number_never_reports() -> None:
    with EmulatorPool(1, seed=4) as pool, client(pool, 0) as a:
        a.command("AT+CNMI=2,1,0,1,0")
        send_text(a, "+15005550004", "silence", status_report=True)
        mr = _mr(send_text(a, "+15005550000", "loud", status_report=True))
        raw = a.read_until(CDS)
        m = CDS.search(raw)
        assert m is not None
        first = decode_pdu(m.group(2).decode()).tpdu
        assert isinstance(first, SmsStatusReport) and first.message_reference == mr
        assert pool.stats().reports == 1


def test_report_outcome_decides_per_destination() -> None:
    with EmulatorPool(1, seed=4) as pool, client(pool, 0) as a:
        outcomes = {"+447911000001": ReportOutcome.PERMANENT_FAILURE}
        pool.network.report_outcome = lambda dest: outcomes.get(dest, ReportOutcome.EXPIRED)
        a.command("AT+CNMI=2,1,0,1,0")
        send_text(a, "+447911000001", "refused", status_report=True)
        assert _report_statuses(a, 1) == [0x41]
        send_text(a, "+15005550000", "magic no more", status_report=True)
        assert _report_statuses(a, 1) == [0x46]


@pytest.mark.parametrize("code", [38, 42, 500])
def test_magic_cms_error_numbers(pool: EmulatorPool, a: PtyClient, code: int) -> None:
    hexpdu, length = submit_pdu(f"+15005551{code:03d}", "rejected")
    assert a.send_pdu(hexpdu, length) == f"\r\n+CMS ERROR: {code}\r\n".encode()
    assert pool.outside() == []


def test_tp_mr_increments_per_sim_and_wraps_at_256(pool: EmulatorPool, a: PtyClient) -> None:
    sim_a = pool.core(0).sim
    first_b = pool.call(lambda: pool.core(1).sim.next_reference)
    pool.call(lambda: setattr(sim_a, "next_reference", 254))
    refs = [_mr(send_text(a, "+447911123456", f"n{i}")) for i in range(3)]
    assert refs == [254, 255, 0]
    assert [out.message_reference for out in pool.outside()] == [254, 255, 0]
    assert [out.tpdu[1] for out in pool.outside()] == [254, 255, 0]  # stamped into TP-MR
    assert pool.call(lambda: pool.core(1).sim.next_reference) == first_b


def test_long_message_out_of_order_8bit_reference(pool: EmulatorPool, a: PtyClient) -> None:
    text = "Out of order parts must still reassemble. " * 8
    n = pool.inject_sms(pool.info()[0].msisdn, text, order=(2, 0, 1), reference=0x7F)
    assert n == 3
    parts = _listing(a)
    seqs = []
    for p in parts:
        assert p.user_data.header is not None
        conc = p.user_data.header.concatenation
        assert conc is not None and conc.ref_bits == 8 and conc.reference == 0x7F
        seqs.append(conc.sequence)
    assert seqs == [3, 1, 2]
    assembler = Reassembler()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    results = [assembler.add(p, now=now) for p in parts]
    done = [r for r in results if r is not None]
    assert len(done) == 1 and done[0].text == text


def test_sixteen_bit_reference_ucs2_emoji_and_alphanumeric_sender(
    pool: EmulatorPool, a: PtyClient
) -> None:
    text = "Grüße 😀 " * 20  # UCS-2, two parts
    pool.inject_sms(pool.info()[0].msisdn, text, sender="MyBank", ref16=True, reference=0x1234)
    parts = _listing(a)
    assert len(parts) == 3
    for p in parts:
        assert p.dcs.alphabet is Alphabet.UCS2
        assert p.originator.ton is TypeOfNumber.ALPHANUMERIC and p.originator.number == "MyBank"
        assert p.user_data.header is not None
        conc = p.user_data.header.concatenation
        assert conc is not None and conc.ref_bits == 16 and conc.reference == 0x1234
    assembler = Reassembler()
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    done = [r for r in (assembler.add(p, now=now) for p in parts) if r is not None]
    assert done[0].text == text


def test_eight_bit_data(pool: EmulatorPool, a: PtyClient) -> None:
    payload = bytes(range(0, 256, 3))
    pool.inject_sms(pool.info()[0].msisdn, None, data=payload, sender="+4915112345678")
    (p,) = _listing(a)
    assert p.dcs.alphabet is Alphabet.DATA_8BIT
    assert p.user_data.data == payload
    assert str(p.originator) == "+4915112345678"


def test_class_0_goes_to_the_te_with_mt2_and_is_stored_with_mt1(
    pool: EmulatorPool, a: PtyClient
) -> None:
    msisdn = pool.info()[0].msisdn
    a.command("AT+CNMI=2,2,0,0,0")
    pool.inject_sms(msisdn, "flash!", message_class=0)
    a.read_until(b"+CMT: ,")
    hexpdu = a.read_until(b"\r\n") and a.read_until(b"\r\n")
    deliver = decode_pdu(hexpdu.strip().decode()).tpdu
    assert isinstance(deliver, SmsDeliver)
    assert deliver.dcs.message_class is MessageClass.CLASS_0
    assert deliver.user_data.text == "flash!"
    a.command("AT+CNMI=2,1,0,0,0")
    pool.inject_sms(msisdn, "flash again", message_class=0)
    assert a.read_until(b'+CMTI: "SM",1\r\n')


def test_class_2_is_stored_even_with_mt2(pool: EmulatorPool, a: PtyClient) -> None:
    a.command("AT+CNMI=2,2,0,0,0")
    pool.inject_sms(pool.info()[0].msisdn, "SIM specific", message_class=2)
    assert a.read_until(b'+CMTI: "SM",1\r\n')


def test_smsc_transcoding_matches_the_codec() -> None:
    """The SMSC's byte-level SUBMIT -> DELIVER relay agrees with modem.pdu on every field."""
    from modem.pdu import build_submits

    when = 1767225600.0 + 3600 * 5 + 61
    for text, kw in [
        ("plain", {}),
        ("ünïcødé 😀", {"status_report": True}),
        ("long " * 60, {"ref16": True}),
    ]:
        for submit in build_submits("07700900123", text, **kw):  # type: ignore[arg-type]
            tpdu = submit.encode()
            parsed = parse_submit(tpdu)
            assert parsed.destination == "+447700900123"  # national -> +44
            deliver = build_deliver(parsed, encode_address("+447700900555"), encode_scts(when))
            decoded = decode_tpdu(deliver)
            assert isinstance(decoded, SmsDeliver)
            assert decoded.originator == Address("447700900555", TypeOfNumber.INTERNATIONAL)
            assert decoded.user_data == submit.user_data
            assert decoded.dcs == submit.dcs
            assert decoded.scts == dt.datetime.fromtimestamp(int(when), dt.UTC)
            assert decoded.status_report_indication == submit.status_report_request


def _report_statuses(c: PtyClient, count: int) -> list[int]:
    statuses = []
    for _ in range(count):
        m = CDS.search(c.read_until(CDS))
        assert m is not None
        report = decode_pdu(m.group(2).decode()).tpdu
        assert isinstance(report, SmsStatusReport)
        statuses.append(report.status)
    return statuses


def test_held_message_reports_trying_then_delivered(
    pool: EmulatorPool, a: PtyClient, b: PtyClient
) -> None:
    a.command("AT+CNMI=2,1,0,1,0")
    pool.set_fault(1, "deregister", stat=0)
    send_text(a, pool.info()[1].msisdn, "wait for me", status_report=True)
    assert _report_statuses(a, 1) == [0x20]  # temporary: SC still trying
    pool.clear_fault(1, "deregister")
    assert b.read_until(b'+CMTI: "SM",1\r\n')
    assert _report_statuses(a, 1) == [0x00]


def test_held_message_expires_after_its_validity(
    pool: EmulatorPool, a: PtyClient, b: PtyClient
) -> None:
    from modem.pdu import build_submits, encode_pdu

    a.command("AT+CNMI=2,1,0,1,0")
    pool.set_fault(1, "deregister", stat=0)
    submit = build_submits(
        pool.info()[1].msisdn, "short-lived", status_report=True, validity=dt.timedelta(minutes=5)
    )[0]
    encoded = encode_pdu(submit)
    a.send_pdu(encoded.hex, encoded.tpdu_length)
    assert _report_statuses(a, 1) == [0x20]
    pool.advance(5 * 60)
    assert _report_statuses(a, 1) == [0x46]  # validity period expired
    assert pool.call(pool.network.held, pool.info()[1].msisdn) == 0
    pool.clear_fault(1, "deregister")
    assert b.lines("AT+CMGL=4") == ["OK"]  # never delivered


def test_cnmi_mode_1_never_loses_a_cmt_while_the_link_is_reserved(
    pool: EmulatorPool, b: PtyClient
) -> None:
    b.command("AT+CNMI=1,2,0,0,0")
    hexpdu, length = submit_pdu("+447911123456", "x")
    b.send(f"AT+CMGS={length}\r")
    b.read_until(b"> ")
    pool.inject_sms(pool.info()[1].msisdn, "arrives while reserved")
    b.send(hexpdu + "\x1a")
    assert re.fullmatch(rb"\r\n\+CMGS: \d+\r\n\r\nOK\r\n", b.read_until(b"OK\r\n"))
    (stored,) = _listing(b)  # discarded indication, but the message itself was stored
    assert stored.user_data.text == "arrives while reserved"
