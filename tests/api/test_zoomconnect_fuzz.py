"""Zoom Connect: hypothesis throws arbitrary JSON, parameters, path values and bytes at every
endpoint; no answer is ever a 5xx, and every error is the one JSON error shape."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.fuzzing import served_copy
from tests.api.test_zoomconnect import EMAIL, ENDPOINTS, PREFIXES, T0, World, build_world

FIELDS = [
    "recipientNumber", "message", "campaign", "dataField", "dateToSend", "sendSmsRequests",
    "defaultDateToSend", "messagesPerMinute", "firstName", "lastName", "contactNumber", "title",
    "contactId", "name", "groupId", "emailAddress", "password", "creditBalance", "userId",
    "company", "transferFromEmailAddress", "transferToEmailAddress", "numberOfCreditsToTransfer",
]  # fmt: skip
PARAMS = [
    "page", "pageSize", "type", "status", "fromDateTimeSent", "toDateTimeSent",
    "fromDateTimeReceived", "toDateTimeReceived", "fromNumber", "toNumber", "message",
    "campaign", "dataField", "deleted", "read", "repliesToMessageId", "searchEmail", "from", "to",
    "userEmailAddress", "includeRefundedAndOptout", "calculateCreditValue", "recipientNumber",
    "dateToSend",
]  # fmt: skip
SAMPLES = [
    "", " ", "0", "-1", "1", "2", "3", "99999999999999999999", "true", "null", "+27825551234",
    "0825551234", "202612011200", "01-11-2026", "20261122", "DELIVERED", "INBOUND", "€😀",
    "ops@acme.example", "\u0000", "%", "x" * 3000,
]  # fmt: skip

scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.sampled_from(SAMPLES) | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
spec_objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
bulk_objects = st.fixed_dictionaries(
    {"sendSmsRequests": st.lists(spec_objects | json_values, max_size=5)},
    optional={"defaultDateToSend": json_values, "messagesPerMinute": json_values},
)
bodies = (
    st.none().map(lambda _: b"null")
    | st.just(b"")
    | spec_objects.map(lambda o: json.dumps(o).encode())
    | bulk_objects.map(lambda o: json.dumps(o).encode())
    | json_values.map(lambda o: json.dumps(o).encode())
    | st.binary(max_size=64)
)
queries = st.dictionaries(
    st.sampled_from(PARAMS) | st.text(max_size=6),
    st.sampled_from(SAMPLES) | st.text(max_size=20),
    max_size=5,
)
segments = st.sampled_from(["1", "2", "3", "0", "-5", "abc", "99999999999999999999999", "%2F"]) | (
    st.text(min_size=1, max_size=12).map(lambda s: urllib.parse.quote(s, safe=""))
)
auths = st.sampled_from(["headers", "url", "none", "wrong"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("fuzzworld"))


def _paths() -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for method, path, _ in ENDPOINTS:
        entry = (method, path.partition("?")[0].replace("templates/1", "templates/{t}"))
        if entry not in seen:
            seen.append(entry)
    return seen


@pytest.mark.parametrize(("method", "template"), _paths(), ids=str)
def test_fuzz_never_5xx(world: World, tmp_path: Path, method: str, template: str) -> None:
    with served_copy(world.db, tmp_path, T0) as (loop, client):

        @settings(max_examples=40, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
        @given(body=bodies, query=queries, ids=st.fixed_dictionaries(
            {"c": segments, "g": segments, "m": segments, "t": segments}), auth=auths,
            ctype=st.sampled_from(["application/json", "text/plain",
                                   "application/x-www-form-urlencoded", ""]))  # fmt: skip
        def check(body: bytes, query: dict[str, str], ids: dict[str, str], auth: str,
                  ctype: str) -> None:  # fmt: skip
            headers = {"Content-Type": ctype} if ctype else {}
            params = dict(query)
            if auth == "headers":
                headers |= {"email": EMAIL, "token": world.token}
            elif auth == "url":
                params |= {"email": EMAIL, "token": world.token}
            elif auth == "wrong":
                headers |= {"email": "\u00e9" + EMAIL, "token": "x" * 5000}
            path = PREFIXES[0] + "/" + template.format(**ids)

            async def one() -> tuple[int, str, str]:
                r = await client.request(method, path, params=params, data=body, headers=headers)
                return r.status, r.content_type, await r.text()

            status, content_type, text = loop.run_until_complete(one())
            assert status < 500, (status, text)
            if status >= 400:
                assert content_type == "application/json", text
                answer: Any = json.loads(text)
                assert set(answer) == {"status", "code", "message", "developerMessage",
                                       "moreInfoUrl"}, answer  # fmt: skip

        check()


def test_fuzz_send_url_token_never_5xx(world: World, tmp_path: Path) -> None:
    with served_copy(world.db, tmp_path, T0) as (loop, client):

        @settings(max_examples=60, deadline=None, derandomize=True)
        @given(token=segments | st.just(world.send_token), query=queries, body=bodies,
               method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))  # fmt: skip
        def check(token: str, query: dict[str, str], body: bytes, method: str) -> None:
            async def one() -> int:
                r = await client.request(method, f"{PREFIXES[1]}/sms/send-url/{token}",
                                         params=query, data=body)  # fmt: skip
                await r.read()
                return r.status

            assert loop.run_until_complete(one()) < 500

        check()
