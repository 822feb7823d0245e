"""SMS Everyone bulk campaigns: 100,000 destinations in one POST /api/campaign against the
daemon on 4 emulated modems (the emulated network in a child process).

Prints the time until the answer (the campaign durable: one SQLite transaction, synchronous=FULL),
from the answer to the first part marked `sending` (the step before AT+CMGS), and how long
deleting the campaign (refunding 100,000 parts) takes. Targets: accepted < 5 s, sending < 1 s.
Environment: SMSGW_BENCH_DESTINATIONS (default 100000).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import resource
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from gateway.accounts import create_account
from gateway.config import Config
from tests.bench.bench_gateway import _emulator
from tests.emulated import free_port, serving

DESTINATIONS = int(os.environ.get("SMSGW_BENCH_DESTINATIONS", "100000"))
MODEMS = 4


async def _run() -> dict[str, float]:
    emulator, ports = _emulator(MODEMS)
    data_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-"))
    http_port = free_port()
    config = Config(data_dir=data_dir, http_host="127.0.0.1", http_port=http_port, discover=())
    results: dict[str, float] = {}
    try:
        async with serving(config, ports, ready_timeout=60, modems_timeout=120) as gateway:
            store = gateway.store
            creds = create_account(store, "bulk", now=datetime.now(UTC), credits=DESTINATIONS * 2)
            auth = "Basic " + base64.b64encode(f"bulk:{creds.password}".encode()).decode()
            body = json.dumps(
                {
                    "Message": "Spring sale: 20% off everything this weekend!"
                    " Reply STOP to opt out.",
                    "Destinations": [f"614{n:08d}" for n in range(DESTINATIONS)],
                    "Reference": "spring-sale",
                    "Action": "create",
                }
            ).encode()
            results["body_mb"] = len(body) / 1e6
            url = f"http://127.0.0.1:{http_port}/api"
            headers = {"Authorization": auth, "Content-Type": "application/json"}
            async with aiohttp.ClientSession() as session:
                # warm the password cache (scrypt runs once per process by design)
                async with session.post(f"{url}/RetrieveUserSettings", headers=headers) as r:
                    assert r.status == 200
                cpu0 = time.process_time()
                started = time.perf_counter()
                async with session.post(f"{url}/campaign", data=body, headers=headers) as r:
                    answer = await r.json()
                answered = time.perf_counter()
                results["accept_s"] = answered - started
                results["accept_cpu_s"] = time.process_time() - cpu0
                assert answer["Code"] == 0 and answer["Messages"] == DESTINATIONS, answer
                while (
                    store.conn.execute(
                        "SELECT 1 FROM parts WHERE state IN ('sending', 'sent') LIMIT 1"
                    ).fetchone()
                    is None
                ):
                    await asyncio.sleep(0.002)
                results["answer_to_first_sending_ms"] = 1000 * (time.perf_counter() - answered)
                durable = store.conn.execute(
                    "SELECT COUNT(*) FROM messages WHERE batch_id = ?", (answer["CampaignId"],)
                ).fetchone()[0]
                assert durable == DESTINATIONS
                await asyncio.sleep(2)
                started = time.perf_counter()
                async with session.post(
                    f"{url}/campaign",
                    json={"Action": "delete", "CampaignId": answer["CampaignId"]},
                    headers=headers,
                ) as r:
                    assert (await r.json())["Code"] == 0
                results["delete_s"] = time.perf_counter() - started
                sent = store.conn.execute(
                    "SELECT COUNT(*) FROM parts WHERE state != 'cancelled'"
                ).fetchone()[0]
                results["sent_before_delete"] = sent
                refunded = store.conn.execute(
                    "SELECT SUM(delta) FROM credits_ledger WHERE reason = 'refund: cancelled'"
                ).fetchone()[0]
                assert refunded == DESTINATIONS - sent
            results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    return results


def main() -> None:
    """Print the numbers of one 100,000-destination campaign."""
    load = os.getloadavg()[0]
    results = asyncio.run(_run())
    line = ", ".join(f"{k}={v:.2f}" for k, v in results.items())
    print(
        f"smseveryone campaign of {DESTINATIONS} destinations, {MODEMS} modems "
        f"(load {load:.2f} on {os.cpu_count()} CPUs): {line}",
        flush=True,
    )


if __name__ == "__main__":
    main()
