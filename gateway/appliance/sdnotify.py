"""systemd's sd_notify protocol (READY/STATUS/WATCHDOG) over $NOTIFY_SOCKET; a no-op elsewhere."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send one notification (e.g. "READY=1"); False when not run by systemd or it failed.

    Never raises: a notification that cannot be delivered must not take the daemon down (the
    watchdog then restarts it, which is what a dead notify socket calls for anyway).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def watchdog_usec() -> int | None:
    """The WatchdogSec systemd gave this process, in microseconds, or None when unset."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value if value > 0 else None


def watchdog_interval() -> float | None:
    """Half the WatchdogSec systemd gave this process, in seconds, or None when unset."""
    usec = watchdog_usec()
    return usec / 2_000_000 if usec else None


def watchdog_period() -> float | None:
    """How often to ping: a quarter of WatchdogSec, so one late ping never costs a restart."""
    usec = watchdog_usec()
    return usec / 4_000_000 if usec else None
