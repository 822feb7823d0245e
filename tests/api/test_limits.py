"""Abusive clients: per-account and per-address rate limits, login backoff (the secret never
logged) and body size limits, each answered in the dialect's own way."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.accounts import secret_digest
from gateway.ratelimit import LimitSettings, RateLimiter
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, Store
from tests.api.test_bestsms import NAME, T0, World, build_world
from tests.api.test_store_unavailable import ZOOM_EMAIL, ZOOM_TOKEN

WRONG = "wrong-secret-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@dataclass(frozen=True)
class Dialect:
    """One authenticated read call of a dialect, and how it says "limited" and "wrong secret"."""

    name: str
    call: Callable[[TestClient, World, str], Awaitable[tuple[int, Any, str]]]
    ok: Callable[[int, Any], bool]
    limited: Callable[[int, Any], bool]
    refused: Callable[[int, Any], bool]


async def _v1(client: TestClient, world: World, secret: str) -> tuple[int, Any, str]:
    r = await client.get("/v1/messages", headers={"Authorization": f"Bearer {secret}"})
    return r.status, await r.json(), r.headers.get("Retry-After", "")


async def _bestsms(client: TestClient, world: World, secret: str) -> tuple[int, Any, str]:
    r = await client.post("/api_v1", data={
        "sub_account": NAME, "sub_account_pass": secret, "action": "account_info"})  # fmt: skip
    return r.status, json.loads(await r.text()), r.headers.get("Retry-After", "")


async def _ultrasms(client: TestClient, world: World, secret: str) -> tuple[int, Any, str]:
    r = await client.post("/apis/getcreditbalance/", data={"apikey": secret, "type": "1"})
    return r.status, json.loads(await r.text()), r.headers.get("Retry-After", "")


async def _zoom(client: TestClient, world: World, secret: str) -> tuple[int, Any, str]:
    r = await client.get(
        "/app/api/rest/v1/account/balance", headers={"email": ZOOM_EMAIL, "token": secret}
    )
    return r.status, json.loads(await r.text()), r.headers.get("Retry-After", "")


async def _everyone(client: TestClient, world: World, secret: str) -> tuple[int, Any, str]:
    r = await client.post(
        "/api/RetrieveUserSettings",
        headers={"Authorization": aiohttp.encode_basic_auth(NAME, secret)},
    )
    return r.status, json.loads(await r.text()), r.headers.get("Retry-After", "")


DIALECTS = [
    Dialect(
        "v1", _v1,
        lambda s, b: s == 200 and "messages" in b,
        lambda s, b: s == 429 and b["error"]["code"] == "rate_limited",
        lambda s, b: s == 401,
    ),
    Dialect(
        "bestsms", _bestsms,
        lambda s, b: s == 200 and "error" not in b,
        lambda s, b: s == 200 and b["error_code"] == "11" and "too many" in b["error"],
        lambda s, b: s == 200 and b["error_code"] == "4",
    ),
    Dialect(
        "ultrasms", _ultrasms,
        lambda s, b: s == 200 and isinstance(b, int) and b >= 0,
        lambda s, b: s == 200 and b == -2,  # getcreditbalance's "Other error."
        lambda s, b: s == 200 and b == -1,
    ),
    Dialect(
        "zoomconnect", _zoom,
        lambda s, b: s == 200 and "creditBalance" in b,
        lambda s, b: (s, b["status"], b["code"]) == (429, "TOO_MANY_REQUESTS", 15),
        lambda s, b: (s, b["code"]) == (401, 10),
    ),
    Dialect(
        "smseveryone", _everyone,
        lambda s, b: (s == 200 and "Code" not in b) or b.get("Code") == 0,
        lambda s, b: (s, b["Code"]) == (429, -429),
        lambda s, b: (s, b["Code"]) == (401, -101),
    ),
]  # fmt: skip


def _secret(world: World, dialect: Dialect) -> str:
    secrets = {"bestsms": world.password, "smseveryone": world.password, "zoomconnect": ZOOM_TOKEN}
    return secrets.get(dialect.name, world.api_key)


def _run(
    world: World,
    tmp_path: Path,
    settings: LimitSettings,
    scenario: Callable[[TestClient, list[float]], Awaitable[None]],
) -> None:
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    store.conn.execute("UPDATE accounts SET token = ? WHERE id = 1", (secret_digest(ZOOM_TOKEN),))
    service = GatewayService(store, wall=lambda: T0)
    now = [0.0]
    service.limiter = RateLimiter(settings, lambda: now[0])

    async def main() -> None:
        async with TestClient(TestServer(build_app(service))) as client:
            await scenario(client, now)

    try:
        asyncio.run(main())
    finally:
        store.close()


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_an_account_over_its_rate_is_told_when_to_come_back(
    world: World, tmp_path: Path, dialect: Dialect
) -> None:
    async def scenario(client: TestClient, now: list[float]) -> None:
        secret = _secret(world, dialect)
        for _ in range(2):
            status, body, _ = await dialect.call(client, world, secret)
            assert dialect.ok(status, body), body
        status, body, retry = await dialect.call(client, world, secret)
        assert dialect.limited(status, body), (status, body)
        assert retry == "2"  # 0.5 requests/s: the next token in 2 s
        now[0] = 2.0
        status, body, _ = await dialect.call(client, world, secret)
        assert dialect.ok(status, body), body

    settings = LimitSettings(account_rate=0.5, account_burst=2)
    _run(world, tmp_path, settings, scenario)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_an_address_over_its_rate_is_limited_before_authentication(
    world: World, tmp_path: Path, dialect: Dialect
) -> None:
    async def scenario(client: TestClient, now: list[float]) -> None:
        status, body, _ = await dialect.call(client, world, _secret(world, dialect))
        assert dialect.ok(status, body)
        status, body, retry = await dialect.call(client, world, WRONG)
        assert dialect.limited(status, body), (status, body)  # not even checked
        assert retry == "10"

    _run(world, tmp_path, LimitSettings(ip_rate=0.1, ip_burst=1), scenario)


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_wrong_secrets_back_off_the_address_and_are_logged_without_the_secret(
    world: World, tmp_path: Path, dialect: Dialect, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient, now: list[float]) -> None:
        for _ in range(3):  # free failures, then the first backoff (1 s)
            status, body, _ = await dialect.call(client, world, WRONG)
            assert dialect.refused(status, body), (status, body)
        # Even the right secret waits out the backoff: a guesser learns nothing meanwhile.
        status, body, retry = await dialect.call(client, world, _secret(world, dialect))
        assert dialect.limited(status, body), (status, body)
        assert retry == "1"
        now[0] = 1.0
        status, body, _ = await dialect.call(client, world, WRONG)
        assert dialect.refused(status, body)
        now[0] = 1.5  # the second backoff is 2 s
        status, body, _ = await dialect.call(client, world, _secret(world, dialect))
        assert dialect.limited(status, body)
        now[0] = 3.0
        status, body, _ = await dialect.call(client, world, _secret(world, dialect))
        assert dialect.ok(status, body), body
        status, body, _ = await dialect.call(client, world, WRONG)  # forgiven: free again
        assert dialect.refused(status, body)

    with caplog.at_level(logging.WARNING):
        _run(world, tmp_path, LimitSettings(auth_free_failures=2), scenario)
    failures = [r.getMessage() for r in caplog.records if "wrong" in r.getMessage()]
    assert len(failures) == 5
    assert "127.0.0.1" in failures[-1]
    assert all(WRONG not in line and world.api_key not in line for line in caplog.messages)
    assert "waits 1 s" in failures[2]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_a_body_over_the_limit_is_refused_in_the_dialect_shape(
    world: World, tmp_path: Path, dialect: Dialect
) -> None:
    path = {"v1": "/v1/messages", "bestsms": "/api_v1", "ultrasms": "/apis/smsgroup/",
            "zoomconnect": "/app/api/rest/v1/sms/send-bulk",
            "smseveryone": "/api/campaign"}  # fmt: skip
    too_big = b"x" * (1024 * 1024 + 1)
    if dialect.name == "zoomconnect":
        too_big = b"x" * (16 * 1024 * 1024 + 1)  # its own limit, for 10,000-message send-bulk
    if dialect.name == "smseveryone":
        too_big = b"x" * (8 * 1024 * 1024 + 1)  # its own limit, for 500,000 destinations

    authorization = f"Bearer {world.api_key}"
    if dialect.name == "smseveryone":
        authorization = aiohttp.encode_basic_auth(NAME, world.password)

    async def scenario(client: TestClient, now: list[float]) -> None:
        r = await client.post(
            path[dialect.name],
            data=too_big,
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Authorization": authorization},
        )  # fmt: skip
        body = json.loads(await r.text())
        if dialect.name == "v1":
            assert (r.status, body["error"]["code"]) == (413, "body_too_large")
        elif dialect.name == "zoomconnect":
            assert (r.status, body["code"]) == (413, 14)
        elif dialect.name == "smseveryone":
            assert (r.status, body["Code"]) == (413, -104)
        elif dialect.name == "bestsms":
            assert (r.status, body) == (200, {"error": "request body too large", "error_code": "8"})
        else:
            assert (r.status, body) == (200, -16)

    _run(world, tmp_path, LimitSettings(), scenario)
