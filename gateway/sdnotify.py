"""systemd's sd_notify protocol (READY/STATUS/WATCHDOG) over $NOTIFY_SOCKET; a no-op elsewhere."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send one notification (e.g. "READY=1"); False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
    return True


def watchdog_interval() -> float | None:
    """Half the WatchdogSec systemd gave this process, in seconds, or None when unset."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
