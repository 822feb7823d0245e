"""`smsgw emulate` run detached (&, nohup, systemd, CI): EOF on stdin must not stop the modems."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.emulator.ptyclient import PtyClient
from tests.emulator.test_gammu import run_with_timeout, state_machine

OUTSIDE = "+4915112345678"


def smsgw() -> list[str]:
    """The venv's console script (what users run), else the same CLI as a module."""
    script = Path(sys.executable).with_name("smsgw")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


class Emulate:
    """An `smsgw emulate` child process; stdin as given, stdout and stderr piped."""

    def __init__(self, *args: str, stdin: int | IO[Any]) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*smsgw(), "emulate", *args],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout: IO[str] = self.proc.stdout
        self.stderr: IO[str] = self.proc.stderr
        line = self.stdout.readline()
        assert line, f"smsgw emulate exited at start: {self.stderr.read()}"
        self.document: dict[str, Any] = json.loads(line)

    def reply(self) -> dict[str, Any]:
        line = self.stdout.readline()
        assert line, "stdout closed before the reply"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def assert_stays_up(self, seconds: float) -> None:
        with pytest.raises(subprocess.TimeoutExpired):
            self.proc.wait(timeout=seconds)

    def stop(self, sig: signal.Signals) -> int:
        """Send sig; the exit status (the test fails on a traceback)."""
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=30)
        assert "Traceback" not in self.stderr.read()
        return status

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.stdout, self.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def devnull() -> Iterator[IO[bytes]]:
    with open("/dev/null", "rb") as f:
        yield f


def test_keeps_running_with_stdin_at_eof_and_gammu_can_use_it(
    devnull: IO[bytes], tmp_path: Path
) -> None:
    emu = Emulate("--modems", "1", "--seed", "31", stdin=devnull)
    try:
        (modem,) = emu.document["modems"]
        emu.assert_stays_up(5)
        sm = state_machine(modem["path"], tmp_path, "detached")
        assert run_with_timeout(sm.GetManufacturer) == "smsgw"
        assert run_with_timeout(sm.GetIMEI) == modem["imei"]
        assert run_with_timeout(sm.GetSIMIMSI) == modem["imsi"]
        sms = {"Text": "sent through a detached emulator", "SMSC": {"Location": 1}}
        reference = run_with_timeout(lambda: sm.SendSMS({**sms, "Number": OUTSIDE}))
        assert reference in range(256)
        run_with_timeout(sm.Terminate)
        assert emu.proc.poll() is None
        assert emu.stop(signal.SIGTERM) == 0
    finally:
        emu.close()


def test_duration_ends_it_although_stdin_stays_open() -> None:
    emu = Emulate("--modems", "1", "--duration", "2", stdin=subprocess.PIPE)
    try:
        assert emu.proc.wait(timeout=30) == 0  # no quit, no EOF, no signal: the duration
        assert time.monotonic() - emu.started >= 2
        assert emu.stdout.read() == ""  # nothing after the start-up document
    finally:
        emu.close()


def test_control_lines_on_a_pipe_then_eof_keeps_the_modems_up() -> None:
    emu = Emulate("--modems", "1", "--seed", "32", stdin=subprocess.PIPE)
    try:
        stdin = emu.proc.stdin
        assert stdin is not None
        (modem,) = emu.document["modems"]
        stdin.write("info\n")
        stdin.flush()
        assert emu.reply()["modems"][0]["imsi"] == modem["imsi"]
        with PtyClient(modem["path"]) as c:
            c.command("ATE0")
            stdin.write("inject 0 MyBank before the pipe closes\n")
            stdin.flush()
            assert emu.reply() == {"ok": True, "parts": 1}
            assert c.read_until(b'+CMTI: "SM",1\r\n')
            stdin.write("stats")  # no newline: the last line before EOF still counts
            stdin.close()
            assert emu.reply()["ok"] is True
            emu.assert_stays_up(2)
            assert c.lines("AT+CIMI") == [modem["imsi"], "OK"]
        assert emu.stop(signal.SIGINT) == 0
        assert emu.stdout.read() == ""  # no reply for lines that never came
    finally:
        emu.close()


def test_quit_on_the_control_socket_stops_it_while_stdin_stays_open(tmp_path: Path) -> None:
    sock = tmp_path / "emu.sock"
    emu = Emulate("--modems", "1", "--control", str(sock), stdin=subprocess.PIPE)
    try:
        sent = subprocess.run(
            [*smsgw(), "emulator", "send", str(sock), "quit"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert json.loads(sent.stdout) == {"ok": True, "bye": True}
        assert emu.proc.wait(timeout=30) == 0  # not waiting for a line on stdin first
        assert not sock.exists()
    finally:
        emu.close()
