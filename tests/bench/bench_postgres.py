"""PostgreSQL against SQLite on this box, side by side in one run (issue 15, must-show 4): the
same workload on each backend, alternated (SQLite, PostgreSQL, SQLite, …) so drift in the
shared machine's load hits both.

Per round: a fresh database (a new SQLite data directory; a new database on a durable
throwaway cluster, fsync and synchronous_commit on, started by this bench through
tests/postgres.py), the daemon itself (`serving`) on emulated modems in a child process, then
1. accept -> first AT+CMGS: one /v1/messages POST at a time on idle SIMs, the latency being the
   gateway's own `smsgw_accept_to_first_at_seconds` observation (message created_at to the
   durable `sending` mark that immediately precedes AT+CMGS), recorded unbucketed;
2. /v1/messages accepted req/s, p50 and p99 with wrk at 32 connections (every request a durable
   accept: answered after its COMMIT), while the workers keep sending from the queue;
3. PostgreSQL only, fleet mode: accept on box A (no modems) -> first AT+CMGS on box B (the
   modems), two daemons on one database, B woken by LISTEN/NOTIFY (its polling tick is 0.5 s):
   one POST at a time, the latency from A's created_at to B's durable `sending` mark.

Environment: SMSGW_BENCH_ROUNDS (default 2 per backend), SMSGW_BENCH_SECONDS (wrk duration,
default 10), SMSGW_BENCH_PINGS (latency samples per round, default 40).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psycopg

from gateway.accounts import create_account
from gateway.config import Config
from gateway.ratelimit import LimitSettings
from gateway.telemetry import Telemetry
from tests.bench.bench_accept import _lua
from tests.bench.bench_gateway import _emulator
from tests.emulated import free_port, serving
from tests.postgres import Cluster

CONNECTIONS = 32
THREADS = 2
MODEMS = 4
ROUNDS = int(os.environ.get("SMSGW_BENCH_ROUNDS", "2"))
SECONDS = float(os.environ.get("SMSGW_BENCH_SECONDS", "10"))
PINGS = int(os.environ.get("SMSGW_BENCH_PINGS", "40"))
BACKENDS = ("sqlite", "postgresql")
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass(frozen=True)
class Wrk:
    """What one wrk run measured."""

    rate: float  # requests/s
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def parse_wrk(out: str) -> Wrk:
    """wrk --latency's report as numbers."""

    def latency(pct: str) -> float:
        found = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        assert found is not None, out
        return float(found.group(1)) * _UNITS[found.group(2)]

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    assert rate is not None and total is not None, out
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return Wrk(
        rate=float(rate.group(1)),
        p50_ms=latency("50"),
        p99_ms=latency("99"),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in errors.groups()) if errors else 0,
    )


async def wrk(base: str, api_key: str, seconds: float) -> Wrk:
    """wrk on /v1/messages (JSON, a fresh recipient per request), without blocking the loop the
    daemon under test runs on."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    body = '{"to": "+1202555%04d", "text": "Order shipped"}'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_lua("/v1/messages", body, headers))
    try:
        proc = await asyncio.create_subprocess_exec(
            "wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency",
            "-s", script.name, base + "/v1/messages",
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
    finally:
        os.unlink(script.name)
    return parse_wrk(out.decode())


def percentile(samples: list[float], pct: float) -> float:
    """The nearest-rank percentile of `samples` (unsorted)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


@dataclass(frozen=True)
class Round:
    """One backend's numbers from one round."""

    backend: str
    accept: Wrk
    first_at_ms: list[float]  # accept -> first AT+CMGS, one per ping
    cross_box_ms: list[float] = field(default_factory=list)  # accepted on A, sent by B


def _record_first_attempts(telemetry: Telemetry) -> tuple[list[float], asyncio.Event]:
    """Keep every accept->first-AT observation unbucketed (the histogram's smallest bucket is
    50 ms), and an event set at each one."""
    samples: list[float] = []
    seen = asyncio.Event()
    observe = telemetry.first_attempt

    def first_attempt(due: datetime, now: datetime) -> None:
        observe(due, now)
        samples.append(1000 * max((now - due).total_seconds(), 0.0))
        seen.set()

    telemetry.first_attempt = first_attempt  # type: ignore[method-assign]
    return samples, seen


async def run_round(backend: str, database_url: str, pings: int, seconds: float) -> Round:
    """The workload on one fresh database (`database_url` empty: SQLite in a new data dir)."""
    emulator, ports = _emulator(MODEMS)
    data_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-pg-"))
    port = free_port()
    # The per-account and per-address limits (500 and 1,000 req/s) off: wrk is one client of
    # one account, and what is measured is what the store lets the box accept.
    unlimited = LimitSettings(account_rate=0, ip_rate=0)
    config = Config(data_dir=data_dir, database_url=database_url, http_host="127.0.0.1",
                    http_port=port, limits=unlimited)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with serving(config, ports, ready_timeout=60, modems_timeout=120) as gateway:
            creds = create_account(gateway.store, "bench", now=datetime.now(UTC), unlimited=True)
            samples, seen = _record_first_attempts(gateway.service.telemetry)
            async with aiohttp.ClientSession() as session:
                await _ping(session, base, creds.api_key, pings, seen)
            first_at = list(samples)
            accept = await wrk(base, creds.api_key, seconds)
            # A rate of refusals is no accept rate: say so rather than print it.
            assert accept.non_2xx == accept.socket_errors == 0, accept
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
    return Round(backend, accept, first_at)


