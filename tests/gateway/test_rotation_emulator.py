"""Rotation and throttle judged by the emulated network's own clock: 4 SIMs, 400 messages."""

import asyncio
import itertools
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from gateway.accounts import create_account
from gateway.config import Config
from gateway.daemon import Gateway, serve
from modem.emulator import EmulatorPool

INTERVAL = 0.1  # seconds between SMS per SIM: the real-time scale of "throttle N"
# The throttle spaces the starts of AT+CMGS; the network stamps a submit when the modem has
# processed it, which on this shared 2-core machine jitters by a few milliseconds.
JITTER = 0.03
DEADLINE = 90.0


async def _scenario(emu: EmulatorPool, tmp_path: Path, sick: int | None) -> None:
    stop = asyncio.Event()
    ready: asyncio.Future[Gateway] = asyncio.get_running_loop().create_future()
    ports = [(i.path, None) for i in emu.info()]
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0)
    daemon = asyncio.create_task(
        serve(config, stop=stop, ports=ports, on_ready=ready.set_result, frontends=[])
    )
    try:
        gateway = await ready
        await asyncio.gather(*(w.ready.wait() for w in gateway.workers.values()))
        store = gateway.store
        for sim in store.list_sims():
            store.set_sim_limits(sim["id"], {"throttle_interval": INTERVAL})
            gateway.pool.get(sim["id"]).throttle.policy = gateway.pool.get(
                sim["id"]
            ).throttle.policy.__class__(interval=INTERVAL)
        if sick is not None:
            emu.set_fault(sick, "cms_error", code=38, rate=1.0)  # network out of order, always
        # Wake when the 400th part is recorded sent (the outbox's own hook), not by polling.
        all_sent = asyncio.Event()
        sent = 0
        reconcile = gateway.outbox.on_sent

        def on_sent(part_id: int) -> None:
            nonlocal sent
            if reconcile is not None:
                reconcile(part_id)
            sent += 1
            if sent == 400:
                all_sent.set()

        gateway.outbox.on_sent = on_sent
        account = create_account(store, "bulk", now=datetime.now(UTC), unlimited=True)
        gateway.service.submit(account.account_id, [f"+1555{i:07d}" for i in range(400)], "Sale!")
        await all_sent.wait()  # bounded by DEADLINE around the whole scenario
    finally:
        stop.set()
        await daemon


def _run(tmp_path: Path, sick: int | None) -> dict[str, list[float]]:
    with EmulatorPool(["generic"] * 4, seed=4, clock="real", report_delay=0.0) as emu:
        asyncio.run(asyncio.wait_for(_scenario(emu, tmp_path, sick), DEADLINE))
        sends: dict[str, list[float]] = defaultdict(list)
        for record in emu.outside():
            sends[record.sender].append(record.time)
        return sends


def test_400_messages_spread_evenly_at_the_throttle(tmp_path: Path) -> None:
    sends = _run(tmp_path, sick=None)
    assert sum(len(v) for v in sends.values()) == 400
    assert len(sends) == 4
    assert max(len(v) for v in sends.values()) - min(len(v) for v in sends.values()) <= 4
    for times in sends.values():
        times.sort()
        # the network's timestamps, not ours: no SIM sent twice within the throttle interval
        gaps = sorted(b - a for a, b in itertools.pairwise(times))
        assert gaps[0] >= INTERVAL - JITTER
        assert gaps[len(gaps) // 2] >= INTERVAL  # and on average the pace is the throttle's


def test_a_failing_sim_leaves_rotation_and_the_others_send_its_messages(tmp_path: Path) -> None:
    sends = _run(tmp_path, sick=3)
    assert sum(len(v) for v in sends.values()) == 400  # every message still went out
    assert len(sends) == 3  # ...through the three healthy SIMs only
