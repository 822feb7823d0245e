"""BestSMSGateway /api_v1: golden answers for every action, parameter and error code."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.accounts import create_account
from gateway.contacts import ContactInput
from gateway.models import PartState
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, Store

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # 10:00 in Lagos (the account's timezone)
EPOCH = "1795338000"  # T0 as a Unix time
NAME = "001_mysub1"
METHODS = ("GET", "POST")
S = PartState


@dataclass(frozen=True)
class World:
    """A template database: accounts, SIMs, groups and contacts, copied for every test."""

    db: Path
    password: str
    api_key: str
    off_password: str
    poor_password: str
    poor_key: str
    off_key: str


def build_world(directory: Path) -> World:
    """Create the template (scrypt runs here once, not per test)."""
    store = Store.open(directory)
    main = create_account(store, NAME, now=T0, credits=100, default_dial_code="234",
                          email="example@gmail.com", timezone="Africa/Lagos")  # fmt: skip
    off = create_account(store, "002_off", now=T0, credits=5)
    poor = create_account(store, "003_poor", now=T0, credits=0, default_dial_code="234")
    store.conn.execute("UPDATE accounts SET default_sender = 'tormuto' WHERE id = 1")
    store.conn.execute("UPDATE accounts SET api_enabled = 0 WHERE id = ?", (off.account_id,))
    store.bind_sim(iccid="8944000000000000011", imsi="001010000000011", msisdn="+447700900001",
                   now=T0)  # fmt: skip
    store.bind_sim(iccid="8944000000000000012", imsi="001010000000012", msisdn="+447700900002",
                   now=T0)  # fmt: skip
    service = GatewayService(store, wall=lambda: T0)
    service.contacts.save(
        main.account_id,
        [
            ContactInput("08086689567", "John", "Doe", group="My Customers"),
            ContactInput("+2348094309926", "Pearl", group="My Customers"),
            ContactInput("+447700900123", "Ibukun", "Oladipo", group="default"),
            ContactInput("+447700900555", "Gone", group="Opted"),
        ],
        dial_code="234",
    )
    store.ensure_contact_group(main.account_id, "Empty")
    store.set_opt_out(main.account_id, "+447700900555", True, keyword="STOP", now=T0)
    store.close()
    for account in (main, off, poor):  # verified once per process, then cached
        service_check = Store.open(directory)
        try:
            GatewayService(service_check, wall=lambda: T0).account_by_credentials(
                account.sub_account, account.password
            ) if account is not off else None
        finally:
            service_check.close()
    return World(directory / DATABASE_NAME, main.password, main.api_key, off.password,
                 poor.password, poor.api_key, off.api_key)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


Scenario = Callable[[TestClient, Store, GatewayService], Awaitable[None]]


def run(
    world: World, tmp_path: Path, scenario: Scenario, *, clock: Callable[[], datetime] = lambda: T0
) -> None:
    """Run `scenario` against a fresh copy of the world."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=clock)

    async def main() -> None:
        async with TestClient(TestServer(build_app(service))) as client:
            await scenario(client, store, service)

    try:
        asyncio.run(main())
    finally:
        store.close()


async def call(client: TestClient, method: str, params: dict[str, str]) -> tuple[int, Any]:
    """One request (query string for GET, form body for POST): status and decoded JSON."""
    if method == "GET":
        response = await client.get("/api_v1", params=params)
    else:
        response = await client.post("/api_v1", data=params)
    text = await response.text()
    return response.status, json.loads(text)


def auth(world: World, action: str, **params: str) -> dict[str, str]:
    return {"sub_account": NAME, "sub_account_pass": world.password, "action": action, **params}


def error(code: int, text: str) -> dict[str, str]:
    return {"error": text, "error_code": str(code)}


# -- authentication and dispatch: codes 1-6 and 9, in the table's order ---------------------


