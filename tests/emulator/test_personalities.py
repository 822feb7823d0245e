"""Vendor quirks the personalities reproduce, byte for byte where it matters."""

from __future__ import annotations

import re

import pytest

from modem.emulator import PERSONALITIES, EmulatorPool, get_personality
from modem.pdu import SmsStatusReport, decode_pdu
from tests.emulator.ptyclient import FINAL, PtyClient, client, submit_pdu


def test_every_personality_boots_and_answers_basic_commands() -> None:
    with EmulatorPool(list(PERSONALITIES), seed=9) as pool:
        pool.boot()
        for i, info in enumerate(pool.info()):
            with client(pool, i) as c:
                p = PERSONALITIES[info.personality]
                assert c.lines("AT+CGMI")[0] == p.manufacturer.strip() or p.name == "wavecom"
                assert c.lines("AT+CGSN") == [info.imei, "OK"]
                assert c.lines("AT+CIMI") == [info.imsi, "OK"]
                assert c.lines("AT+CMGF=0") == ["OK"]


def test_unknown_personality_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="known: generic"):
        get_personality("nokia3310")


def test_huawei_noise_framing_command_not_support_and_ussd_mode() -> None:
    with EmulatorPool(["huawei"], seed=1) as pool, PtyClient(pool.path(0)) as c:
        c.command("ATE0")
        pool.advance(3)  # one ^-URC, framed without the leading CR LF
        assert re.fullmatch(rb"\^[A-Z]+:[^\r\n]*\r\n", c.read_until(b"\r\n"))
        assert c.command("AT+WIND?") == b"\r\nCOMMAND NOT SUPPORT\r\n"
        assert c.command('AT+CUSD=1,"*100#",15') == b"\r\nERROR\r\n"  # ^USSDMODE=1 default
        assert c.command("AT^USSDMODE=0") == b"\r\nOK\r\n"
        assert c.command('AT+CUSD=1,"*100#",15') == b"\r\nOK\r\n"
        assert c.read_until(b",15\r\n").startswith(b"\r\n+CUSD: 0,")
        assert c.command("AT^CURC=0") == b"\r\nOK\r\n"
        pool.advance(30)
        assert c.command("AT") == b"\r\nOK\r\n"  # no more noise
        c.command('AT+CPMS="SM"')
        pool.inject_sms(pool.info()[0].msisdn, "index zero")
        assert c.read_until(b"\r\n+CMTI: ") and c.read_until(b"\r\n") == b'"SM",0\r\n'


def test_huawei_echo_ends_with_cr_cr_lf() -> None:
    with EmulatorPool(["huawei"], seed=1) as pool, PtyClient(pool.path(0)) as c:
        assert c.command('AT+CPMS="SM","SM"').startswith(b'AT+CPMS="SM","SM"\r\r\n+CPMS: ')


def test_sim800_refuses_sms_commands_until_sms_ready_and_prompts_without_space() -> None:
    with EmulatorPool(["sim800"], seed=1) as pool, PtyClient(pool.path(0)) as c:
        c.command("ATE0")
        assert c.command("AT+CMGF=0") == b"\r\nERROR\r\n"
        pool.advance(10)
        c.read_until(b"SMS Ready\r\n")
        assert c.command("AT+CMGF=0") == b"\r\nOK\r\n"
        hexpdu, length = submit_pdu("+447911123456", "x")
        c.send(f"AT+CMGS={length}\r")
        assert c.read_until(b">") == b"\r\n>"
        c.send(hexpdu + "\x1a")
        assert c.read_until(FINAL).startswith(b"\r\n+CMGS: ")


def test_ec25_announces_an_sr_report_as_sm_and_cmgr_on_sm_is_empty() -> None:
    with EmulatorPool(["ec25"], seed=1) as pool, client(pool, 0) as c:
        c.command("AT+CNMI=2,1,0,2,0")
        hexpdu, length = submit_pdu("+447911123456", "report", status_report=True)
        c.send_pdu(hexpdu, length)
        assert c.read_until(b'+CDSI: "SM",0\r\n')
        assert c.command("AT+CMGR=0") == b"\r\nOK\r\n"  # the trap: SM slot 0 is empty
        c.command('AT+CPMS="SR"')
        raw = c.command("AT+CMGR=0")
        report = decode_pdu(raw.split(b"\r\n")[2].decode()).tpdu
        assert isinstance(report, SmsStatusReport)


