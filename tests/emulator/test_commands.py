"""The emulated modem's AT commands as a client sees them on the PTY."""

from __future__ import annotations

import re

from modem.emulator import EmulatorPool
from modem.emulator.device import ACK_TIMEOUT, NACK_RETRY
from modem.pdu import SmsDeliver, SmsStatusReport, decode_pdu
from tests.emulator.ptyclient import PtyClient, client, send_text, submit_pdu


def _cmgs_reference(answer: bytes) -> int:
    m = re.search(rb"\+CMGS: (\d+)", answer)
    assert m, answer
    return int(m.group(1))


def _pdu_after(raw: bytes, header: bytes) -> str:
    """The hex line that follows an info line starting with header."""
    lines = raw.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.startswith(header):
            return lines[i + 1].decode()
    raise AssertionError(f"no {header!r} in {raw!r}")


def test_echo_is_on_at_power_up_and_ate0_turns_it_off(pool: EmulatorPool) -> None:
    with PtyClient(pool.path(0)) as c:
        assert c.command("AT") == b"AT\r\r\nOK\r\n"
        assert c.command("ATE0") == b"ATE0\r\r\nOK\r\n"
        assert c.command("AT") == b"\r\nOK\r\n"


def test_identification_matches_the_sim_and_modem(pool: EmulatorPool, a: PtyClient) -> None:
    info = pool.info()[0]
    assert a.lines("AT+CGMI") == ["smsgw", "OK"]
    assert a.lines("AT+CGSN") == [info.imei, "OK"]
    assert a.lines("AT+CIMI") == [info.imsi, "OK"]
    assert a.lines("AT+CCID") == [f"+CCID: {info.iccid}", "OK"]
    assert a.lines("AT+CNUM") == [f'+CNUM: "","{info.msisdn}",145', "OK"]
    assert a.lines("AT+CGMM;+CGMR") == ["Emulated GSM Modem", "emulator-1.0", "OK"]


def test_error_format_follows_cmee(a: PtyClient) -> None:
    a.command("AT+CMEE=0")
    assert a.lines('AT+CPIN="1234"') == ["ERROR"]
    a.command("AT+CMEE=1")
    assert a.lines('AT+CPIN="1234"') == ["+CME ERROR: 3"]
    a.command("AT+CMEE=2")
    assert a.lines('AT+CPIN="1234"') == ["+CME ERROR: operation not allowed"]
    assert a.lines("AT+NOSUCH") == ["ERROR"]  # unknown commands: plain ERROR (quectel-ec25.txt)


def test_three_wrong_pins_block_the_sim_until_the_puk() -> None:
    with EmulatorPool(1, seed=3, pin_enabled=True) as pool:
        ident = pool.network.subscribers[pool.info()[0].msisdn].sim.identity
        with client(pool, 0) as c:
            assert c.lines("AT+CPIN?") == ["+CPIN: SIM PIN", "OK"]
            assert c.lines("AT+CIMI") == ["+CME ERROR: 11"]
            assert c.lines("AT+CPMS?") == ["+CMS ERROR: 311"]
            assert c.lines("AT+CREG?") == ["+CREG: 0,0", "OK"]
            wrong = "0000" if ident.pin != "0000" else "1111"
            for _ in range(3):
                assert c.lines(f'AT+CPIN="{wrong}"') == ["+CME ERROR: 16"]
            assert c.lines("AT+CPIN?") == ["+CPIN: SIM PUK", "OK"]
            assert c.lines(f'AT+CPIN="{ident.pin}"') == ["+CME ERROR: 16"]  # PUK needed now
            assert c.lines("AT+CIMI") == ["+CME ERROR: 12"]
            assert c.lines(f'AT+CPIN="{ident.puk}","4321"') == ["OK"]
            assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
            assert c.lines("AT+CREG?") == ["+CREG: 0,1", "OK"]
            assert c.lines("AT+CIMI") == [ident.imsi, "OK"]