@pytest.mark.parametrize("method", METHODS)
def test_authentication_errors_in_table_order(world: World, tmp_path: Path, method: str) -> None:
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        ({}, error(1, "sub_account not supplied")),
        ({"sub_account_pass": "x", "action": "account_info"}, error(1, "sub_account not supplied")),
        ({"sub_account": NAME}, error(2, "sub_account_pass not supplied")),
        ({"sub_account": NAME, "sub_account_pass": "x"}, error(3, "action not supplied")),
        ({"sub_account": NAME, "sub_account_pass": "wrong", "action": "account_info"},
         error(4, "Incorrect sub_account name or password")),
        ({"sub_account": "nobody", "sub_account_pass": "x", "action": "account_info"},
         error(4, "Incorrect sub_account name or password")),
        ({"sub_account": "002_off", "sub_account_pass": world.off_password,
          "action": "account_info"}, error(5, "The sub-account is currently disabled")),
        (auth(world, "launch_rockets"), error(6, "Invalid action")),
        # a wrong password is judged before the action's name
        ({"sub_account": NAME, "sub_account_pass": "wrong", "action": "nope"},
         error(4, "Incorrect sub_account name or password")),
    ]  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for params, expected in cases:
            assert await call(client, method, params) == (200, expected), params

    run(world, tmp_path, scenario)


def test_repeated_parameter_with_two_values_is_confusing(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        query = f"sub_account={NAME}&sub_account_pass={world.password}"
        r = await client.get(f"/api_v1?{query}&action=account_info&action=fetch_sms")
        assert json.loads(await r.text()) == error(9, "action was given more than once")
        # the same value twice is harmless; query and body together count as one request
        r = await client.get(f"/api_v1?{query}&action=account_info&action=account_info")
        assert json.loads(await r.text())["balance"] == "100"
        r = await client.post(f"/api_v1?{query}", data={"action": "account_info"})
        assert json.loads(await r.text())["sub_account"] == NAME
        r = await client.post(f"/api_v1?{query}&action=fetch_sms", data={"action": "send_sms"})
        assert json.loads(await r.text()) == error(9, "action was given more than once")

    run(world, tmp_path, scenario)


def test_trailing_slash_and_multipart_bodies(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        r = await client.get("/api_v1/", params=auth(world, "account_info"))
        assert json.loads(await r.text())["balance"] == "100"
        import aiohttp

        form = aiohttp.FormData()
        for k, v in auth(world, "account_info").items():
            form.add_field(k, v)
        form.add_field("dummy", b"x", filename="x.bin")  # PHP cURL posts arrays as multipart
        r = await client.post("/api_v1", data=form)
        assert json.loads(await r.text())["sub_account"] == NAME

    run(world, tmp_path, scenario)


# -- send_sms ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_send_sms_sample(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        status, body = await call(client, method, auth(
            world, "send_sms", sender_id="President",
            message="Hello, there will be a meeting today by 12 noon.",
            recipients="08086689567,2348094309926"))  # fmt: skip
        assert (status, body) == (200, {"batch_id": f"1_1_{EPOCH}", "total": "2"})
        rows = store.list_messages(1)
        assert sorted(r["recipient"] for r in rows) == ["+2348086689567", "+2348094309926"]
        assert {r["sender"] for r in rows} == {""}  # not one of our numbers: any SIM sends it
        assert {json.loads(r["extra"])["sender_id"] for r in rows} == {"President"}
        assert store.account(1)["credits"] == 98

    run(world, tmp_path, scenario)


