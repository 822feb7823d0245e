"""The operator's view on a big box: 64 SIMs and 1,000,000 stored messages (30 days of traffic).

Prints, server-side: GatewayService.overview(), the whole overview page (GET /, a logged-in
session, in-process), its live fragment, a /metrics scrape, and the messages page (newest 50
and a filtered page). Target: the overview page under 100 ms. Environment: SMSGW_BENCH_MESSAGES
(default 1,000,000) sets the size.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.models import ThrottlePolicy
from gateway.pool import SimPool
from gateway.service import GatewayService
from gateway.store import Store, utc_iso

MESSAGES = int(os.environ.get("SMSGW_BENCH_MESSAGES", "1000000"))
SIMS = 64
DAYS = 30
PASSWORD = "benchmark password"
TARGET_MS = 100.0
# What a month of traffic leaves behind: most delivered, a few failed, some still in flight.
STATES = (("delivered", 0.955), ("failed", 0.02), ("sent", 0.015), ("queued", 0.01))


@dataclass(frozen=True)
class Box:
    """A generated database and what it holds."""

    store: Store
    service: GatewayService
    now: datetime
    sent_today: int
    queued: int


def generate(path: Path, messages: int, sims: int = SIMS, *, seed: int = 1) -> Box:
    """Fill a new database with `sims` SIMs (each in a modem) and `messages` one-part messages
    spread over DAYS days, with inbound replies; rows go in with executemany."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    store = Store.open(path)
    conn = store.conn
    conn.execute("PRAGMA synchronous = OFF")  # a benchmark fixture, not the daemon's data
    stamp = utc_iso(now)
    with store.transaction():
        conn.execute(
            "INSERT INTO accounts (sub_account, password_hash, api_key, token, unlimited,"
            " created_at) VALUES ('bulk', 'x', 'k', 't', 1, ?)",
            (stamp,),
        )
        for i in range(1, sims + 1):
            conn.execute(
                "INSERT INTO modems (id, imei, manufacturer, model, last_port, state, last_seen)"
                " VALUES (?, ?, 'huawei', 'E3372', ?, 'ready', ?)",
                (i, f"35000000000{i:04d}", f"/dev/smsgw/modem{i}", stamp),
            )
            conn.execute(
                "INSERT INTO sims (id, iccid, imsi, msisdn, modem_id, state, throttle_interval,"
                " sent_count, failed_count, received_count, signal_dbm, registration, operator,"
                " created_at) VALUES (?, ?, ?, ?, ?, 'present', 6, ?, ?, ?, -75, 'home',"
                " 'Operator', ?)",
                (
                    i,
                    f"8944{i:015d}",
                    f"00101{i:010d}",
                    f"+4477009{i:05d}",
                    i,
                    messages // sims,
                    messages // sims // 50,
                    messages // sims // 10,
                    stamp,
                ),
            )
    span = DAYS * 86400
    weights = [w for _, w in STATES]
    names = [s for s, _ in STATES]
    sent_today = queued = 0
    midnight = now.astimezone().replace(hour=0, minute=0, second=0)
    batch = 50_000
    for start in range(0, messages, batch):
        rows_m, rows_p = [], []
        for mid in range(start + 1, min(start + batch, messages) + 1):
            # Newer ids are newer messages: ids grow with time, as they do in a real box.
            created = now - timedelta(seconds=span * (1 - mid / messages) + 30)
            state = rng.choices(names, weights)[0]
            sim = rng.randrange(1, sims + 1)
            c = utc_iso(created)
            sent = utc_iso(created + timedelta(seconds=2)) if state != "queued" else None
            done = (
                utc_iso(created + timedelta(seconds=9))
                if state in ("delivered", "failed")
                else None
            )
            rows_m.append(
                (
                    mid,
                    f"+1555{mid % 10_000_000:07d}",
                    f"Your code is {mid % 9999}",
                    state,
                    c,
                    done or sent or c,
                )
            )
            rows_p.append(
                (
                    mid,
                    state,
                    None if state == "queued" else sim,
                    None if state == "queued" else mid % 256,
                    sent,
                    sent,
                    done,
                )
            )
            if state == "queued":
                queued += 1
            if sent is not None and created + timedelta(seconds=2) >= midnight:
                sent_today += 1
        with store.transaction():
            conn.executemany(
                "INSERT INTO messages (id, account_id, recipient, body, encoding, units, state,"
                " created_at, updated_at) VALUES (?, 1, ?, ?, 'gsm7', 1, ?, ?, ?)",
                rows_m,
            )
            conn.executemany(
                "INSERT INTO parts (message_id, seq, state, sim_id, tp_mr, sending_at, sent_at,"
                " done_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                rows_p,
            )
    with store.transaction():
        conn.executemany(
            "INSERT INTO inbound (account_id, sim_id, originator, body, encoding,"
            " parts_received, parts_total, complete, received_at) VALUES"
            " (1, ?, ?, 'thanks', 'gsm7', 1, 1, 1, ?)",
            [
                (
                    rng.randrange(1, sims + 1),
                    f"+1555{i:07d}",
                    utc_iso(now - timedelta(seconds=span * (1 - i / (messages // 10 or 1)))),
                )
                for i in range(1, messages // 10 + 1)
            ],
        )
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("ANALYZE")
    pool = SimPool()
    for i in range(1, sims + 1):
        pool.upsert(i, f"+4477009{i:05d}", ThrottlePolicy(interval=6))
        pool.report_radio(
            i, registered=True, signal_dbm=-75, registration="home", operator="Operator"
        )
    service = GatewayService(store, wall=lambda: datetime.now(UTC), pool=pool)
    service.set_admin_password(PASSWORD)
    return Box(store, service, now, sent_today, queued)


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(int(len(ordered) * 0.95) - 1, 0)]
    return (
        f"median {statistics.median(ordered):6.1f} ms, p95 {p95:6.1f} ms, max {ordered[-1]:6.1f} ms"
    )


def _time(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


async def measure(box: Box, rounds: int = 30) -> dict[str, list[float]]:
    """Time each view `rounds` times (after one warm-up); milliseconds."""
    results: dict[str, list[float]] = {"service.overview()": _time(box.service.overview, rounds)}
    async with TestClient(TestServer(build_app(box.service))) as client:
        page = await (await client.get("/login")).text()
        token = re.search(r'name="csrf" value="([^"]+)"', page)
        assert token is not None
        r = await client.post(
            "/login", data={"csrf": token.group(1), "password": PASSWORD}, allow_redirects=False
        )
        assert r.status == 303
        paths = {
            "GET / (overview page)": "/",
            "GET /fragments/overview": "/fragments/overview",
            "GET /metrics": "/metrics",
            "GET /messages (newest 50)": "/messages",
            "GET /messages?state=failed": "/messages?state=failed",
            "GET /messages?sim=7": "/messages?sim=7",
        }
        for name, path in paths.items():
            await client.get(path)  # warm-up
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                response = await client.get(path)
                await response.read()
                samples.append((time.perf_counter() - started) * 1000)
                assert response.status == 200, (path, response.status)
            results[name] = samples
    return results


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smsgw-bench-dash-") as tmp:
        started = time.perf_counter()
        box = generate(Path(tmp), MESSAGES)
        took = time.perf_counter() - started
        size = (Path(tmp) / "smsgw.sqlite3").stat().st_size / 2**20
        print(
            f"generated {MESSAGES:,} messages + parts, {MESSAGES // 10:,} inbound, {SIMS} SIMs"
            f" in {took:.1f} s ({size:.0f} MiB)"
        )
        try:
            overview = box.service.overview()
            assert len(overview.sims) == SIMS and overview.queue["queued"] == box.queued
            print(
                f"overview: {overview.sent_today:,} parts sent today, {overview.queued:,} queued,"
                f" {sum(h.sent for h in overview.throughput):,} in the last 24 h"
            )
            results = asyncio.run(measure(box))
        finally:
            box.store.close()
    for name, samples in results.items():
        print(f"  {name:28} {_ms(samples)}")
    worst = sorted(results["GET / (overview page)"])[
        int(len(results["GET / (overview page)"]) * 0.95) - 1
    ]
    verdict = "OK" if worst < TARGET_MS else "TOO SLOW"
    print(f"  overview page p95 {worst:.1f} ms vs target {TARGET_MS:.0f} ms: {verdict}")


if __name__ == "__main__":
    main()
