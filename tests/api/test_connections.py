"""Idle, slowloris and flooding HTTP clients against the daemon on emulated modems: the other
clients are still answered, batches still send (the emulated network records them) and the
slow ones are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import selectors
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from api.connections import FD_RESERVE, accept_backlog, connection_cap
from gateway.accounts import create_account
from gateway.config import Config, ConfigError, HttpSettings, load
from gateway.daemon import Gateway
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.emulated import free_port, serving
from tests.gateway.watch import StoreWatch

DEADLINE = 120.0
NORMAL_TIMEOUT = 5.0  # each normal-client request must be answered within this, under attack
# Connections held at once: 1,000 in `make test`, 5,000 in the slow suite (both ends of each
# live in this process, so fewer if RLIMIT_NOFILE's hard limit is under ~10,400).
HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
BODY_HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: gateway\r\nContent-Length: 100000\r\n"


@pytest.fixture(autouse=True)
def open_files() -> Iterator[int]:
    """The soft open-file limit raised to the hard one (both ends of every connection live in
    this process); yields how many attack connections fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        yield (hard - 400) // 2
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Attack:
    """Blocking sockets in a thread of their own: a third idle, a third sending a request head
    a byte at a time, a third a body a byte at a time."""

    def __init__(self, port: int, count: int, *, kinds: int = 3) -> None:
        self.port = port
        self.count = count
        self.kinds = kinds  # 2: idle and slow heads only
        self.sockets: list[socket.socket] = []
        self.refused = 0  # connects the server (or its backlog) turned away
        # A real key for the slow bodies, so the handler waits for the body (no 401 that would
        # slow this IP's logins down, the normal client's included).
        self.api_key = ""

    def open(self) -> None:
        """Connect them all and send each its first bytes."""
        for i in range(self.count):
            sock = socket.socket()
            sock.settimeout(10.0)
            try:
                sock.connect(("127.0.0.1", self.port))
                if i % self.kinds == 1:
                    sock.sendall(HEAD)
                elif i % self.kinds == 2:
                    auth = f"Authorization: Bearer {self.api_key}\r\n\r\n{{".encode()
                    sock.sendall(BODY_HEAD + auth)
            except OSError:
                self.refused += 1
                sock.close()
                continue
            self.sockets.append(sock)

    def trickle(self) -> None:
        """One more byte on every trickling connection still open."""
        for i, sock in enumerate(self.sockets):
            if i % self.kinds:
                with contextlib.suppress(OSError):
                    sock.send(b"a")

    def still_open(self) -> int:
        """Connections the server has not closed (nothing to read: no EOF, no reset)."""
        with selectors.DefaultSelector() as sel:
            for sock in self.sockets:
                sel.register(sock, selectors.EVENT_READ)
            closed = len(sel.select(timeout=0))
        return len(self.sockets) - closed

    def wait_all_closed(self, timeout: float) -> int:
        """Block until the server has closed every connection (or `timeout`); return how many
        are still open."""
        end = time.monotonic() + timeout
        pending = set(self.sockets)
        with selectors.DefaultSelector() as sel:
            for sock in pending:
                sel.register(sock, selectors.EVENT_READ)
            while pending and time.monotonic() < end:
                for key, _ in sel.select(timeout=end - time.monotonic()):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if not data:  # EOF or reset; a 4xx answer is followed by EOF
                        sel.unregister(sock)
                        pending.discard(sock)
        return len(pending)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


def _config(tmp_path: Path, http: HttpSettings) -> Config:
    return Config(
        data_dir=tmp_path, http_host="127.0.0.1", http_port=free_port(), discover=(), http=http
    )


def _key(gateway: Gateway) -> str:
    return create_account(gateway.store, "shop", now=datetime.now(UTC), unlimited=True).api_key


async def _normal_client(
    api_key: str, config: Config, messages: int, probes: int
) -> tuple[list[float], list[int]]:
    """A well-behaved client on fresh connections: `messages` POST /v1/messages and `probes`
    GET /v1/health; returns each request's latency and the message ids."""
    base = f"http://127.0.0.1:{config.http_port}/v1"
    auth = {"Authorization": f"Bearer {api_key}"}
    latencies: list[float] = []
    ids: list[int] = []
    timeout = aiohttp.ClientTimeout(total=NORMAL_TIMEOUT)
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as client:
        for i in range(messages + probes):
            started = time.perf_counter()
            if i < messages:
                r = await client.post(
                    f"{base}/messages", json={"to": MAGIC_DELIVERED, "text": f"m{i}"}, headers=auth
                )
                assert r.status == 201, await r.text()
                ids.extend((await r.json())["message_ids"])
            else:
                r = await client.get(f"{base}/health")
                assert r.status in (200, 503), await r.text()
                await r.read()
            latencies.append(time.perf_counter() - started)
    return latencies, ids


async def _sent(gateway: Gateway, ids: list[int]) -> None:
    watch = StoreWatch(gateway)
    await watch.until(
        lambda: all(
            p["state"] in ("sent", "delivered")
            for message_id in ids
            for p in gateway.store.parts(message_id)
        )
    )


