"""Real-hardware settings from the environment; without SMSGW_HW_PORTS every test is skipped.

SMSGW_HW_PORTS       ports of the modems under test, comma or space separated
                     (e.g. "/dev/smsgw/huawei-0123-if02 /dev/smsgw/quectel-4567-if02")
SMSGW_HW_PEER        phone number of the SIM in the SECOND port: the first modem sends to it
                     (loopback, status report, concatenated UCS-2); needs two ports
SMSGW_HW_PIN         SIM PIN, if the SIMs ask for one
SMSGW_HW_USSD        balance code (default *100#)
SMSGW_HW_REPLUG      set to 1 to run the unplug/replug step (you pull and replug the first modem)
SMSGW_HW_TRANSCRIPTS where to write the recorded AT transcripts (default hwtests/transcripts-out)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hwtests.tap import TranscriptRecorder


@dataclass(frozen=True, slots=True)
class Hardware:
    """What the environment says is plugged in."""

    ports: tuple[str, ...]
    peer: str | None
    pin: str | None
    ussd: str
    replug: bool
    transcripts: Path


def hardware_from_env(env: dict[str, str] | os._Environ[str] = os.environ) -> Hardware:
    """Parse the SMSGW_HW_* variables."""
    ports = tuple(p for p in re.split(r"[,\s]+", env.get("SMSGW_HW_PORTS", "")) if p)
    return Hardware(
        ports=ports,
        peer=env.get("SMSGW_HW_PEER") or None,
        pin=env.get("SMSGW_HW_PIN") or None,
        ussd=env.get("SMSGW_HW_USSD") or "*100#",
        replug=env.get("SMSGW_HW_REPLUG") == "1",
        transcripts=Path(
            env.get("SMSGW_HW_TRANSCRIPTS") or Path(__file__).parent / "transcripts-out"
        ),
    )


HW = hardware_from_env()
NO_PORTS = "no hardware: set SMSGW_HW_PORTS to the modem ports under test"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without SMSGW_HW_PORTS every hardware test is reported as skipped, never as passed."""
    if HW.ports:
        return
    skip = pytest.mark.skip(reason=NO_PORTS)
    for item in items:
        if "hardware" in item.keywords:
            item.add_marker(skip)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "hardware: needs real modems (SMSGW_HW_PORTS)")


@pytest.fixture
def hw() -> Hardware:
    """The hardware under test."""
    return HW


class Transcripts:
    """One recorder per port for the running test, written out when the test ends."""

    def __init__(self, test: str) -> None:
        self.test = test
        self.recorders: dict[str, TranscriptRecorder] = {}

    def for_port(self, port: str) -> TranscriptRecorder:
        """The recorder of `port` in this test (made on first use)."""
        if port not in self.recorders:
            rec = TranscriptRecorder(title=f"smsgw hwtests: {self.test} on {port}")
            rec.section(self.test)
            self.recorders[port] = rec
        return self.recorders[port]

    def write(self, directory: Path) -> list[Path]:
        """Save every recorder that saw traffic."""
        written = []
        for port, rec in self.recorders.items():
            if not any(line.startswith(("> ", "<")) for line in rec.lines):
                continue
            name = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{self.test}-{Path(port).name}").strip("-")
            written.append(rec.write(directory / f"{name}.txt", source=SOURCE))
        return written


SOURCE = "smsgw hwtests on real hardware (hwtests/tap.py)"


@pytest.fixture
def transcripts(request: pytest.FixtureRequest, hw: Hardware) -> Iterator[Transcripts]:
    """Records this test's AT traffic per port; written as transcripts when the test ends."""
    found = Transcripts(request.node.name)
    yield found
    found.write(hw.transcripts)
