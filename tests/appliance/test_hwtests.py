"""hwtests: skipped (not passed) without hardware; against emulated modems they pass and record
transcripts in the shared format."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.at.transcript import Receive, Send, parse_transcript

ROOT = Path(__file__).resolve().parents[2]


def run_hwtests(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SMSGW_HW_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "hwtests", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def summary(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_without_hardware_everything_is_skipped() -> None:
    result = run_hwtests({})
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.fullmatch(r"5 skipped in [0-9.]+s", summary(result.stdout)), result.stdout
    assert "no hardware: set SMSGW_HW_PORTS" in result.stdout


def test_against_emulated_modems_they_pass_and_record_transcripts(tmp_path: Path) -> None:
    emulator = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "emulator", "run", "--modems", "2",
         "--report-delay", "0", "--seed", "5"],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        modems = json.loads(emulator.stdout.readline())["modems"]
        out = tmp_path / "transcripts"
        result = run_hwtests(
            {
                "SMSGW_HW_PORTS": ",".join(m["path"] for m in modems),
                "SMSGW_HW_PEER": modems[1]["msisdn"],
                "SMSGW_HW_TRANSCRIPTS": str(out),
            }
        )
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
        for stream in (emulator.stdin, emulator.stdout):
            if stream is not None:
                stream.close()
    # Two probes, loopback with a report, concatenated UCS-2, USSD; replug needs a person.
    assert re.fullmatch(r"5 passed, 1 skipped in [0-9.]+s", summary(result.stdout)), result.stdout
    files = sorted(p.name for p in out.iterdir())
    assert len(files) == 7  # per test and port: probe x2, loopback x2, UCS-2 x2, USSD
    steps = parse_transcript((out / next(f for f in files if "loopback" in f)).read_text())
    sent = [s.text for s in steps if isinstance(s, Send)]
    received = [s.text for s in steps if isinstance(s, Receive)]
    sender = f"test_loopback_with_status_report-{Path(modems[0]['path']).name}.txt"
    sender_steps = parse_transcript((out / sender).read_text())
    assert any(s.text.startswith("AT+CMGS=") for s in sender_steps if isinstance(s, Send))
    assert any(s.text.endswith("<Ctrl-Z>") for s in sender_steps if isinstance(s, Send))
    assert "> " in [s.text for s in sender_steps if isinstance(s, Receive)]  # the prompt
    # The driver first leaves any PDU prompt a previous owner left (ESC), then wakes with AT.
    assert [t for t in sent if t][:2] == ["<Esc>", "AT"] and "OK" in received
