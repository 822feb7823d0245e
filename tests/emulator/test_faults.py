"""Each fault as a client sees it on the PTY."""

from __future__ import annotations

import errno
import os
import re
import select
from pathlib import Path

import pytest

from modem.emulator import EmulatorPool
from modem.pdu import decode_pdu
from tests.emulator.ptyclient import FINAL, PtyClient, client, send_text, submit_pdu


def test_hang_swallows_commands_until_cleared(pool: EmulatorPool, a: PtyClient) -> None:
    pool.set_fault(0, "hang")
    before = pool.call(lambda: pool.core(0).bytes_in)
    a.send("AT+CGMI\r")
    pool.wait_for_input(0, before + 8)  # the modem has read it (and dropped it)
    pool.clear_fault(0, "hang")
    # The first answer on the line is the one to the command sent after the hang ended.
    assert a.command("AT+CGSN") == f"\r\n{pool.info()[0].imei}\r\n\r\nOK\r\n".encode()


def test_unplug_closes_the_pty_and_the_modem_returns_under_a_new_path(
    pool: EmulatorPool, a: PtyClient
) -> None:
    before = pool.info()[0]
    a.command("AT+CMEE=2")
    new_path = pool.unplug(0, seconds=5)
    assert new_path != before.path
    assert pool.path(0) == ""  # gone while unplugged
    ready, _, _ = select.select([a.fd], [], [], 5)
    assert ready  # the hang-up is readable: end of file, like a vanished ttyUSB
    try:
        assert os.read(a.fd, 100) == b""
    except OSError as exc:
        assert exc.errno == errno.EIO
    with pytest.raises(OSError) as exc_info:
        os.write(a.fd, b"AT\r")
    assert exc_info.value.errno == errno.EIO
    pool.advance(5)
    after = pool.info()[0]
    assert after.path == new_path
    assert (after.imsi, after.iccid, after.msisdn) == (before.imsi, before.iccid, before.msisdn)
    with PtyClient(new_path) as c:
        assert c.command("AT") == b"AT\r\r\nOK\r\n"  # fresh boot: echo on, settings lost
        assert c.lines("AT+CMEE?")[-2:] == ["+CMEE: 0", "OK"]


def test_reboot_sends_boot_urcs_and_loses_settings() -> None:
    with EmulatorPool(["sim800"], seed=2) as pool:
        pool.boot()
        with client(pool, 0) as c:
            c.command("AT+CNMI=2,2,0,0,0")
            pool.set_fault(0, "reboot")
            assert c.command("AT+CMGF=0") == b"AT+CMGF=0\r\r\nERROR\r\n"  # before SMS Ready
            pool.advance(5)
            urcs = c.read_until(b"SMS Ready\r\n")
            assert re.findall(rb"\r\n([^\r\n]+)\r\n", urcs) == [
                b"RDY",
                b"+CPIN: READY",
                b"Call Ready",
                b"SMS Ready",
            ]
            assert c.command("AT+CMGF=0") == b"AT+CMGF=0\r\r\nOK\r\n"
            assert c.lines("AT+CNMI?")[-2:] == ["+CNMI: 2,1,0,0,0", "OK"]  # default again


def test_slow_radio_holds_the_cmgs_answer_until_time_passes(
    pool: EmulatorPool, a: PtyClient
) -> None:
    pool.set_fault(0, "slow_radio", seconds=3)
    hexpdu, length = submit_pdu("+447911123456", "slow")
    a.send(f"AT+CMGS={length}\r")
    a.read_until(b"> ")
    before = pool.call(lambda: pool.core(0).bytes_in)
    a.send(hexpdu + "\x1a")
    a.send("AT+CGMI\r")  # typed while the radio is busy: answered afterwards
    pool.wait_for_input(0, before + len(hexpdu) + 1 + 8)
    pool.advance(2.9)
    assert pool.stats().submitted == 0
    assert a.buffer == b""
    pool.advance(0.1)
    assert re.fullmatch(rb"\r\n\+CMGS: \d+\r\n\r\nOK\r\n", a.read_until(FINAL))
    assert a.read_until(FINAL) == b"\r\nsmsgw\r\n\r\nOK\r\n"
    assert pool.stats().submitted == 1


