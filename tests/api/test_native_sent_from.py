"""/v1 message views name the SIM a message went out from (`sent_from`), beside the sender the
client asked for (`from`): the real daemon on emulated modems, on a virtual clock, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateway.accounts import create_account
from gateway.config import Config
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.emulated import free_port, parts_sent, serving
from tests.lockstep import LockstepClock

DEADLINE = 60.0  # seconds of wall time for the scenario; fails instead of hanging
LONG = "A two-part text, so that both parts are seen to go from one SIM. " * 3  # 2 GSM-7 parts
FIXED_TO = "+15550000002"
LATER_TO = "+15550000003"
WAITING_TO = "+15550000004"
AWAY = "+447700900999"  # a SIM the store knows, in no modem of this box


def _config(tmp_path: Path, store_url: str) -> Config:
    fleet = store_url.startswith("postgresql")
    return Config(
        data_dir=tmp_path / "box", database_url=store_url if fleet else "",
        box_id="box-a" if fleet else "", http_host="127.0.0.1", http_port=free_port(),
        discover=(),
    )  # fmt: skip


async def _scenario(
    emu: EmulatorPool, clock: LockstepClock, config: Config
) -> tuple[dict[str, int], list[dict[str, Any]], dict[int, dict[str, Any]]]:
    """Send one message from any SIM, a two-part one "from" the second SIM, one for tomorrow
    and one "from" a SIM that is away; once the first two are out, read the list and each
    message's own view."""
    numbers = [i.msisdn for i in emu.info()]
    async with (
        serving(config, [i.path for i in emu.info()], frontends=None, lockstep=clock) as gateway,
        aiohttp.ClientSession() as http,
    ):
        all_sent = parts_sent(gateway, 3)  # one part, then two
        creds = create_account(gateway.store, "shop", now=clock.wall(), unlimited=True)
        gateway.store.bind_sim(iccid="8944000000000000999", imsi="001010000000999", msisdn=AWAY,
                               now=clock.wall())  # fmt: skip
        auth = {"Authorization": f"Bearer {creds.api_key}"}
        base = f"http://127.0.0.1:{config.http_port}/v1/messages"
        later = (clock.wall() + timedelta(days=1)).isoformat()
        ids: dict[str, int] = {}
        for to, body in (
            (MAGIC_DELIVERED, {"text": "hi"}),
            (FIXED_TO, {"text": LONG, "from": numbers[1]}),
            (LATER_TO, {"text": "tomorrow", "send_at": later}),
            (WAITING_TO, {"text": "when it is back", "from": AWAY}),
        ):
            async with http.post(base, json={"to": to, **body}, headers=auth) as r:
                assert r.status == 201, await r.text()
                (ids[to],) = (await r.json())["message_ids"]
        await all_sent.wait()  # bounded by DEADLINE around the scenario
        async with http.get(base, headers=auth) as r:
            assert r.status == 200
            listed = (await r.json())["messages"]
        views = {}
        for message_id in ids.values():
            async with http.get(f"{base}/{message_id}", headers=auth) as r:
                assert r.status == 200
                views[message_id] = await r.json()
    return ids, listed, views


def test_message_views_show_the_sim_number_it_went_from(tmp_path: Path, store_url: str) -> None:
    with EmulatorPool(["generic"] * 2, seed=23, report_delay=0.0) as emu:
        clock = LockstepClock(emu)
        config = _config(tmp_path, store_url)
        ids, listed, views = clock.run(asyncio.wait_for(_scenario(emu, clock, config), DEADLINE))
        numbers = [i.msisdn for i in emu.info()]
        went_from: dict[str, set[str]] = {}
        for outbound in emu.outside():
            went_from.setdefault(outbound.destination, set()).add(outbound.sender)
    # The network's own record: one SIM each, the fixed sender's for the two-part message.
    assert went_from == {MAGIC_DELIVERED: went_from[MAGIC_DELIVERED], FIXED_TO: {numbers[1]}}
    (any_sim,) = went_from[MAGIC_DELIVERED]
    assert any_sim in numbers
    out = views[ids[MAGIC_DELIVERED]]["state"]
    assert out in ("sent", "delivered") and views[ids[FIXED_TO]]["state"] == out
    expected = {  # (state, from, sent_from)
        ids[MAGIC_DELIVERED]: (out, None, any_sim),  # nothing asked; from the SIM that took it
        ids[FIXED_TO]: (out, numbers[1], numbers[1]),  # asked for that SIM, and went from it
        ids[LATER_TO]: ("accepted", None, None),  # for tomorrow: no SIM has taken it
        ids[WAITING_TO]: ("queued", AWAY, None),  # due, waiting for its SIM: none has taken it
    }
    # The list (newest first) and each message's own view say the same.
    assert [m["id"] for m in listed] == sorted(expected, reverse=True)
    assert {m["id"]: (m["state"], m["from"], m["sent_from"]) for m in listed} == expected
    assert {i: (v["state"], v["from"], v["sent_from"]) for i, v in views.items()} == expected
    # Both parts of the two-part message went from the one SIM `sent_from` names.
    fixed_sim = {p["sim_id"] for p in views[ids[FIXED_TO]]["part_details"]}
    assert len(fixed_sim) == 1 and views[ids[FIXED_TO]]["parts"] == 2
