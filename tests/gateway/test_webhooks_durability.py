"""No webhook is lost: a receiver down for two (virtual) minutes gets every event afterwards, in
order per message; a daemon killed with SIGKILL mid-delivery sends the rest after its restart
(the receiver may see a repeat, with the same event id)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from gateway.accounts import create_account
from gateway.config import WebhookSettings
from gateway.models import PartState
from gateway.service import GatewayService
from gateway.store import Store
from gateway.webhooks import WebhookWorker
from tests.gateway.webhook_support import ManualClock, Receiver, Seen

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
S = PartState
LIFECYCLE = (S.SENDING, S.SENT, S.DELIVERED)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _send_and_settle(store: Store, account: int, n: int, now: datetime) -> int:
    """One message through its whole lifecycle: three status events."""
    accepted = store.accept_message(
        account_id=account, recipient=f"+1555{n:07d}", body="x", encoding="gsm7", parts=1,
        now=now,
    )  # fmt: skip
    (part_id,) = accepted.part_ids
    current = S.QUEUED
    for target in LIFECYCLE:
        fields = {"report_status": 0} if target is S.DELIVERED else {}
        store.transition_part(part_id, current, target, now=now, fields=fields)
        current = target
    return accepted.message_id


def _reply(store: Store, account: int, sender: str, text: str, now: datetime) -> None:
    store.insert_inbound(
        {"account_id": account, "originator": sender, "body": text, "encoding": "gsm7",
         "parts_received": 1, "parts_total": 1, "complete": 1},
        [], now=now,
    )  # fmt: skip


def _expected(store: Store) -> dict[str, list[str]]:
    """Event ids per order key, in the order they were made."""
    keys: dict[str, list[str]] = defaultdict(list)
    for row in store.conn.execute("SELECT order_key, event_id FROM webhook_events ORDER BY id"):
        keys[row[0]].append(row[1])
    return keys


def _check_order(expected: dict[str, list[str]], seen: list[Seen]) -> None:
    """Every event arrived; per key, never one before its predecessor was sent."""
    key_of = {event_id: key for key, ids in expected.items() for event_id in ids}
    arrivals: dict[str, list[str]] = defaultdict(list)
    for s in seen:
        event_id = s.headers["X-Smsgw-Event-Id"]
        assert s.json()["id"] == event_id
        arrivals[key_of[event_id]].append(event_id)  # KeyError: an event nobody made
    assert set(arrivals) == set(expected)
    for key, ids in expected.items():
        got = arrivals[key]
        positions = [ids.index(event_id) for event_id in got]
        assert positions == sorted(positions), key  # in order, repeats in place
        assert list(dict.fromkeys(got)) == ids, key  # none missing


async def test_receiver_down_two_minutes_then_every_event_arrives_in_order(tmp_path: Path) -> None:
    clock = ManualClock(T0)
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=clock.wall)
    account = create_account(store, "shop", now=T0).account_id
    port = _free_port()
    url = f"http://127.0.0.1:{port}/hook"
    service.set_webhooks(account, {"reply": url, "status": url})
    worker = WebhookWorker(store, WebhookSettings(), clock=clock.clock(), rng=random.Random(3))
    store.on_webhook_enqueued = worker.wake
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        # Down (nothing listens) for 120 s while traffic goes on: events keep coming.
        n = 0
        for second in range(120):
            if second % 10 == 0:
                for _ in range(3):
                    _send_and_settle(store, account, n, clock.now)
                    n += 1
                _reply(store, account, "+15550001111", f"reply {second}", clock.now)
            clock.advance(1)
            await worker.quiet()
        counts = service.webhook_counts()
        assert counts == {"pending": 36 * 3 + 12, "delivered": 0, "failed": 0}
        first = min(store.list_webhook_events(limit=500), key=lambda r: r["id"])
        assert first["attempts"] >= 4
        assert "Cannot connect" in first["last_error"]

        async with Receiver(port=port) as receiver:  # up again on the same address
            for _ in range(30 * 60):
                clock.advance(1)
                await worker.quiet()
                if not service.webhook_counts()["pending"]:
                    break
            assert service.webhook_counts() == {"pending": 0, "delivered": 120, "failed": 0}
            _check_order(_expected(store), receiver.seen)
            assert len(receiver.seen) == 120  # nothing twice without a crash
    finally:
        stop.set()
        await task
        store.close()


def _config(tmp_path: Path, http_port: int) -> Path:
    config = tmp_path / "smsgw.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        "discover = []\n"
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n'
        "[webhooks]\npoll_interval = 0.2\n"
    )
    return config


def _daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip


async def _exited(proc: subprocess.Popen[bytes]) -> int:
    """The exit status, waited for off the loop (the receiver keeps answering meanwhile)."""
    return await asyncio.get_running_loop().run_in_executor(None, proc.wait)


async def test_kill_9_mid_delivery_loses_no_webhook(tmp_path: Path) -> None:
    held = asyncio.Event()
    release = asyncio.Event()
    held_ids: list[str] = []

    async def slow_then_hold(request: web.Request, receiver: Receiver) -> web.StreamResponse:
        if len(receiver.seen) == 25 and not held.is_set():
            held_ids.append(request.headers["X-Smsgw-Event-Id"])
            held.set()  # this request is mid-delivery when the daemon dies
            await release.wait()
        return web.Response(status=204)

    async with Receiver(slow_then_hold) as receiver:
        store = Store.open(tmp_path / "data")
        try:
            account = create_account(store, "shop", now=T0).account_id
            url = receiver.url("/hook")
            GatewayService(store, wall=lambda: T0).set_webhooks(
                account, {"reply": url, "status": url}
            )
            for n in range(20):
                _send_and_settle(store, account, n, T0)
                _reply(store, account, f"+1555000{n % 3}", f"reply {n}", T0)
            expected = _expected(store)
        finally:
            store.close()
        total = sum(len(ids) for ids in expected.values())
        assert total == 80

        config = _config(tmp_path, _free_port())
        log = tmp_path / "daemon.log"
        proc = _daemon(config, log)
        try:
            await held.wait()
            proc.send_signal(signal.SIGKILL)
            assert await _exited(proc) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                await _exited(proc)
        release.set()
        before_restart = len(receiver.seen)
        assert before_restart < total

        proc = _daemon(config, log)
        try:
            while len({s.headers["X-Smsgw-Event-Id"] for s in receiver.seen}) < total:
                receiver.arrived.clear()
                await receiver.arrived.wait()
            # A clean stop lets the attempts on their way finish and records them.
            proc.send_signal(signal.SIGTERM)
            assert await _exited(proc) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                await _exited(proc)

    store = Store.open(tmp_path / "data")
    try:
        assert store.webhook_counts() == {"pending": 0, "delivered": total, "failed": 0}
    finally:
        store.close()
    _check_order(expected, receiver.seen)
    # The request in flight at the kill was sent again after the restart, same event id.
    (held_id,) = held_ids
    repeats = [i for i, s in enumerate(receiver.seen) if s.headers["X-Smsgw-Event-Id"] == held_id]
    assert len(repeats) >= 2 and repeats[-1] >= before_restart