@pytest.mark.parametrize("count", [1000, pytest.param(5000, marks=pytest.mark.slow)])
def test_thousands_of_idle_and_slow_connections_do_not_stop_clients_or_sending(
    tmp_path: Path, open_files: int, count: int, capsys: pytest.CaptureFixture[str]
) -> None:
    count = min(count, open_files)
    http = HttpSettings(idle_timeout=300.0, body_timeout=300.0, max_connections=count + 100)
    config = _config(tmp_path, http)
    attack = Attack(config.http_port, count)

    async def scenario(emu: EmulatorPool) -> tuple[int, list[float]]:
        async with serving(config, [m.path for m in emu.info()]) as gateway:
            attack.api_key = _key(gateway)
            await asyncio.to_thread(attack.open)
            await asyncio.to_thread(attack.trickle)
            latencies, ids = await _normal_client(attack.api_key, config, messages=6, probes=20)
            await asyncio.to_thread(attack.trickle)
            await _sent(gateway, ids)
            held = await asyncio.to_thread(attack.still_open)
            return held, latencies

    try:
        with EmulatorPool(["generic", "huawei"], seed=16) as emu:
            held, latencies = asyncio.run(asyncio.wait_for(scenario(emu), DEADLINE))
            sent = [o for o in emu.outside() if o.destination == MAGIC_DELIVERED]
    finally:
        attack.close()
    assert attack.refused == 0
    assert held == count  # every attacker still connected: nobody was dropped early
    assert len(sent) == 6  # the batch left through the emulated network meanwhile
    assert max(latencies) < NORMAL_TIMEOUT
    with capsys.disabled():
        ordered = sorted(latencies)
        print(
            f"\n{held} connections held; normal client: median {ordered[len(ordered) // 2]:.3f}s"
            f" max {ordered[-1]:.3f}s over {len(latencies)} requests"
        )


def test_idle_and_slowloris_connections_are_dropped_after_their_timeouts(tmp_path: Path) -> None:
    http = HttpSettings(idle_timeout=0.5, body_timeout=0.5)
    config = _config(tmp_path, http)
    attack = Attack(config.http_port, 300)

    async def scenario(emu: EmulatorPool) -> int:
        async with serving(config, [m.path for m in emu.info()]) as gateway:
            attack.api_key = _key(gateway)
            await asyncio.to_thread(attack.open)
            await asyncio.to_thread(attack.trickle)

            def trickle_until_closed() -> int:
                stop = threading.Event()

                def feed() -> None:  # a byte every 0.1 s: slower than the timeouts allow
                    while not stop.wait(0.1):
                        attack.trickle()

                feeder = threading.Thread(target=feed)
                feeder.start()
                try:
                    return attack.wait_all_closed(timeout=20.0)
                finally:
                    stop.set()
                    feeder.join()

            left = await asyncio.to_thread(trickle_until_closed)
            await _normal_client(attack.api_key, config, messages=1, probes=1)  # still serving
            return left

    try:
        with EmulatorPool(["generic"], seed=17) as emu:
            left = asyncio.run(asyncio.wait_for(scenario(emu), DEADLINE))
    finally:
        attack.close()
    assert left == 0


def test_at_the_connection_cap_idle_connections_make_room_for_new_clients(
    tmp_path: Path,
) -> None:
    http = HttpSettings(max_connections=50, idle_timeout=300.0)
    config = _config(tmp_path, http)
    # No slow bodies here: a request under way is never closed for room, so those would hold
    # the cap until body_timeout (the test above shows they are dropped then).
    attack = Attack(config.http_port, 400, kinds=2)

    async def scenario(emu: EmulatorPool) -> tuple[int, list[float]]:
        async with serving(config, [m.path for m in emu.info()]) as gateway:
            attack.api_key = _key(gateway)
            await asyncio.to_thread(attack.open)
            latencies, ids = await _normal_client(attack.api_key, config, messages=2, probes=5)
            await _sent(gateway, ids)
            return await asyncio.to_thread(attack.still_open), latencies

    try:
        with EmulatorPool(["generic"], seed=18) as emu:
            still_open, latencies = asyncio.run(asyncio.wait_for(scenario(emu), DEADLINE))
            sent = [o for o in emu.outside() if o.destination == MAGIC_DELIVERED]
    finally:
        attack.close()
    assert attack.refused == 0  # accepted, then the oldest idle ones closed: no stalled connects
    assert still_open <= 50  # the server kept no more than its cap
    assert len(sent) == 2
    assert len(latencies) == 7


def test_http_settings_from_toml_and_fitted_to_the_open_file_limit(tmp_path: Path) -> None:
    path = tmp_path / "smsgw.toml"
    path.write_text("[http]\nport = 9000\nidle_timeout = 5\nmax_connections = 4000\n")
    config = load(path)
    assert (config.http_port, config.http.idle_timeout, config.http.max_connections) == (
        9000,
        5.0,
        4000,
    )
    assert connection_cap(config.http, fd_limit=100_000) == 4000
    # Under systemd's 1024: the cap, one accept burst and the daemon's own files fit.
    cap = connection_cap(config.http, fd_limit=1024)
    assert cap + accept_backlog(config.http, 1024) + FD_RESERVE <= 1024
    path.write_text("[http]\nidle_timeout = 0\n")
    with pytest.raises(ConfigError, match="idle_timeout"):
        load(path)
    path.write_text("[http]\nheader_timeout = 3\n")
    with pytest.raises(ConfigError, match="header_timeout"):
        load(path)
