"""End to end on the emulator: an SMS Everyone campaign of 20 destinations goes out through 4
SIMs, each at its own throttle (judged exactly on the emulated network's timestamps); DRStatus
shows what the magic numbers' status reports said; a reply to one message shows in /api/replies and
reaches the customer's URL as the spec's HTTP GET, through the webhook engine.

Real PTYs and a real HTTP socket; one virtual clock for the gateway and the network (see
tests/lockstep.py), so the spacing is judged exactly and the throttling takes no time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections import defaultdict
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.accounts import create_account
from gateway.config import Config
from gateway.models import PartState, ThrottlePolicy
from modem.emulator import EmulatorPool
from tests.emulated import serving
from tests.lockstep import LockstepClock

# One SMS every INTERVAL seconds per SIM, but SIM 4 at twice that: each SIM's own throttle.
INTERVAL = 1.0
DEADLINE = 90.0  # seconds of wall time for the whole scenario; fails instead of hanging
MAGIC = {
    "15005550000": (1, 0),  # delivered
    "15005550001": (2, 0x41),  # permanent failure: TP-ST 0x41
    "15005550003": (2, 0x46),  # validity period expired
}
NO_REPORT = "15005550004"
OUTSIDE = [f"1202555{n:04d}" for n in range(16)]  # the outside world: reports "delivered"


def test_campaign_across_four_sims_then_receipts_and_a_reply(tmp_path: Path) -> None:
    with EmulatorPool(["generic"] * 4, seed=12, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        clock.run(asyncio.wait_for(_scenario(emu, clock, tmp_path), DEADLINE))


async def _scenario(emu: EmulatorPool, clock: LockstepClock, tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0, discover=())
    ports = [i.path for i in emu.info()]
    async with serving(config, ports, frontends=[], lockstep=clock) as gateway:
        store = gateway.store
        sims = sorted(store.list_sims(), key=lambda s: s["id"])
        intervals = {}
        for n, sim in enumerate(sims):
            interval = INTERVAL * (2 if n == 3 else 1)
            intervals[sim["msisdn"]] = interval
            store.set_sim_limits(sim["iccid"], {"throttle_interval": interval})
            gateway.pool.get(sim["id"]).throttle.policy = ThrottlePolicy(interval=interval)
        settled: asyncio.Queue[tuple[int, PartState]] = asyncio.Queue()
        gateway.reports.on_settled = lambda part, state: settled.put_nowait((part, state))
        inbound: asyncio.Queue[int] = asyncio.Queue()
        gateway.inbox.on_message = inbound.put_nowait
        creds = create_account(store, "everyone", now=clock.wall(), credits=100)
        auth = "Basic " + base64.b64encode(f"everyone:{creds.password}".encode()).decode()

        async with TestClient(TestServer(build_app(gateway.service))) as client:

            async def post(path: str, body: object) -> dict[str, object]:
                r = await client.post(
                    path,
                    data=json.dumps(body),
                    headers={"Authorization": auth, "Content-Type": "application/json"},
                )
                assert r.status == 200, await r.text()
                return json.loads(await r.text())  # type: ignore[no-any-return]

            destinations = [*MAGIC, NO_REPORT, *OUTSIDE]
            created = await post(
                "/api/campaign",
                {
                    "Message": "Your table for two is booked for 7pm. Reply to change it.",
                    "Destinations": destinations,
                    "Reference": "booking-77",
                    "Action": "create",
                },
            )
            assert (created["Code"], created["Messages"], created["Credits"]) == (0, 20, 20)
            cid = created["CampaignId"]

            # Every report the network sends settles a part (all but the no-report number).
            outcomes = [await settled.get() for _ in range(19)]
            assert sorted(s.value for _, s in outcomes).count("delivered") == 17

            # The network's own clock: all four SIMs sent, each no faster than its throttle.
            outside = [o for o in emu.outside() if o.destination.lstrip("+") in destinations]
            assert sorted(o.destination.lstrip("+") for o in outside) == sorted(destinations)
            by_sim: dict[str, list[float]] = defaultdict(list)
            for o in outside:
                by_sim[o.sender].append(o.time)
            assert set(by_sim) == set(intervals)
            for sim, times in by_sim.items():
                gaps = [b - a for a, b in itertools.pairwise(sorted(times))]
                # exactly: never faster than its throttle, and never idle in between
                assert min(gaps) >= intervals[sim] and max(gaps) == intervals[sim], (sim, gaps)
            # the slower SIM took fewer of them
            slow = sims[3]["msisdn"]
            assert len(by_sim[slow]) < max(len(t) for s, t in by_sim.items() if s != slow)

            receipts = await post("/api/DRStatus", {"CampaignId": cid})
            assert receipts["Count"] == 19
            got = {
                d["Destination"]: (d["Status"]["DeliveryReceiptStatusId"], d["Status"]["Code"])
                for d in receipts["Destinations"]
            }
            assert {k: got[k] for k in MAGIC} == MAGIC
            assert NO_REPORT not in got
            assert {got[n] for n in OUTSIDE} == {(1, 0)}
            one = await post("/api/DRStatus", {"CampaignId": cid, "Destination": "15005550001"})
            assert [d["Status"] for d in one["Destinations"]] == [
                {"DeliveryReceiptStatusId": 2, "Code": 0x41}
            ]

            # The customer's reply URL (the provider sets it up on request; here the service),
            # with the username and password their endpoint checks, as in the spec's example.
            hooks: asyncio.Queue[tuple[str, str, dict[str, str]]] = asyncio.Queue()

            async def receiver(request: web.Request) -> web.Response:
                hooks.put_nowait((request.method, request.path_qs, dict(request.headers)))
                return web.Response(text="0")  # "nothing but a 0 (zero)"

            hook_app = web.Application()
            hook_app.router.add_get("/sms/in.aspx", receiver)
            async with TestServer(hook_app) as hook:
                url = str(hook.make_url("/sms/in.aspx")) + "?username=everyone&password=s3cret"
                gateway.service.set_webhook(creds.account_id, "reply", url, format="smseveryone")

                # The delivered number answers the SIM that texted it.
                (sent_by,) = [o.sender for o in outside if o.destination == "+15005550000"]
                emu.inject_sms(sent_by, "Can we make it 8pm?", sender="+15005550000")
                await inbound.get()
                method, path_qs, headers = await hooks.get()
            assert method == "GET"
            path, _, query = path_qs.partition("?")
            assert path == "/sms/in.aspx"
            assert parse_qsl(query) == [
                ("username", "everyone"),
                ("password", "s3cret"),
                ("originator", "15005550000"),
                ("recipient", sent_by.lstrip("+")),
                ("reference", "booking-77"),
                ("message_text", "Can we make it 8pm?"),
            ]
            assert {"X-Smsgw-Event-Id", "X-Smsgw-Timestamp", "X-Smsgw-Signature"} <= set(headers)
            replies = await post("/api/replies", {})
            assert replies["Count"] == 1
            (reply,) = replies["Messages"]
            assert {
                k: reply[k] for k in ("Originator", "Recipient", "MessageText", "ReferenceId")
            } == {
                "Originator": "15005550000",
                "Recipient": sent_by.lstrip("+"),
                "MessageText": "Can we make it 8pm?",
                "ReferenceId": "booking-77",
            }
            assert (await post("/api/replies", {}))["Count"] == 0  # retrieved
            assert store.account(creds.account_id)["credits"] == 80