def test_wavecom_cpin_has_no_ok_and_is_busy_after_cfun() -> None:
    with EmulatorPool(["wavecom"], seed=1) as pool, client(pool, 0) as c:
        c.send("AT+CPIN?\r")
        assert c.read_until(b"READY\r\n") == b"\r\n+CPIN: READY\r\n"
        assert c.command("AT+CFUN=1") == b"\r\nOK\r\n"  # no stray OK from +CPIN? before it
        assert c.command("AT+CSQ") == b"\r\n+CME ERROR: 515\r\n"
        assert c.command("AT+CSQ") == b"\r\n+CME ERROR: 515\r\n"
        assert c.command("AT+CSQ") == b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"
        assert c.lines("AT+CGMM") == [" MULTIBAND  900E  1800 ", "OK"]


def test_zte_cpms_spaces_noise_and_odd_answers() -> None:
    with EmulatorPool(["zte"], seed=1) as pool, client(pool, 0) as c:
        pool.boot()  # past the SIM-busy start-up
        assert c.lines("AT+CPMS?") == ['+CPMS: "SM", 0, 50, "SM", 0, 50, "SM", 0, 50', "OK"]
        assert c.lines("AT+CFUN?") == ["+CFUN: (0-1,4-7),(0-1)", "OK"]
        assert c.lines("AT+ZPAS?") == ['+BEARTYPE: "UMTS","CS_PS"', "OK"]
        pool.advance(5)
        assert c.read_until(b"+ZUSIMR:2\r\n")


@pytest.mark.parametrize(
    ("name", "command", "prefix"),
    [
        ("huawei", "AT^ICCID?", "^ICCID: "),
        ("ec25", "AT+QCCID", "+QCCID: "),
        ("sim7600", "AT+CICCID", "+ICCID: "),
        ("zte", "AT+ZGETICCID", "+ZGETICCID: "),
        ("generic", "AT+CCID", "+CCID: "),
    ],
)
def test_vendor_iccid_commands(name: str, command: str, prefix: str) -> None:
    with EmulatorPool([name], seed=1) as pool, client(pool, 0) as c:
        assert c.lines(command) == [prefix + pool.info()[0].iccid, "OK"]


def test_zte_sim_is_busy_right_after_boot() -> None:
    with EmulatorPool(["zte"], seed=1) as pool, client(pool, 0) as c:
        assert c.lines("AT+CSCA?") == ["+CME ERROR: 14"]  # qualcomm-m6280-zte.txt
        assert c.lines("AT+CGMI") == ["ZTE INCORPORATED", "OK"]  # not a SIM command
        pool.advance(2)
        assert c.lines("AT+CSCA?") == ['+CSCA: "+447700900000",145', "OK"]


def test_m35_unknown_commands_are_cme_100_and_ussd_is_ucs2_hex() -> None:
    with EmulatorPool(["m35"], seed=1) as pool, client(pool, 0) as c:
        assert c.lines("AT+MODE=2") == ["+CME ERROR: 100"]  # quectel-m35.txt
        c.command('AT+CUSD=1,"*100#",15')
        line = c.read_until(b",15\r\n").strip().decode()
        payload = line.split('"')[1]
        assert bytes.fromhex(payload).decode("utf-16-be").startswith("Your balance is")


def test_cinterion_storage_rules_and_sysstart() -> None:
    with EmulatorPool(["cinterion"], seed=1) as pool, PtyClient(pool.path(0)) as c:
        pool.advance(1)
        assert c.read_until(b"^SYSSTART\r\n") == b"\r\n^SYSSTART\r\n"
        c.command("ATE0")
        assert c.lines('AT+CPMS="ME","ME","ME"') == ["ERROR"]  # mem3 cannot be ME
        assert c.lines('AT+CPMS="ME","ME","MT"') == ["+CPMS: 0,25,0,25,0,45", "OK"]
        assert c.lines("ATI5") == ["OK"]
