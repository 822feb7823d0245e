"""Parser for /work/shared/transcripts (format in their README) and answer-shape classification."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

TRANSCRIPTS = Path("/work/shared/transcripts")
if not TRANSCRIPTS.is_dir():  # a checkout next to the shared inputs
    TRANSCRIPTS = Path(__file__).resolve().parents[3] / "shared" / "transcripts"

FINALS = re.compile(r"^(OK|ERROR|\+CM[ES] ERROR:.*|COMMAND NOT SUPPORT|NO CARRIER)$")
# Unsolicited lines: vendor noise and boot URCs, and the standard SMS/registration indications.
VENDOR_URCS = (
    "^RSSI",
    "^MODE",
    "^SRVST",
    "^BOOT",
    "^HCSQ",
    "^SIMST",
    "+ZUSIMR",
    "RDY",
    "Call Ready",
    "SMS Ready",
    "SMS DONE",
    "PB DONE",
    "+QIND",
    "+QUSIM",
    "^ORIG",
    "^CONF",
    "^CONN",
    "^CEND",
)
SMS_URCS = ("+CMTI:", "+CDSI:", "+CDS:", "+CMT:")


@dataclass
class Exchange:
    """One command and the lines that followed it until the next command."""

    command: str
    answer: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # the '#' lines that follow it

    @property
    def cut_short(self) -> bool:
        """The capture does not show the whole answer ("answer not in the excerpt")."""
        return any("excerpt" in n or "truncated" in n for n in self.notes)


@dataclass
class Section:
    """A '# ---' section: an independent capture (replayed on a fresh modem)."""

    title: str
    prelude: list[str] = field(default_factory=list)  # modem lines before the first command
    exchanges: list[Exchange] = field(default_factory=list)


def parse(path: Path) -> list[Section]:
    """Sections of a transcript file; '#' lines only start sections or are dropped."""
    sections = [Section("(start)")]
    for raw in path.read_text(encoding="utf-8").splitlines():
        if raw.startswith("# ---"):
            sections.append(Section(raw.strip("# -")))
        elif raw.startswith("#"):
            if sections[-1].exchanges:
                sections[-1].exchanges[-1].notes.append(raw)
        elif not raw.strip():
            continue
        elif raw.startswith(">"):
            sections[-1].exchanges.append(Exchange(raw[2:] if raw.startswith("> ") else raw[1:]))
        elif raw.startswith("<"):
            line = raw[2:] if raw.startswith("< ") else raw[1:]
            current = sections[-1]
            if current.exchanges:
                current.exchanges[-1].answer.append(line)
            else:
                current.prelude.append(line)
    return [s for s in sections if s.exchanges or s.prelude]


def is_urc(line: str, command: str) -> bool:
    """Classify by prefix, not position (quirk 2); a command's own info line is not a URC."""
    text = line.strip()
    if text.startswith(VENDOR_URCS):
        return True
    if text.startswith(SMS_URCS):
        return True
    if text.startswith("+CREG:") and "+CREG" not in command.upper():
        return True
    if text.startswith("+CUSD:") and "+CUSD" in command.upper():
        return True  # the USSD answer is unsolicited, after the OK
    return text.startswith("+CPIN:") and "+CPIN" not in command.upper()


def kind(line: str, command: str) -> str:
    """The shape of one answer line."""
    text = line.strip()
    if text.upper() == command.strip().upper():
        return "ECHO"
    if FINALS.match(text):
        return text
    if text.startswith(">"):
        return "PROMPT"
    if text[:1] in "+^$" and ":" in text:
        return text.split(":", 1)[0]
    return "TEXT"


def shape(lines: list[str], command: str) -> list[str]:
    """Kinds of the non-URC, non-blank lines, runs of TEXT collapsed (listings differ in length)."""
    out: list[str] = []
    for line in lines:
        if out and FINALS.match(out[-1]):
            break  # whatever follows the final result code belongs to no command
        if not line.strip() or is_urc(line, command):
            continue
        k = kind(line, command)
        if k == "TEXT" and out and out[-1] == "TEXT":
            continue
        out.append(k)
    return out


def split_lines(raw: bytes) -> list[str]:
    """Modem output as lines: CR LF, the echo's CR CR LF and a lone CR all end a line."""
    text = raw.decode("latin-1")
    return [x for x in re.split(r"\r\r\n|\r\n|\r", text) if x.strip()]
