"""End to end on the emulator: API-level submit -> modem -> network -> report; reply -> inbox."""

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

from gateway.accounts import create_account
from gateway.inbox import Inbox
from gateway.models import PartState
from gateway.outbox import Clock, Outbox
from gateway.pool import SimPool
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher
from gateway.service import GatewayService
from gateway.store import Store
from gateway.worker import ModemWorker
from modem.client import ClientConfig
from modem.emulator import EmulatorPool
from modem.pdu import Address, SmsDeliver, SmsSubmit, UserData, decode_tpdu

DEADLINE = 30.0  # seconds of wall time for the whole scenario; fails instead of hanging
LONG = "Your order #4411 has shipped and will arrive tomorrow between 9 and 12. " * 5  # 3 parts


def test_message_is_sent_reported_and_reply_lands_in_inbox(tmp_path: Path) -> None:
    with EmulatorPool(["generic"], seed=11) as emu:
        (info,) = emu.info()
        asyncio.run(asyncio.wait_for(_scenario(tmp_path, emu, info.path, info.msisdn), DEADLINE))


async def _scenario(tmp_path: Path, emu: EmulatorPool, port: str, msisdn: str) -> None:
    loop = asyncio.get_running_loop()
    wall = lambda: datetime.now(UTC)  # noqa: E731
    store = Store.open(tmp_path)
    account = create_account(store, "shop", now=wall(), credits=100).account_id
    delivered: asyncio.Queue[int] = asyncio.Queue()
    arrived: asyncio.Queue[int] = asyncio.Queue()
    pool = SimPool()
    reports = ReportMatcher(store, on_settled=lambda part, state: delivered.put_nowait(part))
    outbox = Outbox(
        store,
        pool,
        {},
        Clock(loop.time, wall, asyncio.sleep),
        on_sent=lambda part: reports.reconcile(part, now=wall()),
    )
    dispatcher = Dispatcher(store, outbox)
    worker = ModemWorker(
        port,
        store=store,
        pool=pool,
        dispatcher=dispatcher,
        inbox=Inbox(store, on_message=arrived.put_nowait),
        reports=ReportMatcher(store, on_settled=lambda part, state: delivered.put_nowait(part)),
        wall=wall,
        config=ClientConfig(),
    )
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run(stop)), asyncio.create_task(dispatcher.run(stop))]
    try:
        await worker.ready.wait()
        assert worker.sim_id is not None
        sim = store.sim(worker.sim_id)
        assert sim is not None
        assert sim["msisdn"] == msisdn  # the SIM knows its number (+CNUM)
        store.grant_sim(account, worker.sim_id)

        result = GatewayService(store, wall=wall).submit(account, ["+15005550000"], LONG)
        (message_id,) = result.message_ids
        assert result.units_per_message == 3
        for _ in range(3):
            await delivered.get()
        message = store.message(message_id)
        assert message is not None
        assert message["state"] == PartState.DELIVERED.value
        parts = store.parts(message_id)
        assert [p["state"] for p in parts] == ["delivered"] * 3

        # The network's own record is the judge: 3 parts from our SIM, SRR set, text intact.
        outside = [o for o in emu.outside() if o.destination == "+15005550000"]
        assert [o.sender for o in outside] == [msisdn] * 3
        submits = [decode_tpdu(o.tpdu) for o in outside]
        assert all(isinstance(s, SmsSubmit) and s.status_report_request for s in submits)
        assert "".join(s.user_data.text or "" for s in submits) == LONG  # type: ignore[union-attr]
        assert sorted(p["tp_mr"] for p in parts) == sorted(o.message_reference for o in outside)

        # A reply from the outside world, concatenated and out of order, lands in the inbox.
        reply = "Thanks! Could you leave it with the neighbour at number 12? 🙏 " * 2
        emu.inject_sms(msisdn, reply, sender="+15551230001", order=[1, 0])
        inbound_id = await arrived.get()
        row = store.inbound(inbound_id)
        assert row is not None
        assert (row["body"], row["account_id"], row["originator"]) == (
            reply,
            account,
            "+15551230001",
        )
        assert row["complete"] == 1
        assert json.loads(row["anomalies"]) == []

        # A DELIVER as some networks send it: TP-OA length counting the F filler (12 for 11
        # digits) and TP-UDL beyond the user data. It arrives, with what was repaired stored.
        tpdu = bytearray(
            SmsDeliver(
                originator=Address.parse("+15551230002"),
                scts=datetime(2026, 12, 1, 12, 0, tzinfo=UTC),
                user_data=UserData(text="malformed but kept"),
            ).encode()
        )
        assert (tpdu[1], tpdu[18]) == (11, 18)  # TP-OA length; TP-UDL after OA, PID, DCS, SCTS
        tpdu[1], tpdu[18] = 12, 40
        emu.inject_tpdus(msisdn, [bytes(tpdu)])
        row = store.inbound(await arrived.get())
        assert row is not None
        assert (row["body"], row["originator"]) == ("malformed but kept", "+15551230002")
        assert [a["code"] for a in json.loads(row["anomalies"])] == [
            "address-filler-counted",
            "user-data-short",
        ]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await dispatcher.close()
        store.close()
