"""`smsgw demo` run under a low open-file limit and flooded with connections: the connection
cap keeps descriptors for the rest of the daemon, which logs, keeps answering other clients,
keeps sending and takes new connections again once the flood closes."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from api.connections import accept_backlog
from gateway.config import HttpSettings
from tests.emulated import free_port

NOFILE = 256  # the daemon's soft and hard RLIMIT_NOFILE
FLOOD = 600  # connections, well past what NOFILE allows
STARTUP = 60.0


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _call(url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_a_connection_flood_under_a_low_fd_limit_neither_crashes_nor_stops_sending(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    smsgw = Path(sys.executable).with_name("smsgw")
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [str(smsgw), "demo", "--modems", "2", "--port", str(port),
             "--data-dir", str(tmp_path / "data")],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
            preexec_fn=_limit,  # noqa: PLW1509
        )  # fmt: skip
    flood: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        key = ""
        for line in proc.stdout:  # blocks until the demo says it is ready (or exits)
            if line.startswith("demo account: "):
                key = json.loads(line.removeprefix("demo account: "))["api_key"]
            if line.startswith("ready: "):
                break
        assert key, log_path.read_text()
        for _ in range(FLOOD):
            sock = socket.socket()
            sock.settimeout(10.0)
            sock.connect(("127.0.0.1", port))
            flood.append(sock)
        started = time.perf_counter()
        status, body = _call(f"{base}/messages", key, {"to": "+15005550000", "text": "under flood"})
        latency = time.perf_counter() - started
        assert status == 201, body
        (message_id,) = body["message_ids"]
        # The message leaves while the flood is still connected (the status report follows).
        deadline = time.monotonic() + 30.0
        state = ""
        while time.monotonic() < deadline and state not in ("sent", "delivered"):
            state = _call(f"{base}/messages/{message_id}", key)[1]["state"]
        assert state in ("sent", "delivered")
        assert proc.poll() is None
        for sock in flood:
            sock.close()
        flood.clear()
        assert _call(f"{base}/health", key)[0] in (200, 503)  # new connections after the flood
    finally:
        for sock in flood:
            sock.close()
        proc.terminate()
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()
    text = log_path.read_text()
    assert "connection cap" in text
    assert "Traceback" not in text
    print(f"\nflood of {FLOOD} under NOFILE={NOFILE}: a send answered in {latency:.3f}s")


SCRIPT = r"""
import asyncio, os, sys, time
from aiohttp import web
from api.connections import AcceptErrors, start_site
from gateway.config import HttpSettings

async def hello(request):
    return web.Response(text="ok")

async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = await start_site(app, HttpSettings(), "127.0.0.1", 0)
    handler = asyncio.get_running_loop().get_exception_handler()
    print(runner.addresses[0][1], flush=True)
    sys.stdin.readline()  # the test: "exhaust"
    hogs = []
    try:
        while True:
            hogs.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print(len(hogs), flush=True)
    ticks, started = 0, time.monotonic()
    while handler.count == 0 or ticks < 100:  # until accept has failed, for at least a second
        ticks += 1  # the loop keeps turning while accept fails
        await asyncio.sleep(0.01)
    for fd in hogs:
        os.close(fd)
    print(handler.count, ticks, round(time.monotonic() - started, 2), flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "stop", once its connection was answered
    await runner.cleanup()

asyncio.run(main())
"""


def test_emfile_on_accept_is_logged_once_does_not_spin_and_recovers(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128)),  # noqa: PLW1509
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
        proc.stdin.write("exhaust\n")
        proc.stdin.flush()
        assert int(proc.stdout.readline()) > 0  # descriptors hogged up to the limit
        # It releases them once accept has failed for a second (its loop turning meanwhile).
        waiting = socket.create_connection(("127.0.0.1", port), timeout=10.0)
        with waiting:
            waiting.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            errors, ticks, seconds = (float(x) for x in proc.stdout.readline().split())
            waiting.settimeout(10.0)
            answer = waiting.recv(1000)  # accepted within asyncio's 1 s retry
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert answer.startswith(b"HTTP/1.1 200")
    assert errors >= 1
    # Retried about once a second, not in a tight loop (that would be thousands): asyncio's
    # accept tries up to `backlog` (16 under this limit) times per wake-up before it backs off
    # for a second, and a wake-up may fall either side of the measured span.
    assert errors <= accept_backlog(HttpSettings(), 128) * (seconds + 3)
    assert ticks >= 10  # the loop kept running meanwhile
    assert stderr.count("out of file descriptors") == 1
    assert "Traceback" not in stderr
