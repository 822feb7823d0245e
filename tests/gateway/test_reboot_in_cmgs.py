"""The daemon on an emulated modem that reboots inside AT+CMGS, everything on one virtual clock
(LockstepClock(virtual_loop=True): the driver's real 60 s AT+CMGS timeout, in virtual seconds).

The part on the wire becomes uncertain at the modem's first boot URC -- never failed as if surely
unsent, never sent again -- the modem is set up again and the next message goes out on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.config import Config
from gateway.worker import ClientSender
from modem.client import Timeouts
from modem.emulator import EmulatorPool
from modem.pdu import SmsSubmit, decode_tpdu
from tests.emulated import serving
from tests.gateway.watch import StoreWatch
from tests.lockstep import LockstepClock

BOUND = 900.0  # virtual seconds the scenario may take at most: fails instead of hanging
FIRST_BOOT_URC = 0.5  # SIM800's RDY after a restart (modem.emulator.personalities)


@dataclass(frozen=True)
class Outcome:
    """The part sent into the reboot, the next message, and the network's record."""

    first: dict[str, object]
    second: dict[str, object]
    reboots: int
    texts: list[str | None]


def _seconds(start: object, end: object) -> float:
    return (datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))).total_seconds()


async def _scenario(emu: EmulatorPool, clock: LockstepClock, tmp_path: Path, sent: int) -> Outcome:
    (port,) = [i.path for i in emu.info()]
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0)
    async with serving(config, [port], frontends=[], lockstep=clock) as gateway:
        store = gateway.store
        watch = StoreWatch(gateway)
        account = create_account(store, "shop", now=clock.wall(), unlimited=True).account_id
        emu.set_fault(0, "submit_crash", how="reboot", sent=sent)
        (first,) = gateway.service.submit(account, ["+15550000001"], "into the reboot").message_ids
        await watch.until(lambda: store.parts(first)[0]["state"] not in ("queued", "sending"))
        (second,) = gateway.service.submit(account, ["+15550000002"], "after it").message_ids
        await watch.until(lambda: store.parts(second)[0]["state"] not in ("queued", "sending"))
        (sender,) = gateway.outbox.senders.values()
        assert isinstance(sender, ClientSender)
        texts = []
        for sms in emu.outside():
            tpdu = decode_tpdu(sms.tpdu)
            assert isinstance(tpdu, SmsSubmit)
            texts.append(tpdu.user_data.text)
        return Outcome(
            store.parts(first)[0], store.parts(second)[0], sender.client.stats["reboots"], texts
        )


@pytest.mark.parametrize("sent", [1, 0], ids=["network-took-it", "network-never-saw-it"])
def test_a_reboot_inside_cmgs_makes_the_part_uncertain_at_once_and_the_next_goes_out(
    tmp_path: Path, sent: int
) -> None:
    with EmulatorPool(["sim800"], seed=9, report_delay=0.0) as emu:
        clock = LockstepClock(emu, virtual_loop=True)
        out = clock.run(asyncio.wait_for(_scenario(emu, clock, tmp_path, sent), BOUND))
    first = out.first
    assert first["state"] == "uncertain"  # it may have reached the network: never resent
    assert first["attempts"] == 1
    assert "restarted (RDY)" in str(first["error"])
    took = _seconds(first["sending_at"], first["done_at"])
    assert took == pytest.approx(FIRST_BOOT_URC, abs=0.01)  # the AT+CMGS timeout before
    assert took < Timeouts().submit
    assert out.reboots == 1  # the modem was set up again
    assert out.second["state"] in ("sent", "delivered")
    assert out.texts == (["into the reboot"] if sent else []) + ["after it"]
