"""Byte transports to a modem: serial devices, PTYs, `socket://host:port` (the only serial I/O)."""

from __future__ import annotations

import asyncio
import logging
import urllib.parse
from collections.abc import Callable
from typing import Protocol, cast

import serial
import serial_asyncio_fast

from modem.errors import ModemGone

log = logging.getLogger(__name__)

DataCallback = Callable[[bytes], None]
LostCallback = Callable[[Exception | None], None]


class ByteTransport(Protocol):
    """What the client needs from a port: write bytes, close, and callbacks for input/loss."""

    def write(self, data: bytes) -> None:
        """Queue bytes for the modem (never blocks)."""

    def close(self) -> None:
        """Start closing; `wait_closed()` finishes it."""

    async def wait_closed(self) -> None:
        """Return once the port is closed and its callbacks are done."""

    @property
    def is_closing(self) -> bool:
        """True once closing started or the port was lost."""


class _Bridge(asyncio.Protocol):
    """asyncio protocol that forwards to the client's callbacks."""

    def __init__(self, on_data: DataCallback, on_lost: LostCallback) -> None:
        self._on_data = on_data
        self._on_lost = on_lost
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self._on_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._on_lost(exc)


class AsyncioTransport:
    """A ByteTransport over an asyncio transport (serial or TCP)."""

    def __init__(self, transport: asyncio.BaseTransport, bridge: _Bridge, port: str) -> None:
        self._transport = cast(asyncio.WriteTransport, transport)
        self._bridge = bridge
        self.port = port

    def write(self, data: bytes) -> None:
        if self._transport.is_closing():
            raise ModemGone(f"port {self.port} is closed")
        self._transport.write(data)

    def close(self) -> None:
        # abort, not close: close() flushes (tcdrain), which blocks on a PTY nobody reads.
        if not self._transport.is_closing():
            self._transport.abort()

    async def wait_closed(self) -> None:
        self.close()
        await self._bridge.closed

    @property
    def is_closing(self) -> bool:
        return self._transport.is_closing() or self._bridge.closed.done()


async def open_transport(
    port: str,
    on_data: DataCallback,
    on_lost: LostCallback,
    *,
    baudrate: int = 115200,
    rtscts: bool = False,
) -> AsyncioTransport:
    """Open `port` (/dev path, PTY path or socket://host:port) and wire the callbacks."""
    loop = asyncio.get_running_loop()
    bridge = _Bridge(on_data, on_lost)
    parsed = urllib.parse.urlparse(port)
    try:
        if parsed.scheme == "socket":
            if not parsed.hostname or parsed.port is None:
                raise ModemGone(f"bad socket URL {port!r}: expected socket://host:port")
            transport, _ = await loop.create_connection(
                lambda: bridge, parsed.hostname, parsed.port
            )
        else:
            # Opening a tty does not block for long; doing it inline avoids an executor thread.
            instance = serial.serial_for_url(
                port, baudrate=baudrate, rtscts=rtscts, timeout=0, exclusive=True
            )
            instance.reset_input_buffer()  # flush stale bytes of a previous session (quirk 1)
            transport, _ = await serial_asyncio_fast.connection_for_serial(
                loop, lambda: bridge, instance
            )
    except (OSError, serial.SerialException, ValueError) as exc:
        raise ModemGone(f"cannot open {port}: {exc}") from exc
    log.debug("opened %s", port)
    return AsyncioTransport(transport, bridge, port)
