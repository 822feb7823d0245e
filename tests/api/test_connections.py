"""Idle, slowloris and flooding HTTP clients against the daemon on emulated modems: the other
clients are still answered, batches still send (the emulated network records them) and the
slow ones are dropped."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import resource
import select
import selectors
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from aiohttp.web_protocol import RequestHandler

from api.app import build_app
from api.connections import (
    FD_RESERVE,
    GuardedRunner,
    GuardedServer,
    accept_backlog,
    connection_cap,
    peer_key,
    start_site,
)
from gateway.accounts import create_account
from gateway.config import Config, ConfigError, HttpSettings, load
from gateway.daemon import Gateway
from gateway.service import GatewayService, Outgoing
from gateway.store import DATABASE_NAME, Store
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.api.test_bestsms import NAME, World, build_world
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

    def __init__(self, port: int, count: int, *, kinds: int = 3, source: str = "") -> None:
        self.port = port
        self.count = count
        self.kinds = kinds  # 2: idle and slow heads only; 1: slow bodies only (offset below)
        self.source = source  # the address the attacker connects from ("": the kernel's pick)
        self.sockets: list[socket.socket] = []
        self.refused = 0  # connects the server (or its backlog) turned away
        # Real keys for the slow bodies, so the handler waits for the body (no 401 that would
        # slow this IP's logins down, the normal client's included); they take turns.
        self.api_keys: list[str] = []

    def kind(self, i: int) -> str:
        """What connection `i` does: idle, a slow request head or a slow body."""
        return ("idle", "head", "body")[i % self.kinds if self.kinds > 1 else 2]

    def open(self) -> None:
        """Connect them all and send each its first bytes."""
        bodies = 0
        for i in range(self.count):
            sock = socket.socket()
            sock.settimeout(10.0)
            kind = self.kind(i)
            try:
                if self.source:
                    sock.bind((self.source, 0))
                sock.connect(("127.0.0.1", self.port))
                if kind == "head":
                    sock.sendall(HEAD)
                elif kind == "body":
                    key = self.api_keys[bodies % len(self.api_keys)]
                    bodies += 1
                    auth = f"Authorization: Bearer {key}\r\n\r\n{{".encode()
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

    def closed_by_kind(self) -> dict[tuple[str, str], int]:
        """What the connections that are no longer open got, by kind: the server's first line,
        or EOF or the error (for the message of a failed test)."""
        got: collections.Counter[tuple[str, str]] = collections.Counter()
        with selectors.DefaultSelector() as sel:
            for i, sock in enumerate(self.sockets):
                sel.register(sock, selectors.EVENT_READ, self.kind(i))
            for key, _ in sel.select(timeout=0):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(200)  # readable: returns at once
                    what = data.split(b"\r\n")[0].decode(errors="replace") if data else "EOF"
                except OSError as exc:
                    what = type(exc).__name__
                got[(key.data, what)] += 1
        return dict(got)

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


def _key(gateway: Gateway, name: str = "shop") -> str:
    return create_account(gateway.store, name, now=datetime.now(UTC), unlimited=True).api_key


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
    # All from 127.0.0.1, the normal client too: this one address may hold them all here.
    http = HttpSettings(
        idle_timeout=300.0,
        body_timeout=300.0,
        max_connections=count + 100,
        max_connections_per_ip=count + 100,
    )
    config = _config(tmp_path, http)
    attack = Attack(config.http_port, count)
    messages, probes = 6, 20
    # Every slow body is a request, and [limits] answers an API key's requests past its
    # account_burst (refilled at account_rate) 429 at once: rightly, but that connection is no
    # longer held. One key for all 1,666 bodies ran dry (24 to 99 answered 429) when they came
    # within ~1.3 s; most runs are spread over 3-6 s only because a few connects wait 1 s for a
    # SYN retransmit (the accept backlog overflows during a GC pause). So no key serves more
    # bodies than account_burst, and the normal client has its own: no bucket can run dry,
    # however fast they come. All from 127.0.0.1: within the address's burst too.
    bodies = sum(attack.kind(i) == "body" for i in range(count))
    keys = -(-bodies // config.limits.account_burst)
    assert bodies + messages + probes <= config.limits.ip_burst

    async def scenario(emu: EmulatorPool) -> tuple[int, dict[tuple[str, str], int], list[float]]:
        async with serving(config, [m.path for m in emu.info()]) as gateway:
            attack.api_keys = [_key(gateway, f"attacker{n}") for n in range(keys)]
            api_key = _key(gateway)
            await asyncio.to_thread(attack.open)
            await asyncio.to_thread(attack.trickle)
            latencies, ids = await _normal_client(api_key, config, messages, probes)
            await asyncio.to_thread(attack.trickle)
            await _sent(gateway, ids)
            held = await asyncio.to_thread(attack.still_open)
            closed = await asyncio.to_thread(attack.closed_by_kind) if held < count else {}
            return held, closed, latencies

    try:
        with EmulatorPool(["generic", "huawei"], seed=16) as emu:
            held, closed, latencies = asyncio.run(asyncio.wait_for(scenario(emu), DEADLINE))
            sent = [o for o in emu.outside() if o.destination == MAGIC_DELIVERED]
    finally:
        attack.close()
    assert attack.refused == 0
    assert held == count, closed  # every attacker still connected: nobody dropped or answered
    assert len(sent) == messages  # the batch left through the emulated network meanwhile
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
            attack.api_keys = [_key(gateway)]
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
            await _normal_client(attack.api_keys[0], config, messages=1, probes=1)  # still serving
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
            attack.api_keys = [_key(gateway)]
            await asyncio.to_thread(attack.open)
            latencies, ids = await _normal_client(attack.api_keys[0], config, messages=2, probes=5)
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


# -- one address's share, clients that never read, clients gone mid-body ----------------------


@contextlib.asynccontextmanager
async def _site(
    service: GatewayService, http: HttpSettings
) -> AsyncIterator[tuple[GuardedRunner, int]]:
    """The whole HTTP surface (every dialect, the dashboard) behind the guard on a free port."""
    port = free_port()
    runner = await start_site(build_app(service), http, "127.0.0.1", port)
    try:
        yield runner, port
    finally:
        await runner.cleanup()  # waits for the handlers in flight: their logs are in by then


def test_one_address_holding_many_connections_crowds_out_only_itself(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    api_key = create_account(store, "shop", now=datetime.now(UTC), unlimited=True).api_key
    service = GatewayService(store, wall=lambda: datetime.now(UTC))
    http = HttpSettings(
        max_connections=50, max_connections_per_ip=20, idle_timeout=300.0, body_timeout=300.0
    )

    async def scenario() -> tuple[int, int, int, list[float]]:
        async with _site(service, http) as (runner, port):
            # Requests under way, never closed for room: without a share of its own this
            # address would hold every slot, and every newcomer would be turned away.
            attack = Attack(port, 120, kinds=1, source="127.0.0.2")
            attack.api_keys = [api_key]
            try:
                await asyncio.to_thread(attack.open)
                config = Config(http_port=port)
                latencies, ids = await _normal_client(api_key, config, messages=3, probes=10)
                held = await asyncio.to_thread(attack.still_open)
                return held, runner.guarded.connections_from("127.0.0.2"), len(ids), latencies
            finally:
                attack.close()

    try:
        held, counted, accepted, latencies = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    finally:
        store.close()
    assert held == counted == 20  # its share, the rest of its 120 closed as they came
    assert accepted == 3 and len(latencies) == 13  # 127.0.0.1 was served all along


def test_per_ip_cap_from_toml_and_addresses_grouped_as_clients(tmp_path: Path) -> None:
    path = tmp_path / "smsgw.toml"
    path.write_text("[http]\nmax_connections_per_ip = 16\nwrite_timeout = 5\n")
    config = load(path)
    assert (config.http.max_connections_per_ip, config.http.write_timeout) == (16, 5.0)
    assert HttpSettings().max_connections_per_ip == 128  # an eighth of the default cap
    path.write_text("[http]\nmax_connections_per_ip = 0\n")
    with pytest.raises(ConfigError, match="max_connections_per_ip"):
        load(path)
    assert peer_key(("192.0.2.7", 5000)) == "192.0.2.7"
    assert peer_key(("::ffff:192.0.2.7", 5000, 0, 0)) == "192.0.2.7"
    # One site's /64 is one client (its hosts pick addresses in it at will).
    assert peer_key(("2001:db8:1:2::5", 80, 0, 0)) == peer_key(("2001:db8:1:2:ff::9", 80, 0, 0))
    assert peer_key(("2001:db8:1:3::5", 80, 0, 0)) == "2001:db8:1:3::/64"


def test_a_client_that_never_reads_its_responses_is_cut_off_and_stalls_no_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    store = Store.open(tmp_path)
    account = create_account(store, "shop", now=datetime.now(UTC), unlimited=True)
    service = GatewayService(store, wall=lambda: datetime.now(UTC))
    batch = [Outgoing(f"+1202555{i:04d}", "a long enough text " * 6) for i in range(300)]
    service.submit_batch(account.account_id, batch)
    page = "/v1/messages?limit=300"
    auth = {"Authorization": f"Bearer {account.api_key}"}
    request = f"GET {page} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth['Authorization']}\r\n\r\n"
    http = HttpSettings(write_timeout=2.0)

    async def scenario() -> tuple[int, int, bool, GuardedServer]:
        async with _site(service, http) as (runner, port):
            guard = runner.guarded
            paused = asyncio.Event()
            writes_paused = guard.writes_paused

            def seen(handler: RequestHandler) -> None:
                writes_paused(handler)
                paused.set()

            guard.writes_paused = seen  # type: ignore[method-assign]
            async with aiohttp.ClientSession() as client:
                r = await client.get(f"http://127.0.0.1:{port}{page}", headers=auth)
                size = len(await r.read())
            stuck = socket.socket()
            stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes little
            stuck.connect(("127.0.0.1", port))
            stuck.setblocking(False)
            try:
                sent = 0
                with contextlib.suppress(BlockingIOError):
                    for _ in range(2000):  # the same big page, again and again, never read
                        sent += stuck.send(request.encode())
                await asyncio.wait_for(paused.wait(), 10.0)  # its response fills the buffers
                # Meanwhile everyone else is served as usual.
                config = Config(http_port=port)
                _, ids = await _normal_client(account.api_key, config, messages=2, probes=10)
                assert len(ids) == 2
                hung_up = await asyncio.to_thread(_hung_up, stuck, 20.0)
            finally:
                stuck.close()
            return size, sent // len(request.encode()), hung_up, guard

    try:
        size, requests, hung_up, guard = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    finally:
        store.close()
    assert size > 100_000 and requests >= 100  # 100+ big answers asked for
    assert hung_up  # the server cut it off
    assert guard.stalled_writes == 1 and guard.open_connections == 0
    # It buffered about one answer for it (aiohttp reads no further requests meanwhile), not
    # the hundred asked for.
    assert guard.largest_stall < 2 * size
    drops = [r for r in caplog.records if "took none of its responses" in r.getMessage()]
    assert len(drops) == 1 and drops[0].levelno == logging.INFO
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


def _hung_up(sock: socket.socket, timeout: float) -> bool:
    """Whether the peer closed or reset `sock` within `timeout` (unread data notwithstanding)."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)
    events = poller.poll(timeout * 1000)
    return any(e & (select.POLLRDHUP | select.POLLHUP | select.POLLERR) for _, e in events)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


