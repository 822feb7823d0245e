"""The daemon on emulated modems while another process holds the database's write lock (a
script left in a write, `sqlite3 smsgw.sqlite3` in a transaction): every dialect answers its
own "try later" in time, health, the dashboard and /metrics keep answering, nothing accepted
before is lost and the queued messages go out by themselves once the lock goes. Readers (an
outside long SELECT, `smsgw db backup`) never hold the daemon's writes up at all."""

from __future__ import annotations

import asyncio
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.accounts import create_account, secret_digest
from gateway.config import Config
from gateway.daemon import Gateway
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, Store
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.api.test_bestsms import T0, World, build_world
from tests.api.test_store_unavailable import ADMIN_PASSWORD, DIALECTS, ZOOM_TOKEN
from tests.emulated import free_port, serving
from tests.gateway.watch import StoreWatch

DEADLINE = 180.0
# What a client gives each request: a handler stuck behind the lock would fail here.
CLIENT_TIMEOUT = 10.0
BEFORE = 6  # messages accepted before the lock, sent after it
HOLDER = r"""
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute(sys.argv[2])
if sys.argv[2] != "BEGIN IMMEDIATE":
    conn.execute("SELECT COUNT(*) FROM messages").fetchone()  # the read transaction starts
print("locked", flush=True)
sys.stdin.readline()  # until the test says so
conn.execute("ROLLBACK")
print("released", flush=True)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@dataclass
class Tally:
    """What happened while the lock was held."""

    refusals: dict[str, list[float]] = field(default_factory=dict)  # dialect -> latencies
    health: list[float] = field(default_factory=list)
    pages: int = 0  # dashboard pages and /metrics scrapes answered
    lag: list[float] = field(default_factory=list)  # the event loop's lateness, sampled

    def refused(self) -> list[float]:
        return [t for ts in self.refusals.values() for t in ts]


class Holder:
    """Another process holding the database: `BEGIN IMMEDIATE` (the write lock) or `BEGIN`
    and a SELECT (a long read), until release()."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        assert proc.stdout is not None
        self._released = asyncio.ensure_future(proc.stdout.readline())

    @classmethod
    async def start(cls, db: Path, begin: str) -> Holder:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", HOLDER, str(db), begin,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.strip() == b"locked", line
        return cls(proc)

    @property
    def held(self) -> bool:
        return not self._released.done()

    async def release(self) -> None:
        assert self.proc.stdin is not None
        if self.held:
            self.proc.stdin.write(b"release\n")
            await self.proc.stdin.drain()
        assert (await asyncio.wait_for(self._released, 60)).strip() == b"released"
        await asyncio.wait_for(self.proc.wait(), 30)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def _prepare(world: World, data_dir: Path) -> None:
    """The shared world's accounts (every dialect's credentials) in the daemon's data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.db, data_dir / DATABASE_NAME)
    store = Store.open(data_dir)
    try:
        store.conn.execute(
            "UPDATE accounts SET token = ? WHERE id = 1", (secret_digest(ZOOM_TOKEN),)
        )
        GatewayService(store, wall=lambda: T0).set_admin_password(ADMIN_PASSWORD)
    finally:
        store.close()


@asynccontextmanager
async def _client(port: int) -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    jar = aiohttp.CookieJar(unsafe=True)  # the dashboard's session cookie on 127.0.0.1
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{port}", timeout=timeout, cookie_jar=jar
    ) as client:
        yield client


async def _log_in(client: aiohttp.ClientSession) -> str:
    """Log in to the dashboard; return the forms' CSRF token."""
    form = await (await client.get("/login")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None
    r = await client.post(
        "/login", data={"csrf": token.group(1), "password": ADMIN_PASSWORD, "next": "/messages"}
    )
    csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
    assert r.status == 200 and csrf is not None
    return csrf.group(1)


async def _accept_before(client: aiohttp.ClientSession, world: World) -> list[int]:
    ids: list[int] = []
    for i in range(BEFORE):
        r = await client.post(
            "/v1/messages",
            json={"to": MAGIC_DELIVERED, "text": f"before the lock {i}"},
            headers={"Authorization": f"Bearer {world.api_key}"},
        )
        assert r.status == 201, await r.text()
        ids.extend((await r.json())["message_ids"])
    return ids


async def _lag(tally: Tally, stop: asyncio.Event) -> None:
    """How late the loop wakes a 10 ms timer: how long something held the loop."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(0.01)
        tally.lag.append(loop.time() - started - 0.01)


async def _round(client: aiohttp.ClientSession, world: World, csrf: str, tally: Tally) -> None:
    """Every dialect's send (each must be refused its own way), health, dashboard, /metrics."""
    for dialect in DIALECTS:
        started = time.perf_counter()
        status, body, retry = await dialect.send(client, world, "while locked")  # type: ignore[arg-type]
        took = time.perf_counter() - started
        assert dialect.unavailable(status, body, retry), (dialect.name, status, body, retry)
        tally.refusals.setdefault(dialect.name, []).append(took)
    started = time.perf_counter()
    r = await client.get("/v1/health")
    health = await r.json()
    tally.health.append(time.perf_counter() - started)
    assert r.status == 503 and health["database"] == "unavailable", health
    assert "locked by another process" in health["problems"][0]
    r = await client.get("/")  # the dashboard reads (WAL): answered in full
    assert r.status == 200
    data = {"csrf": csrf, "account": "1", "to": "+447700900123", "text": "from the dashboard"}
    r = await client.post("/messages", data=data, allow_redirects=False)
    text = await r.text()
    assert r.status == 503 and "cannot be used right now" in text, (r.status, text[:300])
    r = await client.get("/metrics")
    metrics = await r.text()
    assert r.status == 200 and "smsgw_store_up 1.0" in metrics
    assert "smsgw_store_write_locked 1.0" in metrics
    tally.pages += 3


async def _locked_scenario(
    world: World, config: Config, emu: EmulatorPool, hold: float, rounds: int
) -> tuple[Tally, dict[str, Any]]:
    async with (
        serving(config, [m.path for m in emu.info()]) as gateway,
        _client(config.http_port) as client,
    ):
        csrf = await _log_in(client)
        ids = await _accept_before(client, world)
        before = _rows(gateway)
        # Held until the test lets go (after `hold` seconds of rounds, or `rounds` of them): a
        # holder timing itself could let go between a refusal and the check that follows it.
        holder = await Holder.start(config.data_dir / DATABASE_NAME, "BEGIN IMMEDIATE")
        tally, stop = Tally(), asyncio.Event()
        monitor = asyncio.create_task(_lag(tally, stop))
        loop = asyncio.get_running_loop()
        until = loop.time() + hold
        try:
            done = 0
            while holder.held and (loop.time() < until if hold > 0 else done < rounds):
                await _round(client, world, csrf, tally)
                done += 1
            waits = gateway.store.lock_waits
            refusals = gateway.store.lock_refusals
            await holder.release()
        finally:
            stop.set()
            holder.kill()
            await monitor
        # The lock is gone: every dialect takes messages again, by itself.
        for dialect in DIALECTS:
            status, body, _ = await dialect.send(client, world, "after the lock")  # type: ignore[arg-type]
            assert dialect.accepted(status, body), (dialect.name, status, body)
        assert (await client.get("/v1/health")).status == 200
        await StoreWatch(gateway).until(lambda: _all_sent(gateway, ids))
        after = {row[0]: row[1] for row in _rows(gateway)}
        assert all(after.get(mid) == body for mid, body, _ in before)  # nothing accepted lost
        return tally, {"waits": waits, "refusals": refusals, "rounds": done}


def _rows(gateway: Gateway) -> list[tuple[int, str, str]]:
    rows = gateway.store.conn.execute("SELECT id, body, state FROM messages ORDER BY id")
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows.fetchall()]


