"""Every real transcript replayed through the framer and the session: whole, byte by byte,
split at random points and wrapped in garbage -- the exact responses and URCs must come out."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modem.at import Echo, Framer, Line, Prompt, PromptReady, Response, Session, StaleResult
from modem.at import commands as cmds
from modem.at.commands import Command
from modem.at.results import parse_final
from modem.at.session import UnexpectedLine
from modem.at.urc import Urc
from tests.at.transcript import (
    Ev,
    Receive,
    Send,
    add_noise,
    clean,
    expected_events,
    load,
    segments,
    split_random,
    transcript_names,
)

# Lines each transcript's notes describe as unsolicited (+CUSD lines are URCs everywhere).
URCS: dict[str, dict[str, str]] = {
    "huawei-e1752.txt": {
        "^SRVST:0": "VendorIndication",
        "^MODE:5,4": "VendorIndication",
        "+CREG: 1, E006B, ABE0016": "RegistrationUpdate",
        "^RSSI:14": "SignalIndication",
        "^RSSI:10": "SignalIndication",
        "^BOOT:35323129,0,0,0,26": "BootIndication",
    },
    "huawei-k3715.txt": {
        "^ORIG:1,0": "VendorIndication",
        "^CONF:1": "VendorIndication",
        "^CONN:1,0": "VendorIndication",
        "^CEND:1,5,29,16": "VendorIndication",
    },
    "qualcomm-m6280-zte.txt": {
        '+CDSI: "SM",1': "StatusReportIndication",
        '+CDSI: "SM",3': "StatusReportIndication",
    },
    "quectel-ec25.txt": {'+CDSI: "SM",0': "StatusReportIndication"},
    "simcom-sim7000g.txt": {"+CMTI: ,-1": "NewMessageIndication"},
    "simcom-sim7600.txt": {
        "RDY": "BootIndication",
        "+CPIN: READY": "ReadyIndication",
        "SMS DONE": "ReadyIndication",
    },
    "simcom-sim800.txt": {
        "+CPIN: READY": "ReadyIndication",
        "Call Ready": "ReadyIndication",
        "SMS Ready": "ReadyIndication",
        '+CMTI: "ME",42': "NewMessageIndication",
    },
    "ublox-sara-g450.txt": {
        "+UUPSDD: 0": "VendorIndication",
        "+CPIN: READY": "ReadyIndication",
        "+CGREG: 0,0": "RegistrationUpdate",
        '+UUPSDA: 0,"100.70.64.95"': "VendorIndication",
    },
    "ublox-toby-lara-snippets.txt": {'+CREG: 6,"8B37","0A265185",7': "RegistrationUpdate"},
    "sierra-wireless.txt": {"+CREG: 1,84CD,00D30156": "RegistrationUpdate"},
    "zte-mf626.txt": {'+CDSI: "SR",50': "StatusReportIndication"},
}

NAMES = transcript_names()


def make_command(text: str, body: str | None) -> Command:
    cmd = cmds.raw(text)
    if body is not None:
        return Command(cmd.text, ("+CMGS",), body=body)
    return cmd


def normalize(ev: object) -> Ev:
    if isinstance(ev, Response):
        return ("response", ev.command.line, ev.lines, str(ev.result))
    if isinstance(ev, PromptReady):
        return ("prompt", ev.command.line)
    if isinstance(ev, StaleResult):
        return ("stale", str(ev.result))
    if isinstance(ev, UnexpectedLine):
        return ("unexpected", ev.text)
    assert isinstance(ev, Urc), ev
    return ("urc", type(ev).__name__, ev.line)


def oracle(name: str) -> list[Ev]:
    out: list[Ev] = []
    for ev in expected_events(load(name), URCS.get(name, {})):
        if ev[0] == "response":
            out.append((*ev[:3], str(parse_final(str(ev[3])))))
        elif ev[0] == "stale":
            out.append(("stale", str(parse_final(str(ev[1])))))
        else:
            out.append(ev)
    return out


Chunker = Callable[[bytes], Iterable[bytes]]


def replay(
    name: str,
    chunker: Chunker,
    *,
    seed: int = 0,
    preamble: bytes = b"",
    postamble: bytes = b"",
    noise: random.Random | None = None,
) -> list[Ev]:
    session = Session()
    out: list[Ev] = []

    def feed(data: bytes) -> None:
        if noise is not None:
            data = add_noise(data, noise)
        for chunk in chunker(data):
            session.receive_data(chunk)
            while (ev := session.next_event()) is not None:
                out.append(normalize(ev))
                if isinstance(ev, PromptReady):
                    session.send_body()

    def abort() -> None:
        if session.command is not None:
            out.append(("abort", session.command.line))
            session.abort()

    feed(preamble)
    for seg in segments(load(name), seed):
        if seg.section or seg.send is not None:
            abort()
        if seg.send is not None:
            session.send(make_command(seg.send, seg.body))
        feed(seg.data)
    abort()
    feed(postamble)
    return out


def whole(data: bytes) -> Iterable[bytes]:
    return [data] if data else []


def bytewise(data: bytes) -> Iterable[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


@pytest.mark.parametrize("name", NAMES)
def test_replay_whole(name: str) -> None:
    assert replay(name, whole) == oracle(name)


@pytest.mark.parametrize("name", NAMES)
def test_replay_byte_by_byte(name: str) -> None:
    assert replay(name, bytewise, seed=1) == oracle(name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", [2, 3, 4])
def test_replay_random_splits(name: str, seed: int) -> None:
    rng = random.Random(seed)
    assert replay(name, lambda d: split_random(d, rng), seed=seed) == oracle(name)


@pytest.mark.parametrize("name", NAMES)
def test_replay_wrapped_in_garbage(name: str) -> None:
    rng = random.Random(99)
    pre = b"\x00\xff\x13#!garbage@~\r\n\r\n"
    post = b"\r\n\xff\x00%%trailing junk%%\r\n"
    got = replay(
        name, lambda d: split_random(d, rng), seed=5, preamble=pre, postamble=post, noise=rng
    )
    expected = [
        ("unexpected", "#!garbage@~"),
        *oracle(name),
        ("unexpected", "%%trailing junk%%"),
    ]
    assert got == expected


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_replay_hypothesis_split_points(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=200), max_size=30))

    def chunker(blob: bytes) -> Iterable[bytes]:
        pos = 0
        for n in cuts:
            if pos >= len(blob):
                return
            yield blob[pos : pos + n]
            pos += n
        if pos < len(blob):
            yield blob[pos:]

    assert replay(name, chunker, seed=len(cuts)) == oracle(name)


def test_oracle_is_not_trivial() -> None:
    """The oracle finds the answers, URCs and failures the notes describe."""
    e1752 = oracle("huawei-e1752.txt")
    assert e1752[0] == ("urc", "VendorIndication", "^SRVST:0")
    assert e1752[1] == (
        "response",
        'AT+CPMS="SM","SM"',
        ("+CPMS: 0,50,0,50,0,50",),
        "OK",
    )
    assert ("response", "AT+CMMS=2", (), "+CMS ERROR: 500") in e1752
    assert ("urc", "BootIndication", "^BOOT:35323129,0,0,0,26") in e1752
    wavecom = oracle("wavecom-multiband-900e-1800.txt")
    assert ("abort", "AT+CPIN?") in wavecom  # no OK after +CPIN: READY
    sara = oracle("ublox-sara-g450.txt")
    assert ("response", "AT+CPIN?", (), "OK") in sara  # drifted answers are not mis-paired
    assert ("unexpected", "u-blox") in sara


def test_transcript_parser_reads_all_line_kinds() -> None:
    steps = load("simcom-sim800.txt")
    assert Send('AT+CMGS="07xxxxxxxx"') in steps
    assert Receive(">Text here") in steps
    assert Receive("") in steps
    assert all(not isinstance(s, Send) or not s.text.startswith("#") for s in steps)


# --- the framer alone ------------------------------------------------------------------------


def frame_all(data: bytes, sent: list[str], chunker: Chunker) -> list[object]:
    framer = Framer()
    for s in sent:
        framer.expect_echo(s)
    out: list[object] = []
    for chunk in chunker(data):
        framer.receive_data(chunk)
        while (ev := framer.next_event()) is not None:
            out.append(ev)
    return out


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["whole", "bytes", "random"])
def test_framer_yields_every_modem_line(name: str, mode: str) -> None:
    segs = segments(load(name), seed=7)
    data = b"".join(s.data for s in segs)
    sent = [s.send for s in segs if s.send] + [s.body for s in segs if s.body]
    rng = random.Random(11)
    chunker: Chunker = {
        "whole": whole,
        "bytes": bytewise,
        "random": lambda d: split_random(d, rng),
    }[mode]
    got = frame_all(data, sent, chunker)
    expected: list[object] = []
    current: str | None = None
    for step in load(name):
        if isinstance(step, Send):
            current = step.text
            continue
        if not isinstance(step, Receive) or not clean(step.text):
            continue
        text = clean(step.text)
        if text.startswith(">"):
            expected.append(Prompt())
            rest = text[1:].strip()
            if rest:
                expected.append(Echo(rest) if rest in sent else Line(rest))
        elif (
            current is not None
            and "".join(text.split()).upper() == "".join(current.split()).upper()
        ):
            expected.append(Echo(text))
        else:
            expected.append(Line(text))
    # Echoes of earlier commands are echoes too; compare lines and prompts exactly.
    assert [e for e in got if not isinstance(e, Echo)] == [
        e for e in expected if not isinstance(e, Echo)
    ]
    assert len([e for e in got if isinstance(e, Echo)]) == len(
        [e for e in expected if isinstance(e, Echo)]
    )