def _half_bodies(world: World) -> list[tuple[str, str]]:
    """A request to every dialect (and the dashboard's login) that authenticates and then waits
    for a body: each path and its headers."""
    basic = aiohttp.encode_basic_auth(NAME, world.password)
    return [
        ("/v1/messages", f"Authorization: Bearer {world.api_key}\r\n"
                         "Content-Type: application/json\r\n"),
        ("/api_v1", "Content-Type: application/x-www-form-urlencoded\r\n"),
        ("/apis/smsgroup/", "Content-Type: application/x-www-form-urlencoded\r\n"),
        ("/app/api/rest/v1/sms/send", "email: example@gmail.com\r\ntoken: x\r\n"
                                      "Content-Type: application/json\r\n"),
        ("/api/campaign", f"Authorization: {basic}\r\nContent-Type: application/json\r\n"),
        ("/login", "Content-Type: application/x-www-form-urlencoded\r\n"),
    ]  # fmt: skip


@pytest.mark.parametrize("how", ["too-slow", "hung-up"])
def test_a_client_gone_mid_body_is_one_info_line_in_every_dialect_not_a_traceback(
    world: World, tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=lambda: datetime.now(UTC))
    requests = _half_bodies(world)

    async def scenario() -> tuple[int, int]:
        async with _site(service, HttpSettings(body_timeout=0.3)) as (runner, port):
            socks = []
            for path, headers in requests:
                sock = socket.create_connection(("127.0.0.1", port))
                head = f"POST {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 1000\r\n\r\n"
                sock.sendall(head.encode() + b"ab")
                socks.append(sock)
            try:
                if how == "hung-up":
                    await _until(lambda: runner.guarded.waiting_for_bodies == len(requests))
                    for sock in socks:
                        sock.close()  # gone with 998 bytes of its body still to come
                else:
                    attack = Attack(port, 0)
                    attack.sockets = socks
                    assert await asyncio.to_thread(attack.wait_all_closed, 20.0) == 0
                await _until(lambda: runner.guarded.open_connections == 0)
            finally:
                for sock in socks:
                    sock.close()
            return runner.guarded.slow_bodies, runner.guarded.open_connections

    try:
        slow, still_open = asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
    finally:
        store.close()
    assert still_open == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    dropped = [r for r in caplog.records if "request body slower than" in r.getMessage()]
    if how == "too-slow":
        assert slow == len(dropped) == len(requests)  # one INFO line each
        assert {r.levelno for r in dropped} == {logging.INFO}
    else:
        assert slow == len(dropped) == 0
        gone = [r for r in caplog.records if "went away before its request body" in r.getMessage()]
        assert len(gone) == len(requests)


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop run until `condition` holds (the server's own bookkeeping)."""
    while not condition():
        await asyncio.sleep(0)