async def _ping(
    session: aiohttp.ClientSession, base: str, api_key: str, pings: int, seen: asyncio.Event
) -> None:
    """POST one message at a time and wait for its first AT+CMGS, on idle SIMs."""
    headers = {"Authorization": f"Bearer {api_key}"}
    for i in range(pings):
        seen.clear()
        body = {"to": f"+1666{i:07d}", "text": "ping"}
        async with session.post(base + "/v1/messages", json=body, headers=headers) as r:
            assert r.status == 201, await r.text()
        await asyncio.wait_for(seen.wait(), 10)
        # Idle SIMs only: let the throttle (1 s per SIM) of every SIM pass, so the number is
        # the gateway's latency, not the pacing it is told to keep.
        await asyncio.sleep(1.05 / MODEMS)


async def run_cross_box(database_url: str, pings: int) -> list[float]:
    """Accept on box A (HTTP, no modems), first AT+CMGS on box B (the modems, no HTTP): two
    daemons on one PostgreSQL database, in this process; return the latencies in ms."""
    emulator, ports = _emulator(MODEMS)
    data_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-fleet-"))
    port = free_port()
    a = Config(data_dir=data_dir / "a", database_url=database_url, box_id="bench-a",
               http_host="127.0.0.1", http_port=port, discover=())  # fmt: skip
    b = Config(data_dir=data_dir / "b", database_url=database_url, box_id="bench-b",
               http_host="127.0.0.1", http_port=0, discover=())  # fmt: skip
    try:
        async with (
            serving(a, [], ready_timeout=60) as box_a,
            serving(b, ports, frontends=[], ready_timeout=60, modems_timeout=120) as box_b,
            aiohttp.ClientSession() as session,
        ):
            creds = create_account(box_a.store, "bench", now=datetime.now(UTC), unlimited=True)
            samples, seen = _record_first_attempts(box_b.service.telemetry)
            await _ping(session, f"http://127.0.0.1:{port}", creds.api_key, pings, seen)
            return list(samples)
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)


def _settings(url: str) -> str:
    """The server settings that decide what a COMMIT costs."""
    names = ("server_version", "fsync", "synchronous_commit", "full_page_writes",
             "wal_sync_method", "shared_buffers")  # fmt: skip
    with psycopg.connect(url) as conn:
        values = [conn.execute(f"SHOW {n}").fetchone()[0] for n in names]  # type: ignore[index]
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


def _summary(rounds: list[Round]) -> None:
    print(f"{'backend':11} {'round':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'non2xx':>6}   accept->first AT+CMGS p50 / p99 ms (n)")  # fmt: skip
    for n, r in enumerate(rounds):
        a, ms = r.accept, r.first_at_ms
        print(f"{r.backend:11} {n // 2 + 1:5} {a.rate:8.0f} {a.p50_ms:7.2f} {a.p99_ms:7.2f} "
              f"{a.non_2xx + a.socket_errors:6}   {percentile(ms, 50):6.2f} / "
              f"{percentile(ms, 99):6.2f} ({len(ms)})", flush=True)  # fmt: skip
    for backend in BACKENDS:
        mine = [r for r in rounds if r.backend == backend]
        latencies = [s for r in mine for s in r.first_at_ms]
        rate = statistics.mean(r.accept.rate for r in mine)
        print(f"{backend:11} {'all':>5} {rate:8.0f} "
              f"{statistics.median(r.accept.p50_ms for r in mine):7.2f} "
              f"{max(r.accept.p99_ms for r in mine):7.2f} "
              f"{sum(r.accept.non_2xx + r.accept.socket_errors for r in mine):6}   "
              f"{percentile(latencies, 50):6.2f} / {percentile(latencies, 99):6.2f} "
              f"({len(latencies)})", flush=True)  # fmt: skip
    cross = [s for r in rounds for s in r.cross_box_ms]
    if cross:
        print(f"fleet: accepted on box A -> first AT+CMGS on box B (PostgreSQL, LISTEN/NOTIFY): "
              f"p50 {percentile(cross, 50):.2f} / p99 {percentile(cross, 99):.2f} ms "
              f"({len(cross)}; target < 50 ms)", flush=True)  # fmt: skip


def main() -> None:
    """Alternate the backends ROUNDS times each and print the rounds and their summary."""
    if shutil.which("wrk") is None:
        print("SKIPPED: wrk is not installed (apt-get install wrk); no accept-path numbers")
        return
    cluster = Cluster(durable=True)
    try:
        probe = cluster.create_database()
        print(f"(PostgreSQL: throwaway cluster on a Unix socket, {_settings(probe)}; "
              "SQLite: WAL, synchronous=FULL; both under /tmp on the same disk)")  # fmt: skip
        cluster.drop_database(probe)
        load = os.getloadavg()[0]
        print(f"(load average {load:.2f} on {os.cpu_count()} CPUs; {MODEMS} emulated modems; "
              f"wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS:g}s on /v1/messages; {PINGS} pings "
              "per round, one at a time on idle SIMs)", flush=True)  # fmt: skip
        rounds = []
        for _ in range(ROUNDS):
            for backend in BACKENDS:
                url = cluster.create_database() if backend == "postgresql" else ""
                try:
                    result = asyncio.run(run_round(backend, url, PINGS, SECONDS))
                finally:
                    if url:
                        cluster.drop_database(url)
                if backend == "postgresql":
                    url = cluster.create_database()
                    try:
                        cross = asyncio.run(run_cross_box(url, PINGS))
                    finally:
                        cluster.drop_database(url)
                    result = Round(result.backend, result.accept, result.first_at_ms, cross)
                rounds.append(result)
        _summary(rounds)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
