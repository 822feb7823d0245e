"""`smsgw emulator`: JSON on start-up, control lines on stdin and on the control socket."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner

from gateway.cli import main
from modem.emulator import PERSONALITIES
from tests.emulator.ptyclient import PtyClient

RUN = [sys.executable, "-m", "gateway.cli", "emulator", "run"]


class Running:
    """A `smsgw emulator run` child process spoken to over its stdin/stdout."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [*RUN, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self.stdin: IO[str] = self.proc.stdin
        self.stdout: IO[str] = self.proc.stdout
        self.document = json.loads(self.stdout.readline())

    def ask(self, line: str) -> dict[str, Any]:
        self.stdin.write(line + "\n")
        self.stdin.flush()
        reply: dict[str, Any] = json.loads(self.stdout.readline())
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.ask("quit")
        self.proc.wait(timeout=10)
        self.stdin.close()
        self.stdout.close()


@pytest.fixture
def running() -> Iterator[Running]:
    r = Running("--modems", "2", "--personality", "generic", "--seed", "21")
    try:
        yield r
    finally:
        r.close()


def test_run_prints_modems_and_obeys_control_lines(running: Running) -> None:
    modems = running.document["modems"]
    assert [m["index"] for m in modems] == [0, 1]
    assert all(m["path"].startswith("/dev/pts/") for m in modems)
    assert running.document["smsc"] == "+447700900000"
    with PtyClient(modems[0]["path"]) as c:
        c.command("ATE0")
        assert c.lines("AT+CIMI") == [modems[0]["imsi"], "OK"]
        assert running.ask("inject 0 MyBank Hello from the CLI") == {"ok": True, "parts": 1}
        assert c.read_until(b'+CMTI: "SM",1\r\n')
        reply = running.ask(f"fault {modems[0]['msisdn']} cms_error code=42 rate=1")
        assert reply["ok"] is True
        assert reply["modems"][0]["faults"] == ["cms_error"]
        c.send("AT+CMGS=3\r")  # too short: rejected before the prompt regardless of the fault
        assert c.read_until(b"ERROR\r\n")
        assert running.ask("clear 0 cms_error")["ok"] is True
        assert running.ask('urc 0 now +CMTI: "SM",9') == {"ok": True}
        assert c.read_until(b'+CMTI: "SM",9\r\n')
    assert running.ask("stats")["stats"]["rejected"] == 0
    bad = running.ask("fault 7 hang")
    assert bad["ok"] is False and "out of range" in bad["error"]
    assert running.ask("fault 0 teleport")["ok"] is False
    listed = running.ask("help")["help"]  # the whole list, from its heading
    assert listed.startswith("Control lines (MODEM is an index or an MSISDN")
    assert "inject MODEM SENDER TEXT" in listed


def test_same_seed_prints_the_same_sims() -> None:
    first = Running("--modems", "3", "--seed", "99")
    second = Running("--modems", "3", "--seed", "99")
    try:
        strip = [{k: v for k, v in m.items() if k != "path"} for m in first.document["modems"]]
        again = [{k: v for k, v in m.items() if k != "path"} for m in second.document["modems"]]
        assert strip == again
    finally:
        first.close()
        second.close()


def test_control_socket_and_send_subcommand(tmp_path: Path) -> None:
    sock = tmp_path / "emu.sock"
    r = Running("--modems", "1", "--control", str(sock), "--seed", "4")
    try:
        result = CliRunner().invoke(main, ["emulator", "send", str(sock), "info"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["modems"][0]["imsi"] == r.document["modems"][0]["imsi"]
        result = CliRunner().invoke(main, ["emulator", "send", str(sock), "nonsense"])
        assert result.exit_code == 1
        assert json.loads(result.output)["ok"] is False
    finally:
        r.close()


def test_personalities_listing() -> None:
    result = CliRunner().invoke(main, ["emulator", "personalities"])
    assert result.exit_code == 0
    names = [line.split()[0] for line in result.output.splitlines()]
    assert names == list(PERSONALITIES)
    assert {"generic", "huawei", "sim800", "sim7600", "ec25", "wavecom", "zte"} <= set(names)
