"""Zoom Connect REST v1: golden answers for every endpoint, each auth form, GET and POST where
the spec allows both, and the error shape."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.accounts import create_account
from gateway.models import PartState
from gateway.service import GatewayService
from gateway.store import DATABASE_NAME, Store

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)  # 11:00 in Johannesburg (the account's zone)
EMAIL = "ops@acme.example"
SIM = "+27820000001"
PREFIXES = ("/app/api/rest/v1", "/api/rest/v1")
S = PartState


@dataclass(frozen=True)
class World:
    """A template database, copied for every test."""

    db: Path
    token: str
    send_token: str
    off_token: str
    poor_token: str
    other_token: str


def build_world(directory: Path) -> World:
    store = Store.open(directory)
    main = create_account(store, "acme", now=T0, credits=100, default_dial_code="27",
                          email=EMAIL, timezone="Africa/Johannesburg")  # fmt: skip
    off = create_account(store, "off", now=T0, credits=5, email="off@acme.example")
    poor = create_account(store, "poor", now=T0, credits=0, email="poor@acme.example")
    other = create_account(store, "other", now=T0, credits=9, email="boss@other.example")
    store.conn.execute("UPDATE accounts SET api_enabled = 0 WHERE id = ?", (off.account_id,))
    store.update_profile(main.account_id, {"first_name": "Olive", "last_name": "Ops",
                                           "contact_number": "+27825550100",
                                           "company": "Acme"})  # fmt: skip
    sim = store.bind_sim(iccid="8927000000000000011", imsi="655010000000011", msisdn=SIM, now=T0)
    store.grant_sim(main.account_id, sim)
    service = GatewayService(store, wall=lambda: T0)
    send_token = service.teams.issue_send_token(main.account_id)
    service.directory.create_template(main.account_id, "Welcome", "Welcome to Acme!")
    service.directory.create_template(other.account_id, "Theirs", "Not yours")
    store.close()
    return World(directory / DATABASE_NAME, main.token, send_token, off.token, poor.token,
                 other.token)  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("zoomworld"))


Scenario = Callable[[TestClient, Store, GatewayService], Awaitable[None]]


def run(world: World, tmp_path: Path, scenario: Scenario) -> None:
    """Run `scenario` against a fresh copy of the world."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=lambda: T0)

    async def main() -> None:
        async with TestClient(TestServer(build_app(service))) as client:
            await scenario(client, store, service)

    try:
        asyncio.run(main())
    finally:
        store.close()


AUTHS = ("headers", "basic", "url")


async def zc(
    client: TestClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str,
    email: str = EMAIL,
    auth: str = "headers",
    params: dict[str, str] | None = None,
    prefix: str = PREFIXES[0],
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One call the way an SDK makes it: JSON body (`null` when there is none)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    query = dict(params or {})
    if auth == "headers":
        headers |= {"email": email, "token": token}
    elif auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()
    elif auth == "url":
        query |= {"email": email, "token": token}
    data = raw if raw is not None else json.dumps(body).encode()
    response = await client.request(method, prefix + "/" + path, params=query, data=data,
                                    headers=headers)  # fmt: skip
    text = await response.text()
    if text == "":
        return response.status, None
    assert response.content_type == "application/json", text
    return response.status, json.loads(text)


def error(status: str, code: int, message: str, developer: str | None = None) -> dict[str, Any]:
    return {"status": status, "code": code, "message": message,
            "developerMessage": developer if developer is not None else message,
            "moreInfoUrl": None}  # fmt: skip


# Every endpoint of the spec: (method, path, body) that succeeds on the fresh world.
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("GET", "account/balance", None),
    ("GET", "account/statistics", None),
    (
        "POST",
        "account/transfer",
        {
            "transferFromEmailAddress": EMAIL,
            "transferToEmailAddress": "sub@acme.example",
            "numberOfCreditsToTransfer": 1,
        },
    ),
    ("GET", "account/user?searchEmail=ops@acme.example", None),
    (
        "PUT",
        "account/user",
        {
            "firstName": "New",
            "lastName": "User",
            "password": "pa55word!",
            "emailAddress": "new@acme.example",
            "contactNumber": "0825550111",
        },
    ),
    ("GET", "account/user/1", None),
    ("POST", "account/user/1", {"firstName": "Olivia"}),
    ("GET", "sms/send", None),
    ("POST", "sms/send", {"recipientNumber": "+27825551234", "message": "Hi"}),
    ("GET", "sms/send-bulk", None),
    (
        "POST",
        "sms/send-bulk",
        {"sendSmsRequests": [{"recipientNumber": "0825551234", "message": "Hi"}]},
    ),
    ("GET", "sms/send-url-parameters?recipientNumber=27825551234&message=Hi", None),
    ("POST", "sms/send-url-parameters?recipientNumber=27825551234&message=Hi", None),
    ("GET", "contacts/all", None),
    ("POST", "contacts/create", {"contactNumber": "0825550001", "firstName": "A"}),
    ("GET", "contacts/{c}", None),
    ("POST", "contacts/{c}", {"lastName": "B"}),
    ("GET", "contacts/{c}/addToGroup/{g}", None),
    ("POST", "contacts/{c}/addToGroup/{g}", None),
    ("GET", "contacts/{c}/addFromGroup/{g}", None),
    ("POST", "contacts/{c}/addFromGroup/{g}", None),
    ("GET", "groups/all", None),
    ("POST", "groups/create", {"name": "Another"}),
    ("GET", "groups/{g}", None),
    ("POST", "groups/{g}", {"name": "Renamed"}),
    ("GET", "groups/{g}/addContact/{c}", None),
    ("POST", "groups/{g}/addContact/{c}", None),
    ("GET", "groups/{g}/removeContact/{c}", None),
    ("POST", "groups/{g}/removeContact/{c}", None),
    ("GET", "messages/all", None),
    ("POST", "messages/analyse/full", {"message": "Hi", "recipientNumber": "+27825551234"}),
    ("POST", "messages/analyse/message-credit-cost", {"message": "Hi"}),
    ("POST", "messages/analyse/message-encoding", {"message": "Hi"}),
    ("POST", "messages/analyse/message-length", {"message": "Hi"}),
    ("POST", "messages/analyse/message-length-within-max-allowed", {"message": "Hi"}),
    ("POST", "messages/analyse/number-of-messages", {"message": "Hi"}),
    ("GET", "messages/{m}", None),
    ("PUT", "messages/{m}/markRead", None),
    ("POST", "messages/{m}/markRead", None),
    ("PUT", "messages/{m}/markUnread", None),
    ("POST", "messages/{m}/markUnread", None),
    ("GET", "templates/all", None),
    ("GET", "templates/1", None),
    ("DELETE", "messages/{m}", None),
    ("DELETE", "contacts/{c}", None),
    ("DELETE", "groups/{g}", None),
    ("DELETE", "templates/1", None),
]


