"""SMSit generateOTP / validateOtp and gateway.otp: hashed codes, lifetime, attempts, credits."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.otp import MAX_ATTEMPTS, OTP_LIFETIME, hash_code, verify_code
from gateway.service import GatewayService
from gateway.store import Store
from tests.api.test_bestsms import T0, World, build_world, run
from tests.api.test_ultrasms import api


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _code_sent_to(store: Store, number: str) -> str:
    (row,) = [m for m in store.list_messages(1) if m["recipient"] == number][:1]
    match = re.search(r"\b(\d{6})\b", row["body"])
    assert match is not None, row["body"]
    return match.group(1)


def test_hashes_are_salted_and_checked_in_constant_time() -> None:
    a, b = hash_code("123456"), hash_code("123456")
    assert a != b and "123456" not in a
    assert verify_code("123456", a) and verify_code("123456", b)
    assert not verify_code("123457", a)
    assert not verify_code("123456", "md5$00$00") and not verify_code("1", "garbage")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_generate_sends_a_code_that_validates_once(
    world: World, tmp_path: Path, method: str
) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        key = world.api_key
        assert (
            await api(
                client,
                method,
                "generateOTP",
                {"apikey": key, "number": "2348094309926", "from": "447700900001"},
            )
            == 0
        )
        code = _code_sent_to(store, "+2348094309926")
        (row,) = store.list_messages(1)
        assert row["sender"] == "+447700900001"
        assert store.account(1)["credits"] == 99  # one SMS
        otp = store.live_otps(1, "+2348094309926", now=T0)[0]
        assert code not in otp["code_hash"] and otp["message_id"] == row["id"]
        assert otp["expires_at"] == (T0 + OTP_LIFETIME).isoformat(timespec="microseconds")
        assert await api(client, method, "validateOtp", {"apikey": key, "otp": code}) == 0
        assert await api(client, method, "validateOtp", {"apikey": key, "otp": code}) == -2  # used
        assert await api(client, method, "validateOtp", {"apikey": key}) == -2
        assert await api(client, method, "validateOtp", {"apikey": key, "otp": "abc"}) == -2
        # the spec's table spells the parameter OTP
        assert await api(client, method, "generateOTP", {"apikey": key, "to": "2348094309926"}) == 0
        code = _code_sent_to(store, "+2348094309926")
        got = await api(client, method, "validateOtp",
                        {"apikey": key, "OTP": code, "number": "2348094309926"})  # fmt: skip
        assert got == 0

    run(world, tmp_path, scenario)


def test_without_a_number_the_code_lands_in_the_inbox(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        assert await api(client, "GET", "generateOTP", {"apikey": world.api_key}) == 0
        (inbound,) = store.list_inbound(1)
        assert inbound["originator"] == "smsgw-otp"
        code = re.search(r"\d{6}", inbound["body"])
        assert code is not None
        assert store.account(1)["credits"] == 99
        assert store.list_messages(1) == []  # nothing went over the air
        params = {"apikey": world.api_key, "otp": code.group(0)}
        assert await api(client, "POST", "validateOtp", params) == 0

    run(world, tmp_path, scenario)


def test_lifetime_attempts_and_credits(world: World, tmp_path: Path) -> None:
    clock = Clock()

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        key = world.api_key

        async def generate(**params: str) -> Any:
            return await api(client, "GET", "generateOTP", {"apikey": key, **params})

        async def validate(code: str) -> Any:
            return await api(client, "GET", "validateOtp", {"apikey": key, "otp": code})

        # expiry: valid up to the lifetime, not after
        assert await generate(number="2348094309926") == 0
        code = _code_sent_to(store, "+2348094309926")
        clock.now = T0 + OTP_LIFETIME + timedelta(seconds=1)
        assert await validate(code) == -2
        # attempts: MAX_ATTEMPTS wrong guesses kill the live code, even for the right one after
        assert await generate(number="2348086689567") == 0
        code = _code_sent_to(store, "+2348086689567")
        wrong = "000000" if code != "000000" else "111111"
        for _ in range(MAX_ATTEMPTS):
            assert await validate(wrong) == -2
        assert await validate(code) == -2
        # fewer wrong guesses leave it usable
        assert await generate(number="447700900123") == 0
        code = _code_sent_to(store, "+447700900123")
        for _ in range(MAX_ATTEMPTS - 1):
            assert await validate(wrong) == -2
        assert await validate(code) == 0
        # errors: credits, a bad number
        poor = {"apikey": world.poor_key}
        assert await api(client, "GET", "generateOTP", {**poor, "number": "2348094309926"}) == -2
        assert await api(client, "GET", "generateOTP", poor) == -2
        assert await generate(number="12-34") == -16
        assert await generate(number="1234567") == -16  # not a possible phone number

    run(world, tmp_path, scenario, clock=clock)