def test_cpms_lists_storages_with_capacities_and_always_three_pairs(a: PtyClient) -> None:
    assert a.lines("AT+CPMS=?") == [
        '+CPMS: ("SM","ME","MT","SR"),("SM","ME","MT","SR"),("SM","ME","MT","SR")',
        "OK",
    ]
    assert a.lines('AT+CPMS="ME"') == ["+CPMS: 0,100,0,30,0,30", "OK"]
    assert a.lines("AT+CPMS?") == ['+CPMS: "ME",0,100,"SM",0,30,"SM",0,30', "OK"]
    assert a.lines('AT+CPMS="MT","SR","SM"') == ["+CPMS: 0,130,0,50,0,30", "OK"]
    assert a.lines('AT+CPMS="XX"') == ["+CMS ERROR: 302"]


def test_cnmi_test_answer_and_range_check(a: PtyClient) -> None:
    assert a.lines("AT+CNMI=?") == ["+CNMI: (0-3),(0-3),(0-3),(0-2),(0,1)", "OK"]
    assert a.lines("AT+CNMI=2,1,0,1,0") == ["OK"]
    assert a.lines("AT+CNMI?") == ["+CNMI: 2,1,0,1,0", "OK"]
    assert a.lines("AT+CNMI=4") == ["+CMS ERROR: 303"]
    assert a.lines("AT+CNMI=2,1,0,3") == ["+CMS ERROR: 303"]


def test_sms_between_two_modems_with_cmti_cmgr_cmgl_cmgd(
    pool: EmulatorPool, a: PtyClient, b: PtyClient
) -> None:
    info_a, info_b = pool.info()
    answer = send_text(a, info_b.msisdn, "hello b")
    assert answer.endswith(b"\r\nOK\r\n")
    assert b.read_until(b"\r\n") + b.read_until(b"\r\n") == b'\r\n+CMTI: "SM",1\r\n'
    raw = b.command("AT+CMGR=1")
    assert raw.startswith(b"\r\n+CMGR: 0,,")
    pdu = decode_pdu(_pdu_after(raw, b"+CMGR:"))
    assert isinstance(pdu.tpdu, SmsDeliver)
    assert str(pdu.tpdu.originator) == info_a.msisdn
    assert pdu.tpdu.user_data.text == "hello b"
    assert pdu.smsc is not None and str(pdu.smsc) == "+447700900000"
    assert b.command("AT+CMGR=1").startswith(b"\r\n+CMGR: 1,,")  # now REC READ
    assert b.lines("AT+CMGL=0") == ["OK"]  # nothing unread
    assert b.lines("AT+CMGL=4")[0].startswith("+CMGL: 1,1,,")
    assert b.lines("AT+CMGD=1") == ["OK"]
    assert b.lines("AT+CMGL=4") == ["OK"]
    assert b.lines("AT+CMGR=1") == ["OK"]  # empty slot
    assert b.lines("AT+CMGR=31") == ["+CMS ERROR: 321"]  # outside SM


def test_cmgd_delflag_deletes_by_status(pool: EmulatorPool, b: PtyClient) -> None:
    msisdn = pool.info()[1].msisdn
    for text in ("one", "two", "three"):
        pool.inject_sms(msisdn, text)
        b.read_until(b"+CMTI")
    b.command("AT+CMGR=2")  # read one of them
    assert b.lines("AT+CMGD=1,1") == ["OK"]  # delete all READ
    assert [x[:9] for x in b.lines("AT+CMGL=4") if x.startswith("+CMGL")] == [
        "+CMGL: 1,",
        "+CMGL: 3,",
    ]
    assert b.lines("AT+CMGD=0,4") == ["OK"]  # delete everything
    assert b.lines("AT+CMGL=4") == ["OK"]


def test_cmt_needs_cnma_when_csms_is_1(pool: EmulatorPool, a: PtyClient, b: PtyClient) -> None:
    b.command("AT+CSMS=1")
    b.command("AT+CNMI=2,2,0,0,0")
    assert b.lines("AT+CNMA") == ["+CMS ERROR: 340"]  # nothing to acknowledge
    send_text(a, pool.info()[1].msisdn, "direct")
    raw = b.read_until(b"\r\n", timeout=5) + b.read_until(b"\r\n") + b.read_until(b"\r\n")
    assert raw.startswith(b"\r\n+CMT: ,")
    pdu = decode_pdu(_pdu_after(raw, b"+CMT:"))
    assert isinstance(pdu.tpdu, SmsDeliver) and pdu.tpdu.user_data.text == "direct"
    assert b.lines("AT+CNMA") == ["OK"]
    assert b.lines("AT+CNMA") == ["+CMS ERROR: 340"]
    assert b.lines("AT+CMGL=4") == ["OK"]  # +CMT messages are not stored


