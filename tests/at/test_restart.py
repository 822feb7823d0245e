"""RestartWatch: which URCs, arriving while AT+CMGS is in flight, prove the modem restarted.

The sequences are the real ones from /work/shared/transcripts where there is one, fed through the
session as they would arrive after the `>` prompt and the PDU.
"""

from __future__ import annotations

import pytest

from modem.at import PromptReady, RestartWatch, Session, Urc
from modem.at import commands as cmds
from tests.at.transcript import section_lines

# Boots as real modems print them.
SIM7600_BOOT = section_lines("simcom-sim7600.txt", "esp-protocols #789")  # RDY, +CPIN, SMS DONE
SIM800_BOOT = section_lines("simcom-sim800.txt", "boot")  # +CPIN: READY, Call Ready, SMS Ready
E1752_BOOT = [
    line
    for line in section_lines("huawei-e1752.txt", "modem reset in the middle")
    if line.startswith("^BOOT")
]


def verdicts(lines: list[str]) -> list[bool]:
    """Each line as a URC inside an AT+CMGS exchange, and whether the watch calls it a restart
    (with the lines before it)."""
    session = Session()
    session.send(cmds.send_pdu(5, "0001000B911234567890F0000000"))
    session.receive_data(b"\r\n> ")
    assert isinstance(session.next_event(), PromptReady)
    session.send_body()  # the PDU is written: the network may be taking it now
    watch = RestartWatch()
    watch.start()
    out = []
    for line in lines:
        session.receive_data(f"\r\n{line}\r\n".encode())
        event = session.next_event()
        assert isinstance(event, Urc), (line, event)
        out.append(watch.restarted(event))
    assert session.busy  # none of them ended the command by themselves
    return out


def test_the_transcripts_hold_the_boots_this_file_relies_on() -> None:
    assert SIM7600_BOOT == ["RDY", "+CPIN: READY", "SMS DONE"]
    assert SIM800_BOOT[:3] == ["+CPIN: READY", "Call Ready", "SMS Ready"]
    assert E1752_BOOT == ["^BOOT:35323129,0,0,0,26"]


def test_a_boot_banner_proves_a_restart_at_once() -> None:
    # SIMCom SIM7600 (esp-protocols #789): RDY first.
    assert verdicts(SIM7600_BOOT)[0] is True
    # Cinterion/Siemens: ^SYSSTART after every start (vendor AT manual).
    assert verdicts(["^SYSSTART"]) == [True]


def test_sim800_without_rdy_restarts_once_sms_or_call_ready_follows_the_sim() -> None:
    # SIM800L auto-bauding (GPRS_SIM900 #39): no RDY, the SIM, then the readiness lines.
    assert verdicts(SIM800_BOOT[:3]) == [False, True, True]
    assert verdicts(["+CPIN: READY", "SMS Ready"]) == [False, True]


def test_huawei_periodic_boot_is_no_restart() -> None:
    # Huawei E1752 (gammu #138): ^BOOT repeats while the modem runs on.
    assert verdicts(E1752_BOOT * 3) == [False, False, False]


@pytest.mark.parametrize(
    "lines",
    [
        ["PB DONE"],  # SIM7600: seconds after SMS DONE, may trail a finished initialisation
        ["SMS DONE"],
        ["+QIND: SMS DONE"],  # Quectel EC25
        ["Call Ready"],
        ["SMS Ready"],
        ["+CPIN: READY"],  # a SIM that reset under the running modem ends with it too
        ["+CPIN: NOT READY", "+CPIN: READY", "SMS Ready"],  # the SIM left and came back
        ["+CFUN: 1"],
        ["+CREG: 1", "^RSSI:14", "^MODE:5,4"],
    ],
    ids="/".join,
)
def test_what_proves_no_restart(lines: list[str]) -> None:
    assert not any(verdicts(lines))


def test_evidence_does_not_carry_over_to_the_next_command() -> None:
    session = Session()
    watch = RestartWatch()
    watch.start()
    session.receive_data(b"\r\n+CPIN: READY\r\n")
    first = session.next_event()
    assert isinstance(first, Urc) and not watch.restarted(first)
    watch.start()  # the next command
    session.receive_data(b"\r\nSMS Ready\r\n")
    second = session.next_event()
    assert isinstance(second, Urc) and not watch.restarted(second)
