"""Byte stream -> lines: line endings, echo, the SMS prompt and line noise."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Control bytes that never belong to an answer: NUL/0xFF from power-up noise, XON/XOFF,
# the Ctrl-Z and ESC of an echoed PDU. Tab, CR and LF are kept.
_NOISE = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F, 0xFF])
DEFAULT_MAX_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank line from the modem, stripped of CR/LF and surrounding spaces."""

    text: str
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Echo:
    """A line that is the modem echoing something the host sent (or sent earlier)."""

    text: str


@dataclass(frozen=True, slots=True)
class Prompt:
    """The `>` SMS prompt (TS 27.005 3.5.1), with or without its trailing space."""


FrameEvent = Line | Echo | Prompt


class Framer:
    """Splits modem output into lines; parses lazily so the host can react to a prompt."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._at_line_start = True
        self._skip_space = False
        self._pending: deque[FrameEvent] = deque()
        self._sent: deque[str] = deque(maxlen=4)

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the port."""
        self._buf += data.translate(None, _NOISE)

    def expect_echo(self, text: str) -> None:
        """Record a line the host wrote, so that its echo is recognised."""
        self._sent.append(_echo_key(text))

    def clear(self) -> None:
        """Drop buffered bytes (input flush after a resync)."""
        self._buf.clear()
        self._pending.clear()
        self._at_line_start = True
        self._skip_space = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet framed."""
        return len(self._buf)

    def next_event(self) -> FrameEvent | None:
        """The next framed event, or None when more data is needed."""
        while not self._pending:
            if not self._frame_one():
                return None
        return self._pending.popleft()

    def _frame_one(self) -> bool:
        buf = self._buf
        if not buf:
            return False
        if self._skip_space:
            self._skip_space = False
            if buf[:1] == b" ":
                del buf[:1]
                return True
        if self._at_line_start:
            # Leading CR/LF of the next line: "\r\n> " is the prompt, "\r\nOK\r\n" a line.
            strip = 0
            while strip < len(buf) and buf[strip] in b"\r\n":
                strip += 1
            if strip:
                del buf[:strip]
                return True
            if buf[:1] == b">":
                # The prompt is not followed by CR LF (quirk 5): emit it as soon as it is seen.
                del buf[:1]
                self._skip_space = True
                self._at_line_start = False
                self._pending.append(Prompt())
                return True
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > self._max_line:
                raw = bytes(buf)
                buf.clear()
                self._at_line_start = False
                self._emit(raw, truncated=True)
                return True
            return False
        raw = bytes(buf[:end])
        del buf[: end + 1]
        self._at_line_start = True
        self._emit(raw, truncated=False)
        return True

    def _emit(self, raw: bytes, *, truncated: bool) -> None:
        # A lone CR also ends a line (echo "AT\r" before an answer on some firmwares).
        for part in raw.split(b"\r"):
            text = part.decode("utf-8", "replace").strip()
            if not text:
                continue
            if self._is_echo(text):
                self._pending.append(Echo(text))
            else:
                self._pending.append(Line(text, truncated))

    def _is_echo(self, text: str) -> bool:
        if not self._sent:
            return False
        key = _echo_key(text)
        if key in self._sent:
            return True
        # A stale echo of an earlier command (ZTE MF710M echoed "ATE0+CPMS?" for "AT").
        return key.startswith("AT") and (
            len(key) == 2 or not key[2].isalpha() or key[:3] in _AT_LETTER
        )


# Basic-syntax commands whose echo starts "AT" + a letter (ATE0, ATI, ATZ, ATD...).
_AT_LETTER = frozenset(
    {"ATE", "ATI", "ATZ", "ATD", "ATH", "ATA", "ATQ", "ATV", "ATS", "ATX", "ATO"}
)


def _echo_key(text: str) -> str:
    return "".join(text.split()).upper()
