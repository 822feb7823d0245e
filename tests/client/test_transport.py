"""modem.transport: URL forms and failures as typed errors."""

from __future__ import annotations

import pytest

from modem.errors import ModemGone
from modem.transport import open_transport


def _ignore(_: object) -> None:
    return None


@pytest.mark.parametrize("port", ["socket://127.0.0.1", "socket://:5000", "/dev/no-such-tty"])
async def test_bad_ports_are_modem_gone(port: str) -> None:
    with pytest.raises(ModemGone):
        await open_transport(port, _ignore, _ignore)


async def test_refused_tcp_connection_is_modem_gone() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on: bind, then close before connecting
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(ModemGone, match="cannot open"):
        await open_transport(f"socket://127.0.0.1:{free}", _ignore, _ignore)
