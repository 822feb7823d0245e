"""Session state machine and framer: pairing, URCs anywhere, two-line URCs, prompts, aborts."""

from __future__ import annotations

import pytest

from modem.at import (
    TRANSITIONS,
    DeliverPdu,
    Echo,
    Framer,
    Line,
    NewMessageIndication,
    Prompt,
    PromptReady,
    ReadyIndication,
    RegistrationUpdate,
    Response,
    Session,
    StaleResult,
    State,
    StatusReportIndication,
    StatusReportPdu,
    UnexpectedLine,
    UssdIndication,
)
from modem.at import commands as cmds
from modem.at.results import FinalKind
from modem.at.session import Kind
from modem.errors import CmsError, SessionError

PDU = "0011000B917477123456F70000AA05E8329BFD06"


def events(session: Session, data: bytes) -> list[object]:
    session.receive_data(data)
    out: list[object] = []
    while (ev := session.next_event()) is not None:
        out.append(ev)
    return out


def test_transition_table_is_total() -> None:
    for state in State:
        for kind in Kind:
            assert (state, kind) in TRANSITIONS, (state, kind)


def test_one_command_in_flight() -> None:
    s = Session()
    s.send(cmds.SIGNAL)
    with pytest.raises(SessionError):
        s.send(cmds.AT)


def test_response_pairs_info_and_final() -> None:
    s = Session()
    assert s.send(cmds.SIGNAL) == b"AT+CSQ\r"
    (resp,) = events(s, b"\r\n+CSQ: 17,99\r\n\r\nOK\r\n")
    assert isinstance(resp, Response)
    assert resp.lines == ("+CSQ: 17,99",) and resp.ok and s.state is State.IDLE


def test_urc_before_echo_and_inside_answer() -> None:
    s = Session()
    s.send(cmds.preferred_storage("SM", "SM"))
    evs = events(
        s,
        b'+CDSI: "SR",50\r\nAT+CPMS="SM","SM"\r\r\n+CPMS: 0,50,0,50,1,100\r\n'
        b'+CMTI: "SM",3\r\n\r\nOK\r\n',
    )
    assert isinstance(evs[0], StatusReportIndication) and evs[0].storage == "SR"
    assert evs[0].index == 50
    assert isinstance(evs[1], NewMessageIndication) and evs[1].index == 3
    assert isinstance(evs[2], Response) and evs[2].lines == ("+CPMS: 0,50,0,50,1,100",)


def test_solicited_prefix_beats_urc_table() -> None:
    s = Session()
    s.send(cmds.REGISTRATION)
    (resp,) = events(s, b"\r\n+CREG: 0,1\r\n\r\nOK\r\n")
    assert isinstance(resp, Response) and resp.lines == ("+CREG: 0,1",)
    (urc,) = events(s, b"\r\n+CREG: 5\r\n")
    assert isinstance(urc, RegistrationUpdate) and urc.registration is not None
    assert urc.registration.stat == 5


def test_cusd_is_a_urc_even_while_its_command_waits() -> None:
    s = Session()
    s.send(cmds.ussd("*100#"))
    evs = events(s, b'\r\n+CUSD: 0,"Balance 5.00",15\r\n\r\nOK\r\n')
    assert isinstance(evs[0], UssdIndication) and evs[0].ussd is not None
    assert evs[0].ussd.text == "Balance 5.00"
    assert isinstance(evs[1], Response) and evs[1].lines == ()


def test_two_line_cmt_in_idle_and_inside_a_command() -> None:
    s = Session()
    (cmt,) = events(s, b"\r\n+CMT: ,24\r\n" + PDU.encode() + b"\r\n")
    assert cmt == DeliverPdu("+CMT: ,24", 24, PDU, None)
    s.send(cmds.SIGNAL)
    evs = events(s, b'\r\n+CMT: "Bob",24\r\n' + PDU.encode() + b"\r\n+CSQ: 5,0\r\n\r\nOK\r\n")
    assert evs[0] == DeliverPdu('+CMT: "Bob",24', 24, PDU, "Bob")
    assert isinstance(evs[1], Response) and evs[1].lines == ("+CSQ: 5,0",)


def test_two_line_urc_split_byte_by_byte() -> None:
    s = Session()
    data = b"\r\n+CDS: 25\r\n\r\n" + PDU.encode() + b"\r\n"
    got: list[object] = []
    for i in range(len(data)):
        got += events(s, data[i : i + 1])
    assert got == [StatusReportPdu("+CDS: 25", 25, PDU)]


def test_two_line_urc_without_pdu_line_is_reported_bare() -> None:
    s = Session()
    s.send(cmds.AT)
    evs = events(s, b"\r\n+CDS: 25\r\nOK\r\n")
    assert evs[0] == StatusReportPdu("+CDS: 25", 25, None)
    assert isinstance(evs[1], Response) and evs[1].ok


def test_cmgs_prompt_body_and_urcs_inside() -> None:
    s = Session()
    cmd = cmds.send_pdu(20, PDU)
    s.send(cmd)
    assert s.state is State.AWAITING_PROMPT
    evs = events(s, b'\r\n+CMTI: "SM",1\r\n\r\n> ')
    assert isinstance(evs[0], NewMessageIndication)
    assert evs[1] == PromptReady(cmd)
    assert s.send_body() == PDU.encode() + b"\x1a"
    evs = events(
        s, PDU.encode() + b"\r\n+CMT: ,24\r\n" + PDU.encode() + b"\r\n\r\n+CMGS: 7\r\n\r\nOK\r\n"
    )
    assert isinstance(evs[0], DeliverPdu)
    assert isinstance(evs[1], Response) and evs[1].lines == ("+CMGS: 7",)


