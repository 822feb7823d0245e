"""The pool from asyncio code: awaitable calls, no executor threads left behind."""

from __future__ import annotations

import asyncio

from modem.emulator import EmulatorPool


async def test_acall_and_aadvance_from_a_running_loop() -> None:
    with EmulatorPool(["sim800"], seed=6) as pool:
        assert await pool.acall(lambda: pool.core(0).sms_ready) is False
        await pool.aadvance(10)  # SIM800 boot URCs run out: "SMS Ready"
        assert await pool.acall(lambda: pool.core(0).sms_ready) is True
        infos = await pool.acall(lambda: [m.info() for m in pool.modems])
        assert infos[0].personality == "sim800"
        assert asyncio.get_running_loop() is not pool._loop