def _all_sent(gateway: Gateway, ids: list[int]) -> bool:
    return all(p["state"] in ("sent", "delivered") for mid in ids for p in gateway.store.parts(mid))


def _report(tally: Tally, counts: dict[str, Any], hold: str) -> str:
    refused = sorted(tally.refused())
    lag = sorted(tally.lag)
    first = max(refused)  # the one that waited the busy timeout
    return (
        f"\nlock held {hold}: {len(refused)} sends refused in {counts['rounds']} rounds (every"
        f" dialect), slowest {first:.3f}s, median {refused[len(refused) // 2]:.3f}s;"
        f" {len(tally.health)} health checks (max {max(tally.health):.3f}s) and {tally.pages}"
        f" dashboard pages and scrapes answered meanwhile; loop held at most {lag[-1]:.3f}s,"
        f" {sum(x for x in lag if x > 0.1):.2f}s in all; store: {counts['refusals']} writes"
        f" refused, {counts['waits']} of them waited the busy timeout"
    )


def _check(tally: Tally, counts: dict[str, Any], sent: int) -> None:
    assert {d.name for d in DIALECTS} <= set(tally.refusals)  # every dialect said "try later"
    # One wait of the busy timeout per lock episode: the daemon's one thread was not held for
    # each of the writes the lock refused (API requests, the SIM loops, the dispatcher).
    assert counts["waits"] == 1
    assert counts["refusals"] > len(tally.refused())  # the daemon's own writes refused too
    assert sent == BEFORE  # each message accepted before the lock went out exactly once


def _run_locked(world: World, tmp_path: Path, hold: float, rounds: int) -> str:
    _prepare(world, tmp_path / "data")
    config = Config(
        data_dir=tmp_path / "data", http_host="127.0.0.1", http_port=free_port(), discover=()
    )
    assert config.busy_timeout_ms == 1000  # the daemon's default
    with EmulatorPool(["generic"], seed=21) as emu:
        scenario = _locked_scenario(world, config, emu, hold, rounds)
        tally, counts = asyncio.run(asyncio.wait_for(scenario, DEADLINE))
        sent = [o for o in emu.outside() if o.destination == MAGIC_DELIVERED]
    _check(tally, counts, len(sent))
    return _report(tally, counts, f"{hold:g} s" if hold else "by the test")


