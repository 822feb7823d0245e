"""SMS Everyone campaigns: pause, unpause, modify and delete on a scheduled and on a half-sent
campaign. Nothing already sent is touched and the credits ledger refunds exactly."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway.models import ThrottlePolicy
from gateway.outbox import Outbox
from gateway.pool import SimPool
from gateway.service import GatewayService
from gateway.store import Store
from modem.pdu import decode_pdu
from tests.api.test_smseveryone import T0, Api, World, build_world, run
from tests.gateway.test_outbox import FakeModem, VirtualClock

NUMBERS = [f"6140055{n:04d}" for n in range(10)]
SHORT, LONG = "Sale starts Monday", "Sale starts Monday! " * 9  # 1 part, 2 parts (180 chars)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


def balance(store: Store) -> int:
    return int(store.account(1)["credits"])


def ledger(store: Store) -> int:
    row = store.conn.execute("SELECT SUM(delta) FROM credits_ledger WHERE account_id = 1")
    return int(row.fetchone()[0] or 0)


async def campaign(api: Api, cid: int, action: str, **fields: object) -> dict[str, object]:
    answer = await api.ok("/api/campaign", {"Action": action, "CampaignId": cid, **fields})
    assert answer["Code"] == 0, answer
    return answer  # type: ignore[no-any-return]


def test_scheduled_campaign(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        created = await api.ok(
            "/api/campaign",
            {
                "Message": SHORT,
                "Originator": "61400190499",
                "Destinations": NUMBERS,
                "Reference": "spring",
                "TimeScheduled": "202008301300",
                "Action": "create",
            },
        )
        cid = int(created["CampaignId"])
        assert balance(store) == 990
        assert (await campaign(api, cid, "status"))["Message"] == "Scheduled"
        await campaign(api, cid, "pause")
        assert (await campaign(api, cid, "status"))["Message"] == "Paused"
        modified = await campaign(api, cid, "modify", Message=LONG, TimeScheduled="202008311000")
        assert (modified["Messages"], modified["Segments"], modified["Credits"]) == (10, 2, 20)
        assert balance(store) == 980  # the ten extra parts are charged
        await campaign(api, cid, "unpause")
        assert (await campaign(api, cid, "status"))["Message"] == "Scheduled"
        modified = await campaign(api, cid, "modify", Message=SHORT)
        assert balance(store) == 990  # ... and refunded when the text is short again
        await campaign(api, cid, "delete")
        assert (await campaign(api, cid, "status"))["Message"] == "Deleted"
        assert balance(store) == 1000 == 1000 + ledger(store)
        rows = service.list_messages(1, batch_id=cid, limit=100)
        assert {r["state"] for r in rows} == {"cancelled"} and len(rows) == 10
        assert {r["send_at"] for r in rows} == {"2020-08-31T00:00:00.000000+00:00"}

    run(world, tmp_path, scenario)


def test_half_sent_campaign(world: World, tmp_path: Path) -> None:
    """Four of ten messages go out through a fake modem; then the campaign is paused, modified,
    resumed, sends one more and is deleted."""

    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        vclock = VirtualClock()
        modem = FakeModem(vclock)
        sim = 1  # +61400190499
        pool = SimPool()
        pool.upsert(sim, "+61400190499", ThrottlePolicy(interval=1.0))
        outbox = Outbox(store, pool, {sim: modem}, vclock.clock())

        created = await api.ok("/api/campaign", {
            "Message": SHORT, "Originator": "61400190499", "Destinations": NUMBERS,
            "Action": "create"})  # fmt: skip
        cid = int(created["CampaignId"])
        ids = sorted(r["id"] for r in service.list_messages(1, batch_id=cid, limit=100))
        for mid in ids[:4]:
            await outbox.send_message(mid, allowed_sims=[sim])
        assert len(modem.sent) == 4
        assert (await campaign(api, cid, "status"))["Message"] == "Running"

        await campaign(api, cid, "pause")
        await outbox.send_message(ids[4], allowed_sims=[sim])  # the dispatcher had it queued
        assert len(modem.sent) == 4  # ... but a paused campaign's message is held
        modified = await campaign(api, cid, "modify", Message=LONG)
        assert (modified["Messages"], modified["Segments"], modified["Credits"]) == (6, 2, 12)
        assert balance(store) == 1000 - 10 - 6
        await campaign(api, cid, "unpause")
        await outbox.send_message(ids[4], allowed_sims=[sim])
        assert len(modem.sent) == 6  # the fifth message, in the new text's two parts
        texts = [decode_pdu(pdu).tpdu.user_data.text for _, pdu, _ in modem.sent]  # type: ignore[union-attr]
        assert texts[:4] == [SHORT] * 4 and "".join(texts[4:]) == LONG

        await campaign(api, cid, "delete")
        rows = {r["id"]: r for r in service.list_messages(1, batch_id=cid, limit=100)}
        assert [rows[m]["state"] for m in ids] == ["sent"] * 5 + ["cancelled"] * 5
        assert [rows[m]["body"] for m in ids[:4]] == [SHORT] * 4  # what went out is as it went
        assert [p["state"] for m in ids[:5] for p in store.parts(m)] == ["sent"] * 6
        # paid: four 1-part SMS and one 2-part SMS, nothing else
        assert balance(store) == 1000 - 4 - 2 == 1000 + ledger(store)
        refunds = store.conn.execute(
            "SELECT SUM(delta) FROM credits_ledger WHERE reason = 'refund: cancelled'"
        ).fetchone()[0]
        assert refunds == 5 * 2
        for action in ("pause", "unpause", "modify"):
            got = await api.ok("/api/campaign", {"Action": action, "CampaignId": cid})
            assert got["Code"] == -120

    run(world, tmp_path, scenario)


def test_unpausing_a_campaign_whose_time_passed_sends_it_at_once(
    world: World, tmp_path: Path
) -> None:
    moment = [T0]

    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        created = await api.ok("/api/campaign", {
            "Message": SHORT, "Destinations": NUMBERS[:3], "TimeScheduled": "202007281130",
            "Action": "create"})  # fmt: skip
        cid = int(created["CampaignId"])
        await campaign(api, cid, "pause")
        moment[0] = T0 + timedelta(hours=1)  # 12:00 in Sydney: the time has passed
        assert store.promote_due(moment[0]) == 0  # paused: nothing falls due
        await campaign(api, cid, "unpause")
        assert store.promote_due(moment[0]) == 3
        assert (await campaign(api, cid, "status"))["Message"] == "Running"

    run(world, tmp_path, scenario, clock=lambda: moment[0])


def test_concurrent_campaigns_share_a_commit(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        batches: list[int] = []
        real = store.stage_batches

        def spy(groups: object, *, now: datetime) -> object:
            batches.append(len(groups))  # type: ignore[arg-type]
            return real(groups, now=now)  # type: ignore[arg-type]

        store.stage_batches = spy  # type: ignore[method-assign]
        answers = await asyncio.gather(*(
            api.ok("/api/campaign", {"Message": f"hi {i}", "Destinations": [NUMBERS[i]],
                                     "Action": "create"})
            for i in range(8)
        ))  # fmt: skip
        assert all(a["Code"] == 0 for a in answers)
        assert sum(batches) == 8 and len(batches) < 8

    run(world, tmp_path, scenario)
