"""Parser for /work/shared/transcripts (`> ` host, `< ` modem, `# ` notes) and a replay oracle.

The oracle (`expected_events`) restates the driver's rules from the transcript's own structure:
one command in flight; the first final result code after a command ends it; lines listed as
unsolicited for that file are URCs unless they carry the in-flight command's own prefix; after
the command ended, finals are stale and other lines unexpected; a new command or section while
a command is unanswered means the host gave up (abort).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

TRANSCRIPTS = Path("/work/shared/transcripts")


@dataclass(frozen=True)
class Send:
    """A line the host wrote (`> `)."""

    text: str


@dataclass(frozen=True)
class Receive:
    """A line the modem sent (`< `), raw (spaces kept); "" for a blank line."""

    text: str


@dataclass(frozen=True)
class Section:
    """`# ---` or `## ` header: an independent capture starts."""

    title: str


Step = Send | Receive | Section


def parse_transcript(text: str) -> list[Step]:
    """Steps of a transcript file."""
    steps: list[Step] = []
    for raw in text.splitlines():
        if raw.startswith("> "):
            steps.append(Send(raw[2:].rstrip()))
        elif raw.startswith("< "):
            steps.append(Receive(raw[2:]))
        elif raw.rstrip() == "<":
            steps.append(Receive(""))
        elif raw.startswith("## ") or raw.startswith("# ---"):
            steps.append(Section(raw.lstrip("#- ").strip()))
    return steps


def load(name: str) -> list[Step]:
    """Steps of /work/shared/transcripts/<name>."""
    return parse_transcript((TRANSCRIPTS / name).read_text(encoding="utf-8"))


def section_lines(name: str, title: str) -> list[str]:
    """What the modem sent in the transcript section whose title has `title`, up to the host's
    next line (blank lines left out)."""
    out: list[str] = []
    inside = False
    for step in load(name):
        if isinstance(step, Section):
            if inside:
                break
            inside = title in step.title
        elif inside and isinstance(step, Send) and out:
            break
        elif inside and isinstance(step, Receive) and step.text.strip():
            out.append(step.text.strip())
    assert out, f"no section {title!r} in {name}"
    return out


def transcript_names() -> list[str]:
    """Every transcript file."""
    return sorted(p.name for p in TRANSCRIPTS.glob("*.txt"))


_FINAL = re.compile(
    r"^(OK|ERROR|COMMAND NOT SUPPORT|NO CARRIER|BUSY|NO ANSWER|NO DIALTONE"
    r"|\+CME ERROR(:.*)?|\+CMS ERROR(:.*)?)$"
)
_NAME = re.compile(r"^([+^][A-Z0-9]+)")


def is_final(line: str) -> bool:
    """A final result code, by its literal spelling."""
    return _FINAL.match(line) is not None


def command_name(host_line: str) -> str | None:
    """`AT+CPMS="SM"` -> `+CPMS`."""
    match = _NAME.match(host_line[2:].upper())
    return match.group(1) if match else None


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean(text: str) -> str:
    """A modem line as the framer reports it: control bytes dropped, spaces stripped."""
    return _CONTROL.sub("", text).strip()


def _norm(text: str) -> str:
    return "".join(text.split()).upper()


def is_body(steps: list[Step], i: int) -> bool:
    """True when host line i is the body of the AT+CMGS before it (not a command)."""
    step = steps[i]
    if not isinstance(step, Send) or step.text[:2].upper() == "AT":
        return False
    for prev in reversed(steps[:i]):
        if isinstance(prev, Send):
            return prev.text.upper().startswith("AT+CMGS")
        if isinstance(prev, Section):
            return False
    return False


def cmgs_body(steps: list[Step], i: int) -> str:
    """Body for the AT+CMGS at step i: the host's next line, or what the prompt echoed."""
    for step in steps[i + 1 :]:
        if isinstance(step, Receive) and step.text.strip().startswith(">"):
            echoed = step.text.strip()[1:].strip()
            if echoed:
                return echoed
        if isinstance(step, Send):
            if step.text[:2].upper() != "AT":
                return step.text.replace("<Ctrl-Z>", "").strip()
            break
        if isinstance(step, Section):
            break
    return "00"


# Events in comparable form:
#   ("response", command line, info lines, final line) ("urc", class name, line)
#   ("prompt", command line) ("stale", final line) ("unexpected", line) ("abort", command line)
Ev = tuple[object, ...]