@pytest.mark.parametrize("code", [500, 38, 42])
def test_cms_error_fault(pool: EmulatorPool, a: PtyClient, code: int) -> None:
    pool.set_fault(0, "cms_error", code=code, rate=1.0)
    hexpdu, length = submit_pdu("+447911123456", "x")
    assert a.send_pdu(hexpdu, length) == f"\r\n+CMS ERROR: {code}\r\n".encode()
    pool.clear_fault(0, "cms_error")
    assert a.send_pdu(hexpdu, length).endswith(b"OK\r\n")


def test_cms_error_rate_fails_some_sends(pool: EmulatorPool, a: PtyClient) -> None:
    pool.set_fault(0, "cms_error", code=500, rate=0.5)
    hexpdu, length = submit_pdu("+447911123456", "x")
    answers = [a.send_pdu(hexpdu, length) for _ in range(30)]
    failures = sum(ans == b"\r\n+CMS ERROR: 500\r\n" for ans in answers)
    assert 5 < failures < 25
    assert failures + sum(ans.endswith(b"OK\r\n") for ans in answers) == 30


def test_deregistration_fails_sends_and_holds_inbound(pool: EmulatorPool, a: PtyClient) -> None:
    msisdn = pool.info()[0].msisdn
    a.command("AT+CREG=1")
    pool.set_fault(0, "deregister", stat=2)
    assert a.read_until(b"+CREG: 2\r\n")
    assert a.lines("AT+CREG?") == ["+CREG: 1,2", "OK"]
    assert a.lines("AT+CSQ") == ["+CSQ: 99,99", "OK"]
    hexpdu, length = submit_pdu("+447911123456", "x")
    assert a.send_pdu(hexpdu, length) == b"\r\n+CMS ERROR: 331\r\n"
    pool.inject_sms(msisdn, "waiting at the SMSC")
    assert pool.call(pool.network.held, msisdn) == 1
    pool.clear_fault(0, "deregister")
    assert a.read_until(b"+CREG: 1\r\n")
    assert a.read_until(b'+CMTI: "SM",1\r\n')
    assert pool.call(pool.network.held, msisdn) == 0


def test_storage_full_stops_cmti_until_memory_is_freed(pool: EmulatorPool, a: PtyClient) -> None:
    msisdn = pool.info()[0].msisdn
    pool.inject_sms(msisdn, "first")
    a.read_until(b'+CMTI: "SM",1\r\n')
    pool.set_fault(0, "storage_full")
    assert a.lines("AT+CPMS?") == ['+CPMS: "SM",1,30,"SM",1,30,"SM",1,30', "OK"]
    pool.inject_sms(msisdn, "second")
    assert pool.call(pool.network.held, msisdn) == 1
    assert a.command("AT") == b"\r\nOK\r\n"  # no +CMTI came before this answer
    pool.clear_fault(0, "storage_full")
    assert a.read_until(b'+CMTI: "SM",2\r\n')


def test_storage_full_is_released_by_deleting_when_it_is_really_full() -> None:
    with EmulatorPool(1, seed=5) as pool, client(pool, 0) as c:
        msisdn = pool.info()[0].msisdn
        for i in range(31):  # SM holds 30
            pool.inject_sms(msisdn, f"m{i}")
        assert c.read_until(b'+CMTI: "SM",30\r\n')
        assert pool.call(pool.network.held, msisdn) == 1
        c.command("AT+CMGD=1")
        assert c.read_until(b'+CMTI: "SM",1\r\n')  # SMMA: the SMSC delivers the held message


def test_garbage_bytes_before_answers_and_injected(pool: EmulatorPool, a: PtyClient) -> None:
    pool.set_fault(0, "garbage", rate=1.0, length=6)
    raw = a.command("AT")
    assert len(raw) == 6 + len(b"\r\nOK\r\n") and raw.endswith(b"\r\nOK\r\n")
    assert b"\r" not in raw[:6] and b"\n" not in raw[:6]
    pool.clear_fault(0, "garbage")
    assert a.command("AT") == b"\r\nOK\r\n"
    pool.inject_garbage(0, b"\x00\xff~~")
    assert a.command("AT") == b"\x00\xff~~\r\nOK\r\n"


