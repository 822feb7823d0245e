"""UltraSMSScript /apis/<name>/: every call, parameter and return code, in the spec's order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.contacts import ContactInput
from gateway.models import PartState
from gateway.service import GatewayService
from gateway.store import Store
from tests.api.test_bestsms import T0, World, build_world, run

METHODS = ("GET", "POST")
SIM = "447700900001"
S = PartState


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


async def api(
    client: TestClient, method: str, name: str, params: dict[str, str], *, slash: bool = True
) -> Any:
    """Call /apis/<name>/ and return the decoded JSON body (after checking HTTP 200)."""
    path = f"/apis/{name}/" if slash else f"/apis/{name}"
    if method == "GET":
        response = await client.get(path, params=params)
    else:
        response = await client.post(path, data=params)
    assert response.status == 200, await response.text()
    assert response.content_type == "application/json"
    return json.loads(await response.text())


def check(world: World, tmp_path: Path, name: str, cases: list[tuple[dict[str, str], Any]]) -> None:
    """Each case (params without apikey, expected body) over GET and POST, on fresh data."""
    for method in METHODS:

        async def scenario(
            client: TestClient, store: Store, service: GatewayService, method: str = method
        ) -> None:
            for params, expected in cases:
                got = await api(client, method, name, {"apikey": world.api_key, **params})
                assert got == expected, (method, params)

        run(world, tmp_path / method, scenario)


@pytest.mark.parametrize(
    "name",
    [
        "addcontact", "getcontacts", "smsgroup", "getbulksmsdeliveryreport", "smscontact",
        "getcontactsmsdeliveryreport", "getcreditbalance", "addappointment", "generateOTP",
        "validateOtp",
    ],
)  # fmt: skip
def test_api_key_first_then_api_access(world: World, tmp_path: Path, name: str) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for method in METHODS:
            assert await api(client, method, name, {}) == -1
            assert await api(client, method, name, {"apikey": "0" * 40, "type": "1"}) == -1
            assert await api(client, method, name, {"apikey": world.off_key}) == -20
            assert await api(client, method, name, {"apikey": world.off_key}, slash=False) == -20

    run(world, tmp_path, scenario)


def test_unknown_call_is_404_and_names_ignore_case(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        r = await client.get("/apis/launchrockets/", params={"apikey": world.api_key})
        assert r.status == 404
        params = {"apikey": world.api_key, "type": "1"}
        assert await api(client, "GET", "GetCreditBalance", params) == 100
        assert await api(client, "GET", "generateotp", {"apikey": world.poor_key}) == -2

    run(world, tmp_path, scenario)


def test_addcontact(world: World, tmp_path: Path) -> None:
    ok = {"group": "My Customers", "number": "12025248725"}
    check(world, tmp_path, "addcontact", [
        ({**ok, "name": "Jim", "email": "jim@example.com", "bday": "1990-01-31"}, 0),
        ({"group": "My Customers"}, -2),
        ({}, -3),
        ({"number": "12025248725"}, -4),
        ({"group": "Nope", "number": "12025248725"}, -5),
        ({"group": "default", "number": "202-524-8725"}, -6),
        ({"group": "default", "number": "12025248725", "bday": "31/01/1990"}, -6),
        ({"group": "default", "number": "12025248725", "name": "n" * 101}, -6),
        (ok, -7),
        ({"group": "default", "number": "12025248725"}, 0),  # another group is fine
    ])  # fmt: skip


def test_addcontact_stores_the_fields(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        params = {"apikey": world.api_key, "group": "Empty", "number": "447481340516",
                  "name": "Jim Beam", "email": "jim@example.com", "bday": "1990-01-31"}  # fmt: skip
        assert await api(client, "POST", "addcontact", params) == 0
        got = await api(client, "GET", "getcontacts", {"apikey": world.api_key, "group": "Empty"})
        assert got == [{
            "id": 5, "name": "Jim Beam", "email": "jim@example.com",
            "phone_number": "447481340516", "group": "Empty", "source": 0, "subscribed": 0,
            "bday": "1990-01-31", "created": "2026-11-22 10:00:00",
        }]  # fmt: skip
        by_email = await api(
            client, "POST", "getcontacts", {"apikey": world.api_key, "email": "JIM@example"}
        )
        assert [c["id"] for c in by_email] == [5]

    run(world, tmp_path, scenario)


def test_getcontacts(world: World, tmp_path: Path) -> None:
    def numbers(*digits: str) -> list[str]:
        return list(digits)

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for method in METHODS:

            async def get(method: str = method, **params: str) -> Any:
                return await api(client, method, "getcontacts", {"apikey": world.api_key, **params})

            async def phones(**params: str) -> list[str]:
                return [c["phone_number"] for c in await get(**params)]

            assert await get(name="pearl") == [{
                "id": 2, "name": "Pearl", "email": "", "phone_number": "2348094309926",
                "group": "My Customers", "source": 0, "subscribed": 0, "bday": "",
                "created": "2026-11-22 10:00:00",
            }]  # fmt: skip
            assert await phones() == numbers(
                "447700900555", "447700900123", "2348094309926", "2348086689567"
            )
            assert await phones(name="john doe") == ["2348086689567"]
            assert await phones(number="700900") == ["447700900555", "447700900123"]
            assert await phones(group="My Customers", sortby="phone_number", sortdir="asc") == [
                "2348086689567", "2348094309926"]  # fmt: skip
            assert await phones(sortby="name", sortdir="asc") == [
                "447700900555", "447700900123", "2348086689567", "2348094309926"]  # fmt: skip
            assert await phones(subscribed="1") == ["447700900555"]
            assert len(await phones(subscribed="0")) == 3
            assert len(await phones(source="0")) == 4
            assert await phones(limit="3", page="2") == ["2348086689567"]
            assert await get(group="Nope") == -2
            assert await get(source="4") == -3
            assert await get(subscribed="2") == -4
            assert await get(sortby="age") == -5
            assert await get(sortdir="up") == -6
            assert await get(name="zzz") == -7
            assert await get(source="1") == -7
            assert await get(limit="0") == -7
            assert await get(group="Empty") == -7
            # in the spec's order: the group is judged before the source
            assert await get(group="Nope", source="9") == -2

    run(world, tmp_path, scenario)


def test_smsgroup_sends_now_and_returns_the_group_sms_id(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for method, rotate, throttle in (("GET", "1", "2"), ("POST", "0", None)):
            params = {"apikey": world.api_key, "from": SIM, "to": "My Customers",
                      "message": "Sale today", "rotate": rotate}  # fmt: skip
            if throttle:
                params["throttle"] = throttle
            group_id = await api(client, method, "smsgroup", params)
            assert isinstance(group_id, int) and group_id > 0
            batch = store.batch(group_id)
            assert batch is not None
            assert batch["throttle_interval"] == float(throttle or 1)
            assert batch["rotate"] == int(rotate)
            rows = [m for m in store.list_messages(1) if m["batch_id"] == group_id]
            assert sorted(m["recipient"] for m in rows) == ["+2348086689567", "+2348094309926"]
            # rotate=1 lets every SIM take a turn; rotate=0 sends from `from` only
            assert {m["sender"] for m in rows} == ({""} if rotate == "1" else {"+" + SIM})
        assert store.account(1)["credits"] == 96

    run(world, tmp_path, scenario)


def test_smsgroup_schedules_and_recurs(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        base = {"apikey": world.api_key, "from": "+" + SIM, "to": "My Customers",
                "message": "Weekly news"}  # fmt: skip
        assert await api(client, "GET", "smsgroup", {**base, "sendondate": "20-12-2026 19:30"}) == 0
        rows = store.list_messages(1)
        assert {(m["state"], m["send_at"]) for m in rows} == {
            ("accepted", "2026-12-20T18:30:00.000000+00:00")
        }  # Lagos is UTC+1
        got = await api(client, "POST", "smsgroup", {
            **base, "sendondate": "01-12-2026 08:00", "recurring": "1", "repeat": "Weekly",
            "frequency": "2", "enddate": "29-12-2026 08:00"})  # fmt: skip
        assert got == 0
        series = store.batch(2)
        assert series is not None
        assert json.loads(series["recurrence"]) == {
            "unit": "Weekly", "frequency": 2, "until": "2026-12-29"}  # fmt: skip
        assert series["next_run"] == "2026-12-01T07:00:00.000000+00:00"
        assert series["throttle_interval"] == 1.0
        got = await api(client, "GET", "smsgroup", {
            **base, "recurring": "1", "repeat": "Daily", "frequency": "1",
            "enddate": "30-11-2026 08:00", "throttle": "4", "rotate": "1"})  # fmt: skip
        assert got == 0
        series = store.batch(3)
        assert series is not None
        assert (series["throttle_interval"], series["rotate"], series["sender"]) == (4.0, 1, "")
        # a past sendondate sends now and returns the id
        assert await api(client, "GET", "smsgroup", {**base, "sendondate": "01-01-2020 08:00"}) == 4

    run(world, tmp_path, scenario)


def test_smsgroup_return_codes_in_order(world: World, tmp_path: Path) -> None:
    ok = {"from": SIM, "to": "My Customers", "message": "hi"}
    recurring = {**ok, "recurring": "1", "repeat": "Daily", "frequency": "1",
                 "enddate": "30-11-2026 10:00"}  # fmt: skip
    check(world, tmp_path, "smsgroup", [
        ({"to": "My Customers", "message": "hi"}, -2),
        ({"to": "My Customers"}, -2),  # -2 is judged before -4
        ({**ok, "from": "15551234567"}, -3),
        ({**ok, "from": "not-a-number"}, -3),
        ({"from": SIM, "to": "My Customers"}, -4),
        ({"from": SIM, "message": "hi"}, -5),
        ({**ok, "to": "Nope"}, -6),
        ({**ok, "alphasender": "MyShop"}, -7),  # a modem cannot send from a name
        ({**ok, "alphasender": "Too Long Sender"}, -7),
        ({**ok, "rotate": "2"}, -8),
        ({**ok, "throttle": "7"}, -9),
        ({**ok, "throttle": "0"}, -9),
        ({**ok, "recurring": "yes"}, -10),
        ({**ok, "recurring": "1"}, -11),
        ({**recurring, "repeat": "Hourly"}, -11),
        ({**ok, "recurring": "1", "repeat": "Daily"}, -12),
        ({**recurring, "frequency": "31"}, -12),
        ({**ok, "recurring": "1", "repeat": "Daily", "frequency": "3"}, -13),
        ({**ok, "to": "Empty"}, -15),
        ({**ok, "to": "Opted"}, -15),  # opted-out contacts are not subscribers
        ({**ok, "sendondate": "2026-12-20 19:30"}, -16),
        ({**recurring, "enddate": "tomorrow"}, -16),
        ({**ok, "message": "x" * 1531}, -16),
    ])  # fmt: skip


def test_smsgroup_and_smscontact_without_credits(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        service.contacts.save(3, [ContactInput("+2348094309926", group="Poor")], dial_code="")
        for method in METHODS:
            base = {"apikey": world.poor_key, "from": SIM, "message": "hi"}
            assert await api(client, method, "smsgroup", {**base, "to": "Poor"}) == -14
            assert await api(client, method, "smsgroup", {
                **base, "to": "Poor", "recurring": "1", "repeat": "Daily", "frequency": "1",
                "enddate": "30-11-2026 10:00"}) == -14  # fmt: skip
            assert await api(client, method, "smscontact", {**base, "to": "2348094309926"}) == -12
        assert store.list_messages(3) == []

    run(world, tmp_path, scenario)


def test_getbulksmsdeliveryreport(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        key = world.api_key
        group_id = await api(client, "GET", "smsgroup", {
            "apikey": key, "from": SIM, "to": "My Customers", "message": "hi"})  # fmt: skip
        for method in METHODS:
            report = await api(client, method, "getbulksmsdeliveryreport",
                               {"apikey": key, "groupsmsid": str(group_id)})  # fmt: skip
            assert report == {"successful": 0, "failed": 0}
        first, second = (store.parts(m)[0]["id"] for m in store.batch_message_ids(group_id))
        for part, end, status in ((first, S.DELIVERED, 0), (second, S.FAILED, 0x41)):
            store.transition_part(part, S.QUEUED, S.SENDING, now=T0, fields={"sim_id": 1})
            store.transition_part(part, S.SENDING, S.SENT, now=T0, fields={"tp_mr": 1})
            store.transition_part(part, S.SENT, end, now=T0, fields={"report_status": status})
        for method in METHODS:

            async def report(method: str = method, **params: str) -> Any:
                return await api(client, method, "getbulksmsdeliveryreport",
                                 {"apikey": key, **params})  # fmt: skip

            assert await report(groupsmsid=str(group_id)) == {"successful": 1, "failed": 1}
            assert await report() == -2
            assert await report(groupsmsid="abc") == -3
            assert await report(groupsmsid="999") == -3
        other = await api(client, "GET", "getbulksmsdeliveryreport",
                          {"apikey": world.poor_key, "groupsmsid": str(group_id)})  # fmt: skip
        assert other == -3  # another account's group SMS

    run(world, tmp_path, scenario)


def test_smscontact(world: World, tmp_path: Path) -> None:
    ok = {"from": SIM, "to": "2348094309926", "message": "hi"}
    recurring = {**ok, "recurring": "1", "repeat": "Monthly", "frequency": "1",
                 "enddate": "22-02-2027 10:00"}  # fmt: skip
    check(world, tmp_path, "smscontact", [
        (ok, 0),
        ({**ok, "sendondate": "20-12-2026 19:30"}, 0),
        (recurring, 0),
        ({"to": "2348094309926", "message": "hi"}, -2),
        ({**ok, "from": "15551234567"}, -3),
        ({"from": SIM, "to": "2348094309926"}, -4),
        ({"from": SIM, "message": "hi"}, -5),
        ({**ok, "to": "12025550123"}, -6),  # not in the contact list
        ({**ok, "to": "447700900555"}, -6),  # unsubscribed
        ({**ok, "to": "+1 (202) 555-0123"}, -6),
        ({**ok, "alphasender": "MyShop"}, -7),
        ({**ok, "recurring": "2"}, -8),
        ({**ok, "recurring": "1"}, -9),
        ({**recurring, "repeat": "Fortnightly"}, -9),
        ({**ok, "recurring": "1", "repeat": "Daily"}, -10),
        ({**recurring, "frequency": "0"}, -10),
        ({**ok, "recurring": "1", "repeat": "Daily", "frequency": "3"}, -11),
        ({**ok, "sendondate": "20/12/2026 19:30"}, -16),
        ({**ok, "message": "x" * 1531}, -16),
    ])  # fmt: skip


def test_smscontact_sends_from_the_given_number(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        params = {"apikey": world.api_key, "from": "447700900002", "to": "2348094309926",
                  "message": "Your table is ready"}  # fmt: skip
        assert await api(client, "POST", "smscontact", params) == 0
        (row,) = store.list_messages(1)
        assert (row["sender"], row["recipient"], row["body"], row["state"]) == (
            "+447700900002",
            "+2348094309926",
            "Your table is ready",
            "queued",
        )
        # SMSit: several contacts at once, comma-separated
        params["to"] = "2348094309926,2348086689567"
        assert await api(client, "POST", "smscontact", params) == 0
        assert len(store.list_messages(1)) == 3

    run(world, tmp_path, scenario)


def test_getcontactsmsdeliveryreport(world: World, tmp_path: Path) -> None:
    outcomes = {
        "12025550100": ([], ("queued", "")),
        "12025550101": ([(S.QUEUED, S.SENDING, {"sim_id": 1}), (S.SENDING, S.SENT, {"tp_mr": 1})],
                        ("sent", "")),
        "12025550102": ([(S.QUEUED, S.SENDING, {"sim_id": 1}), (S.SENDING, S.SENT, {"tp_mr": 2}),
                         (S.SENT, S.DELIVERED, {"report_status": 0})], ("delivered", "")),
        "12025550103": ([(S.QUEUED, S.SENDING, {"sim_id": 1}), (S.SENDING, S.SENT, {"tp_mr": 3}),
                         (S.SENT, S.FAILED, {"report_status": 0x41})],
                        ("undelivered", "network report: permanent failure (TP-ST 0x41)")),
        "12025550104": ([(S.QUEUED, S.SENDING, {"sim_id": 1}),
                         (S.SENDING, S.FAILED, {"cms_error": 21, "error": "+CMS ERROR: 21"})],
                        ("failed", "+CMS ERROR: 21")),
        "12025550105": ([(S.QUEUED, S.SENDING, {"sim_id": 1}), (S.SENDING, S.SENT, {"tp_mr": 5}),
                         (S.SENT, S.EXPIRED, {"report_status": 0x46})],
                        ("undelivered", "validity period expired before delivery")),
        "12025550106": ([(S.QUEUED, S.SENDING, {"sim_id": 1}), (S.SENDING, S.UNCERTAIN, {})],
                        ("uncertain",
                         "interrupted while sending: it may or may not have reached the network")),
    }  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for number, (steps, _) in outcomes.items():
            (message_id,) = service.submit(1, ["+" + number], "hello").message_ids
            for a, b, fields in steps:
                store.transition_part(store.parts(message_id)[0]["id"], a, b, now=T0,
                                      fields=fields)  # fmt: skip
        (cancelled,) = service.submit(1, ["+12025550107"], "hello").message_ids
        service.cancel(1, cancelled)
        for method in METHODS:

            async def report(method: str = method, **params: str) -> Any:
                return await api(client, method, "getcontactsmsdeliveryreport",
                                 {"apikey": world.api_key, **params})  # fmt: skip

            for number, (_, (status, errormsg)) in outcomes.items():
                assert await report(number=number) == {"smsstatus": status, "errormsg": errormsg}
            assert await report(number="12025550107") == {
                "smsstatus": "canceled", "errormsg": "stopped before sending"}  # fmt: skip
            assert await report() == -2
            assert await report(number="abc") == -3
            assert await report(number="12025550199") == -3  # nothing sent there

    run(world, tmp_path, scenario)


def test_getcreditbalance(world: World, tmp_path: Path) -> None:
    check(world, tmp_path, "getcreditbalance", [
        ({"type": "1"}, 100),
        ({"type": "2"}, 0),  # voice: the appliance carries none
        ({}, -2),
        ({"type": "3"}, -2),
        ({"type": "sms"}, -2),
    ])  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        store.conn.execute("UPDATE accounts SET unlimited = 1 WHERE id = 1")
        params = {"apikey": world.api_key, "type": "1"}
        assert await api(client, "GET", "getcreditbalance", params) == 2147483647

    run(world, tmp_path / "unlimited", scenario)


def test_addappointment(world: World, tmp_path: Path) -> None:
    ok = {"number": "2348094309926", "apptdate": "20-03-2027 19:30", "status": "1"}
    check(world, tmp_path, "addappointment", [
        (ok, 0),
        ({**ok, "apptdate": "21-03-2027 19:30", "status": "0"}, 0),
        ({"apptdate": "20-03-2027 19:30", "status": "1"}, -2),
        ({**ok, "number": "+2348094309926"}, -3),
        ({**ok, "number": "234-809-430"}, -3),
        ({"number": "2348094309926", "status": "1"}, -4),
        ({"number": "2348094309926", "apptdate": "20-03-2027 19:30"}, -5),
        ({**ok, "status": "4"}, -6),
        ({**ok, "number": "12025550123"}, -7),
        (ok, -8),
        ({**ok, "apptdate": "2027-03-20 19:30"}, -9),
    ])  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        assert await api(client, "GET", "addappointment", {"apikey": world.api_key, **ok}) == 0
        (appointment,) = store.appointments(1)
        assert (appointment["number"], appointment["starts_at"], appointment["status"]) == (
            "+2348094309926",
            "2027-03-20T18:30:00.000000+00:00",
            1,
        )
        assert appointment["contact_id"] == 2

    run(world, tmp_path / "stored", scenario)


def test_api_keys_are_stored_hashed(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        stored = store.account(1)["api_key"]
        assert stored != world.api_key and world.api_key not in stored
        assert stored.startswith("sha256$")
        params = {"type": "1"}
        assert (
            await api(client, "GET", "getcreditbalance", {"apikey": world.api_key, **params}) == 100
        )
        # what a stolen database holds is not a key
        assert await api(client, "GET", "getcreditbalance", {"apikey": stored, **params}) == -1
        # a row written before keys were hashed still works with its clear key
        store.conn.execute("UPDATE accounts SET api_key = 'legacy-key' WHERE id = 1")
        assert (
            await api(client, "GET", "getcreditbalance", {"apikey": "legacy-key", **params}) == 100
        )

    run(world, tmp_path, scenario)
