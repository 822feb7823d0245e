"""Replay: every transcript a personality claims is answered in the same shape.

Each '# ---' section is a separate capture, replayed on a freshly booted modem. For every command
the emulator's answer must have the transcript's shape: echo or not, the info-line prefixes in
order (listings of any length count as one), the prompt, and the exact final result code.
Unsolicited lines are compared separately: every vendor URC the transcript shows (^RSSI, ^BOOT,
RDY, SMS DONE...) must be one the personality emits, and boot URCs must come in order.
"""

from __future__ import annotations

import re
import time

import pytest

from modem.emulator import PERSONALITIES, EmulatorPool, Personality
from tests.emulator.ptyclient import FINAL, PtyClient, submit_pdu
from tests.emulator.transcript import (
    TRANSCRIPTS,
    VENDOR_URCS,
    Exchange,
    Section,
    is_urc,
    parse,
    shape,
    split_lines,
)

CLAIMS = [(p, t) for p in PERSONALITIES.values() for t in p.transcripts]
# Sections captured before the modem was ready (no boot URCs yet): replayed without booting.
NOT_READY = {("simcom-sim800.txt", "TinyGSM #242")}
CMGL_ENTRY = re.compile(r"^\+CMGL: (\d+),(\d),[^,]*,(\d+)$")
FINAL_KIND = re.compile(r"^(OK|ERROR|\+CM[ES] ERROR|COMMAND NOT SUPPORT|NO CARRIER)")


def _vendor_prefix(line: str) -> str:
    return next(p for p in VENDOR_URCS if line.strip().startswith(p))


def _hidden(c: PtyClient, command: str) -> None:
    c.send(command + "\r")
    c.read_until(FINAL)


def _read_answer(
    c: PtyClient, expected: list[str], prompt: bytes, command: str, *, cut_short: bool
) -> bytes:
    """Read to the final code (or the prompt); with no final code expected, read what comes.

    When the capture is cut short the emulator's answer still ends in a final code: read all
    of it, so nothing is left over for the next command.
    """
    deadline = time.monotonic() + 5
    has_final = cut_short or (bool(expected) and bool(FINAL_KIND.match(expected[-1])))
    while True:
        buf = c.buffer
        if "PROMPT" in expected and buf.endswith((prompt, prompt.rstrip())):
            c.buffer = b""
            return buf
        if has_final:
            m = FINAL.search(buf)
            if m:
                c.buffer = buf[m.end() :]
                return buf[: m.end()]
        elif len(shape(split_lines(buf), command)) >= len(expected) and buf.endswith(b"\n"):
            c.buffer = b""
            return buf
        if not c.fill(deadline):
            c.buffer = b""
            return buf


def _preload(pool: EmulatorPool, exchange: Exchange) -> None:
    """Put the messages a +CMGL answer lists into the storage being listed."""
    entries = []
    for i, line in enumerate(exchange.answer):
        m = CMGL_ENTRY.match(line.strip())
        if m and i + 1 < len(exchange.answer):
            entries.append((int(m.group(1)), int(m.group(2)), exchange.answer[i + 1].strip()))

    def load() -> None:
        core = pool.core(0)
        store = core.storages[core.cpms[0]]
        for index, stat, hexpdu in entries:
            store.place(index, stat, hexpdu)

    if entries:
        pool.call(load)


def _not_ready(transcript: str, section: Section) -> bool:
    return any(t == transcript and title in section.title for t, title in NOT_READY)