@pytest.mark.parametrize("method", METHODS)
def test_send_sms_parameters(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        async def send(**params: str) -> Any:
            status, body = await call(client, method, auth(world, "send_sms", **params))
            assert status == 200
            return body

        def last(n: int = 1) -> list[dict[str, Any]]:
            return store.list_messages(1, limit=n)

        # duplicates removed (national, international, with +), leading zero -> dial code
        body = await send(message="hi", recipients="08086689567,+2348086689567,2348086689567")
        assert body["total"] == "1"
        assert json.loads(last()[0]["extra"])["sender_id"] == "tormuto"  # the account's default
        # type=1 flash, unicode and route accepted
        assert (await send(message="flash", recipients="08086689567", type="1"))["total"] == "1"
        assert last()[0]["flash"] == 1
        await send(message="你好", recipients="08086689567", unicode="1", route="2")
        assert last()[0]["encoding"] == "ucs2"
        # sender_id that is one of our SIMs pins that SIM; default_dial_code replaces the 0
        await send(message="pinned", recipients="07700900999", sender_id="447700900001",
                   default_dial_code="44")  # fmt: skip
        assert (last()[0]["sender"], last()[0]["recipient"]) == ("+447700900001", "+447700900999")
        # send_at in the account's timezone (Lagos, +1), or with timezone_offset
        await send(message="later", recipients="08086689567", send_at="2026-11-23 13:45")
        assert (last()[0]["send_at"], last()[0]["state"]) == ("2026-11-23T12:45:00.000000+00:00",
                                                              "accepted")  # fmt: skip
        await send(message="later", recipients="08086689567", send_at="2026-11-23 13:45",
                   timezone_offset="-5")  # fmt: skip
        assert last()[0]["send_at"] == "2026-11-23T18:45:00.000000+00:00"
        await send(message="date only", recipients="08086689567", send_at="2026-11-24")
        assert last()[0]["send_at"] == "2026-11-23T23:00:00.000000+00:00"
        await send(message="time only", recipients="08086689567", send_at="13:45")
        assert last()[0]["send_at"] == "2026-11-22T12:45:00.000000+00:00"
        await send(message="past", recipients="08086689567", send_at="2016-04-22 13:45")
        assert last()[0]["state"] == "queued"  # a past date sends immediately
        # contact_groups adds a group's numbers, ignore_groups removes numbers
        body = await send(message="group", contact_groups="My Customers,default")
        assert body["total"] == "3"
        body = await send(message="g", contact_groups="My Customers", recipients="07700900123",
                          ignore_groups="default", default_dial_code="44")  # fmt: skip
        assert body["total"] == "2"
        assert {r["recipient"] for r in last(2)} == {"+2348086689567", "+2348094309926"}
        # contacts JSON with override_message, override_date_time and extra_data
        contacts = [
            {"phone": "+2348093216754", "firstname": "Pearl"},
            {"phone": "08086689567", "firstname": "John", "lastname": "Doe",
             "group_name": "Client", "extra_data": "USER001"},
            {"phone": "+2348094309926", "override_message": "Hello, bro",
             "override_date_time": "2026-11-23 09:30"},
        ]  # fmt: skip
        body = await send(message="base", contacts=json.dumps(contacts))
        assert body["total"] == "3"
        by_number = {r["recipient"]: r for r in last(3)}
        assert by_number["+2348094309926"]["body"] == "Hello, bro"
        assert by_number["+2348094309926"]["send_at"] == "2026-11-23T08:30:00.000000+00:00"
        assert json.loads(by_number["+2348086689567"]["extra"])["extra_data"] == "USER001"
        assert by_number["+2348093216754"]["body"] == "base"
        # save_as stores the recipients as contacts of that group
        await send(message="x", recipients="08011111111,08022222222", save_as="Saved")
        assert dict(service.contacts.groups(1))["Saved"] == 2

    run(world, tmp_path, scenario)


@pytest.mark.parametrize("method", METHODS)
def test_send_sms_errors(world: World, tmp_path: Path, method: str) -> None:
    ok = {"message": "hi", "recipients": "08086689567"}
    cases: list[tuple[dict[str, str], dict[str, str]]] = [
        ({"recipients": "08086689567"}, error(7, "missing request parameter: message")),
        ({"message": "hi"}, error(7, "missing request parameter: recipients")),
        ({**ok, "type": "2"}, error(8, "type must be one of 0, 1")),
        ({**ok, "type": "flash"}, error(8, "type must be one of 0, 1")),
        ({**ok, "unicode": "yes"}, error(8, "unicode must be one of 0, 1")),
        ({**ok, "route": "3"}, error(8, "route must be one of 0, 1, 2")),
        ({**ok, "sender_id": "ab"}, error(8, "sender_id must be 3-11 characters or 3-14 digits")),
        ({**ok, "sender_id": "President12345"},
         error(8, "sender_id must be 3-11 characters or 3-14 digits")),
        ({**ok, "default_dial_code": "abc"},
         error(8, "default_dial_code must be a dial code such as 234")),
        ({**ok, "send_at": "tomorrow"},
         error(8, "send_at must look like 2016-04-22 13:45 or 28-04-2016")),
        ({**ok, "send_at": "2026-11-23 10:00", "timezone_offset": "x"},
         error(8, "timezone_offset must be hours, e.g. +1")),
        ({**ok, "timezone_offset": "+15"},
         error(8, "timezone_offset must be between -12 and +14")),
        ({**ok, "contact_groups": "Nope"},
         error(8, "contact_groups: no contact group named Nope")),
        ({**ok, "ignore_groups": "Nope"}, error(8, "ignore_groups: no contact group named Nope")),
        ({**ok, "contact_groups": "default", "ignore_groups": "default"},
         error(9, "a group is both in contact_groups and ignore_groups")),
        ({"message": "hi", "contacts": "[{"},
         error(8, "contacts must be a JSON array of contacts")),
        ({"message": "hi", "contacts": '{"phone": "1"}'},
         error(8, "contacts must be a JSON array of contacts")),
        ({"message": "hi", "contacts": '[{"firstname": "A"}]'},
         error(8, "every contact needs a 'phone'")),
        ({"message": "hi", "contacts": '[{"phone": "1", "x": [1]}]'},
         error(8, "contact field x must be a string")),
        ({"message": "hi", "recipients": "abc,xyz"},
         error(8, "incorrect request parameter: no valid recipient")),
        ({"message": "x" * 1531, "recipients": "08086689567"},
         error(8, "message is longer than 1530 characters")),
        ({"message": "x", "recipients": "07700900123", "default_dial_code": "44",
          "ignore_groups": "default"}, error(8, "no recipient left after ignore_groups")),
    ]  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for params, expected in cases:
            assert await call(client, method, auth(world, "send_sms", **params)) == (
                200,
                expected,
            ), params
        assert store.list_messages(1) == []  # nothing half-accepted
        poor = {"sub_account": "003_poor", "sub_account_pass": world.poor_password,
                "action": "send_sms", **ok}  # fmt: skip
        assert await call(client, method, poor) == (200, error(1, "insufficient credit"))

    run(world, tmp_path, scenario)


# -- fetch_sms and the status codes ----------------------------------------------------------


def seed_states(store: Store, service: GatewayService) -> dict[str, int]:
    """One message per lifecycle outcome, settled the way the pipeline settles them."""
    ids: dict[str, int] = {}
    for name in ("pending", "sent", "delivered", "undeliverable", "rejected", "failed",
                 "expired", "uncertain", "cancelled"):  # fmt: skip
        result = service.submit(1, ["+2348094309926"], f"text {name}")
        ids[name] = result.message_ids[0]
    sim = 1

    def part(name: str) -> int:
        return int(store.parts(ids[name])[0]["id"])

    def walk(name: str, *steps: tuple[PartState, PartState, dict[str, Any]]) -> None:
        for a, b, fields in steps:
            store.transition_part(part(name), a, b, now=T0, fields=fields)

    sending = (S.QUEUED, S.SENDING, {"sim_id": sim, "attempts": 1})
    sent = (S.SENDING, S.SENT, {"tp_mr": 7})
    walk("sent", sending, sent)
    walk("delivered", sending, sent, (S.SENT, S.DELIVERED, {"report_status": 0}))
    walk("undeliverable", sending, sent, (S.SENT, S.FAILED, {"report_status": 0x41}))
    walk("rejected", sending, (S.SENDING, S.FAILED, {"cms_error": 21, "error": "+CMS ERROR: 21"}))
    walk("failed", (S.QUEUED, S.FAILED, {"error": "recipient opted out (STOP)"}))
    walk("expired", sending, sent, (S.SENT, S.EXPIRED, {"report_status": 0x46}))
    walk("uncertain", sending, (S.SENDING, S.UNCERTAIN, {"error": "no answer to AT+CMGS"}))
    service.cancel(1, ids["cancelled"])
    return ids


def test_fetch_sms_status_codes_and_record_fields(world: World, tmp_path: Path) -> None:
    expected_status = {
        "pending": ("0", "PENDING", "Queued for sending"),
        "sent": ("1", "SENT", "Accepted by the network, awaiting a delivery report"),
        "delivered": ("2", "DELIVERED", "Message delivered to handset"),
        "undeliverable": ("-4", "UNDELIVERABLE", "Undeliverable (network report TP-ST 0x41)"),
        "rejected": ("-2", "REJECTED", "Rejected by the network (+CMS ERROR 21)"),
        "failed": ("-1", "FAILED", "recipient opted out (STOP)"),
        "expired": ("-3", "EXPIRED", "Validity period expired before delivery"),
        "uncertain": ("-1", "FAILED",
                      "UNCERTAIN: the modem was interrupted while sending; the message may or"
                      " may not have reached the network and is not resent automatically"),
        "cancelled": ("-1", "FAILED", "Stopped before sending; credits refunded"),
    }  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        ids = seed_states(store, service)
        for method in METHODS:
            status, body = await call(client, method, auth(world, "fetch_sms"))
            assert status == 200
            assert (body["total"], body["totalpages"], body["p"], body["perpage"]) == (9, 1, 1, 100)
            assert body["timezone_offset"] == "1"
            by_id = {int(r["sms_id"]): r for r in body["records"]}
            for name, (code, msg, info) in expected_status.items():
                record = by_id[ids[name]]
                assert (record["status"], record["status_msg"], record["info"]) == (code, msg, info)
            delivered = by_id[ids["delivered"]]
            assert delivered == {
                "sms_id": str(ids["delivered"]), "sender": "447700900001",
                "recipient": "2348094309926", "message": "text delivered",
                "sub_account_id": "1", "user_id": "1", "time_scheduled": EPOCH, "batch_id": "",
                "status": "2", "type": "0", "units": "1", "reference": "",
                "time_submitted": EPOCH, "time_sent": EPOCH, "units_confirmed": "1",
                "locked": "0", "info": "Message delivered to handset", "firstname": "Pearl",
                "lastname": "", "group_name": "My Customers", "status_msg": "DELIVERED",
                "submitted_at": "2026-11-22 10:00", "scheduled_to": "2026-11-22 10:00",
                "sent_at": "2026-11-22 10:00", "extra_data": "",
            }  # fmt: skip
            pending = by_id[ids["pending"]]
            assert (pending["sender"], pending["time_sent"], pending["sent_at"]) == ("", "0", "")
            assert pending["units_confirmed"] == "0"
            assert body["filter"] == {
                "sub_account_id": "1", "batch_id": "", "sms_id": "", "sms_ids": "", "type": "",
                "recipient": "", "search_term": "", "sender_id": "", "stage": "",
                "start_date": "", "end_date": "", "p": "", "perpage": 100, "offset": 0,
            }  # fmt: skip

    run(world, tmp_path, scenario)


@pytest.mark.parametrize("method", METHODS)
def test_fetch_sms_filters_and_pagination(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        ids = seed_states(store, service)
        _, sent = await call(client, method, auth(
            world, "send_sms", message="Meeting by noon", recipients="08086689567,07700900123",
            default_dial_code="44", type="1", sender_id="President"))  # fmt: skip

        async def fetch(**params: str) -> list[str]:
            status, body = await call(client, method, auth(world, "fetch_sms", **params))
            assert status == 200, body
            return [r["message"] for r in body["records"]]

        assert await fetch(batch_id=sent["batch_id"]) == ["Meeting by noon"] * 2
        assert await fetch(batch_id="9_1_1437039374") == []  # another sub-account's batch
        assert await fetch(sms_ids=f"{ids['sent']},{ids['expired']}") == [
            "text expired", "text sent"]  # fmt: skip
        assert await fetch(stage="pending") == ["Meeting by noon"] * 2 + ["text pending"]
        assert sorted(await fetch(stage="sent")) == ["text delivered", "text sent"]
        assert len(await fetch(stage="failed")) == 6
        assert await fetch(type="1") == ["Meeting by noon"] * 2
        assert len(await fetch(recipient="08094309926")) == 9  # national: the 234 dial code
        assert len(await fetch(recipient="+2348094309926")) == 9
        assert len(await fetch(recipient="2348094309926")) == 9
        assert await fetch(sender_id="President") == ["Meeting by noon"] * 2
        assert len(await fetch(sender_id="447700900001")) == 6  # the SIM that sent them
        assert await fetch(search_term="noon 7700900123") == ["Meeting by noon"]
        assert len(await fetch(start_date="2026-11-22 10:00", end_date="22-11-2026")) == 11
        assert await fetch(start_date="2026-11-22 10:01") == []
        assert await fetch(end_date="21-11-2026") == []
        _, page = await call(client, method, auth(world, "fetch_sms", perpage="4", p="3"))
        assert (page["total"], page["totalpages"], page["p"], page["perpage"]) == (11, 3, 3, 4)
        assert len(page["records"]) == 3
        assert page["filter"]["offset"] == 8

    run(world, tmp_path, scenario)


@pytest.mark.parametrize("method", METHODS)
def test_fetch_sms_errors(world: World, tmp_path: Path, method: str) -> None:
    cases = [
        ({"perpage": "0"}, error(8, "perpage must be 1-300")),
        ({"perpage": "301"}, error(8, "perpage must be 1-300")),
        ({"perpage": "ten"}, error(8, "perpage must be 1-300")),
        ({"p": "0"}, error(8, "p must be a page number from 1")),
        ({"batch_id": "batch-7"}, error(8, "batch_id must be a batch_id returned by send_sms")),
        ({"sms_ids": "1,x"}, error(8, "sms_ids must be comma-separated numbers")),
        ({"stage": "lost"}, error(8, "stage must be pending, sent or failed")),
        ({"type": "9"}, error(8, "type must be one of 0, 1")),
        ({"recipient": "not-a-number"}, error(8, "recipient is not a phone number")),
        ({"start_date": "22/11/2026"},
         error(8, "start_date must look like 2016-04-22 13:45 or 28-04-2016")),
        ({"end_date": "soon"}, error(8, "end_date must look like 2016-04-22 13:45 or 28-04-2016")),
        ({"start_date": "2026-11-23", "end_date": "2026-11-22"},
         error(9, "start_date is after end_date")),
    ]  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for params, expected in cases:
            got = await call(client, method, auth(world, "fetch_sms", **params))
            assert got == (200, expected), params

    run(world, tmp_path, scenario)


# -- account_info, stop/delete/get_total_units ------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_account_info(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        assert await call(client, method, auth(world, "account_info")) == (200, {
            "sub_account_id": "1", "sub_account": NAME, "user_id": "1", "balance": "100",
            "notification_email": "example@gmail.com", "default_dial_code": "234",
            "timezone_offset": "1", "default_sender_id": "tormuto",
        })  # fmt: skip
        store.conn.execute("UPDATE accounts SET unlimited = 1 WHERE id = 1")
        _, body = await call(client, method, auth(world, "account_info"))
        assert body["balance"] == "unlimited"

    run(world, tmp_path, scenario)