def test_cnma_2_refuses_the_cmt_and_the_smsc_sends_it_again(
    pool: EmulatorPool, a: PtyClient, b: PtyClient
) -> None:
    # TS 27.005 3.4.4, PDU mode: +CNMA=2 sends RP-ERROR; the message stays with the SMSC.
    b.command("AT+CSMS=1")
    b.command("AT+CNMI=2,2,0,0,0")
    send_text(a, pool.info()[1].msisdn, "refused once")
    b.read_until(b"+CMT: ")
    b.read_until(b"\r\n")  # length
    first = b.read_until(b"\r\n").strip()  # PDU
    assert b.lines("AT+CNMA=2") == ["OK"]
    assert b.lines("AT+CNMA") == ["+CMS ERROR: 340"]  # nothing waits any more
    pool.advance(NACK_RETRY)
    b.read_until(b"+CMT: ")
    b.read_until(b"\r\n")
    assert b.read_until(b"\r\n").strip() == first  # the same message again
    assert b.lines("AT+CNMA=0") == ["OK"]
    pool.advance(ACK_TIMEOUT + NACK_RETRY)
    assert b.lines("AT+CNMI?") == ["+CNMI: 2,2,0,0,0", "OK"]  # routing never stopped
    assert b.lines("AT+CMGL=4") == ["OK"]  # and nothing was stored
    assert b.lines("AT+CNMA=3") == ["+CMS ERROR: 303"]
    b.command("AT+CMGF=1")
    assert b.lines("AT+CNMA=2") == ["+CMS ERROR: 303"]  # text mode takes no <n>


def test_unacknowledged_cmt_stops_routing_and_the_message_is_stored(
    pool: EmulatorPool, a: PtyClient, b: PtyClient
) -> None:
    b.command("AT+CSMS=1")
    b.command("AT+CNMI=2,2,0,0,0")
    send_text(a, pool.info()[1].msisdn, "no ack")
    b.read_until(b"+CMT: ")
    b.read_until(b"\r\n")  # length
    b.read_until(b"\r\n")  # PDU
    pool.advance(16)  # TS 27.005: no +CNMA in time -> <mt>=<ds>=0
    assert b.lines("AT+CNMI?") == ["+CNMI: 2,0,0,0,0", "OK"]
    listing = b.lines("AT+CMGL=4")
    assert listing[0].startswith("+CMGL: 1,0,,")


def test_status_reports_inline_cds_and_stored_cdsi(
    pool: EmulatorPool, a: PtyClient, b: PtyClient
) -> None:
    dest = pool.info()[1].msisdn
    a.command("AT+CNMI=2,1,0,1,0")
    mr = _cmgs_reference(send_text(a, dest, "report me", status_report=True))
    a.read_until(b"+CDS: ")
    raw = a.read_until(b"\r\n") + a.read_until(b"\r\n")
    report = decode_pdu(raw.split(b"\r\n")[1].decode()).tpdu
    assert isinstance(report, SmsStatusReport)
    assert report.message_reference == mr
    assert report.status == 0
    assert str(report.recipient) == dest

    a.command("AT+CNMI=2,1,0,2,0")
    mr2 = _cmgs_reference(send_text(a, dest, "report me too", status_report=True))
    assert mr2 == (mr + 1) % 256
    assert a.read_until(re.compile(rb'\+CDSI: "SR",\d+\r\n')).endswith(b'+CDSI: "SR",1\r\n')
    a.command('AT+CPMS="SR"')
    stored = decode_pdu(_pdu_after(a.command("AT+CMGR=1"), b"+CMGR:")).tpdu
    assert isinstance(stored, SmsStatusReport) and stored.message_reference == mr2


