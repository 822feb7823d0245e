"""A raw AT client on a PTY path for the emulator tests (select() with timeouts, no sleeps)."""

from __future__ import annotations

import os
import re
import select
import time
from typing import TYPE_CHECKING

from modem.pdu import build_submits, encode_pdu

if TYPE_CHECKING:
    from modem.emulator import EmulatorPool

FINAL = re.compile(
    rb"(?:^|\r\n)(OK|ERROR|\+CM[ES] ERROR:[^\r\n]*|COMMAND NOT SUPPORT|NO CARRIER)\r\n"
)
TIMEOUT = 5.0


class PtyClient:
    """Raw bytes to and from one emulated modem."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.buffer = b""

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PtyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode("latin-1")
        os.write(self.fd, data)

    def fill(self, deadline: float) -> bool:
        """Read what is there (waiting until the deadline at most); False when nothing came."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self.fd], [], [], remaining)
        if not ready:
            return False
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return True
        self.buffer += chunk
        return True

    def read_until(self, marker: bytes | re.Pattern[bytes], timeout: float = TIMEOUT) -> bytes:
        """Everything up to and including the marker; AssertionError on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if isinstance(marker, bytes):
                k = self.buffer.find(marker)
                end = k + len(marker) if k >= 0 else -1
            else:
                m = marker.search(self.buffer)
                end = m.end() if m else -1
            if end >= 0:
                out, self.buffer = self.buffer[:end], self.buffer[end:]
                return out
            if not self.fill(deadline):
                raise AssertionError(f"timeout waiting for {marker!r}; got {self.buffer!r}")

    def command(self, cmd: str, timeout: float = TIMEOUT) -> bytes:
        """Send one command line and return the raw answer up to its final result code."""
        self.send(cmd + "\r")
        return self.read_until(FINAL, timeout)

    def lines(self, cmd: str) -> list[str]:
        """The answer's non-empty lines (echo included if on)."""
        raw = self.command(cmd)
        return [x for x in re.split(r"\r\r\n|\r\n|\r", raw.decode("latin-1")) if x]

    def send_pdu(self, pdu_hex: str, tpdu_len: int, prompt: bytes = b"> ") -> bytes:
        """AT+CMGS in PDU mode: wait for the prompt, send the PDU and Ctrl-Z, return the answer."""
        self.send(f"AT+CMGS={tpdu_len}\r")
        self.read_until(prompt)
        self.send(pdu_hex.encode() + b"\x1a")
        return self.read_until(FINAL)


def client(pool: EmulatorPool, index: int, *, echo: bool = False) -> PtyClient:
    c = PtyClient(pool.path(index))
    c.command("ATE1" if echo else "ATE0")
    c.command("AT+CMEE=1")
    return c


def submit_pdu(destination: str, text: str, *, status_report: bool = False) -> tuple[str, int]:
    """Hex PDU (with the empty SMSC field) and TPDU length for AT+CMGS."""
    encoded = encode_pdu(build_submits(destination, text, status_report=status_report)[0])
    return encoded.hex, encoded.tpdu_length


def send_text(c: PtyClient, destination: str, text: str, *, status_report: bool = False) -> bytes:
    hexpdu, length = submit_pdu(destination, text, status_report=status_report)
    return c.send_pdu(hexpdu, length)
