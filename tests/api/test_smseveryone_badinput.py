"""SMS Everyone /api/* under bad input: always the dialect's own {"Message", "Code"}, never a
5xx, and nothing accepted or charged by a refused request."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.smseveryone import ERRORS, RESOURCES
from gateway.service import GatewayService
from gateway.store import Store
from tests.api.fuzzing import served_copy
from tests.api.test_smseveryone import CREATE, T0, Api, World, build_world, run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


def test_malformed_wrong_types_unknown_actions_and_big_bodies(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        cases: list[tuple[Any, int]] = [
            ('{"Message": "Hello", "Destinations": ["61400123456"', -103),  # cut short
            ('{"Message": "Hello" "Action": "create"}', -103),
            ("<xml/>", -103),
            ('{"Message": NaN, "Action": "create", "Destinations": ["61400123456"]}', -117),
            ({**CREATE, "Destinations": {"0": "61400123456"}}, -111),
            ({**CREATE, "Destinations": [True, 1.5, ["61400123456"]]}, -111),
            ({**CREATE, "Message": 12345678901234567890}, 0),  # a number is text (Json.NET)
            ({**CREATE, "Message": {"text": "hi"}}, -117),
            ({**CREATE, "Originator": ["61400190499"]}, -108),
            ({**CREATE, "TimeScheduled": 202008301300}, 0),  # digits as a number are fine
            ({**CREATE, "TimeScheduled": "99999999999999"}, -108),
            ({**CREATE, "Action": ["create"]}, -108),
            ({**CREATE, "Action": "CREATE "}, 0),
            ({**CREATE, "Action": "destroy"}, -107),
            ({"Action": "modify", "CampaignId": 10**30}, -108),
            ({"Action": "status", "CampaignId": -5}, -114),
            ({"Action": "status", "CampaignId": "00007"}, -114),
            ({**CREATE, "Message": "x\u0000y"}, -117),
        ]
        for body, code in cases:
            status, got = await api.call("/api/campaign", body)
            assert status in (200, 400) and got["Code"] == code, (body, got)
        # 10 MB, with and without a Content-Length
        big = b'{"Message": "' + b"x" * (10 * 1024 * 1024) + b'"}'
        status, got = await api.call("/api/campaign", big)
        assert (status, got["Code"]) == (413, -104)

        async def chunks() -> Any:
            for _ in range(11):
                yield b" " * (1024 * 1024)

        response = await api.client.post(
            "/api/campaign", data=chunks(),
            headers={"Authorization": api.auth("jimsbusiness"), "Content-Type": "application/json"},
        )  # fmt: skip
        assert response.status == 413
        assert json.loads(await response.text())["Code"] == -104
        # non-GSM text with unicode disabled; a long text with long messages disabled
        for text, code in (("Crème brûlée ✓", -118), ("Привет", -118), ("y" * 200, -119)):
            status, got = await api.call(
                "/api/campaign", {**CREATE, "Message": text}, user="strict"
            )
            assert (status, got["Code"]) == (200, code), text
        # GSM-7 that merely looks exotic is fine there: é, ü, € and [] are GSM 03.38
        status, got = await api.call(
            "/api/campaign", {**CREATE, "Message": "é ü € [x]"}, user="strict"
        )
        assert got["Code"] == 0
        assert store.account(3)["credits"] == 99  # only that one was charged
        accepted = [m for m in store.list_messages(1, limit=500)]
        assert len(accepted) == 3  # the three good requests of the first list

    run(world, tmp_path, scenario)


def test_curl_style_requests_without_content_type_or_body(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        auth = {"Authorization": api.auth("jimsbusiness")}
        # no Content-Type, form-encoded by mistake, an empty body
        r = await api.client.post("/api/campaign", data=json.dumps(CREATE).encode(), headers=auth)
        assert json.loads(await r.text())["Code"] == 0
        r = await api.client.post("/api/campaign", data={"Message": "hi"}, headers=auth)
        assert (r.status, json.loads(await r.text())["Code"]) == (400, -103)
        r = await api.client.post("/api/replies", headers=auth)
        assert json.loads(await r.text()) == {"Count": 0, "Messages": []}
        r = await api.client.post("/api/RetrieveUserSettings", data=b"\xff garbage", headers=auth)
        assert json.loads(await r.text())["Code"] == 0  # no body is read

    run(world, tmp_path, scenario)


FIELDS = sorted(
    {
        "Action", "Message", "Originator", "Destinations", "Reference", "TimeScheduled",
        "CrmIds", "CampaignId", "CampaignID", "Destination", "Test", "Days", "DateStart",
        "DateEnd", "Records", "Description", "CrmId", "credits", "action",
    }
)  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["create", "delete", "modify", "pause", "unpause", "status", "list",
                     "details", "append", "remove", "add", "61400123456", "+61400123456",
                     "0061400123456", "61400190499", "202008301300", "202001011200",
                     "2020-06-01", "1", "0", "-1", "true", "", " ", "😀", "x" * 2001, "\u0000",
                     "' OR 1=1 --", "%s", "{}", "[]"]),
    st.text(max_size=20),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["Number", "number", "x"]), inner, max_size=2),
    ),
    max_leaves=8,
)


# A valid request of each kind with one or two fields spoiled: reaches past the first check.
VALID: list[dict[str, Any]] = [
    CREATE,
    {**CREATE, "TimeScheduled": "202008301300", "Reference": "r"},
    {"Action": "modify", "CampaignId": 1, "Message": "x", "TimeScheduled": "202008301330"},
    {"Action": "pause", "CampaignId": 1},
    {"CampaignId": 1, "Destination": "61400123456"},
    {"Days": 2},
    {"DateStart": "2020-06-01", "DateEnd": "2020-06-30", "Test": True},
    {"Action": "add", "Originator": ["61400123456"]},
    {"Action": "create", "Description": "L", "Records": [{"Number": "61400123456,61400999111"}]},
    {"Action": "append", "CrmId": 1, "Records": [{"Number": "61400111555"}]},
    {"credits": 5, "action": "add"},
]
SPOILED = st.builds(
    lambda base, changes: {**base, **changes},
    st.sampled_from(VALID),
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=2),
)


def test_fuzz_every_resource_never_5xx(world: World, tmp_path: Path) -> None:
    with served_copy(world.db, tmp_path, T0) as (loop, client):
        good = (
            "Basic "
            + base64.b64encode(f"jimsbusiness:{world.passwords['jimsbusiness']}".encode()).decode()
        )
        names = [*RESOURCES, "DRStatus", "RetrieveUserSettings", "nosuch"]

        @settings(max_examples=300, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])  # fmt: skip
        @given(
            name=st.sampled_from(names),
            method=st.sampled_from(["POST", "POST", "POST", "GET"]),
            auth=st.sampled_from([good, good, good, "", "Basic eDp5", "Basic %%%"]),
            body=st.one_of(
                st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6).map(json.dumps),
                SPOILED.map(json.dumps),
                st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
                st.text(max_size=40),
            ),
        )
        def one(name: str, method: str, auth: str, body: str) -> None:
            sent.append(name)

            async def go() -> tuple[int, str, str]:
                response = await client.request(
                    method, f"/api/{name}", data=body.encode("utf-8", "surrogatepass"),
                    headers={"Authorization": auth} if auth else {},
                )  # fmt: skip
                return response.status, response.content_type, await response.text()

            status, content_type, text = loop.run_until_complete(go())
            assert status < 500, text
            assert content_type == "application/json"
            answer = json.loads(text)
            assert isinstance(answer, dict)
            if "Code" in answer and answer["Code"] != 0:
                assert answer["Code"] in ERRORS and set(answer) == {"Message", "Code"}, answer

        sent: list[str] = []
        one()
        assert len(sent) >= 300  # hypothesis really sent that many requests
    # whatever was accepted was paid for: the ledger and the balance agree
    check = Store.open(tmp_path)
    try:
        ledger = check.conn.execute(
            "SELECT COALESCE(SUM(delta), 0) FROM credits_ledger WHERE account_id = 1"
        ).fetchone()[0]
        assert check.account(1)["credits"] == 1000 + ledger
    finally:
        check.close()


def test_the_ledger_matches_the_balance_after_fuzzing(world: World, tmp_path: Path) -> None:
    """Bad requests charge nothing: after a burst of mixed requests, balance == 1000 + ledger."""

    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        bodies: list[Any] = [
            CREATE,
            {**CREATE, "Message": ""},
            "{",
            {**CREATE, "Destinations": []},
            {**CREATE, "Originator": "nope"},
            {**CREATE, "Message": "z" * 400},
        ]
        for body in bodies * 5:
            await api.call("/api/campaign", body)
        ledger = store.conn.execute(
            "SELECT SUM(delta) FROM credits_ledger WHERE account_id = 1"
        ).fetchone()[0]
        assert store.account(1)["credits"] == 1000 + ledger == 1000 - 5 * (1 + 3)

    run(world, tmp_path, scenario)