async def _fixtures(client: TestClient, token: str) -> dict[str, str]:
    """A sub-account, a contact, a group and a message for the {c}/{g}/{m} paths."""
    status, _ = await zc(client, "PUT", "account/user", {
        "firstName": "Sub", "lastName": "Account", "password": "s3cret-pass",
        "emailAddress": "sub@acme.example", "contactNumber": "0825550102",
    }, token=token)  # fmt: skip
    assert status == 200
    _, contact = await zc(client, "POST", "contacts/create",
                          {"contactNumber": "0825550002"}, token=token)  # fmt: skip
    _, group = await zc(client, "POST", "groups/create", {"name": "Friends"}, token=token)
    _, sent = await zc(client, "POST", "sms/send",
                       {"recipientNumber": "0825550002", "message": "Yo"}, token=token)  # fmt: skip
    return {"c": contact["contactId"], "g": group["groupId"], "m": sent["messageId"]}


@pytest.mark.parametrize("auth", AUTHS)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_endpoint_answers_with_each_auth_form(
    world: World, tmp_path: Path, auth: str, prefix: str
) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        ids = await _fixtures(client, world.token)
        for method, path, body in ENDPOINTS:
            path = path.format(**ids)
            params = None
            if "?" in path:
                path, _, qs = path.partition("?")
                params = dict(p.split("=") for p in qs.split("&"))
            status, answer = await zc(client, method, path, body, token=world.token, auth=auth,
                                      params=params, prefix=prefix)  # fmt: skip
            assert status == 200, (method, path, answer)
            # The same call without credentials is refused in the one error shape.
        status, answer = await zc(client, "GET", "account/balance", token="", email="",
                                  auth="none", prefix=prefix)  # fmt: skip
        assert status == 401 and answer["code"] == 10

    run(world, tmp_path, scenario)