def test_urc_injected_inside_an_answer(pool: EmulatorPool, a: PtyClient) -> None:
    pool.inject_urc(0, '+CMTI: "SM",7', where="answer")
    assert a.command("AT+CPMS?") == (
        b'\r\n+CPMS: "SM",0,30,"SM",0,30,"SM",0,30\r\n\r\n+CMTI: "SM",7\r\n\r\nOK\r\n'
    )
    assert a.command("AT") == b"\r\nOK\r\n"  # one-off


def test_urc_injected_inside_cmgs_after_the_prompt(pool: EmulatorPool, a: PtyClient) -> None:
    pool.inject_urc(0, '+CDSI: "SR",3', where="cmgs")
    hexpdu, length = submit_pdu("+447911123456", "x")
    a.send(f"AT+CMGS={length}\r")
    assert a.read_until(b'"SR",3\r\n') == b'\r\n> \r\n+CDSI: "SR",3\r\n'
    a.send(hexpdu + "\x1a")
    assert a.read_until(FINAL).startswith(b"\r\n+CMGS: ")


def test_urc_mid_answer_fault_at_a_rate(pool: EmulatorPool, a: PtyClient) -> None:
    pool.set_fault(0, "urc_mid_answer", rate=1.0, line="^RSSI:9")
    assert a.command("AT+CSQ") == b"\r\n+CSQ: 20,99\r\n\r\n^RSSI:9\r\n\r\nOK\r\n"
    hexpdu, length = submit_pdu("+447911123456", "y")
    a.send(f"AT+CMGS={length}\r")
    assert a.read_until(b"^RSSI:9\r\n") == b"\r\n> \r\n^RSSI:9\r\n"  # inside AT+CMGS
    a.send(hexpdu + "\x1a")
    assert re.fullmatch(rb"\r\n\+CMGS: \d+\r\n\r\n\^RSSI:9\r\n\r\nOK\r\n", a.read_until(FINAL))
    pool.clear_fault(0, "urc_mid_answer")
    assert a.command("AT") == b"\r\nOK\r\n"


def test_reboot_with_an_unacknowledged_cmt_gets_it_again() -> None:
    with EmulatorPool(1, seed=1, resend_unacknowledged=True) as pool, client(pool, 0) as a:
        _unacknowledged_cmt_comes_back(pool, a)


def test_by_default_a_reboot_forgets_an_unacknowledged_cmt(
    pool: EmulatorPool, a: PtyClient
) -> None:
    a.command("AT+CSMS=1")
    a.command("AT+CNMI=2,2,0,0,0")
    pool.inject_sms(pool.info()[0].msisdn, "ack me")
    a.read_until(b"+CMT: ")
    pool.set_fault(0, "reboot")
    a.command("ATE0")
    assert a.lines("AT+CMGL=4") == ["OK"]
    assert pool.call(pool.network.held, pool.info()[0].msisdn) == 0


def _unacknowledged_cmt_comes_back(pool: EmulatorPool, a: PtyClient) -> None:
    a.command("AT+CSMS=1")
    a.command("AT+CNMI=2,2,0,0,0")
    pool.inject_sms(pool.info()[0].msisdn, "ack me")
    a.read_until(b"+CMT: ")
    a.read_until(b"\r\n")
    a.read_until(b"\r\n")
    pool.set_fault(0, "reboot")  # no +CNMA was sent: the SMSC still owns the message
    # Back on the network with default settings (<mt>=1): it is stored and indicated this time.
    assert a.read_until(b'+CMTI: "SM",1\r\n')
    a.command("ATE0")
    raw = a.command("AT+CMGR=1")
    assert "ack me" in str(decode_pdu(raw.split(b"\r\n")[2].decode()).tpdu)


def test_reboot_during_a_slow_send_leaves_no_stray_answer(pool: EmulatorPool, a: PtyClient) -> None:
    pool.set_fault(0, "slow_radio", seconds=3)
    hexpdu, length = submit_pdu("+447911123456", "slow")
    a.send(f"AT+CMGS={length}\r")
    a.read_until(b"> ")
    before = pool.call(lambda: pool.core(0).bytes_in)
    a.send(hexpdu + "\x1a")
    pool.wait_for_input(0, before + len(hexpdu) + 1)
    pool.set_fault(0, "reboot")
    pool.advance(5)
    assert a.command("ATE0") == b"ATE0\r\r\nOK\r\n"  # fresh modem, nothing left over
    assert pool.stats().submitted == 0


