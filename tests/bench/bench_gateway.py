"""Gateway throughput on emulated modems: aggregate rate at throttle 1 with 16 and 64 SIMs,
accept-to-AT+CMGS latency, /v1 submit requests/s and the daemon's peak RSS.

The emulated network runs in a child process (`smsgw emulator run`), so the RSS and CPU printed
are the gateway's own. Environment: SMSGW_BENCH_SECONDS (default 60) sets the rate window.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from gateway.accounts import create_account
from gateway.config import Config
from gateway.daemon import Gateway
from gateway.store import Store
from tests.emulated import free_port, serving

WINDOW = float(os.environ.get("SMSGW_BENCH_SECONDS", "60"))
ROOT = Path(__file__).resolve().parents[2]


def _emulator(modems: int) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "emulator", "run", "--modems", str(modems),
         "--seed", "1", "--report-delay", "0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    info = json.loads(proc.stdout.readline())
    return proc, [m["path"] for m in info["modems"]]


def saturate(gateway: Gateway, account_id: int, backlog: int) -> None:
    """Queue `backlog` one-part messages, a thousand per request."""
    for start in range(0, backlog, 1000):
        gateway.service.submit(
            account_id,
            [f"+1777{i:07d}" for i in range(start, min(start + 1000, backlog))],
            "Benchmark message",
        )


@dataclass(frozen=True)
class Window:
    """A measuring window: the SMS the SIMs started sending in it, and the CPU it took."""

    t0: datetime
    cpu0: float

    @classmethod
    def start(cls) -> Window:
        return cls(datetime.now(UTC), time.process_time())

    def end(self, store: Store, modems: int) -> dict[str, float]:
        """The send rate (against one SMS per second per SIM) and CPU since start()."""
        t1 = datetime.now(UTC)
        cpu = time.process_time() - self.cpu0
        sent = store.conn.execute(
            "SELECT COUNT(*) FROM parts WHERE sending_at >= ? AND sending_at < ?",
            (self.t0.isoformat(timespec="microseconds"), t1.isoformat(timespec="microseconds")),
        ).fetchone()[0]
        seconds = (t1 - self.t0) / timedelta(seconds=1)
        return {
            "rate_sms_per_s": sent / seconds,
            "rate_vs_target_pct": 100 * sent / (seconds * modems),
            "cpu_pct_of_one_core": 100 * cpu / seconds,
        }


async def _run(modems: int, measure_api: bool) -> dict[str, float]:
    emulator, ports = _emulator(modems)
    data_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    http_port = free_port()
    config = Config(data_dir=data_dir, http_host="127.0.0.1", http_port=http_port)
    results: dict[str, float] = {}
    try:
        async with serving(config, ports, ready_timeout=60, modems_timeout=120) as gateway:
            store = gateway.store
            creds = create_account(store, "bench", now=datetime.now(UTC), unlimited=True)

            # Latency from acceptance to the part's durable `sending` mark, which immediately
            # precedes the first byte of AT+CMGS; one message at a time on idle SIMs.
            latencies = []
            for i in range(50):
                (mid,) = gateway.service.submit(
                    creds.account_id, [f"+1666{i:07d}"], "ping"
                ).message_ids
                while store.parts(mid)[0]["sending_at"] is None:
                    await asyncio.sleep(0.001)
                row = store.message(mid)
                part = store.parts(mid)[0]
                assert row is not None
                created = datetime.fromisoformat(row["created_at"])
                latencies.append(
                    (datetime.fromisoformat(part["sending_at"]) - created).total_seconds()
                )
                await asyncio.sleep(1.05)  # let the SIM's throttle (1 s) pass: measure idle latency
            latencies.sort()
            results["accept_to_cmgs_p50_ms"] = 1000 * statistics.median(latencies)
            results["accept_to_cmgs_p99_ms"] = 1000 * latencies[int(0.99 * (len(latencies) - 1))]

            # Saturate: more than the window can send, then count sends inside the window.
            saturate(gateway, creds.account_id, int(modems * (WINDOW + 30)))
            await asyncio.sleep(3)  # reach steady state
            window = Window.start()
            await asyncio.sleep(WINDOW)
            results.update(window.end(store, modems))

            if measure_api:
                results["v1_submit_req_per_s"] = await _api_rate(http_port, creds.api_key)
            results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return results


async def _api_rate(port: int, api_key: str, seconds: float = 5.0, concurrency: int = 16) -> float:
    url = f"http://127.0.0.1:{port}/v1/messages"
    headers = {"Authorization": f"Bearer {api_key}"}
    done = 0
    deadline = time.perf_counter() + seconds

    async def client(session: aiohttp.ClientSession, n: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < deadline:
            body = {"to": f"+1888{n:03d}{i:04d}", "text": "api bench"}
            async with session.post(url, json=body, headers=headers) as response:
                assert response.status == 201, await response.text()
            done += 1
            i += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(session, n) for n in range(concurrency)))
    return done / (time.perf_counter() - started)


def main() -> None:
    """Print the gateway numbers for 16 and 64 emulated modems."""
    for modems in (16, 64):
        results = asyncio.run(_run(modems, measure_api=modems == 16))
        line = ", ".join(f"{k}={v:.1f}" for k, v in results.items())
        print(f"gateway {modems} modems, throttle 1/s, {WINDOW:.0f}s window: {line}", flush=True)


if __name__ == "__main__":
    main()
