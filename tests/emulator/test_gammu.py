"""A third-party AT stack (python-gammu, connection "at") drives the emulated modems."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gammu
import pytest

from modem.emulator import EmulatorPool

T = TypeVar("T")
GAMMU_TIMEOUT = 60.0


def run_with_timeout(fn: Callable[[], T], timeout: float = GAMMU_TIMEOUT) -> T:
    """gammu calls block in C: run them on a thread so a hang fails the test instead."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        pytest.fail(f"gammu call did not finish within {timeout} s")
    if error:
        raise error[0]
    return result[0]


def state_machine(path: str, tmp_path: Path, name: str) -> Any:
    # A gammurc file (not SetConfig) so gammu fills its defaults; ds=1 asks for inline +CDS.
    rc = tmp_path / f"gammurc-{name}"
    rc.write_text(
        f"[gammu]\ndevice = {path}\nconnection = at\nlogformat = textalldate\n"
        f"logfile = {tmp_path / (name + '.log')}\natgen_setcnmi = 2,1,0,1,0\n"
    )
    sm = gammu.StateMachine()
    sm.ReadConfig(Filename=str(rc))
    run_with_timeout(sm.Init)
    return sm


def read_all_sms(sm: Any) -> list[list[dict[str, Any]]]:
    found: list[list[dict[str, Any]]] = []
    location: int | None = None
    while True:
        try:
            if location is None:
                batch = sm.GetNextSMS(Start=True, Folder=0)
            else:
                batch = sm.GetNextSMS(Location=location, Folder=0)
        except gammu.ERR_EMPTY:
            return found
        found.append(batch)
        location = batch[0]["Location"]


def test_gammu_identifies_sends_single_and_multipart_and_gets_the_report(tmp_path: Path) -> None:
    long_text = "Multipart through the emulated SMSC, read back by gammu. " * 4
    with EmulatorPool(2, seed=11) as pool:
        sender_info, peer_info = pool.info()
        sender = state_machine(sender_info.path, tmp_path, "sender")

        assert run_with_timeout(sender.GetManufacturer) == "smsgw"
        assert run_with_timeout(sender.GetModel)[1] == "Emulated GSM Modem"
        assert run_with_timeout(sender.GetIMEI) == sender_info.imei
        assert run_with_timeout(sender.GetSIMIMSI) == sender_info.imsi
        # Gammu refuses the whole network info without +CGREG and +CGATT, and reads the
        # operator code with AT+COPS=3,2 first.
        network = run_with_timeout(sender.GetNetworkInfo)
        assert (network["State"], network["PacketState"], network["GPRS"]) == (
            "HomeNetwork", "HomeNetwork", "Attached")  # fmt: skip
        assert (network["NetworkCode"], network["NetworkName"]) == ("001 01", "smsgw emulated")

        reports: list[dict[str, Any]] = []
        sender.SetIncomingCallback(
            lambda _sm, kind, data: reports.append(data) if kind == "SMS" else None
        )
        run_with_timeout(lambda: sender.SetIncomingSMS(True))

        single = {
            "Text": "Hello from gammu",
            "SMSC": {"Location": 1},
            "Number": peer_info.msisdn,
            "Type": "Status_Report",  # gammu's way of asking for TP-SRR
        }
        references = [run_with_timeout(lambda: sender.SendSMS(single))]
        parts = gammu.EncodeSMS(
            {"Class": -1, "Entries": [{"ID": "ConcatenatedTextLong", "Buffer": long_text}]}
        )
        assert len(parts) == 2
        for part in parts:
            part["SMSC"] = {"Location": 1}
            part["Number"] = peer_info.msisdn
            references.append(run_with_timeout(lambda part=part: sender.SendSMS(part)))
        assert references[1:] == [(references[0] + 1) % 256, (references[0] + 2) % 256]

        pool.sync()
        for _ in range(20):
            if reports:
                break
            run_with_timeout(lambda: sender.ReadDevice(True))  # waits for bytes, bounded
        assert len(reports) == 1
        report = reports[0]
        assert report["Type"] == "Status_Report"
        assert report["MessageReference"] == references[0]
        assert report["DeliveryStatus"] == 0
        assert report["Number"] == peer_info.msisdn

        peer = state_machine(peer_info.path, tmp_path, "peer")
        received = read_all_sms(peer)
        assert len(received) == 3
        singles = [b for b in received if b[0]["UDH"]["Type"] == "NoUDH"]
        assert [b[0]["Text"] for b in singles] == ["Hello from gammu"]
        assert all(b[0]["Number"] == sender_info.msisdn for b in received)
        linked = gammu.LinkSMS([b for b in received if b[0]["UDH"]["Type"] != "NoUDH"])
        (message,) = linked
        decoded = gammu.DecodeSMS(message)
        assert decoded is not None
        assert decoded["Entries"][0]["Buffer"] == long_text
        for sm in (sender, peer):
            run_with_timeout(sm.Terminate)


def test_gammu_reads_inbound_from_the_outside_world(tmp_path: Path) -> None:
    """UCS-2 with emoji, an alphanumeric sender, 16-bit references out of order, 8-bit data."""
    long_text = "Ünïcødé long 😀 " * 6
    with EmulatorPool(1, seed=2) as pool:
        info = pool.info()[0]
        pool.inject_sms(info.msisdn, "Grüße 😀 from the bank", sender="MyBank")
        pool.inject_sms(info.msisdn, long_text, sender="+4915112345678", ref16=True, order=(1, 0))
        pool.inject_sms(info.msisdn, None, sender="+4915112345678", data=b"\x01\x02\xff")
        sm = state_machine(info.path, tmp_path, "reader")
        received = read_all_sms(sm)
        run_with_timeout(sm.Terminate)
    firsts = [batch[0] for batch in received]
    assert [(m["Number"], m["Coding"]) for m in firsts] == [
        ("MyBank", "Unicode_No_Compression"),
        ("+4915112345678", "Unicode_No_Compression"),
        ("+4915112345678", "Unicode_No_Compression"),
        ("+4915112345678", "8bit"),
    ]
    assert firsts[0]["Text"] == "Grüße 😀 from the bank"
    assert firsts[3]["Text"] == b"\x01\x02\xff"
    assert [m["UDH"]["Type"] for m in firsts[1:3]] == ["ConcatenatedMessages16bit"] * 2
    (linked,) = gammu.LinkSMS([b for b in received if b[0]["UDH"]["Type"] != "NoUDH"])
    decoded = gammu.DecodeSMS(linked)
    assert decoded is not None and decoded["Entries"][0]["Buffer"] == long_text