def test_cnmi_mode_0_buffers_in_the_ta_until_mode_2_flushes_after_ok(
    pool: EmulatorPool, b: PtyClient
) -> None:
    b.command("AT+CNMI=0,1,0,0,0")
    pool.inject_sms(pool.info()[1].msisdn, "buffered")
    assert b.command("AT+CNMI=2,1,0,0,0") == b"\r\nOK\r\n"  # OK first, then the buffer
    assert b.read_until(b'+CMTI: "SM",1\r\n')


def test_cnmi_mode_3_sends_indications_inside_the_cmgs_prompt(
    pool: EmulatorPool, b: PtyClient
) -> None:
    b.command("AT+CNMI=3,1,0,0,0")
    hexpdu, length = submit_pdu("+447911123456", "x")
    b.send(f"AT+CMGS={length}\r")
    assert b.read_until(b"> ") == b"\r\n> "
    pool.inject_sms(pool.info()[1].msisdn, "while you type")
    assert b.read_until(b"\r\n", 5) + b.read_until(b"\r\n") == b'\r\n+CMTI: "SM",1\r\n'
    b.send(hexpdu + "\x1a")
    assert b.read_until(b"OK\r\n").startswith(b"\r\n+CMGS: ")


def test_cnmi_mode_2_holds_indications_until_the_cmgs_answer_ends(
    pool: EmulatorPool, b: PtyClient
) -> None:
    b.command("AT+CNMI=2,1,0,0,0")
    hexpdu, length = submit_pdu("+447911123456", "x")
    b.send(f"AT+CMGS={length}\r")
    b.read_until(b"> ")
    pool.inject_sms(pool.info()[1].msisdn, "while you type")
    b.send(hexpdu + "\x1a")
    answer = b.read_until(b'+CMTI: "SM",1\r\n')
    assert re.fullmatch(rb'\r\n\+CMGS: \d+\r\n\r\nOK\r\n\r\n\+CMTI: "SM",1\r\n', answer)


def test_cmgs_rejects_a_wrong_length_and_escape_cancels(pool: EmulatorPool, a: PtyClient) -> None:
    hexpdu, length = submit_pdu("+447911123456", "hello")
    assert a.send_pdu(hexpdu, length + 1) == b"\r\n+CMS ERROR: 304\r\n"
    a.send(f"AT+CMGS={length}\r")
    a.read_until(b"> ")
    a.send(hexpdu + "\x1b")
    assert a.read_until(b"OK\r\n") == b"\r\nOK\r\n"
    assert pool.outside() == []
    assert a.lines("AT+CMGS=3") == ["+CMS ERROR: 304"]  # too short to be a TPDU


def test_outside_world_records_what_leaves_the_network(pool: EmulatorPool, a: PtyClient) -> None:
    send_text(a, "+447911123456", "to the world")
    (out,) = pool.outside()
    assert out.destination == "+447911123456"
    assert out.sender == pool.info()[0].msisdn
    sub = decode_pdu(out.tpdu, smsc_included=False).tpdu
    assert sub.user_data.text == "to the world"


def test_cusd_balance_answer_follows_ok_and_drops_per_sms(a: PtyClient) -> None:
    assert a.command('AT+CUSD=1,"*100#",15') == b"\r\nOK\r\n"
    assert a.read_until(b",15\r\n") == b'\r\n+CUSD: 0,"Your balance is 10.00 EUR.",15\r\n'
    send_text(a, "+447911123456", "costs 5 cents")
    a.command('AT+CUSD=1,"*100#",15')
    assert b"9.95 EUR" in a.read_until(b",15\r\n")


def test_cfun_0_deregisters_and_sending_fails(a: PtyClient) -> None:
    a.command("AT+CFUN=0")
    assert a.lines("AT+CREG?") == ["+CREG: 0,0", "OK"]
    hexpdu, length = submit_pdu("+447911123456", "no radio")
    assert a.send_pdu(hexpdu, length) == b"\r\n+CMS ERROR: 331\r\n"
    a.command("AT+CFUN=1")
    assert a.lines("AT+CREG?") == ["+CREG: 0,1", "OK"]


def test_creg_unsolicited_codes_follow_registration(a: PtyClient) -> None:
    a.command("AT+CREG=2")
    assert a.lines("AT+CREG?") == ['+CREG: 2,1,"00A1","0000B2C3"', "OK"]
    a.command("AT+CFUN=4")
    assert a.read_until(b"+CREG: 0\r\n")