def urc_kind(line: str, listed: dict[str, str]) -> str | None:
    """The URC class a file's notes say this line is (+CUSD lines are always URCs)."""
    if line in listed:
        return listed[line]
    if line.startswith("+CUSD:"):
        return "UssdIndication"
    return None


def expected_events(steps: list[Step], urcs: dict[str, str]) -> list[Ev]:
    """What a correct session reports for these steps (see module docstring)."""
    out: list[Ev] = []
    cmd: str | None = None
    body = ""
    info: list[str] = []
    prompt_open = False
    for i, step in enumerate(steps):
        if isinstance(step, Section):
            if cmd is not None:
                out.append(("abort", cmd))
            cmd = None
            continue
        if isinstance(step, Send):
            if is_body(steps, i):
                continue
            if cmd is not None:
                out.append(("abort", cmd))
            cmd = step.text
            info = []
            prompt_open = cmd.upper().startswith("AT+CMGS")
            body = cmgs_body(steps, i) if prompt_open else ""
            continue
        line = clean(step.text)
        if not line:
            continue
        if cmd is not None and prompt_open and line.startswith(">"):
            out.append(("prompt", cmd))
            prompt_open = False
            continue
        if cmd is not None and _norm(line) in (_norm(cmd), _norm(body)):
            continue  # echo
        kind = urc_kind(line, urcs)
        own = (
            cmd is not None
            and _NAME.match(line) is not None
            and (
                _NAME.match(line).group(1) == command_name(cmd)  # type: ignore[union-attr]
            )
        )
        if kind is not None and not own:
            out.append(("urc", kind, line))
        elif cmd is not None:
            if is_final(line):
                out.append(("response", cmd, tuple(info), line))
                cmd = None
            else:
                info.append(line)
        elif is_final(line):
            out.append(("stale", line))
        else:
            out.append(("unexpected", line))
    if cmd is not None:
        out.append(("abort", cmd))
    return out


@dataclass
class Segment:
    """What happens between two host actions: maybe a send, then modem bytes."""

    send: str | None
    body: str | None
    section: bool
    data: bytes


def modem_bytes(line: str, *, echo: bool, style: int) -> bytes:
    """Frame one modem line the way modems do (V1 framing, Huawei bare URCs, echo \\r\\r\\n)."""
    raw = line.encode("utf-8")
    stripped = line.strip()
    if not stripped:
        return b"\r\n"
    if echo:
        return raw + b"\r\r\n"
    if stripped.startswith(">"):
        rest = stripped[1:]
        # "\r\n> " without CR LF; an echoed body follows on the same line.
        return b"\r\n" + raw.strip() + (b"\r\n" if rest.strip() else b"")
    if style == 0:
        return b"\r\n" + raw + b"\r\n"
    if style == 1:
        return raw + b"\r\n"
    return b"\r\n" + raw + b"\r\r\n"


def segments(steps: list[Step], seed: int = 0) -> list[Segment]:
    """Split the transcript into host actions and the modem bytes that follow each one."""
    rng = random.Random(seed)
    out: list[Segment] = [Segment(None, None, False, b"")]
    current: str | None = None
    for i, step in enumerate(steps):
        if isinstance(step, Section):
            out.append(Segment(None, None, True, b""))
            current = None
        elif isinstance(step, Send):
            if is_body(steps, i):
                continue
            current = step.text
            body = cmgs_body(steps, i) if current.upper().startswith("AT+CMGS") else None
            out.append(Segment(current, body, False, b""))
        else:
            echo = current is not None and _norm(step.text) == _norm(current)
            out[-1].data += modem_bytes(step.text, echo=echo, style=rng.randrange(3))
    return out


NOISE = (b"\x00", b"\xff", b"\x11", b"\x13")


def add_noise(data: bytes, rng: random.Random, rate: float = 0.05) -> bytes:
    """Sprinkle line-noise bytes (NUL, 0xFF, XON, XOFF) at random positions."""
    out = bytearray()
    for b in data:
        if rng.random() < rate:
            out += rng.choice(NOISE)
        out.append(b)
    return bytes(out)


def split_random(data: bytes, rng: random.Random) -> list[bytes]:
    """Cut `data` at random points (chunks of 1..64 bytes)."""
    chunks: list[bytes] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, 64)
        chunks.append(data[i : i + n])
        i += n
    return chunks