def test_every_endpoint_refuses_bad_credentials(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        for method, path, body in ENDPOINTS:
            path = path.format(c="1", g="1", m="2").partition("?")[0]
            for auth in AUTHS:
                status, answer = await zc(client, method, path, body, token="f" * 32, auth=auth)
                assert (status, answer) == (
                    401,
                    error("UNAUTHORIZED", 10, "incorrect email address or token"),
                ), (method, path)
            status, answer = await zc(client, method, path, body, token=world.off_token,
                                      email="OFF@acme.example")  # fmt: skip
            assert (status, answer) == (403, error("FORBIDDEN", 11, "API access is disabled"))

    run(world, tmp_path, scenario)


def test_auth_details(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        # The email matches without regard to case; the token must be exact.
        status, answer = await zc(client, "GET", "account/balance", token=world.token,
                                  email="OPS@Acme.Example")  # fmt: skip
        assert (status, answer) == (200, {"creditBalance": 100.0, "links": []})
        # Another account's token with this email is refused.
        status, _ = await zc(client, "GET", "account/balance", token=world.other_token)
        assert status == 401
        r = await client.get(PREFIXES[0] + "/account/balance",
                             headers={"Authorization": "Basic !!notbase64"})  # fmt: skip
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic")
        assert json.loads(await r.text())["code"] == 10
        # Headers win over URL parameters (a stale token in a bookmarked URL does not matter).
        status, _ = await zc(client, "GET", "account/balance", token=world.token,
                             params={"email": EMAIL, "token": "0" * 32})  # fmt: skip
        assert status == 200
        # A trailing slash is the same endpoint.
        status, _ = await zc(client, "GET", "account/balance/", token=world.token)
        assert status == 200

    run(world, tmp_path, scenario)


def test_unknown_paths_and_methods(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        status, answer = await zc(client, "GET", "launch/rockets", token=world.token)
        assert (status, answer) == (404, error("NOT_FOUND", 7, "no such endpoint",
                                               "/api/rest/v1/launch/rockets"))  # fmt: skip
        status, answer = await zc(client, "DELETE", "account/balance", token=world.token)
        assert (status, answer) == (
            405,
            error("METHOD_NOT_ALLOWED", 13, "DELETE is not allowed here", "allowed: GET"),
        )
        status, answer = await zc(client, "GET", "messages/analyse/full", token=world.token)
        assert status == 405 and answer["developerMessage"] == "allowed: POST"
        status, answer = await zc(client, "PATCH", "contacts/1", token=world.token)
        assert status == 405 and answer["developerMessage"] == "allowed: DELETE, GET, POST"

    run(world, tmp_path, scenario)


# -- account ----------------------------------------------------------------------------------


def test_balance_and_users(world: World, tmp_path: Path) -> None:
    olive = {"userId": 1, "firstName": "Olive", "lastName": "Ops", "emailAddress": EMAIL,
             "contactNumber": "+27825550100", "company": "Acme", "creditBalance": 100.0,
             "password": None}  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        assert await zc(client, "GET", "account/balance", token=t) == (
            200, {"creditBalance": 100.0, "links": []})  # fmt: skip
        assert await zc(client, "GET", "account/user/1", token=t) == (200, olive)
        assert await zc(client, "GET", "account/user/01", token=t) == (200, olive)
        assert await zc(
            client, "GET", "account/user", token=t, params={"searchEmail": "OPS@acme.example"}
        ) == (
            200,
            {"webServiceUserList": [olive]},
        )
        assert await zc(
            client, "GET", "account/user", token=t, params={"searchEmail": "nobody@acme.example"}
        ) == (
            200,
            {"webServiceUserList": []},
        )
        assert (await zc(client, "GET", "account/user", token=t))[1]["code"] == 1
        # Another team's account is invisible.
        assert (await zc(client, "GET", "account/user/4", token=t))[0] == 404
        assert (await zc(client, "GET", "account/user/abc", token=t))[1]["code"] == 1

        status, sub = await zc(client, "PUT", "account/user", {
            "firstName": "Sam", "lastName": "Sub", "password": "s3cret-pass", "userId": 0,
            "emailAddress": "sam@acme.example", "contactNumber": "0825550102",
            "company": "Acme East", "creditBalance": "30"}, token=t)  # fmt: skip
        assert (status, sub) == (200, {
            "userId": 5, "firstName": "Sam", "lastName": "Sub", "emailAddress": "sam@acme.example",
            "contactNumber": "0825550102", "company": "Acme East", "creditBalance": 30.0,
            "password": None})  # fmt: skip
        assert (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"] == 70.0
        # The new user signs in to BestSMS with its email and password at once.
        assert service.account_by_credentials("sam@acme.example", "s3cret-pass")["id"] == 5
        assert store.account(5)["parent_id"] == 1
        # Taken email, missing fields, short password, unaffordable credits.
        base = {"firstName": "X", "lastName": "Y", "password": "longenough",
                "contactNumber": "0825550103"}  # fmt: skip
        for body, code, message in [
            ({**base, "emailAddress": "SAM@acme.example"}, 8, "email address already in use"),
            ({**base, "emailAddress": "ops@acme.example"}, 8, "email address already in use"),
            ({**base, "emailAddress": ""}, 1, "email is required"),
            ({**base, "emailAddress": "not-an-email"}, 1, "invalid email address"),
            (
                {**base, "emailAddress": "x@acme.example", "password": "short"},
                1,
                "password shorter than 8 characters",
            ),
            (
                {**base, "emailAddress": "x@acme.example", "creditBalance": 71},
                6,
                "Insufficient credits",
            ),
            (
                {**base, "emailAddress": "x@acme.example", "creditBalance": 1.5},
                1,
                "creditBalance must be a whole number",
            ),
        ]:
            status, answer = await zc(client, "PUT", "account/user", body, token=t)
            assert (status, answer["code"], answer["message"]) == (400, code, message), body

        status, updated = await zc(client, "POST", "account/user/5", {
            "firstName": "Samuel", "password": "n3w-password", "emailAddress": "ignored@x.y",
            "creditBalance": 999}, token=t)  # fmt: skip
        assert status == 200
        assert (
            updated["firstName"],
            updated["lastName"],
            updated["emailAddress"],
            updated["creditBalance"],
        ) == ("Samuel", "Sub", "sam@acme.example", 30.0)
        assert service.account_by_credentials("sam@acme.example", "n3w-password")["id"] == 5
        assert (await zc(client, "POST", "account/user/4", {"firstName": "x"}, token=t))[0] == 404

        # A sub-account sees only itself, and creates nobody.
        sam_token = service.teams.issue_token(5)
        status, listed = await zc(
            client,
            "GET",
            "account/user",
            token=sam_token,
            email="sam@acme.example",
            params={"searchEmail": EMAIL},
        )
        assert (status, listed) == (200, {"webServiceUserList": []})
        status, answer = await zc(client, "PUT", "account/user", {**base,
                                  "emailAddress": "y@acme.example"}, token=sam_token,
                                  email="sam@acme.example")  # fmt: skip
        assert (status, answer) == (
            403,
            error("FORBIDDEN", 12, "only the team's administrator can create users"),
        )
        # ... and gives only its own credits.
        status, answer = await zc(client, "POST", "account/transfer", {
            "transferFromEmailAddress": EMAIL, "transferToEmailAddress": "sam@acme.example",
            "numberOfCreditsToTransfer": 1}, token=sam_token, email="sam@acme.example")  # fmt: skip
        assert (status, answer["code"]) == (403, 12)

    run(world, tmp_path, scenario)


def test_transfer(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        await zc(client, "PUT", "account/user", {
            "firstName": "Sam", "lastName": "Sub", "password": "s3cret-pass",
            "emailAddress": "sam@acme.example", "contactNumber": "0825550102",
        }, token=t)  # fmt: skip
        status, target = await zc(client, "POST", "account/transfer", {
            "transferFromEmailAddress": EMAIL, "transferToEmailAddress": "Sam@acme.example",
            "numberOfCreditsToTransfer": "25"}, token=t)  # fmt: skip
        assert status == 200
        assert (target["userId"], target["creditBalance"]) == (5, 25.0)
        assert (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"] == 75.0
        # ... and back, in the ledger both ways.
        status, target = await zc(client, "POST", "account/transfer", {
            "transferFromEmailAddress": "sam@acme.example", "transferToEmailAddress": EMAIL,
            "numberOfCreditsToTransfer": 5}, token=t)  # fmt: skip
        assert (status, target["creditBalance"]) == (200, 80.0)
        reasons = [r[0] for r in store.conn.execute(
            "SELECT reason FROM credits_ledger ORDER BY id")]  # fmt: skip
        assert reasons == ["transfer to account 5", "transfer from account 1",
                           "transfer to account 1", "transfer from account 5"]  # fmt: skip
        for body, status_code, code in [
            (
                {
                    "transferFromEmailAddress": EMAIL,
                    "transferToEmailAddress": "sam@acme.example",
                    "numberOfCreditsToTransfer": 81,
                },
                400,
                6,
            ),
            (
                {
                    "transferFromEmailAddress": EMAIL,
                    "transferToEmailAddress": "boss@other.example",
                    "numberOfCreditsToTransfer": 1,
                },
                404,
                7,
            ),
            (
                {
                    "transferFromEmailAddress": EMAIL,
                    "transferToEmailAddress": EMAIL,
                    "numberOfCreditsToTransfer": 1,
                },
                400,
                1,
            ),
            (
                {
                    "transferFromEmailAddress": EMAIL,
                    "transferToEmailAddress": "sam@acme.example",
                    "numberOfCreditsToTransfer": 0,
                },
                400,
                1,
            ),
            (
                {"transferFromEmailAddress": EMAIL, "transferToEmailAddress": "sam@acme.example"},
                400,
                1,
            ),
            (
                {"transferToEmailAddress": "sam@acme.example", "numberOfCreditsToTransfer": 1},
                400,
                1,
            ),
        ]:
            status, answer = await zc(client, "POST", "account/transfer", body, token=t)
            assert (status, answer["code"]) == (status_code, code), body
        assert (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"] == 80.0

    run(world, tmp_path, scenario)


def _settle(store: Store, message_id: int, *states: S, error: str = "") -> None:
    """Walk every part of a message through `states` (the outbox's and reports' transitions)."""
    for part in store.parts(message_id):
        current = S(part["state"])
        for state in states:
            fields: dict[str, Any] = {}
            if state is S.SENT:
                fields = {"tp_mr": 7, "sim_id": 1, "sent_at": "2026-11-22T09:01:00.000000+00:00"}
            if state is S.FAILED and error:
                fields = {"error": error}
            store.transition_part(part["id"], current, state, now=T0 + timedelta(minutes=1),
                                  fields=fields)  # fmt: skip
            current = state


def test_statistics(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token

        async def send(number: str, text: str, campaign: str | None = None) -> int:
            body = {"recipientNumber": number, "message": text}
            if campaign:
                body["campaign"] = campaign
            _, answer = await zc(client, "POST", "sms/send", body, token=t)
            return int(answer["messageId"]) // 2

        delivered = await send("0825550001", "x" * 200, "spring")  # 2 parts
        failed = await send("0825550002", "Hi", "spring")
        opted = await send("0825550003", "Hi")
        cancelled = await send("0825550004", "Hi", "autumn")
        await send("0825550005", "Hi")  # still queued: not counted
        _settle(store, delivered, S.SENDING, S.SENT, S.DELIVERED)
        _settle(store, failed, S.SENDING, S.SENT, S.FAILED)
        _settle(store, opted, S.FAILED, error="recipient opted out (STOP)")
        store.cancel_message(cancelled, now=T0)

        def stats(sent: float = 0, delivered: float = 0, failed: float = 0, optout: float = 0,
                  refunded: float = 0) -> dict[str, float]:  # fmt: skip
            return {"sent": sent, "delivered": delivered, "failed": failed,
                    "failedOptout": optout, "failedRefunded": refunded,
                    "total": sent + delivered + failed + optout + refunded}  # fmt: skip

        status, answer = await zc(client, "GET", "account/statistics", token=t)
        assert status == 200
        assert answer["from"] == "2026-11-01T00:00:00+02:00"
        assert answer["to"] == "2026-11-22T23:59:59+02:00"
        assert answer["showingCreditValue"] is False
        assert answer["grandTotal"] == stats(delivered=1, failed=1)
        (user,) = answer["users"]
        assert user["user"]["emailAddress"] == EMAIL
        assert user["total"] == stats(delivered=1, failed=1)
        assert user["campaigns"] == [
            {"campaign": "autumn", "statistics": stats()},
            {"campaign": "spring", "statistics": stats(delivered=1, failed=1)},
        ]
        _, answer = await zc(client, "GET", "account/statistics", token=t, params={
            "calculateCreditValue": "true", "includeRefundedAndOptout": "true",
            "from": "22-11-2026", "to": "22-11-2026"})  # fmt: skip
        assert answer["showingCreditValue"] is True
        assert answer["grandTotal"] == stats(delivered=2, failed=1, optout=1, refunded=1)
        _, answer = await zc(
            client,
            "GET",
            "account/statistics",
            token=t,
            params={"campaign": "spring", "includeRefundedAndOptout": "1"},
        )
        assert answer["grandTotal"] == stats(delivered=1, failed=1)
        _, answer = await zc(
            client,
            "GET",
            "account/statistics",
            token=t,
            params={"from": "01-10-2026", "to": "31-10-2026"},
        )
        assert answer["grandTotal"] == stats()
        # The administrator sees each user of the team, or the one asked for.
        await zc(client, "PUT", "account/user", {
            "firstName": "Sam", "lastName": "Sub", "password": "s3cret-pass",
            "emailAddress": "sam@acme.example", "contactNumber": "0825550102",
        }, token=t)  # fmt: skip
        _, answer = await zc(client, "GET", "account/statistics", token=t)
        assert [u["user"]["userId"] for u in answer["users"]] == [1, 5]
        _, answer = await zc(
            client,
            "GET",
            "account/statistics",
            token=t,
            params={"userEmailAddress": "sam@acme.example"},
        )
        assert [u["user"]["userId"] for u in answer["users"]] == [5]
        assert answer["grandTotal"] == stats()
        for params, status_code in [
            ({"from": "2026-11-01"}, 400),
            ({"to": "32-11-2026"}, 400),
            ({"from": "02-11-2026", "to": "01-11-2026"}, 400),
            ({"calculateCreditValue": "maybe"}, 400),
            ({"userEmailAddress": "boss@other.example"}, 404),
        ]:
            status, answer = await zc(client, "GET", "account/statistics", token=t, params=params)
            assert status == status_code, params

    run(world, tmp_path, scenario)


# -- sms --------------------------------------------------------------------------------------


def test_send_and_its_errors(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        status, answer = await zc(client, "POST", "sms/send", {
            "recipientNumber": "0825551234", "message": "Hello €uro", "campaign": "launch",
            "dataField": "order-17", "dateToSend": ""}, token=t)  # fmt: skip
        assert (status, answer) == (200, {"messageId": "2", "error": None})
        row = store.message(1)
        assert (row["recipient"], row["body"], row["units"], row["state"]) == (
            "+27825551234",
            "Hello €uro",
            1,
            "queued",
        )
        assert json.loads(row["extra"]) == {"campaign": "launch", "dataField": "order-17"}
        assert (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"] == 99.0
        # Numbers with or without +, with spaces; numeric values as numbers.
        for number in ("27825551234", "+27 82 555 1234", 27825551234, "082-555-1234"):
            status, answer = await zc(
                client, "POST", "sms/send", {"recipientNumber": number, "message": 42}, token=t
            )
            assert status == 200, number
            assert store.message(int(answer["messageId"]) // 2)["recipient"] == "+27825551234"
        assert store.message(2)["body"] == "42"
        for body, code, message in [
            ({"message": "Hi"}, 2, "Invalid mobile number"),
            ({"recipientNumber": "", "message": "Hi"}, 2, "Invalid mobile number"),
            ({"recipientNumber": "call me", "message": "Hi"}, 2, "Invalid mobile number"),
            ({"recipientNumber": "0825551234"}, 3, "Message cannot be empty"),
            ({"recipientNumber": "0825551234", "message": "   "}, 3, "Message cannot be empty"),
            ({"recipientNumber": "0825551234", "message": "x" * 1531}, 4, "Message is too long"),
            ({"recipientNumber": "0825551234", "message": "\ud800"}, 4, "Message cannot be sent"),
            (
                {"recipientNumber": "0825551234", "message": "Hi", "dateToSend": "tomorrow"},
                5,
                "dateToSend is not a date (yyyyMMddHHmm)",
            ),
            (
                {"recipientNumber": ["0825551234"], "message": "Hi"},
                1,
                "recipientNumber must be a string",
            ),
            (
                {"recipientNumber": "0825551234", "message": "Hi", "campaign": {"a": 1}},
                1,
                "campaign must be a string",
            ),
        ]:
            status, answer = await zc(client, "POST", "sms/send", body, token=t)
            assert (status, answer["code"], answer["message"]) == (400, code, message), body
            assert answer["status"] == "BAD_REQUEST"
        for raw in (b"{not json", b"[1, 2]", b'"text"', "\xff".encode("latin-1")):
            status, answer = await zc(client, "POST", "sms/send", token=t, raw=raw)
            assert (status, answer["code"]) == (400, 1), raw
        status, answer = await zc(client, "POST", "sms/send", {"recipientNumber": "+27825551234",
                                  "message": "Hi"}, token=world.poor_token,
                                  email="poor@acme.example")  # fmt: skip
        assert (status, answer) == (400, error("BAD_REQUEST", 6, "Insufficient credits",
                                               "1 credits needed, 0 available"))  # fmt: skip

    run(world, tmp_path, scenario)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("202612011230", "2026-12-01T10:30:00.000000+00:00"),  # the spec's yyyyMMddHHmm, local
        ("20261201123045", "2026-12-01T10:30:45.000000+00:00"),
        ("2026-12-01T12:30:00", "2026-12-01T10:30:00.000000+00:00"),
        ("2026-12-01 12:30", "2026-12-01T10:30:00.000000+00:00"),
        ("2026-12-01T12:30:00Z", "2026-12-01T12:30:00.000000+00:00"),
        ("2026-12-01T12:30:00+01:00", "2026-12-01T11:30:00.000000+00:00"),
        (1796126400000, "2026-12-01T12:00:00.000000+00:00"),  # Unix milliseconds (Jackson)
        ("1796126400000", "2026-12-01T12:00:00.000000+00:00"),
        ("202611201200", None),  # in the past: sends at once
    ],
)
def test_date_to_send_formats(world: World, tmp_path: Path, raw: Any, expected: str | None) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        status, answer = await zc(client, "POST", "sms/send", {
            "recipientNumber": "0825551234", "message": "Later", "dateToSend": raw},
            token=world.token)  # fmt: skip
        assert status == 200, answer
        row = store.message(int(answer["messageId"]) // 2)
        assert row["send_at"] == expected
        assert row["state"] == ("queued" if expected is None else "accepted")
        if expected is not None:
            _, shown = await zc(client, "GET", f"messages/{answer['messageId']}", token=world.token)
            assert shown["messageStatus"] == "SCHEDULED"
            assert shown["dateTimeScheduled"] == datetime.fromisoformat(expected).astimezone(
                service.account_zone(store.account(1))
            ).isoformat(timespec="seconds")

    run(world, tmp_path, scenario)


def test_send_bulk(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        status, answer = await zc(client, "POST", "sms/send-bulk", {
            "sendSmsRequests": [
                {"recipientNumber": "0825550001", "message": "One", "campaign": "bulk",
                 "dataField": "a"},
                {"recipientNumber": "nope", "message": "Two"},
                {"recipientNumber": "0825550001", "message": "Three", "dateToSend": "202612011200"},
                {"recipientNumber": "0825550003", "message": ""},
                "not an object",
                {"recipientNumber": "+44 12", "message": "Impossible"},  # the service says so
                {"recipientNumber": "0825550004", "message": "Five"},
            ],
            "defaultDateToSend": "202612021200",
            "messagesPerMinute": 30,
        }, token=t)  # fmt: skip
        assert (status, answer) == (200, {"sendSmsResponses": [
            {"messageId": "2", "error": None},
            {"messageId": None, "error": "Invalid mobile number"},
            {"messageId": "4", "error": None},
            {"messageId": None, "error": "Message cannot be empty"},
            {"messageId": None, "error": "the send request must be a JSON object"},
            {"messageId": None, "error": "Invalid mobile number"},
            {"messageId": "6", "error": None},
        ]})  # fmt: skip
        # One batch paced as a whole (30/min = one every 2 s across SIMs); the same number twice
        # is two messages; each one's own date, else the default.
        rows = [store.message(i) for i in (1, 2, 3)]
        assert {r["batch_id"] for r in rows} == {1}
        assert store.batch(1)["batch_gap"] == 2.0
        assert [r["recipient"] for r in rows] == ["+27825550001", "+27825550001", "+27825550004"]
        assert [r["send_at"] for r in rows] == [
            "2026-12-02T10:00:00.000000+00:00", "2026-12-01T10:00:00.000000+00:00",
            "2026-12-02T10:00:00.000000+00:00"]  # fmt: skip
        assert json.loads(rows[0]["extra"]) == {"campaign": "bulk", "dataField": "a"}
        assert (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"] == 97.0
        # All invalid: nothing sent, each says why.
        status, answer = await zc(client, "POST", "sms/send-bulk", {"sendSmsRequests": [
            {"recipientNumber": "x", "message": "a"}]}, token=t)  # fmt: skip
        assert (status, answer) == (200, {"sendSmsResponses": [
            {"messageId": None, "error": "Invalid mobile number"}]})  # fmt: skip
        assert await zc(client, "POST", "sms/send-bulk", {"sendSmsRequests": []}, token=t) == (
            200, {"sendSmsResponses": []})  # fmt: skip
        for body, code in [
            ({}, 1),
            ({"sendSmsRequests": "x"}, 1),
            ({"sendSmsRequests": [], "messagesPerMinute": -1}, 1),
            ({"sendSmsRequests": [], "messagesPerMinute": "fast"}, 1),
            ({"sendSmsRequests": [], "defaultDateToSend": "soon"}, 5),
        ]:
            status, answer = await zc(client, "POST", "sms/send-bulk", body, token=t)
            assert (status, answer["code"]) == (400, code), body
        # Not affordable as a whole: nothing is accepted.
        status, answer = await zc(client, "POST", "sms/send-bulk", {"sendSmsRequests": [
            {"recipientNumber": "0825550001", "message": "x" * 1530}] * 10}, token=t)  # fmt: skip
        assert (status, answer["code"]) == (400, 6)
        assert store.message(4) is None

    run(world, tmp_path, scenario)


def test_examples_and_url_sends(world: World, tmp_path: Path) -> None:
    example = {"recipientNumber": "+15005550000", "message": "Hello from SMS Messenger",
               "dateToSend": "202611221100", "campaign": "my campaign",
               "dataField": "my reference"}  # fmt: skip

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        assert await zc(client, "GET", "sms/send", token=t) == (200, example)
        assert await zc(client, "GET", "sms/send-bulk", token=t) == (200, {
            "sendSmsRequests": [example, {**example, "recipientNumber": "+15005550002",
                                          "dateToSend": None}],
            "defaultDateToSend": "202611221100", "messagesPerMinute": 0})  # fmt: skip
        params = {"recipientNumber": "27825551234", "message": "By URL ✓", "campaign": "url",
                  "dataField": "d1", "dateToSend": "202612011200"}  # fmt: skip
        for method in ("GET", "POST"):
            status, answer = await zc(client, method, "sms/send-url-parameters", token=t,
                                      params=params)  # fmt: skip
            assert status == 200 and isinstance(answer, str)
            row = store.message(int(answer) // 2)
            assert (row["body"], row["encoding"], row["send_at"]) == (
                "By URL ✓",
                "ucs2",
                "2026-12-01T10:00:00.000000+00:00",
            )
            assert json.loads(row["extra"]) == {"campaign": "url", "dataField": "d1"}
        # POST with the parameters as a form body works too.
        r = await client.post(
            PREFIXES[0] + "/sms/send-url-parameters",
            params={"email": EMAIL, "token": t},
            data={"recipientNumber": "0825551234", "message": "Form"},
        )
        assert r.status == 200
        assert store.message(int(json.loads(await r.text())) // 2)["body"] == "Form"
        status, answer = await zc(client, "GET", "sms/send-url-parameters", token=t,
                                  params={"message": "no number"})  # fmt: skip
        assert (status, answer["code"]) == (400, 2)
        # send-url/{token}: the URL-sending token alone, no email or REST token.
        for method in ("GET", "POST"):
            r = await client.request(
                method,
                f"{PREFIXES[1]}/sms/send-url/{world.send_token}",
                params={"recipientNumber": "0825551234", "message": "Tok"},
            )
            assert r.status == 200
            assert store.message(int(json.loads(await r.text())) // 2)["account_id"] == 1
        r = await client.get(
            f"{PREFIXES[0]}/sms/send-url/{world.token}",
            params={"recipientNumber": "0825551234", "message": "REST token"},
        )
        assert r.status == 401  # the REST token is not a URL-sending token
        # ... and the URL-sending token opens nothing else.
        status, _ = await zc(client, "GET", "account/balance", token=world.send_token)
        assert status == 401

    run(world, tmp_path, scenario)


# -- contacts and groups ----------------------------------------------------------------------


def test_contacts_and_groups(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        status, ann = await zc(client, "POST", "contacts/create", {
            "firstName": "Ann", "lastName": "Lee", "contactNumber": "082 555 0001",
            "title": "Dr", "contactId": "ignored", "links": []}, token=t)  # fmt: skip
        assert (status, ann) == (200, {"contactId": "1", "contactNumber": "+27825550001",
                                       "firstName": "Ann", "lastName": "Lee", "title": "Dr",
                                       "links": []})  # fmt: skip
        _, bob = await zc(client, "POST", "contacts/create", {"contactNumber": "+27825550002"},
                          token=t)  # fmt: skip
        assert bob == {"contactId": "2", "contactNumber": "+27825550002", "firstName": "",
                       "lastName": "", "title": "", "links": []}  # fmt: skip
        assert await zc(client, "GET", "contacts/1", token=t) == (200, ann)
        assert await zc(client, "GET", "contacts/all", token=t) == (
            200, {"webServiceContacts": [ann, bob], "links": []})  # fmt: skip
        assert await zc(
            client, "GET", "contacts/all", token=t, params={"page": "2", "pageSize": "1"}
        ) == (
            200,
            {"webServiceContacts": [bob], "links": []},
        )
        status, updated = await zc(
            client,
            "POST",
            "contacts/1",
            {"firstName": "Anne", "lastName": None, "contactNumber": "27825550009"},
            token=t,
        )
        assert (status, updated["firstName"], updated["lastName"], updated["contactNumber"]) == (
            200,
            "Anne",
            "Lee",
            "+27825550009",
        )

        _, friends = await zc(client, "POST", "groups/create", {"name": "Friends",
                              "groupId": "x"}, token=t)  # fmt: skip
        assert friends == {"groupId": "1", "name": "Friends", "links": []}
        _, work = await zc(client, "POST", "groups/create", {"name": "Work"}, token=t)
        assert await zc(client, "GET", "groups/all", token=t) == (
            200, {"webServiceGroups": [friends, work], "links": []})  # fmt: skip
        assert await zc(client, "GET", "groups/2", token=t) == (200, work)
        # Add through both paths, GET and POST; a contact may be in several groups.
        for method, path in [
            ("GET", "contacts/1/addToGroup/1"),
            ("POST", "groups/2/addContact/1"),
            ("POST", "contacts/2/addToGroup/1"),
            ("GET", "groups/1/addContact/2"),
            ("GET", "contacts/1/addToGroup/1"),
        ]:  # again: no-op
            assert await zc(client, method, path, token=t) == (200, None), path
        assert service.directory.members(store.account(1), 1) == [1, 2]
        assert service.directory.group_ids_of(store.account(1), 1) == [1, 2]
        # The spec's addFromGroup removes; so does removeContact.
        assert await zc(client, "GET", "contacts/1/addFromGroup/1", token=t) == (200, None)
        assert await zc(client, "POST", "groups/1/removeContact/2", token=t) == (200, None)
        assert service.directory.members(store.account(1), 1) == []
        assert service.directory.group_ids_of(store.account(1), 1) == [2]
        assert await zc(client, "POST", "groups/2", {"name": "Office"}, token=t) == (
            200, {"groupId": "2", "name": "Office", "links": []})  # fmt: skip
        for method, path, body, status_code, code in [
            ("POST", "groups/create", {"name": "Office"}, 400, 8),
            ("POST", "groups/create", {"name": ""}, 400, 1),
            ("POST", "groups/create", None, 400, 1),
            ("POST", "groups/1", {"name": "Office"}, 400, 8),
            ("GET", "groups/99", None, 404, 7),
            ("GET", "groups/abc", None, 404, 7),
            ("GET", "contacts/99", None, 404, 7),
            ("GET", "contacts/1/addToGroup/99", None, 404, 7),
            ("GET", "contacts/99/addToGroup/1", None, 404, 7),
            ("POST", "contacts/create", {"firstName": "No number"}, 400, 2),
            ("POST", "contacts/create", {"contactNumber": "letters"}, 400, 2),
            ("POST", "contacts/1", {"contactNumber": "letters"}, 400, 2),
            (
                "POST",
                "contacts/create",
                {"contactNumber": "0825550001", "firstName": "x" * 101},
                400,
                1,
            ),
        ]:
            status, answer = await zc(client, method, path, body, token=t)
            assert (status, answer["code"]) == (status_code, code), (method, path, body)
        # Deleting a group keeps its contacts; deleting a contact takes it out of every group.
        assert await zc(client, "DELETE", "groups/1", token=t) == (200, None)
        assert (await zc(client, "GET", "groups/1", token=t))[0] == 404
        assert (await zc(client, "GET", "contacts/2", token=t))[0] == 200
        assert await zc(client, "DELETE", "contacts/1", token=t) == (200, None)
        assert service.directory.members(store.account(1), 2) == []
        assert (await zc(client, "DELETE", "contacts/1", token=t))[0] == 404
        # Another account's contacts and groups are not found.
        status, _ = await zc(client, "GET", "contacts/2", token=world.other_token,
                             email="boss@other.example")  # fmt: skip
        assert status == 404

    run(world, tmp_path, scenario)


# -- messages ---------------------------------------------------------------------------------


def _inbound(store: Store, originator: str, text: str, at: datetime) -> int:
    return store.insert_inbound(
        {"account_id": 1, "sim_id": 1, "originator": originator, "recipient": SIM, "body": text,
         "encoding": "gsm7", "parts_received": 1, "parts_total": 1, "complete": 1},
        [], now=at,
    )  # fmt: skip


def test_messages_view_filters_and_flags(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        _, contact = await zc(client, "POST", "contacts/create", {"contactNumber": "0825550001"},
                              token=t)  # fmt: skip
        await zc(client, "POST", "sms/send", {"recipientNumber": "0825550001",
                        "message": "Promo!", "campaign": "spring", "dataField": "r1"},
                        token=t)  # fmt: skip
        _, b = await zc(client, "POST", "sms/send", {"recipientNumber": "0825550002",
                        "message": "x" * 161}, token=t)  # fmt: skip
        _settle(store, 1, S.SENDING, S.SENT, S.DELIVERED)
        reply = _inbound(store, "+27825550001", "YES please", T0 + timedelta(minutes=5))
        stranger = _inbound(store, "+27825559999", "who?", T0 + timedelta(minutes=6))
        zone_time = "2026-11-22T11:01:00+02:00"
        sent_view = {
            "messageId": "2", "messageType": "OUTBOUND", "fromNumber": SIM,
            "toNumber": "+27825550001", "message": "Promo!", "campaign": "spring",
            "userDataField": "r1", "messageStatus": "DELIVERED", "creditCost": 1.0,
            "numberOfMessages": 1, "dateTimeScheduled": None, "dateTimeSent": zone_time,
            "dateTimeReceived": None, "read": False, "deleted": False,
            "contact": {"contactId": contact["contactId"], "links": []},
            "repliedToMessage": None, "links": [],
        }  # fmt: skip
        reply_view = {
            "messageId": str(2 * reply + 1), "messageType": "INBOUND",
            "fromNumber": "+27825550001", "toNumber": SIM, "message": "YES please",
            "campaign": "spring", "userDataField": "r1", "messageStatus": None,
            "creditCost": 0.0, "numberOfMessages": 1, "dateTimeScheduled": None,
            "dateTimeSent": None, "dateTimeReceived": "2026-11-22T11:05:00+02:00", "read": False,
            "deleted": False, "contact": {"contactId": contact["contactId"], "links": []},
            "repliedToMessage": {"messageId": "2", "links": []}, "links": [],
        }  # fmt: skip
        assert await zc(client, "GET", "messages/2", token=t) == (200, sent_view)
        assert await zc(client, "GET", f"messages/{2 * reply + 1}", token=t) == (200, reply_view)
        assert b["messageId"] == "4"
        status, page = await zc(client, "GET", "messages/all", token=t)
        assert status == 200
        assert {k: v for k, v in page.items() if k != "webServiceMessages"} == {
            "page": 1, "pageSize": 50, "elements": 4, "totalElements": 4, "totalPages": 1,
            "links": []}  # fmt: skip
        assert [m["messageId"] for m in page["webServiceMessages"]] == [
            str(2 * stranger + 1), str(2 * reply + 1), "4", "2"]  # fmt: skip
        assert page["webServiceMessages"][2]["numberOfMessages"] == 2
        assert page["webServiceMessages"][2]["creditCost"] == 2.0

        async def ids(**params: str) -> list[str]:
            status, answer = await zc(client, "GET", "messages/all", token=t, params=params)
            assert status == 200, answer
            return [m["messageId"] for m in answer["webServiceMessages"]]

        r, s = str(2 * reply + 1), str(2 * stranger + 1)
        assert await ids(type="OUTBOUND") == ["4", "2"]
        assert await ids(type="inbound") == [s, r]
        assert await ids(status="DELIVERED") == ["2"]
        assert await ids(status="SCHEDULED") == ["4"]
        assert await ids(campaign="spring") == [r, "2"]
        assert await ids(dataField="r1", type="OUTBOUND") == ["2"]
        assert await ids(repliesToMessageId="2") == [r]
        assert await ids(repliesToMessageId="4") == []
        assert await ids(fromNumber="27825550001") == [r]
        assert await ids(toNumber="0825550002") == ["4"]
        assert await ids(message="please") == [r]
        assert await ids(fromDateTimeSent="20261122", toDateTimeSent="20261122") == ["4", "2"]
        assert await ids(fromDateTimeSent="20261123") == []
        assert await ids(fromDateTimeReceived="20261122") == [s, r]
        assert await ids(toDateTimeReceived="20261121") == []
        assert await ids(pageSize="1", page="2") == [r]
        _, answer = await zc(client, "GET", "messages/all", token=t,
                             params={"pageSize": "3", "page": "2"})  # fmt: skip
        assert (answer["elements"], answer["totalPages"], answer["page"]) == (1, 2, 2)
        # Read flags, both methods; then delete (flag) and filter.
        for method in ("PUT", "POST"):
            status, answer = await zc(client, method, f"messages/{r}/markRead", token=t)
            assert (status, answer["read"]) == (200, True)
            assert await ids(read="true") == [r]
            status, answer = await zc(client, method, f"messages/{r}/markUnread", token=t)
            assert (status, answer["read"]) == (200, False)
            assert await ids(read="true") == []
        assert await zc(client, "DELETE", f"messages/{s}", token=t) == (200, None)
        assert await ids(deleted="true") == [s]
        assert await ids(deleted="false") == [r, "4", "2"]
        assert (await zc(client, "GET", f"messages/{s}", token=t))[1]["deleted"] is True
        # Deleting a message not sent yet stops it and gives its credits back.
        before = (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"]
        assert await zc(client, "DELETE", "messages/4", token=t) == (200, None)
        after = (await zc(client, "GET", "account/balance", token=t))[1]["creditBalance"]
        assert after == before + 2
        assert (await zc(client, "GET", "messages/4", token=t))[1]["messageStatus"] == (
            "FAILED_REFUNDED"
        )
        for path, params, status_code, code in [
            ("messages/999", None, 404, 7),
            ("messages/abc", None, 404, 7),
            ("messages/0", None, 404, 7),
            ("messages/all", {"type": "SIDEWAYS"}, 400, 1),
            ("messages/all", {"status": "LOST"}, 400, 1),
            ("messages/all", {"page": "0"}, 400, 1),
            ("messages/all", {"pageSize": "0"}, 400, 1),
            ("messages/all", {"pageSize": "1001"}, 400, 1),
            ("messages/all", {"fromDateTimeSent": "22-11-2026"}, 400, 5),
            ("messages/all", {"read": "perhaps"}, 400, 1),
        ]:
            status, answer = await zc(client, "GET", path, token=t, params=params)
            assert (status, answer["code"]) == (status_code, code), (path, params)
        # Another account sees none of them.
        status, answer = await zc(client, "GET", "messages/2", token=world.other_token,
                                  email="boss@other.example")  # fmt: skip
        assert status == 404

    run(world, tmp_path, scenario)


def test_analyse_calls(world: World, tmp_path: Path) -> None:
    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        body = {"message": "Price: 5€ 😀", "recipientNumber": "+27825551234"}
        assert await zc(client, "POST", "messages/analyse/full", body, token=t) == (200, {
            "messageEncoding": "UNICODE", "messageLength": 12, "numberOfMessages": 1,
            "messageCreditCost": 1.0, "messageLengthWithinMaximumAllowed": True,
            "characterAnalysis": [list("Price: 5€ 😀")]})  # fmt: skip
        assert await zc(client, "POST", "messages/analyse/message-credit-cost", body,
                        token=t) == (200, 1.0)  # fmt: skip
        assert await zc(client, "POST", "messages/analyse/message-encoding", body,
                        token=t) == (200, "UNICODE")  # fmt: skip
        assert await zc(client, "POST", "messages/analyse/message-length", body,
                        token=t) == (200, 12)  # fmt: skip
        assert await zc(client, "POST", "messages/analyse/message-length-within-max-allowed",
                        body, token=t) == (200, True)  # fmt: skip
        assert await zc(client, "POST", "messages/analyse/number-of-messages", body,
                        token=t) == (200, 1)  # fmt: skip
        long = {"message": "x" * 1531}
        assert await zc(client, "POST", "messages/analyse/message-length-within-max-allowed",
                        long, token=t) == (200, False)  # fmt: skip
        _, full = await zc(client, "POST", "messages/analyse/full", {"message": "a" * 161},
                           token=t)  # fmt: skip
        assert [len(p) for p in full["characterAnalysis"]] == [153, 8]
        for payload, code in [
            ({}, 3),
            ({"message": ""}, 3),
            (None, 3),
            ({"message": "Hi", "recipientNumber": "bogus"}, 2),
            ({"message": "\udc00"}, 4),
            ({"message": ["Hi"]}, 1),
        ]:
            status, answer = await zc(client, "POST", "messages/analyse/full", payload, token=t)
            assert (status, answer["code"]) == (400, code), payload

    run(world, tmp_path, scenario)


def test_templates(world: World, tmp_path: Path) -> None:
    welcome = {"templateId": 1, "name": "Welcome", "data": "Welcome to Acme!", "links": []}

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        t = world.token
        assert await zc(client, "GET", "templates/all", token=t) == (
            200, {"webServiceTemplates": [welcome], "links": []})  # fmt: skip
        assert await zc(client, "GET", "templates/1", token=t) == (200, welcome)
        assert (await zc(client, "GET", "templates/2", token=t))[0] == 404  # another account's
        assert (await zc(client, "GET", "templates/x", token=t))[1]["code"] == 1
        assert (await zc(client, "DELETE", "templates/2", token=t))[0] == 404
        assert await zc(client, "DELETE", "templates/1", token=t) == (200, None)
        assert await zc(client, "GET", "templates/all", token=t) == (
            200, {"webServiceTemplates": [], "links": []})  # fmt: skip

    run(world, tmp_path, scenario)


def test_null_bodies_and_content_types(world: World, tmp_path: Path) -> None:
    """Real clients send `Content-Type: application/json` with `null` on GET and DELETE, or no
    body, or a form content type; none of that may fail."""

    async def scenario(client: TestClient, store: Store, service: GatewayService) -> None:
        h = {"email": EMAIL, "token": world.token}
        url = PREFIXES[0] + "/account/balance"
        for data, ctype in [
            (b"null", "application/json"),
            (b"", "application/json"),
            (b" null \n", "application/json; charset=UTF-8"),
            (None, None),
            (b"", "application/x-www-form-urlencoded"),
            (b"{}", "text/plain"),
        ]:
            headers = dict(h) | ({"Content-Type": ctype} if ctype else {})
            r = await client.get(url, data=data, headers=headers)
            assert r.status == 200, (data, ctype)
        r = await client.delete(
            PREFIXES[0] + "/templates/1",
            data=b"null",
            headers=h | {"Content-Type": "application/json"},
        )
        assert r.status == 200
        # A body in a charset other than UTF-8 is a clear 400, not a crash.
        r = await client.post(
            PREFIXES[0] + "/sms/send",
            data="é".encode("latin-1"),
            headers=h | {"Content-Type": "application/json"},
        )
        assert r.status == 400

    run(world, tmp_path, scenario)
