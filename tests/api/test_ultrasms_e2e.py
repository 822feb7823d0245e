"""End to end on the emulator: UltraSMS smsgroup (rotate=1, throttle=2) to a 50-contact group
through every SIM at one SMS per 2 s per SIM, judged on the emulated network's own timestamps;
then getbulksmsdeliveryreport and BestSMS fetch_sms report what the network's reports said.

Real PTYs and a real HTTP socket; one virtual clock for the gateway and the network (see
tests/lockstep.py), so the spacing is judged exactly and the 8 s of throttling take no time.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import defaultdict
from pathlib import Path

from gateway.accounts import create_account
from gateway.contacts import ContactInput
from gateway.store import Store
from modem.emulator import MAGIC_DELIVERED, MAGIC_PERMANENT_FAILURE, EmulatorPool
from tests.emulated import assembled
from tests.lockstep import LockstepClock

MODEMS = 10
CONTACTS = 50
THROTTLE = 2.0
DEADLINE = 90.0  # seconds of wall time for the whole scenario; fails instead of hanging


def test_smsgroup_rotates_throttles_and_reports(tmp_path: Path) -> None:
    with EmulatorPool(MODEMS, seed=7, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        clock.run(asyncio.wait_for(_scenario(tmp_path, emu, clock), DEADLINE))


async def _scenario(tmp_path: Path, emu: EmulatorPool, clock: LockstepClock) -> None:
    store = Store.open(tmp_path)
    creds = create_account(store, "shop", now=clock.wall(), credits=1000)
    async with assembled(store, emu, lockstep=clock) as g:
        sims, settled, client = g.sims, g.settled, g.client
        assert len(sims) == MODEMS
        numbers = [MAGIC_DELIVERED, MAGIC_PERMANENT_FAILURE] + [
            f"+1202555{n:04d}" for n in range(CONTACTS - 2)
        ]
        contacts = [ContactInput(n, group="Fifty") for n in numbers]
        g.service.contacts.save(creds.account_id, contacts, dial_code="")
        any_sim = sorted(sims)[0].lstrip("+")
        r = await client.post("/apis/smsgroup/", data={
            "apikey": creds.api_key, "from": any_sim, "to": "Fifty",
            "message": "Spring sale: 20% off everything this weekend!",
            "rotate": "1", "throttle": "2"})  # fmt: skip
        group_sms_id = json.loads(await r.text())
        assert isinstance(group_sms_id, int) and group_sms_id > 0

        # Every part is settled by a status report from the emulated network.
        outcomes = [await settled.get() for _ in range(CONTACTS)]
        assert sorted(s.value for _, s in outcomes).count("delivered") == CONTACTS - 1

        # The network is the judge: every SIM sent, each exactly one SMS per 2 s.
        outside = [o for o in emu.outside() if o.destination in set(numbers)]
        assert sorted(o.destination for o in outside) == sorted(numbers)  # once each
        by_sim: dict[str, list[float]] = defaultdict(list)
        for o in outside:
            by_sim[o.sender].append(o.time)
        assert set(by_sim) == sims
        for sim, times in by_sim.items():
            times.sort()
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert min(gaps) >= THROTTLE, (sim, gaps)
            # ... and no slower: the pace is the batch's throttle, not a stall
            assert max(gaps) == THROTTLE, (sim, gaps)
        assert {len(t) for t in by_sim.values()} == {CONTACTS // MODEMS}

        report = await client.get("/apis/getbulksmsdeliveryreport/", params={
            "apikey": creds.api_key, "groupsmsid": str(group_sms_id)})  # fmt: skip
        assert json.loads(await report.text()) == {"successful": CONTACTS - 1, "failed": 1}

        async def fetch(recipient: str) -> dict[str, str]:
            r = await client.post("/api_v1", data={
                "sub_account": "shop", "sub_account_pass": creds.password,
                "action": "fetch_sms", "recipient": recipient})  # fmt: skip
            (record,) = json.loads(await r.text())["records"]
            return record

        delivered = await fetch(MAGIC_DELIVERED)
        assert (delivered["status"], delivered["status_msg"]) == ("2", "DELIVERED")
        assert "+" + delivered["sender"] in sims  # the SIM that really sent it
        failed = await fetch(MAGIC_PERMANENT_FAILURE)
        assert (failed["status"], failed["status_msg"]) == ("-4", "UNDELIVERABLE")
        assert failed["info"] == "Undeliverable (network report TP-ST 0x41)"