def _replay_section(
    personality: Personality, transcript: str, section: Section, vendor_seen: set[str]
) -> int:
    """Replay one section on a fresh modem; returns how many exchanges were compared."""
    compared = 0
    with EmulatorPool([personality], seed=3) as pool, PtyClient(pool.path(0)) as c:
        if not _not_ready(transcript, section):
            pool.advance(30)
            if personality.boot_urcs:
                booted = c.read_until(personality.boot_urcs[-1][1].encode() + b"\r\n")
                for line in split_lines(booted):
                    if line.strip().startswith(VENDOR_URCS):
                        vendor_seen.add(_vendor_prefix(line))
            c.buffer = b""
        if any(
            "+CME ERROR" in line or "+CMS ERROR" in line
            for ex in section.exchanges
            for line in ex.answer
        ):
            _hidden(c, "AT+CMEE=1")
        pdu_hex, pdu_len = submit_pdu("+447911123456", "replay", status_report=True)
        in_prompt = False
        for n, exchange in enumerate(section.exchanges):
            last = n == len(section.exchanges) - 1
            # Placeholders: the CMGS length of our PDU; masked digits of a number become zeros.
            command = exchange.command.replace("<len>", str(pdu_len))
            command = re.sub(r"(?<=\d)[xX]+", lambda m: "0" * len(m.group()), command)
            body: bytes | None = None
            if command.startswith("<SMS-SUBMIT"):
                body = pdu_hex.encode() + b"\x1a"
            elif command.endswith("<Ctrl-Z>"):
                body = b"replay\x1a"
            elif "<" in command or not command.upper().startswith("AT"):
                continue  # a placeholder we cannot send (e.g. ATD<number>;)
            expected = shape(exchange.answer, exchange.command)
            if body is None:
                if in_prompt:
                    c.send(b"\x1b")
                    c.read_until(FINAL)
                wants_echo = bool(expected) and expected[0] == "ECHO"
                _hidden(c, "ATE1" if wants_echo else "ATE0")
                if re.match(r'(?i)AT\+CMGS="', command):
                    _hidden(c, "AT+CMGF=1")  # a quoted number means text mode
                _preload(pool, exchange)
                c.send(command + "\r")
            else:
                c.send(body)
            no_final = not (expected and FINAL_KIND.match(expected[-1]))
            truncated = no_final and "PROMPT" not in expected and (last or exchange.cut_short)
            raw = _read_answer(c, expected, personality.prompt, command, cut_short=truncated)
            actual = shape(split_lines(raw), command)
            if body is not None:
                actual = [k for k in actual if k != "TEXT"]  # the echoed PDU body
            if truncated:  # the capture ends mid-answer: compare what it shows
                actual = actual[: len(expected)]
            assert actual == expected, (transcript, section.title, command, raw)
            compared += 1
            in_prompt = "PROMPT" in expected
            if not (in_prompt or truncated) and no_final:
                # No final code expected (Wavecom +CPIN): make sure none follows either.
                manufacturer = personality.manufacturer.strip().encode()
                c.send("AT+CGMI\r")
                probe = c.read_until(FINAL)
                assert manufacturer in probe, (transcript, command, "final code after", probe)
        if in_prompt:
            c.send(b"\x1b")
        pool.advance(120)  # idle time: the vendor noise must include what the transcript shows
        c.send("AT\r")  # everything emitted during advance() precedes this command's OK
        for line in split_lines(c.read_until(FINAL)):
            if line.strip().startswith(VENDOR_URCS):
                vendor_seen.add(_vendor_prefix(line))
    return compared


@pytest.mark.parametrize(
    ("personality", "transcript"), CLAIMS, ids=[f"{p.name}:{t}" for p, t in CLAIMS]
)
def test_replay_transcript(personality: Personality, transcript: str) -> None:
    sections = parse(TRANSCRIPTS / transcript)
    assert sections, transcript
    vendor_seen: set[str] = set()
    expected_vendor: set[str] = set()
    compared = 0
    for section in sections:
        for line in section.prelude + [x for ex in section.exchanges for x in ex.answer]:
            if line.strip().startswith(VENDOR_URCS) and is_urc(line, ""):
                expected_vendor.add(_vendor_prefix(line))
        compared += _replay_section(personality, transcript, section, vendor_seen)
    sendable = [
        ex.command
        for section in sections
        for ex in section.exchanges
        if (ex.command.upper().startswith("AT") and "<" not in ex.command.replace("<len>", ""))
        or ex.command.startswith("<SMS-SUBMIT")
        or ex.command.endswith("<Ctrl-Z>")
    ]
    assert compared == len(sendable) > 0
    assert expected_vendor <= vendor_seen


@pytest.mark.parametrize(
    ("personality", "transcript"), CLAIMS, ids=[f"{p.name}:{t}" for p, t in CLAIMS]
)
def test_boot_urcs_come_in_the_transcript_order(personality: Personality, transcript: str) -> None:
    preludes = [s.prelude for s in parse(TRANSCRIPTS / transcript) if s.prelude]
    boot_words = (
        "RDY",
        "+CPIN:",
        "Call Ready",
        "SMS Ready",
        "SMS DONE",
        "PB DONE",
        "+QIND",
        "+QUSIM",
    )
    boot_lines = [x.strip() for p in preludes for x in p if x.strip().startswith(boot_words)]
    if not boot_lines:
        return
    with EmulatorPool([personality], seed=3) as pool, PtyClient(pool.path(0)) as c:
        pool.advance(30)
        last = personality.boot_urcs[-1][1].encode() + b"\r\n"
        emitted = [x.strip() for x in split_lines(c.read_until(last))]
    remaining = iter(emitted)
    assert all(line in remaining for line in boot_lines), (boot_lines, emitted)