def test_prompt_without_space_and_with_echoed_pdu_on_one_line() -> None:
    s = Session()
    cmd = cmds.send_pdu(20, PDU)
    s.send(cmd)
    s.receive_data(b"AT+CMGS=20\r\r\n> " + PDU.encode() + b"\r\n+CMS ERROR: 500\r\n")
    assert s.next_event() == PromptReady(cmd)
    s.send_body()
    resp = s.next_event()
    assert isinstance(resp, Response) and resp.lines == ()
    with pytest.raises(CmsError) as err:
        resp.raise_for_error()
    assert err.value.code == 500
    s2 = Session()
    s2.send(cmd)
    assert events(s2, b"\r\n>\r\n") == [PromptReady(cmd)]


def test_error_instead_of_prompt() -> None:
    s = Session()
    s.send(cmds.send_pdu(20, PDU))
    (resp,) = events(s, b"\r\n+CMS ERROR: 304\r\n")
    assert isinstance(resp, Response) and resp.result.code == 304
    assert s.state is State.IDLE
    with pytest.raises(SessionError):
        s.send_body()


def test_abort_in_prompt_returns_escape_and_late_answer_is_stale() -> None:
    s = Session()
    s.send(cmds.send_pdu(20, PDU))
    events(s, b"\r\n> ")
    assert s.abort() == b"\x1b"
    assert s.state is State.IDLE and not s.busy
    (stale,) = events(s, b"\r\n+CMS ERROR: 500\r\n")
    assert isinstance(stale, StaleResult) and stale.result.kind is FinalKind.CMS_ERROR
    s.send(cmds.SIGNAL)
    assert s.abort() == b""


def test_abort_while_two_line_urc_pending_keeps_the_urc() -> None:
    s = Session()
    s.send(cmds.AT)
    assert events(s, b"\r\n+CMT: ,24\r\n") == []
    s.abort()
    assert events(s, PDU.encode() + b"\r\n") == [DeliverPdu("+CMT: ,24", 24, PDU, None)]
    assert s.state is State.IDLE


def test_unexpected_lines_in_idle() -> None:
    s = Session()
    evs = events(s, b"\r\nu-blox\r\n\r\nOK\r\n" + PDU.encode() + b"\r\n")
    assert evs == [
        UnexpectedLine("u-blox"),
        StaleResult(evs[1].result),  # type: ignore[attr-defined]
        UnexpectedLine(PDU),
    ]


def test_boot_urcs_classified() -> None:
    s = Session()
    evs = events(s, b"\r\nRDY\r\n\r\n+CPIN: READY\r\n\r\n+QIND: SMS DONE\r\n\r\nSMS Ready\r\n")
    assert [type(e).__name__ for e in evs] == [
        "BootIndication",
        "ReadyIndication",
        "ReadyIndication",
        "ReadyIndication",
    ]
    assert isinstance(evs[2], ReadyIndication) and evs[2].kind.value == "sms"


def test_degenerate_cmti() -> None:
    (ev,) = events(Session(), b"\r\n+CMTI: ,-1\r\n")
    assert ev == NewMessageIndication("+CMTI: ,-1", None, None)


def test_command_text_is_validated() -> None:
    with pytest.raises(SessionError):
        cmds.raw("AT+CSQ\rAT+CFUN=0")
    with pytest.raises(SessionError):
        cmds.send_pdu(3, "not hex")
    with pytest.raises(SessionError):
        cmds.pin("12a4")
    with pytest.raises(SessionError):
        cmds.charset('G"SM')


# --- framer ------------------------------------------------------------------------------------


def frames(framer: Framer, data: bytes) -> list[object]:
    framer.receive_data(data)
    out: list[object] = []
    while (ev := framer.next_event()) is not None:
        out.append(ev)
    return out


def test_framer_echo_with_cr_cr_lf_and_stale_echo() -> None:
    f = Framer()
    f.expect_echo("AT")
    assert frames(f, b"ATE0+CPMS?\r\r\nOK\r\n") == [Echo("ATE0+CPMS?"), Line("OK")]
    assert frames(f, b"ATMEL CORP\r\n") == [Line("ATMEL CORP")]


def test_framer_without_any_send_has_no_echo() -> None:
    assert frames(Framer(), b"AT+CSQ\r\n") == [Line("AT+CSQ")]


def test_framer_long_lines_and_overflow() -> None:
    long = b"A" * 5000
    assert frames(Framer(), b"\r\n" + long + b"\r\n") == [Line("A" * 5000)]
    f = Framer(max_line=100)
    got = frames(f, b"B" * 150)
    assert got == [Line("B" * 150, truncated=True)]
    assert frames(f, b"\r\nOK\r\n") == [Line("OK")]


def test_framer_spaces_blank_lines_and_noise() -> None:
    f = Framer()
    got = frames(f, b"\r\n  MULTIBAND  900E  1800 \r\n\r\n\r\n\x00\xffOK\x13\r\n")
    assert got == [Line("MULTIBAND  900E  1800"), Line("OK")]


def test_framer_prompt_split_and_space_arriving_later() -> None:
    f = Framer()
    assert frames(f, b"\r\n>") == [Prompt()]
    assert frames(f, b" ") == []
    assert frames(f, b"\r\n+CMGS: 1\r\n") == [Line("+CMGS: 1")]
    assert f.buffered == 0


def test_framer_clear_drops_partial_input() -> None:
    f = Framer()
    frames(f, b"\r\n+CSQ: 1")
    f.clear()
    assert frames(f, b"0,0\r\nOK\r\n") == [Line("0,0"), Line("OK")]