def test_a_write_lock_held_by_another_process_is_answered_try_later_and_sending_resumes(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _run_locked(world, tmp_path, hold=0.0, rounds=3)
    with capsys.disabled():
        print(report)


@pytest.mark.slow
def test_a_write_lock_held_30_seconds(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = _run_locked(world, tmp_path, hold=30.0, rounds=0)
    with capsys.disabled():
        print(report)


async def _readers_scenario(world: World, config: Config, emu: EmulatorPool) -> int:
    async with (
        serving(config, [m.path for m in emu.info()]) as gateway,
        _client(config.http_port) as client,
    ):
        reader = await Holder.start(config.data_dir / DATABASE_NAME, "BEGIN")
        try:
            ids = await _accept_before(client, world)  # each write committed past the reader
            await StoreWatch(gateway).until(lambda: _all_sent(gateway, ids))
        finally:
            await reader.release()
            reader.kill()
        assert gateway.store.lock_refusals == 0
        return len(ids)


def test_an_outside_long_read_holds_no_write_up(world: World, tmp_path: Path) -> None:
    _prepare(world, tmp_path / "data")
    # busy_timeout 0: any wait for a lock would be a refusal (a 503), not a delay.
    config = Config(
        data_dir=tmp_path / "data", http_host="127.0.0.1", http_port=free_port(), discover=(),
        busy_timeout_ms=0,
    )  # fmt: skip
    with EmulatorPool(["generic"], seed=22) as emu:
        accepted = asyncio.run(asyncio.wait_for(_readers_scenario(world, config, emu), DEADLINE))
        sent = [o for o in emu.outside() if o.destination == MAGIC_DELIVERED]
    assert accepted == len(sent) == BEFORE


def _ballast(data_dir: Path, megabytes: int) -> str:
    """Make the database large (a box after months), so a backup takes a while; return the
    API key of an account with no credit limit."""
    store = Store.open(data_dir)
    try:
        api_key = create_account(store, "bulk", now=T0, unlimited=True).api_key
        with store.transaction() as conn:
            conn.execute("CREATE TABLE ballast (x BLOB)")
            conn.execute(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
                " INSERT INTO ballast SELECT randomblob(4000) FROM n",
                (megabytes * 250,),
            )
    finally:
        store.close()
    return api_key


async def _backup_scenario(
    api_key: str, config: Config, emu: EmulatorPool, destination: Path
) -> tuple[int, int, float]:
    smsgw = Path(sys.executable).with_name("smsgw")
    async with (
        serving(config, [m.path for m in emu.info()]) as gateway,
        _client(config.http_port) as client,
    ):
        started = time.perf_counter()
        backup = await asyncio.create_subprocess_exec(
            str(smsgw), "db", "backup", "--data-dir", str(config.data_dir), str(destination),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        accepted = 0
        auth = {"Authorization": f"Bearer {api_key}"}
        out_err = asyncio.ensure_future(backup.communicate())
        try:
            while not out_err.done():  # send all along, as fast as the daemon answers
                r = await client.post(
                    "/v1/messages", json={"to": "+447700900123", "text": "during"}, headers=auth
                )
                assert r.status == 201, await r.text()  # never refused, never held up
                accepted += 1
            out, err = await out_err
        finally:
            if backup.returncode is None:
                backup.kill()
                await backup.wait()
        took = time.perf_counter() - started
        assert backup.returncode == 0, err.decode()
        assert b"backup written" in out
        return accepted, gateway.store.lock_refusals, took


@pytest.mark.slow
def test_smsgw_db_backup_of_a_large_database_holds_no_send_up(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _prepare(world, tmp_path / "data")
    api_key = _ballast(tmp_path / "data", 200)
    config = Config(
        data_dir=tmp_path / "data", http_host="127.0.0.1", http_port=free_port(), discover=(),
        busy_timeout_ms=0,
    )  # fmt: skip
    destination = tmp_path / "backup.sqlite3"
    with EmulatorPool(["generic"], seed=23) as emu:
        scenario = _backup_scenario(api_key, config, emu, destination)
        accepted, refusals, took = asyncio.run(asyncio.wait_for(scenario, DEADLINE))
    assert refusals == 0
    assert accepted > 0
    copy = sqlite3.connect(destination)
    try:
        assert copy.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert copy.execute("SELECT COUNT(*) FROM ballast").fetchone() == (200 * 250,)
    finally:
        copy.close()
    with capsys.disabled():
        print(f"\nsmsgw db backup of ~200 MB took {took:.1f}s; {accepted} sends accepted meanwhile")