def test_unplug_twice_and_close_while_unplugged_leak_nothing() -> None:
    with EmulatorPool(1, seed=8) as pool:
        first = pool.unplug(0, seconds=10)
        second = pool.unplug(0, seconds=10)  # pulled again before it came back
        assert first != second
        pool.advance(10)
        assert pool.path(0) == second
        pool.unplug(0, seconds=60)  # closed while unplugged: the waiting PTY is closed too


def test_pin_loss_takes_the_sim_away_then_asks_for_its_pin_again() -> None:
    with EmulatorPool(1, seed=3, pin_enabled=True) as pool:
        pin = pool.call(lambda: pool.core(0).sim.identity.pin)
        with client(pool, 0) as c:
            c.command(f'AT+CPIN="{pin}"')
            c.command("AT+CREG=1")
            pool.advance(1)
            assert c.lines("AT+CREG?") == ["+CREG: 1,1", "OK"]
            pool.set_fault(0, "pin_loss", seconds=3)
            assert c.read_until(b"+CPIN: NOT READY\r\n")
            assert c.read_until(b"+CREG: 0\r\n")
            assert c.command("AT+CPIN?") == b"\r\n+CME ERROR: 10\r\n"  # the card does not answer
            hexpdu, length = submit_pdu("+447911123456", "x")
            assert c.command(f"AT+CMGS={length}") == b"\r\n+CMS ERROR: 310\r\n"
            pool.advance(3)
            assert c.read_until(b"+CPIN: SIM PIN\r\n")
            assert c.lines("AT+CMEE?") == ["+CMEE: 1", "OK"]  # the modem kept its settings
            assert c.command(f"AT+CMGS={length}") == b"\r\n+CMS ERROR: 311\r\n"
            assert c.lines(f'AT+CPIN="{pin}"') == ["OK"]
            assert c.read_until(b"+CREG: 1\r\n")
            assert c.send_pdu(hexpdu, length).endswith(b"OK\r\n")


def test_pin_loss_without_a_pin_comes_back_ready_and_a_reboot_ends_it() -> None:
    with EmulatorPool(1, seed=3) as pool, client(pool, 0) as c:
        pool.set_fault(0, "pin_loss", seconds=3)
        assert c.read_until(b"+CPIN: NOT READY\r\n")
        pool.advance(3)
        assert c.read_until(b"+CPIN: READY\r\n")
        assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
        pool.set_fault(0, "pin_loss", seconds=30)
        pool.set_fault(0, "reboot")  # the SIM is read afresh at power-up
        c.command("ATE0")
        assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
        pool.advance(30)
        assert c.lines("AT+CPIN?") == ["+CPIN: READY", "OK"]
        assert b"NOT READY" not in c.buffer


def test_udev_links_follow_the_stick_and_the_usb_port(tmp_path: Path) -> None:
    with EmulatorPool(2, seed=6, links=tmp_path) as pool:
        first, second = pool.info()
        by_id = pool.by_id(0)
        by_path = tmp_path / "by-path" / "platform-emulator-usb-0:1.1:1.0-port0"
        assert (first.usb_port, second.usb_port) == ("1.1", "1.2")
        assert os.path.realpath(by_id) == first.path
        assert os.path.realpath(by_path) == first.path
        assert len(os.listdir(tmp_path / "by-id")) == len(os.listdir(tmp_path / "by-path")) == 2
        with pytest.raises(ValueError, match="already holds modem 1"):
            pool.unplug(0, seconds=5, port="1.2")
        assert pool.path(0) == first.path  # a taken port changes nothing
        new_path = pool.unplug(0, seconds=5, port="1.7")
        assert not by_id.exists() and not by_path.exists()  # pulled: its links vanish
        pool.advance(5)
        moved = pool.info()[0]
        assert (moved.path, moved.usb_port) == (new_path, "1.7")
        assert os.path.realpath(by_id) == new_path  # the stick's name stays...
        assert not by_path.exists()  # ...its port's name is another one
        assert os.path.realpath(tmp_path / "by-path" / "platform-emulator-usb-0:1.7:1.0-port0") == (
            new_path
        )
        pool.unplug(1, seconds=1, port="1.1")  # the port it left is free again
        pool.advance(1)
        assert pool.info()[1].usb_port == "1.1"
    assert os.listdir(tmp_path / "by-id") == os.listdir(tmp_path / "by-path") == []


