"""A daemon taking over modems a killed one left running, on one virtual clock.

The previous daemon left the modem in +CSMS=1 with a +CDS nobody will acknowledge: written after
it died, flushed when the new daemon opened the port. Left alone, the modem's +CNMA timer sets
<mt>=<ds>=0 (TS 27.005 3.4.4) and replies are stored silently until the driver's periodic look
minutes later ("the modem stopped routing new messages to us (+CNMI: 2,0,2,0,0)"). The new
daemon refuses it at start-up (+CNMA=2): routing stays on, the SMSC sends the report again, and
every reply and report is stored once, as it arrives.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.config import Config
from gateway.daemon import Gateway
from modem.emulator import EmulatorPool
from modem.emulator.device import NACK_RETRY
from tests.emulated import serving
from tests.gateway.watch import StoreWatch
from tests.lockstep import LockstepClock

BOUND = 1200.0  # virtual seconds the scenario may take at most: fails instead of hanging
REPORT_DELAY = 0.5  # the SMSC's reports come after the first daemon is gone
SENT = 5  # messages the first daemon sends just before it dies
REPLIES = 20  # replies injected once the second daemon runs, one a second


def _count(gateway: Gateway, sql: str) -> tuple[int, int]:
    row = gateway.store.conn.execute(sql).fetchone()
    return int(row[0]), int(row[1])


async def _scenario(emu: EmulatorPool, clock: LockstepClock, tmp_path: Path) -> list[int]:
    (info,) = emu.info()
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0)
    async with serving(config, [info.path], frontends=[], lockstep=clock) as first:
        account = create_account(first.store, "shop", now=clock.wall(), unlimited=True)
        submit = first.service.submit
        ids = [
            submit(account.account_id, [f"+1555000000{k}"], f"out {k}").message_ids[0]
            for k in range(SENT)
        ]

        def all_sent() -> bool:
            states = [p["state"] for m in ids for p in first.store.parts(m)]
            return not {"queued", "sending"} & set(states)

        await StoreWatch(first).until(all_sent)
    # The first daemon is gone (its port closed), the modem runs on: the reports come now.
    await clock.sleep(2 * REPORT_DELAY)
    assert emu.call(lambda: emu.core(0).unacknowledged) == 1  # a +CDS nobody read
    lagging: list[int] = []
    async with serving(config, [info.path], frontends=[], lockstep=clock) as second:
        watch = StoreWatch(second)
        for n in range(1, REPLIES + 1):
            emu.inject_sms(info.msisdn, f"reply {n}")
            # Each reply is stored as it comes (+CMTI), not at the next periodic scan; the first
            # waits at the SMSC behind the refused report until it is sent again.
            try:
                await asyncio.wait_for(
                    watch.until(
                        lambda n=n: _count(second, "SELECT COUNT(*), 0 FROM inbound")[0] >= n
                    ),
                    timeout=NACK_RETRY + 5.0,
                )
            except TimeoutError:
                lagging.append(n)
            await clock.sleep(1.0)
        await clock.sleep(330.0)  # past the driver's periodic look at +CNMI (scan_interval)
        assert _count(second, "SELECT COUNT(*), COUNT(DISTINCT body) FROM inbound") == (
            REPLIES,
            REPLIES,
        )
        assert _count(second, "SELECT COUNT(*), COUNT(DISTINCT part_id) FROM delivery_reports") == (
            SENT,
            SENT,
        )
        assert [p["state"] for m in ids for p in second.store.parts(m)] == ["delivered"] * SENT
        assert emu.call(lambda: emu.core(0).cnmi[1::2]) == [1, 1]
    return lagging


def test_a_cds_the_killed_daemon_left_unacknowledged_does_not_stop_routing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="modem.client")
    with EmulatorPool(["generic"], seed=5, report_delay=REPORT_DELAY) as emu:
        clock = LockstepClock(emu, virtual_loop=True)
        lagging = clock.run(asyncio.wait_for(_scenario(emu, clock, tmp_path), BOUND))
    assert lagging == []
    assert "stopped routing" not in caplog.text
