"""An account made by `smsgw accounts create NAME` alone sends through /v1, BestSMS and
UltraSMS at once (on the emulator); a national number while no SIM tells the country gets
each dialect's own error for a bad number, never a silent drop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from api.app import build_app
from gateway.accounts import Credentials, create_account
from gateway.cli import main
from gateway.contacts import ContactInput
from gateway.models import PartState
from gateway.service import GatewayService
from gateway.store import Store
from modem.emulator import EmulatorPool
from tests.emulated import assembled

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
# A global IoT SIM: its +883 number and its IMSI's MCC 901 belong to no country.
IOT_NUMBER = "+883510001234"
NATIONAL = "07911123456"
DEADLINE = 60.0


def _no_country(
    tmp_path: Path,
    scenario: Callable[[TestClient, Credentials, Store], Awaitable[None]],
) -> None:
    store = Store.open(tmp_path)
    store.bind_sim(iccid="8988300000000000001", imsi="901990000000001", msisdn=IOT_NUMBER,
                   now=T0)  # fmt: skip
    creds = create_account(store, "shop", now=T0)
    assert creds.default_dial_code == ""
    service = GatewayService(store, wall=lambda: T0)
    service.contacts.save(creds.account_id, [ContactInput("+15551230001")], dial_code="")

    async def run() -> None:
        async with TestClient(TestServer(build_app(service))) as client:
            await scenario(client, creds, store)

    try:
        asyncio.run(run())
    finally:
        store.close()


def _messages(store: Store) -> int:
    return sum(store.count_by_state("messages").values())


def test_native_v1_says_which_recipients_it_refused(tmp_path: Path) -> None:
    async def scenario(client: TestClient, creds: Credentials, store: Store) -> None:
        auth = {"Authorization": f"Bearer {creds.api_key}"}
        r = await client.post("/v1/messages", json={"to": NATIONAL, "text": "hi"}, headers=auth)
        assert r.status == 400
        error = (await r.json())["error"]
        assert error["code"] == "invalid_recipient"
        (rejected,) = error["rejected"]
        assert rejected["to"] == NATIONAL
        assert "leading 0" in rejected["reason"] and "dial code" in rejected["reason"]
        assert _messages(store) == 0
        r = await client.post("/v1/messages", json={"to": [NATIONAL, "+15551230001"],
                                                    "text": "hi"}, headers=auth)  # fmt: skip
        assert r.status == 201
        body = await r.json()
        assert len(body["message_ids"]) == 1
        assert [x["to"] for x in body["rejected"]] == [NATIONAL]

    _no_country(tmp_path, scenario)


def test_bestsms_fails_with_code_8_or_counts_only_the_parsed(tmp_path: Path) -> None:
    # bestsmsgateway-api-v1.txt, send_sms: "request will be a JSON Object, containing the
    # batch_id, and the total number of recipient numbers that are successfully parsed." and
    # the error table: "8 | incorrect request parameter |".
    async def scenario(client: TestClient, creds: Credentials, store: Store) -> None:
        async def send(**fields: str) -> dict[str, Any]:
            r = await client.post("/api_v1", data={
                "sub_account": "shop", "sub_account_pass": creds.password,
                "action": "send_sms", "message": "hi", **fields})  # fmt: skip
            assert r.status == 200
            answer: dict[str, Any] = json.loads(await r.text())
            return answer

        assert await send(recipients=NATIONAL) == {
            "error": "incorrect request parameter: no valid recipient"
            " (a number with a leading 0 needs default_dial_code)",
            "error_code": "8",
        }
        assert _messages(store) == 0
        assert (await send(recipients=f"{NATIONAL},+15551230001"))["total"] == "1"
        # the spec's own remedy: a default_dial_code for this request
        assert (await send(recipients=NATIONAL, default_dial_code="44"))["total"] == "1"
        assert store.last_message_to(creds.account_id, "+447911123456") is not None

    _no_country(tmp_path, scenario)


def test_ultrasms_smscontact_answers_minus_6(tmp_path: Path) -> None:
    # ultrasmsscript-api.txt and smsit-decentralized-api.txt, smscontact: "-6 The contact
    # number passed in is either invalid, does not exist in your contact list, or has
    # unsubscribed."
    async def scenario(client: TestClient, creds: Credentials, store: Store) -> None:
        async def smscontact(to: str) -> Any:
            r = await client.post("/apis/smscontact/", data={
                "apikey": creds.api_key, "from": IOT_NUMBER.lstrip("+"), "to": to,
                "message": "hi"})  # fmt: skip
            return json.loads(await r.text())

        assert await smscontact(NATIONAL) == -6
        assert await smscontact(f"15551230001,{NATIONAL}") == -6  # one bad: none sent
        assert _messages(store) == 0
        assert await smscontact("15551230001") == 0
        assert _messages(store) == 1

    _no_country(tmp_path, scenario)


def test_a_fresh_account_sends_through_every_dialect_on_the_emulator(tmp_path: Path) -> None:
    # Created on a fresh box, before the daemon has met any SIM: no credits given, no dial
    # code, no SIM granted.
    result = CliRunner().invoke(main, ["accounts", "create", "shop", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    creds = json.loads(result.stdout)
    assert (creds["unlimited"], creds["default_dial_code"]) == (True, None)
    with EmulatorPool(2, seed=3, clock="real", report_delay=0.0) as emu:
        asyncio.run(asyncio.wait_for(_fresh(tmp_path, emu, creds), DEADLINE))


async def _fresh(tmp_path: Path, emu: EmulatorPool, creds: dict[str, Any]) -> None:
    async with assembled(Store.open(tmp_path), emu) as g:
        store, client = g.store, g.client
        sim_number = store.sim(g.workers[0].sim_id or 0)["msisdn"]
        assert sim_number.startswith("+44")  # the emulated SIMs are British
        auth = {"Authorization": f"Bearer {creds['api_key']}"}
        r = await client.post(
            "/v1/messages",
            headers=auth,
            json={"to": ["+12025550101", NATIONAL], "text": "native"},
        )
        body = await r.json()
        assert (r.status, len(body["message_ids"]), body["rejected"]) == (201, 2, [])

        r = await client.post(
            "/api_v1",
            data={
                "sub_account": "shop",
                "sub_account_pass": creds["password"],
                "action": "send_sms",
                "message": "bestsms",
                "recipients": "+12025550102",
            },
        )
        assert json.loads(await r.text())["total"] == "1"

        # UltraSMS texts contacts only: the account saves one through its own API first.
        r = await client.post(
            "/v1/contacts", headers=auth, json={"contacts": [{"number": "+12025550103"}]}
        )
        assert r.status == 201
        r = await client.post(
            "/apis/smscontact/",
            data={
                "apikey": creds["api_key"],
                "from": sim_number.lstrip("+"),
                "to": "12025550103",
                "message": "ultrasms",
            },
        )
        assert json.loads(await r.text()) == 0

        outcomes = [await g.settled.get() for _ in range(4)]
        assert {state for _, state in outcomes} == {PartState.DELIVERED}
        wanted = {"+12025550101", "+447911123456", "+12025550102", "+12025550103"}
        assert wanted <= {o.destination for o in emu.outside()}  # the network saw all four
        assert store.account(1)["credits"] == 0  # unlimited: nothing was needed or charged