FILTER_REQUIRED = error(
    7,
    "missing request parameter: a filter (batch_id, sms_ids, stage, type, recipient,"
    " sender_id, start_date or end_date) is required",
)


@pytest.mark.parametrize("method", METHODS)
def test_stop_delete_and_total_units(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for action in ("stop_sms", "delete_sms", "get_total_units"):
            assert await call(client, method, auth(world, action)) == (200, FILTER_REQUIRED)
            assert await call(client, method, auth(world, action, search_term="x")) == (
                200, FILTER_REQUIRED)  # fmt: skip
        long_text = "y" * 200  # two parts
        _, sent = await call(client, method, auth(
            world, "send_sms", message=long_text, recipients="08086689567,08094309926",
            send_at="2026-12-01 10:00"))  # fmt: skip
        batch = sent["batch_id"]
        assert store.account(1)["credits"] == 96
        assert await call(client, method, auth(world, "get_total_units", batch_id=batch)) == (
            200, {"total": "4"})  # fmt: skip
        assert await call(client, method, auth(world, "stop_sms", batch_id=batch)) == (
            200, {"total": "2"})  # fmt: skip
        assert store.account(1)["credits"] == 100  # refunded
        assert await call(client, method, auth(world, "get_total_units", stage="pending")) == (
            200, {"total": "0"})  # fmt: skip
        assert await call(client, method, auth(world, "stop_sms", sms_ids="999")) == (
            200, error(10, "no record found."))  # fmt: skip
        assert await call(client, method, auth(world, "delete_sms", batch_id=batch)) == (
            200, {"total": "2"})  # fmt: skip
        assert store.list_messages(1) == []
        assert await call(client, method, auth(world, "delete_sms", batch_id=batch)) == (
            200, error(10, "no record found."))  # fmt: skip
        assert await call(client, method, auth(world, "stop_sms", stage="bogus")) == (
            200, error(8, "stage must be pending, sent or failed"))  # fmt: skip

    run(world, tmp_path, scenario)


# -- contacts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_save_contacts(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        contacts = [
            {"phone": "08086689567", "firstname": "Ibukun", "lastname": "Oladipo",
             "group_name": "Client"},
            {"phone": "+2348094309926", "firstname": "Pearl"},
        ]  # fmt: skip
        got = await call(
            client,
            method,
            auth(world, "save_contacts", contacts=json.dumps(contacts), group_name="Friends"),
        )
        assert got == (200, {"total": "2"})
        groups = dict(service.contacts.groups(1))
        assert (groups["Client"], groups["Friends"]) == (1, 1)
        # the spec's GET example passes plain numbers in `contacts`
        got = await call(
            client,
            method,
            auth(
                world,
                "save_contacts",
                group_name="My Customers",
                contacts="08086689567,2348094309926",
            ),
        )
        assert got == (200, {"total": "2"})
        assert dict(service.contacts.groups(1))["My Customers"] == 2  # updated, not duplicated
        got = await call(
            client,
            method,
            auth(world, "save_contacts", phone_numbers="08011111111,+447700900777,447812837283"),
        )
        assert got == (200, {"total": "3"})
        assert dict(service.contacts.groups(1))["default"] == 4
        # save_contacts' own error shape: numeric code first
        assert await call(client, method, auth(world, "save_contacts")) == (
            200,
            {"error_code": 7, "error": "missing request parameter: phone_numbers or contacts"},
        )
        assert await call(
            client,
            method,
            {**auth(world, "save_contacts"), "sub_account_pass": "x", "phone_numbers": "1"},
        ) == (200, {"error_code": 4, "error": "Incorrect sub_account name or password."})
        assert await call(client, method, auth(world, "save_contacts", contacts="[1]")) == (
            200,
            {"error_code": 8, "error": "contacts must be a JSON array of contacts"},
        )
        assert await call(client, method, auth(world, "save_contacts", phone_numbers="abc")) == (
            200,
            {"error_code": 8, "error": "incorrect request parameter: no valid phone number"},
        )
        assert await call(client, method, auth(
            world, "save_contacts", phone_numbers="08011111111", group_name="g" * 101)) == (
            200, {"error_code": 8, "error": "group_name is too long"})  # fmt: skip

    run(world, tmp_path, scenario)


