"""Webhooks: events/s the sender delivers to a local receiver, and sending throughput on 16
emulated SIMs with no webhooks, a good receiver, and one that hangs, answers 500, redirects to
another host or streams 100 MB.

Receivers and the emulated network run in child processes, so the CPU printed is the gateway's.
Environment: SMSGW_WEBHOOK_BENCH_SECONDS (default 20) sets each sending window.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from gateway.accounts import create_account
from gateway.config import Config, WebhookSettings
from gateway.models import PartState
from gateway.outbox import Clock
from gateway.service import GatewayService
from gateway.store import Store
from gateway.webhooks import WebhookWorker
from tests.bench.bench_gateway import Window, _emulator, saturate
from tests.emulated import free_port, serving

WINDOW = float(os.environ.get("SMSGW_WEBHOOK_BENCH_SECONDS", "20"))
ROOT = Path(__file__).resolve().parents[2]
MODEMS = 16
MODES = ("none", "good", "hang", "error", "redirect", "huge")


@contextmanager
def _receiver(mode: str) -> Iterator[tuple[str, dict[str, int]]]:
    """A receiver child process; yields its URL and, once it is closed, its counts."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.webhook_receiver", mode],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdin is not None
    port = json.loads(proc.stdout.readline())["port"]
    stats: dict[str, int] = {}
    try:
        yield f"http://127.0.0.1:{port}/hook?token=bench", stats
    finally:
        proc.stdin.close()
        stats.update(json.loads(proc.stdout.readline() or "{}"))
        proc.wait(timeout=10)


def _settle(store: Store, account: int, n: int, now: datetime) -> None:
    (part_id,) = store.accept_message(
        account_id=account, recipient=f"+1555{n:07d}", body="x", encoding="gsm7", parts=1,
        now=now,
    ).part_ids  # fmt: skip
    current = PartState.QUEUED
    for target in (PartState.SENDING, PartState.SENT, PartState.DELIVERED):
        store.transition_part(part_id, current, target, now=now)
        current = target


async def _delivery_rate(messages: int, independent: bool) -> float:
    """Events/s from a full outbox to a good local receiver (3 ordered events per message, or
    as many independent test events)."""
    data_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-wh-"))
    store = Store.open(data_dir)
    now = datetime.now(UTC)
    service = GatewayService(store, wall=lambda: datetime.now(UTC))
    account = create_account(store, "bench", now=now, unlimited=True).account_id
    with _receiver("good") as (url, _):
        service.set_webhooks(account, {"status": url})
        for n in range(messages):
            if independent:
                for _ in range(3):
                    service.fire_test_webhook(account, "status")
            else:
                _settle(store, account, n, now)
        total = store.webhook_counts()["pending"]
        loop = asyncio.get_running_loop()
        worker = WebhookWorker(
            store,
            WebhookSettings(),
            clock=Clock(loop.time, lambda: datetime.now(UTC), asyncio.sleep),
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(worker.run(stop))
        while store.webhook_counts()["delivered"] < total:
            await worker.quiet()
        elapsed = time.perf_counter() - started
        stop.set()
        await task
    store.close()
    return total / elapsed


async def _loop_lags(seconds: float, tick: float = 0.01) -> list[float]:
    """How late a 10 ms ticker wakes during `seconds`: what a blocked event loop costs."""
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    end = loop.time() + seconds
    while (now := loop.time()) < end:
        await asyncio.sleep(tick)
        lags.append(max(0.0, loop.time() - now - tick))
    return lags


async def _sending(mode: str) -> dict[str, float]:
    emulator, ports = _emulator(MODEMS)
    data_dir = Path(tempfile.mkdtemp(prefix="smsgw-bench-wh-"))
    config = Config(data_dir=data_dir, http_host="127.0.0.1", http_port=free_port(), discover=())
    results: dict[str, float] = {}
    with _receiver("good" if mode == "none" else mode) as (url, receiver_stats):
        try:
            async with serving(
                config, ports, frontends=[], ready_timeout=60, modems_timeout=120
            ) as gateway:
                store = gateway.store
                creds = create_account(store, "bench", now=datetime.now(UTC), unlimited=True)
                if mode != "none":
                    gateway.service.set_webhooks(creds.account_id, {"status": url, "reply": url})
                saturate(gateway, creds.account_id, int(MODEMS * (WINDOW + 30)))
                await asyncio.sleep(3)  # steady state
                window = Window.start()
                lags = await _loop_lags(WINDOW)
                results.update(window.end(store, MODEMS))
                lags.sort()
                results["loop_lag_p99_ms"] = 1000 * lags[int(0.99 * (len(lags) - 1))]
                results["loop_lag_max_ms"] = 1000 * lags[-1]
                counts = gateway.service.webhook_counts()
                results.update({f"webhooks_{k}": float(v) for k, v in counts.items()})
        finally:
            emulator.terminate()
            emulator.wait(timeout=10)
    if mode != "none":
        results["receiver_requests"] = float(receiver_stats.get("requests", 0))
        if mode == "huge":
            results["receiver_mb_out"] = receiver_stats.get("bytes_out", 0) / 2**20
            results["receiver_max_mb_one_answer"] = (
                receiver_stats.get("max_bytes_one_answer", 0) / 2**20
            )
    return results


def main() -> None:
    """Print delivery rates, then sending throughput per receiver behaviour."""
    ordered = asyncio.run(_delivery_rate(1000, independent=False))
    print(f"webhooks delivered to a local receiver: {ordered:.0f} events/s "
          "(3000 events, 3 ordered per message)", flush=True)  # fmt: skip
    independent = asyncio.run(_delivery_rate(1000, independent=True))
    print(f"webhooks delivered to a local receiver: {independent:.0f} events/s "
          "(3000 independent events)", flush=True)  # fmt: skip
    for mode in MODES:
        results = asyncio.run(_sending(mode))
        line = ", ".join(f"{k}={v:.1f}" for k, v in results.items())
        print(f"sending on {MODEMS} SIMs, receiver {mode}, {WINDOW:.0f}s window: {line}",
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
