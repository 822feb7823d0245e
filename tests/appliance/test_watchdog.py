"""sd_notify: READY, STATUS and WATCHDOG reach a fake $NOTIFY_SOCKET; a blocked loop goes quiet."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.appliance import sdnotify
from gateway.config import Config
from gateway.daemon import serve

WATCHDOG_USEC = 40_000  # WatchdogSec=40ms: the daemon pings every 10 ms
QUIET_WINDOW = 0.5  # 50 ping periods with the loop blocked: not one ping may arrive
ANSWER = 10.0  # generous bound for things that must happen


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket standing in for systemd's, wired in through the environment."""
    address = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(ANSWER)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", str(WATCHDOG_USEC))
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    try:
        yield sock
    finally:
        sock.close()


def _receive_until(sock: socket.socket, needle: str) -> list[str]:
    seen: list[str] = []
    while True:
        message = sock.recv(4096).decode()
        seen.append(message)
        if needle in message.splitlines():
            return seen


def _drain(sock: socket.socket) -> None:
    sock.setblocking(False)
    try:
        while True:
            sock.recv(4096)
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(ANSWER)


def test_blocked_event_loop_stops_watchdog_pings(
    notify_socket: socket.socket, tmp_path: Path
) -> None:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    config = Config(data_dir=tmp_path / "data", discover=())
    daemon = threading.Thread(
        target=loop.run_until_complete, args=(serve(config, stop=stop, frontends=[]),)
    )
    entered, release = threading.Event(), threading.Event()
    daemon.start()
    try:
        ready = _receive_until(notify_socket, "READY=1")
        assert any("STATUS=0/0 modem(s) ready" in m for m in ready)
        pings = _receive_until(notify_socket, "WATCHDOG=1")
        assert "STATUS=0/0 modem(s) ready" in pings[-1]

        # Block the event loop (as a stuck synchronous call would) and listen.
        def block() -> None:
            entered.set()
            release.wait(ANSWER * 3)

        loop.call_soon_threadsafe(block)
        assert entered.wait(ANSWER)
        _drain(notify_socket)  # pings sent before the loop got stuck
        notify_socket.settimeout(QUIET_WINDOW)
        with pytest.raises(TimeoutError):
            notify_socket.recv(4096)

        # Unblocked, the loop pings again: systemd would only restart a loop that stays stuck.
        release.set()
        notify_socket.settimeout(ANSWER)
        _receive_until(notify_socket, "WATCHDOG=1")
    finally:
        release.set()
        loop.call_soon_threadsafe(stop.set)
        daemon.join(ANSWER)
        # What asyncio.run does: the default executor's thread (the daemon's integrity check
        # ran there) is joined, not left to outlive the test.
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
    assert "STOPPING=1" in "\n".join(_drain_all(notify_socket))


def _drain_all(sock: socket.socket) -> list[str]:
    out: list[str] = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out


def test_ping_period_is_a_quarter_of_watchdogsec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")  # the unit's WatchdogSec=60
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sdnotify.watchdog_period() == 15.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))  # meant for another process
    assert sdnotify.watchdog_period() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert sdnotify.watchdog_period() is None


def test_notify_never_raises_on_a_dead_socket(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("WATCHDOG=1") is False
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert sdnotify.notify("READY=1") is False
