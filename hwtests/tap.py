"""A transport tap that records a modem session in the shared transcript format.

Format (see ../shared/transcripts/README.md): `> ` what the host sent, `< ` what the modem
answered (echo included), `# ` annotations, `# --- title ---` starts a section; unsolicited lines
stay where they arrived. The tap sits between ModemClient and the real port
(`ModemClient(transport_factory=tap.factory(port))`), so the driver runs unchanged.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from modem.client import TransportFactory
from modem.transport import ByteTransport, open_transport

CTRL_Z = b"\x1a"
ESC = b"\x1b"


@dataclass
class TranscriptRecorder:
    """Turns the two byte streams into transcript lines."""

    title: str
    lines: list[str] = field(default_factory=list)
    _from_modem: bytearray = field(default_factory=bytearray)
    _from_host: bytearray = field(default_factory=bytearray)

    def section(self, title: str) -> None:
        """Start an independent capture (a test)."""
        self._flush_modem(partial=True)
        self.lines.append(f"# --- {title} ---")

    def note(self, text: str) -> None:
        """An annotation line."""
        self.lines.append(f"# {text}")

    def host(self, data: bytes) -> None:
        """Bytes the host wrote: a command ends with CR, a PDU with Ctrl-Z (or ESC to cancel)."""
        # Whatever the modem sent without a line end so far (the "> " prompt) came first.
        self._flush_modem(partial=True)
        self._from_host.extend(data)
        while True:
            ends = [i for i in (self._from_host.find(b) for b in (b"\r", CTRL_Z, ESC)) if i >= 0]
            if not ends:
                return
            end = min(ends)
            chunk = bytes(self._from_host[:end]).decode("ascii", "replace").strip("\n")
            terminator = self._from_host[end : end + 1]
            del self._from_host[: end + 1]
            suffix = {CTRL_Z: "<Ctrl-Z>", ESC: "<Esc>"}.get(bytes(terminator), "")
            self.lines.append(f"> {chunk}{suffix}")

    def modem(self, data: bytes) -> None:
        """Bytes the modem sent: one `< ` line per CR LF-terminated line (blank ones too)."""
        self._from_modem.extend(data)
        self._flush_modem(partial=False)

    def _flush_modem(self, *, partial: bool) -> None:
        while True:
            end = self._from_modem.find(b"\n")
            if end < 0:
                break
            raw = bytes(self._from_modem[:end]).decode("latin-1").rstrip("\r")
            del self._from_modem[: end + 1]
            self.lines.append(f"< {raw}" if raw else "<")
        if partial and self._from_modem:
            raw = bytes(self._from_modem).decode("latin-1").lstrip("\r")
            self._from_modem.clear()
            if raw:
                self.lines.append(f"< {raw}")

    def text(self, source: str) -> str:
        """The whole transcript, with the header every shared transcript starts with."""
        self._flush_modem(partial=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        header = [f"# {self.title}", f"# Source: {source}, recorded {stamp}", ""]
        return "\n".join(header + self.lines) + "\n"

    def write(self, path: Path, source: str) -> Path:
        """Save the transcript to `path`."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text(source))
        return path


class TapTransport:
    """A ByteTransport that copies both directions to a recorder."""

    def __init__(self, inner: ByteTransport, recorder: TranscriptRecorder) -> None:
        self.inner = inner
        self.recorder = recorder

    def write(self, data: bytes) -> None:
        self.recorder.host(data)
        self.inner.write(data)

    def close(self) -> None:
        self.inner.close()

    async def wait_closed(self) -> None:
        await self.inner.wait_closed()

    @property
    def is_closing(self) -> bool:
        return self.inner.is_closing


def tap_factory(port: str, recorder: TranscriptRecorder) -> TransportFactory:
    """A ModemClient transport_factory that opens `port` through the tap."""

    async def factory(
        on_data: Callable[[bytes], None], on_lost: Callable[[Exception | None], None]
    ) -> ByteTransport:
        def tapped(data: bytes) -> None:
            recorder.modem(data)
            on_data(data)

        inner = await open_transport(port, tapped, on_lost)
        return TapTransport(inner, recorder)

    return factory
