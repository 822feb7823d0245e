"""BestSMSGateway /api_v1 under bad input: the dialect's own error every time, never a 5xx."""

from __future__ import annotations

import io
import json
from pathlib import Path
from urllib.parse import quote_from_bytes

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bestsms import ACTIONS
from gateway.service import GatewayService
from gateway.store import Store
from tests.api.fuzzing import served_copy
from tests.api.test_bestsms import NAME, T0, World, build_world, call, error, run

# (action, a parameter that action reads)
READS = [
    ("send_sms", "message"),
    ("fetch_sms", "stage"),
    ("account_info", "action"),
    ("stop_sms", "batch_id"),
    ("delete_sms", "sms_ids"),
    ("get_total_units", "stage"),
    ("save_contacts", "phone_numbers"),
    ("fetch_contacts", "group_name"),
    ("get_contact_groups", "action"),
    ("delete_contacts", "contact_ids"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


def _expect(action: str, code: int, text: str) -> dict[str, object]:
    if action == "save_contacts":
        return {"error_code": code, "error": text}
    return error(code, text)


def test_non_utf8_repeated_and_over_long_values_on_every_action(
    world: World, tmp_path: Path
) -> None:
    base = f"sub_account={NAME}&sub_account_pass={world.password}"

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for action, name in READS:
            query = base if name == "action" else f"{base}&action={action}"
            # non-UTF-8, in the query string and in a urlencoded body
            r = await client.get(f"/api_v1?{query}&{name}=%FF%FEabc")
            assert r.status == 200
            assert json.loads(await r.text()) == _expect(action, 8, f"{name} is not valid UTF-8"), (
                action
            )
            r = await client.post(
                "/api_v1",
                data=f"{query}&{name}=%C3%28".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert json.loads(await r.text()) == _expect(action, 8, f"{name} is not valid UTF-8")
            # raw invalid bytes in a multipart part
            form = aiohttp.FormData()
            for pair in query.split("&"):
                k, _, v = pair.partition("=")
                form.add_field(k, v)
            form.add_field(
                name, io.BytesIO(b"\xff\xfe"), filename="v.txt", content_type="text/plain"
            )
            r = await client.post("/api_v1", data=form)
            assert json.loads(await r.text()) == _expect(action, 8, f"{name} is not valid UTF-8")
            # the same name twice with different values
            value = action if name == "action" else "1"
            r = await client.get(f"/api_v1?{query}&{name}={value}&{name}=2")
            assert json.loads(await r.text()) == _expect(
                action, 9, f"{name} was given more than once"
            )
            # over-long
            big = (
                500_001 if name in ("message", "sms_ids", "phone_numbers", "contact_ids") else 2001
            )
            r = await client.post("/api_v1", data={
                **dict(p.split("=", 1) for p in query.split("&")), name: "7" * big})  # fmt: skip
            assert json.loads(await r.text()) == _expect(action, 8, f"{name} is too long"), action
        assert store.list_messages(1) == []

    run(world, tmp_path, scenario)


def test_missing_parameters_on_every_action(world: World, tmp_path: Path) -> None:
    missing = {
        "send_sms": error(7, "missing request parameter: message"),
        "stop_sms": error(7, "missing request parameter: a filter (batch_id, sms_ids, stage,"
                          " type, recipient, sender_id, start_date or end_date) is required"),
        "save_contacts": {"error_code": 7,
                          "error": "missing request parameter: phone_numbers or contacts"},
        "delete_contacts": error(7, "No contact_ids supplied to be deleted"),
    }  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for action, expected in missing.items():
            params = {"sub_account": NAME, "sub_account_pass": world.password, "action": action}
            for method in ("GET", "POST"):
                assert await call(client, method, params) == (200, expected), action
        # blank values count as missing
        blank = {"sub_account": " ", "sub_account_pass": "x", "action": "account_info"}
        assert await call(client, "GET", blank) == (200, error(1, "sub_account not supplied"))

    run(world, tmp_path, scenario)


def test_injection_shaped_values_are_just_text(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        r = await client.post(
            "/api_v1",
            data=b"--b\r\nbroken",
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert json.loads(await r.text()) == error(8, "malformed multipart body")
        params = {"sub_account": NAME, "sub_account_pass": world.password}
        evil = "x' OR '1'='1"
        status, body = await call(client, "POST", {
            **params, "action": "fetch_contacts", "group_name": evil})  # fmt: skip
        assert (status, body["total"], body["records"]) == (200, 0, [])
        status, body = await call(client, "POST", {
            **params, "action": "fetch_contacts", "search_term": "%"})  # fmt: skip
        assert body["total"] == 0  # a LIKE wildcard matches itself only
        got = await call(
            client,
            "POST",
            {**params, "action": "delete_contacts", "group_name": "'; DROP TABLE contacts; --"},
        )
        assert got == (200, error(10, "no record found."))
        assert sum(n for _, n in service.contacts.groups(1)) == 4
        got = await call(client, "POST", {
            **params, "action": "save_contacts", "phone_numbers": "08011111111",
            "group_name": "Robert'); DROP TABLE contacts;--"})  # fmt: skip
        assert got == (200, {"total": "1"})
        assert "Robert'); DROP TABLE contacts;--" in dict(service.contacts.groups(1))
        got = await call(client, "GET", {**params, "action": "fetch_sms", "sms_ids": "1 OR 1=1"})
        assert got == (200, error(8, "sms_ids must be comma-separated numbers"))
        got = await call(client, "GET", {**params, "action": "send_sms", "message": "<script>",
                                         "recipients": "08086689567; rm -rf /"})  # fmt: skip
        assert got == (200, error(8, "incorrect request parameter: no valid recipient"))
        wrong = {**params, "sub_account": "' OR 1=1 --", "action": "account_info"}
        assert await call(client, "GET", wrong) == (
            200, error(4, "Incorrect sub_account name or password"))  # fmt: skip

    run(world, tmp_path, scenario)


NAMES = sorted(
    {
        "action", "message", "recipients", "type", "unicode", "route", "sender_id",
        "default_dial_code", "send_at", "timezone_offset", "contact_groups", "ignore_groups",
        "contacts", "save_as", "perpage", "p", "batch_id", "sms_ids", "stage", "recipient",
        "search_term", "start_date", "end_date", "phone_numbers", "group_name", "contact_ids",
    }
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "2", "-1", "300", "99999999999999999999", "My Customers",
                     "08086689567", "+2348094309926", "2016-04-22 13:45", "28-04-2016", "13:45",
                     "1_1_1437039374", "[]", '[{"phone":"08086689567"}]', "[{", "null", "%",
                     "' OR 1=1 --", "pending", "failed", "default,My Customers", "1e308",
                     "nan", "+1", "\u0000", "😀" * 3]),
    st.binary(max_size=40),
    st.text(max_size=40),
)  # fmt: skip


def test_fuzz_every_action_never_5xx(world: World, tmp_path: Path) -> None:
    with served_copy(world.db, tmp_path, T0) as (loop, client):
        actions = [*ACTIONS, "", "bogus"]

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(
            method=st.sampled_from(["GET", "POST"]),
            action=st.sampled_from(actions),
            good_auth=st.booleans(),
            pairs=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=8),
        )
        def one(method: str, action: str, good_auth: bool, pairs: list[tuple[str, object]]) -> None:
            parts = [f"sub_account={NAME}", f"action={action}",
                     f"sub_account_pass={world.password if good_auth else 'nope'}"]  # fmt: skip
            for name, value in pairs:
                raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
                parts.append(f"{name}={quote_from_bytes(raw)}")
            query = "&".join(parts)

            async def go() -> tuple[int, str]:
                if method == "GET":
                    r = await client.get(f"/api_v1?{query}")
                else:
                    r = await client.post(
                        "/api_v1",
                        data=query.encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                return r.status, await r.text()

            status, text = loop.run_until_complete(go())
            assert status == 200, text
            body = json.loads(text)
            assert isinstance(body, dict)
            if "error" in body:
                assert body["error_code"] in {str(c) for c in range(1, 12)} | set(range(1, 12))
                assert body["error"]

        one()
