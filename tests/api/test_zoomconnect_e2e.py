"""End to end on the emulator: Zoom Connect sms/send to the magic delivered number shows
DELIVERED in messages/{id} (the network's status report), the balance drops by its credit cost,
a reply shows as its answer; send-bulk's messagesPerMinute paces the whole batch across SIMs,
judged exactly on the emulated network's own timestamps (one virtual clock, tests/lockstep.py).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.accounts import create_account
from gateway.models import PartState
from gateway.store import Store
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.emulated import assembled
from tests.lockstep import LockstepClock

DEADLINE = 90.0
EMAIL = "shop@example.com"


@dataclass
class Rig:
    """A gateway on emulated modems (tests/emulated.py), with the events a test waits on."""

    emu: EmulatorPool
    client: TestClient
    token: str
    sims: set[str]
    settled: asyncio.Queue[tuple[int, PartState]]
    inbound: asyncio.Queue[int]

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        r = await self.client.request(
            method, "/app/api/rest/v1/" + path, data=json.dumps(body),
            headers={"email": EMAIL, "token": self.token, "Content-Type": "application/json"},
        )  # fmt: skip
        text = await r.text()
        return r.status, (json.loads(text) if text else None)


@asynccontextmanager
async def rig(
    tmp_path: Path, emu: EmulatorPool, credits: int, lockstep: LockstepClock | None = None
) -> AsyncIterator[Rig]:
    store = Store.open(tmp_path)
    now = lockstep.wall() if lockstep is not None else datetime.now(UTC)
    creds = create_account(store, "shop", now=now, credits=credits, email=EMAIL)
    async with assembled(store, emu, lockstep=lockstep, wake_on_accept=True) as g:
        yield Rig(emu, g.client, creds.token, g.sims, g.settled, g.inbound)


def test_send_delivered_report_reply_and_charge(tmp_path: Path) -> None:
    with EmulatorPool(2, seed=11, clock="real", report_delay=0.0) as emu:
        asyncio.run(asyncio.wait_for(_send_scenario(tmp_path, emu), DEADLINE))


async def _send_scenario(tmp_path: Path, emu: EmulatorPool) -> None:
    async with rig(tmp_path, emu, credits=50) as r:
        text = "Order 1042 has shipped; reply YES to confirm delivery. " * 3  # 2 parts of GSM-7
        status, analysis = await r.call(
            "POST", "messages/analyse/full", {"message": text, "recipientNumber": MAGIC_DELIVERED}
        )
        assert (status, analysis["numberOfMessages"]) == (200, 2)
        status, sent = await r.call("POST", "sms/send", {
            "recipientNumber": MAGIC_DELIVERED.lstrip("+"), "message": text,
            "campaign": "shipping", "dataField": "order-1042"})  # fmt: skip
        assert status == 200 and sent["error"] is None
        # Both parts are settled by the network's status reports.
        assert {(await r.settled.get())[1] for _ in range(2)} == {PartState.DELIVERED}
        status, message = await r.call("GET", f"messages/{sent['messageId']}")
        assert status == 200
        assert message["messageStatus"] == "DELIVERED"
        assert (message["numberOfMessages"], message["creditCost"]) == (2, 2.0)
        assert message["fromNumber"] in r.sims and message["toNumber"] == MAGIC_DELIVERED
        assert message["dateTimeSent"] is not None
        _, balance = await r.call("GET", "account/balance")
        assert balance["creditBalance"] == 50.0 - analysis["messageCreditCost"]
        # The network saw exactly two parts from that SIM.
        outside = [o for o in emu.outside() if o.destination == MAGIC_DELIVERED]
        assert len(outside) == 2 and {o.sender for o in outside} == {message["fromNumber"]}

        # The recipient answers; the reply is the sent message's answer.
        emu.inject_sms(message["fromNumber"], "YES", sender=MAGIC_DELIVERED)
        inbound_id = await r.inbound.get()
        status, page = await r.call("GET", "messages/all?type=INBOUND")
        (reply,) = page["webServiceMessages"]
        assert reply["messageId"] == str(2 * inbound_id + 1)
        assert (reply["message"], reply["fromNumber"], reply["toNumber"]) == (
            "YES",
            MAGIC_DELIVERED,
            message["fromNumber"],
        )
        assert reply["repliedToMessage"]["messageId"] == sent["messageId"]
        assert (reply["campaign"], reply["userDataField"]) == ("shipping", "order-1042")
        _, stats = await r.call("GET", "account/statistics?calculateCreditValue=true")
        assert stats["grandTotal"]["delivered"] == 2.0


def test_send_bulk_messages_per_minute_paces_the_batch_across_sims(tmp_path: Path) -> None:
    with EmulatorPool(3, seed=12, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        clock.run(asyncio.wait_for(_bulk_scenario(tmp_path, emu, clock), DEADLINE))


async def _bulk_scenario(tmp_path: Path, emu: EmulatorPool, clock: LockstepClock) -> None:
    count, per_minute = 9, 20  # one message every 3 s for the batch; each SIM could do 1/s
    async with rig(tmp_path, emu, credits=50, lockstep=clock) as r:
        numbers = [f"+1202555{n:04d}" for n in range(count)]
        status, answer = await r.call("POST", "sms/send-bulk", {
            "sendSmsRequests": [{"recipientNumber": n, "message": f"Ticket {i}"}
                                for i, n in enumerate(numbers)],
            "messagesPerMinute": per_minute})  # fmt: skip
        assert status == 200
        assert all(a["error"] is None for a in answer["sendSmsResponses"])
        for _ in range(count):
            await r.settled.get()
        outside = sorted((o for o in emu.outside() if o.destination in set(numbers)),
                         key=lambda o: o.time)  # fmt: skip
        assert sorted(o.destination for o in outside) == sorted(numbers)
        gaps = [b.time - a.time for a, b in itertools.pairwise(outside)]
        assert gaps == [60 / per_minute] * (count - 1)  # exactly the batch's pace, no faster
        assert len({o.sender for o in outside}) > 1  # several SIMs took turns, still paced