def test_packet_registration_attach_and_the_operator_name_format(a: PtyClient) -> None:
    # What gammu's GetNetworkInfo reads (TS 27.007 10.1.20, 10.1.9, 7.3).
    assert a.lines("AT+CGREG=?") == ["+CGREG: (0-2)", "OK"]
    assert a.lines("AT+CGREG?") == ["+CGREG: 0,1", "OK"]
    a.command("AT+CGREG=2")
    assert a.lines("AT+CGREG?") == ['+CGREG: 2,1,"00A1","0000B2C3"', "OK"]
    assert a.lines("AT+CGREG=3") == ["+CME ERROR: 4"]  # operation not supported
    assert a.lines("AT+CGATT?") == ["+CGATT: 1", "OK"]
    assert a.lines("AT+COPS=3,2;+COPS?") == ['+COPS: 0,2,"00101",0', "OK"]
    assert a.lines("AT+COPS=3,1;+COPS?") == ['+COPS: 0,1,"smsgw",0', "OK"]
    assert a.lines("AT+COPS=3,0;+COPS?") == ['+COPS: 0,0,"smsgw emulated",0', "OK"]
    a.command("AT+CFUN=4")
    assert a.read_until(b"+CGREG: 0\r\n")
    assert a.lines("AT+CGATT?") == ["+CGATT: 0", "OK"]


def test_text_mode_send_of_a_single_part(pool: EmulatorPool, a: PtyClient) -> None:
    a.command("AT+CMGF=1")
    a.send('AT+CMGS="+447911123456"\r')
    a.read_until(b"> ")
    a.send("plain text\x1a")
    assert a.read_until(b"OK\r\n").startswith(b"\r\n+CMGS: ")
    sub = decode_pdu(pool.outside()[0].tpdu, smsc_included=False).tpdu
    assert sub.user_data.text == "plain text"


def test_command_chaining_and_basic_commands(a: PtyClient) -> None:
    assert a.lines("AT&FZE0V1Q0X4&C1&D2") == ["OK"]
    assert a.lines("ATE0+CMEE=2;+CMEE?") == ["+CMEE: 2", "OK"]
    assert a.lines("ATI")[0] == "smsgw"
    assert a.lines("AT+CMEE=1;+NOSUCH;+CMEE=0") == ["ERROR"]  # stops at the first error
    assert a.lines("AT+CMEE?") == ["+CMEE: 1", "OK"]


def test_text_mode_listing_and_reading(pool: EmulatorPool, a: PtyClient) -> None:
    msisdn = pool.info()[0].msisdn
    pool.inject_sms(msisdn, "plain words", sender="+4915112345678")
    pool.inject_sms(msisdn, "emoji 😀", sender="MyBank")
    a.read_until(b'+CMTI: "SM",2\r\n')
    a.command("AT+CMGF=1")
    assert a.lines('AT+CMGL="ALL"') == [
        '+CMGL: 1,"REC UNREAD","+4915112345678",,"26/01/01,00:00:00+00"',
        "plain words",
        '+CMGL: 2,"REC UNREAD","MyBank",,"26/01/01,00:00:00+00"',
        "emoji 😀".encode("utf-16-be").hex().upper(),
        "OK",
    ]
    assert a.lines("AT+CMGR=1")[0] == '+CMGR: "REC READ","+4915112345678",,"26/01/01,00:00:00+00"'
    assert a.lines('AT+CMGL="REC UNREAD"') == ["OK"]
    assert a.lines('AT+CMGL="NOPE"') == ["+CMS ERROR: 302"]


def test_text_mode_status_report(pool: EmulatorPool, a: PtyClient) -> None:
    a.command("AT+CNMI=2,1,0,2,0")
    send_text(a, "+15005550001", "fails", status_report=True)
    a.read_until(b'+CDSI: "SR",1\r\n')
    a.command("AT+CMGF=1")
    a.command('AT+CPMS="SR"')
    line = a.lines("AT+CMGR=1")[0]
    assert re.fullmatch(r'\+CMGR: "REC UNREAD",6,\d+,"\+15005550001",145,"[^"]+","[^"]+",65', line)
