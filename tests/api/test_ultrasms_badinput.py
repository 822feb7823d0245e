"""UltraSMSScript /apis/* under bad input: the call's own return code every time, never a 5xx."""

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

from api.ultrasms import CALLS
from gateway.service import GatewayService
from gateway.store import Store
from tests.api.fuzzing import served_copy
from tests.api.test_bestsms import T0, World, build_world, run

SIM = "447700900001"
# call -> (valid parameters, the parameter to spoil, the code a spoiled value gets)
SPOIL = {
    "addcontact": ({"group": "default", "number": "12025550123"}, "number", -6),
    "getcontacts": ({}, "sortby", -5),
    "smsgroup": ({"from": SIM, "to": "My Customers", "message": "hi"}, "from", -3),
    "getbulksmsdeliveryreport": ({"groupsmsid": "1"}, "groupsmsid", -3),
    "smscontact": ({"from": SIM, "to": "2348094309926", "message": "hi"}, "to", -6),
    "getcontactsmsdeliveryreport": ({"number": "2348094309926"}, "number", -3),
    "getcreditbalance": ({"type": "1"}, "type", -2),
    "addappointment": (
        {"number": "2348094309926", "apptdate": "20-03-2027 19:30", "status": "1"}, "status", -6),
    "generateOTP": ({}, "number", -16),
    "validateOtp": ({"otp": "123456"}, "otp", -2),
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


async def body(response: aiohttp.ClientResponse) -> object:
    assert response.status == 200
    return json.loads(await response.text())


def test_spoiled_values_get_the_calls_own_codes(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for name, (valid, spoil, code) in SPOIL.items():
            query = "&".join(f"{k}={v}" for k, v in {"apikey": world.api_key, **valid}.items())
            path = f"/apis/{name}/"
            # non-UTF-8 in the query, a urlencoded body and a multipart part
            assert await body(await client.get(f"{path}?{query}&{spoil}=%FF%FE")) == code, name
            r = await client.post(
                path,
                data=f"{query}&{spoil}=%C3%28".encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert await body(r) == code, name
            form = aiohttp.FormData()
            for k, v in {"apikey": world.api_key, **valid}.items():
                form.add_field(k, v)
            form.add_field(spoil, io.BytesIO(b"\xff"), filename="v", content_type="text/plain")
            assert await body(await client.post(path, data=form)) == code, name
            # given twice with different values
            assert await body(await client.get(f"{path}?{query}&{spoil}=1&{spoil}=2")) == code
            # over-long
            long_value = {**valid, spoil: "1" * 2001, "apikey": world.api_key}
            assert await body(await client.post(path, data=long_value)) == code, name
            # a spoiled API key is an invalid one
            assert await body(await client.get(f"{path}?apikey=%FF")) == -1
            assert await body(await client.get(f"{path}?{query}&apikey=other")) == -1
        assert store.list_messages(1) == []

    run(world, tmp_path, scenario)


def test_unreadable_body_and_injection_shaped_values(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        key = world.api_key
        r = await client.post(
            f"/apis/smsgroup/?apikey={key}",
            data=b"--b\r\nbroken",
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert await body(r) == -16
        r = await client.get("/apis/smsgroup/", params={
            "apikey": key, "from": SIM, "to": "x' OR '1'='1", "message": "hi"})  # fmt: skip
        assert await body(r) == -6
        r = await client.get("/apis/getcontacts/", params={"apikey": key, "name": "%"})
        assert await body(r) == -7
        r = await client.get("/apis/getcontacts/", params={"apikey": key, "group": "'; --"})
        assert await body(r) == -2
        r = await client.get("/apis/getcontacts/", params={"apikey": "' OR 1=1 --"})
        assert await body(r) == -1
        r = await client.get("/apis/addcontact/", params={
            "apikey": key, "group": "default", "number": "1; DROP TABLE contacts"})  # fmt: skip
        assert await body(r) == -6
        r = await client.get("/apis/getbulksmsdeliveryreport/",
                             params={"apikey": key, "groupsmsid": "1 OR 1=1"})  # fmt: skip
        assert await body(r) == -3
        assert sum(n for _, n in service.contacts.groups(1)) == 4

    run(world, tmp_path, scenario)


NAMES = sorted(
    {
        "group", "number", "name", "email", "bday", "source", "subscribed", "sortby",
        "sortdir", "limit", "page", "from", "to", "message", "alphasender", "rotate",
        "throttle", "sendondate", "recurring", "repeat", "frequency", "enddate", "groupsmsid",
        "type", "apptdate", "status", "otp",
    }
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(["", "0", "1", "2", "6", "7", "-1", "31", "99999999999999999999",
                     "My Customers", "Empty", "default", SIM, "+" + SIM, "2348094309926",
                     "12025550123", "20-03-2027 19:30", "01-01-2020 00:00", "2027-03-20",
                     "Daily", "weekly", "name", "phone_number", "asc", "desc", "%", "_",
                     "' OR 1=1 --", "\u0000", "😀" * 5, "x" * 1531]),
    st.binary(max_size=30),
    st.text(max_size=30),
)  # fmt: skip


def test_fuzz_every_call_never_5xx(world: World, tmp_path: Path) -> None:
    with served_copy(world.db, tmp_path, T0) as (loop, client):
        names = [*CALLS, "generateOTP", "validateOtp", "nosuchcall"]

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
        @given(
            method=st.sampled_from(["GET", "POST"]),
            call=st.sampled_from(names),
            good_key=st.booleans(),
            pairs=st.lists(st.tuples(st.sampled_from(NAMES), VALUES), max_size=8),
        )
        def one(method: str, call: str, good_key: bool, pairs: list[tuple[str, object]]) -> None:
            parts = [f"apikey={world.api_key if good_key else 'nope'}"]
            for name, value in pairs:
                raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
                parts.append(f"{name}={quote_from_bytes(raw)}")
            query = "&".join(parts)

            async def go() -> tuple[int, str]:
                if method == "GET":
                    r = await client.get(f"/apis/{call}/?{query}")
                else:
                    r = await client.post(
                        f"/apis/{call}",
                        data=query.encode(),
                        headers={"Content-Type": "application/x-www-form-urlencoded"},
                    )
                return r.status, await r.text()

            status, text = loop.run_until_complete(go())
            if call == "nosuchcall":
                assert status == 404
                return
            assert status == 200, text
            answer = json.loads(text)
            assert isinstance(answer, int | list | dict)
            if isinstance(answer, int) and answer < 0:
                assert answer in {-1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15,
                                  -16, -20}  # fmt: skip

        one()