@pytest.mark.parametrize("method", METHODS)
def test_fetch_contacts_groups_and_delete(world: World, tmp_path: Path, method: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        status, body = await call(client, method, auth(
            world, "fetch_contacts", group_name="My Customers", perpage="10"))  # fmt: skip
        records = [
            {"contact_id": "2", "user_id": "1", "sub_account_id": "1", "phone": "2348094309926",
             "firstname": "Pearl", "lastname": "", "group_name": "My Customers", "time": EPOCH},
            {"contact_id": "1", "user_id": "1", "sub_account_id": "1", "phone": "2348086689567",
             "firstname": "John", "lastname": "Doe", "group_name": "My Customers", "time": EPOCH},
        ]  # fmt: skip
        assert (status, body) == (200, {
            "filter": {"user_id": "1", "sub_account_id": "1", "perpage": 10,
                       "group_name": "My Customers", "search_term": None, "offset": 0},
            "total": 2, "p": 1, "totalpages": 1, "records": records, "contacts": records,
        })  # fmt: skip

        async def phones(**params: str) -> list[str]:
            _, body = await call(client, method, auth(world, "fetch_contacts", **params))
            return [r["phone"] for r in body["records"]]

        assert await phones(search_term="ibukun") == ["447700900123"]
        assert await phones(search_term="08086689567 john") == ["2348086689567"]
        assert await phones(contact_ids="1,3") == ["447700900123", "2348086689567"]
        assert await phones(group_name="Nope") == []
        assert await phones(perpage="1", p="2") == ["447700900123"]
        assert await call(client, method, auth(world, "fetch_contacts", perpage="500")) == (
            200, error(8, "perpage must be 1-300"))  # fmt: skip
        assert await call(client, method, auth(world, "fetch_contacts", contact_ids="a")) == (
            200, error(8, "contact_ids must be comma-separated numbers"))  # fmt: skip

        assert await call(client, method, auth(world, "get_contact_groups")) == (200, {
            "contact_groups": {"Empty": "0", "My Customers": "2", "Opted": "1", "default": "1"}
        })  # fmt: skip

        assert await call(client, method, auth(world, "delete_contacts")) == (
            200, error(7, "No contact_ids supplied to be deleted"))  # fmt: skip
        assert await call(client, method, auth(world, "delete_contacts", contact_ids="5,7")) == (
            200, error(10, "no record found."))  # fmt: skip
        assert await call(client, method, auth(
            world, "delete_contacts", group_name="My Customers", search_term="pearl")) == (
            200, {"total": "1"})  # fmt: skip
        assert await call(client, method, auth(world, "delete_contacts", contact_ids="1,3")) == (
            200, {"total": "2"})  # fmt: skip
        _, groups = await call(client, method, auth(world, "get_contact_groups"))
        assert groups == {"contact_groups": {"Empty": "0", "My Customers": "0", "Opted": "1",
                                             "default": "0"}}  # fmt: skip

    run(world, tmp_path, scenario)


# -- group commit: concurrent sends share one transaction and never overspend ----------------


def test_concurrent_sends_share_a_commit_and_never_overspend(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        store.conn.execute("UPDATE accounts SET credits = 5 WHERE id = 1")
        groups: list[int] = []
        real = store.stage_batches

        def spy(batches: Any, *, now: datetime) -> Any:
            groups.append(len(batches))
            return real(batches, now=now)

        store.stage_batches = spy  # type: ignore[method-assign]
        answers = await asyncio.gather(*(
            call(client, "POST", auth(world, "send_sms", message=f"hi {i}",
                                      recipients=f"+1202555{i:04d}"))
            for i in range(10)
        ))  # fmt: skip
        bodies = [body for _, body in answers]
        ok = [b for b in bodies if "batch_id" in b]
        assert len(ok) == 5 and all(b["total"] == "1" for b in ok)
        assert bodies.count(error(1, "insufficient credit")) == 5
        assert store.account(1)["credits"] == 0
        assert len(store.list_messages(1)) == 5
        assert sum(groups) == 10 and len(groups) < 10  # several requests per transaction

    run(world, tmp_path, scenario)


def test_concurrent_sends_are_each_answered_with_their_own_batch(
    world: World, tmp_path: Path
) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        groups: list[int] = []
        real = store.stage_batches

        def spy(batches: Any, *, now: datetime) -> Any:
            groups.append(len(batches))
            return real(batches, now=now)

        store.stage_batches = spy  # type: ignore[method-assign]
        numbers = [f"+1202555{i:04d}" for i in range(8)]
        answers = await asyncio.gather(*(
            call(client, "POST", auth(world, "send_sms", message="hi", recipients=number))
            for number in numbers
        ))  # fmt: skip
        tokens = [body["batch_id"] for _, body in answers]
        assert len(set(tokens)) == 8 and len(groups) < 8
        for token, number in zip(tokens, numbers, strict=True):
            batch = int(token.split("_")[1])
            assert [m["recipient"] for m in store.list_messages(1, batch_id=batch)] == [number]

    run(world, tmp_path, scenario)


def test_operation_failed_when_the_store_fails(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        def broken(batches: Any, *, now: datetime) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        store.stage_batches = broken  # type: ignore[method-assign]
        for method in METHODS:
            got = await call(client, method, auth(world, "send_sms", message="hi",
                                                  recipients="08086689567"))  # fmt: skip
            assert got == (200, error(11, "operation failed"))
            params = {"apikey": world.api_key, "from": "447700900001", "message": "hi"}
            r = await client.post("/apis/smsgroup/", data={**params, "to": "My Customers"})
            assert (r.status, await r.text()) == (200, "-16")
            r = await client.post("/apis/smscontact/", data={**params, "to": "2348094309926"})
            assert (r.status, await r.text()) == (200, "-16")
        assert store.account(1)["credits"] == 100

    run(world, tmp_path, scenario)