def test_an_unacknowledged_cds_outlives_its_modem_being_pulled() -> None:
    with EmulatorPool(1, seed=1, resend_unacknowledged=True) as pool, client(pool, 0) as a:
        msisdn = pool.info()[0].msisdn
        a.command("AT+CSMS=1")
        a.command("AT+CNMI=2,1,0,1,0")
        send_text(a, "+447911123456", "report me", status_report=True)
        a.read_until(b"+CDS: ")  # handed over, never acknowledged: the stick is pulled
        pool.unplug(0, seconds=60)
        pool.advance(30)  # past the +CNMA timeout, while the modem is unplugged
        assert pool.call(pool.network.held, msisdn) == 0
        pool.advance(30)
        pool.boot()
        core = pool.core(0)
        stored = pool.call(lambda: sum(s.used() for s in core.storages.values()))
        assert stored + pool.call(pool.network.held, msisdn) == 1  # the SMSC sent it again


def test_what_a_full_memory_refuses_at_the_cnma_timeout_stays_with_the_smsc(
    pool: EmulatorPool, a: PtyClient
) -> None:
    msisdn = pool.info()[0].msisdn
    a.command("AT+CSMS=1")
    a.command("AT+CNMI=2,2,0,0,0")
    pool.inject_sms(msisdn, "ack me")
    a.read_until(b"+CMT: ")
    a.read_until(b"\r\n")
    a.read_until(b"\r\n")
    pool.set_fault(0, "storage_full")
    pool.advance(16)  # no +CNMA: routing stops and the SMSC tries to have it stored
    assert pool.call(pool.network.held, msisdn) == 1
    pool.clear_fault(0, "storage_full")  # SMMA: stored now (silently: routing stopped)
    assert pool.call(pool.network.held, msisdn) == 0
    assert a.lines("AT+CPMS?")[0].startswith('+CPMS: "SM",1,')


@pytest.mark.parametrize("sent", [1, 0])
def test_submit_crash_reboots_after_or_before_the_network_got_the_sms(
    pool: EmulatorPool, a: PtyClient, sent: int
) -> None:
    a.command("AT+CMEE=2")
    pool.set_fault(0, "submit_crash", how="reboot", sent=sent)
    assert pool.info()[0].faults == ("submit_crash",)
    hexpdu, length = submit_pdu("+447911123456", "lost answer")
    a.send(f"AT+CMGS={length}\r")
    a.read_until(b"> ")
    before = pool.call(lambda: pool.core(0).bytes_in)
    a.send(hexpdu + "\x1a" + "AT+CGMI\r")  # typed on: never read by the modem that died
    pool.wait_for_input(0, before + len(hexpdu) + 9)
    assert len(pool.outside()) == sent
    assert pool.info()[0].faults == ()  # one-shot
    assert a.command("ATE0") == b"ATE0\r\r\nOK\r\n"  # a fresh boot: echo on again
    assert a.lines("AT+CMEE?") == ["+CMEE: 0", "OK"]
    assert a.send_pdu(hexpdu, length).endswith(b"OK\r\n")  # the next one goes normally


def test_submit_crash_can_pull_the_plug_or_hang_for_a_while(
    pool: EmulatorPool, a: PtyClient
) -> None:
    pool.set_fault(0, "submit_crash", how="unplug", sent=1, seconds=4)
    hexpdu, length = submit_pdu("+447911123456", "gone")
    a.send(f"AT+CMGS={length}\r")
    a.read_until(b"> ")
    a.send(hexpdu + "\x1a")
    ready, _, _ = select.select([a.fd], [], [], 5)
    assert ready and pool.path(0) == ""  # the hang-up, like a vanished ttyUSB
    assert len(pool.outside()) == 1
    pool.advance(4)
    with client(pool, 0) as again:
        pool.set_fault(0, "submit_crash", how="hang", sent=0, seconds=10)
        again.send(f"AT+CMGS={length}\r")
        again.read_until(b"> ")
        before = pool.call(lambda: pool.core(0).bytes_in)
        again.send(hexpdu + "\x1a")
        again.send("AT\r")
        pool.wait_for_input(0, before + len(hexpdu) + 4)
        assert len(pool.outside()) == 1
        pool.advance(10)
        assert again.command("AT") == b"\r\nOK\r\n"  # awake again, nothing stale on the line
