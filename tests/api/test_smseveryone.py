"""SMS Everyone /api/*: every JSON example of the spec sent as written gets an answer with the
keys and value types of the spec's example answer; every error code with its message."""

from __future__ import annotations

import asyncio
import base64
import json
import re
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
from tests.api.test_php_samples import find_spec

# 11:00 in Sydney (the account's timezone) on 28 July 2020: the spec's examples schedule for
# 30 August 2020 and July 2023, so they are in the future as written.
T0 = datetime(2020, 7, 28, 1, 0, tzinfo=UTC)
SIMS = ("+61400190499", "+61400111222", "+61400190444", "+61400190555")
S = PartState


# -- the spec's examples --------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One JSON block of the spec: the line before it, its text as written, and its value."""

    caption: str
    text: str

    @property
    def value(self) -> Any:
        import json5

        return json5.loads(self.text)


def spec_examples() -> list[Example]:
    """Every JSON block of the spec, in order (found by brace matching from a line "{")."""
    lines = find_spec("smseveryone-rest-api.txt").read_text().splitlines()
    found: list[Example] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "{":
            i += 1
            continue
        depth, j = 0, i
        while True:
            depth += lines[j].count("{") - lines[j].count("}")
            if depth == 0:
                break
            j += 1
        caption = next(lines[k] for k in range(i - 1, -1, -1) if lines[k].strip())
        found.append(
            Example(" ".join(caption.replace("\xa0", " ").split()), "\n".join(lines[i : j + 1]))
        )
        i = j + 1
    return found


EXAMPLES = spec_examples()


def example(caption: str, nth: int = 0) -> tuple[int, Example]:
    """The nth example whose caption starts with `caption`."""
    hits = [(i, e) for i, e in enumerate(EXAMPLES) if e.caption.startswith(caption)]
    return hits[nth]


def request_text(caption: str, nth: int = 0, **swap: str) -> str:
    """An example request as written, with ids (and only ids) swapped for the test's."""
    _, found = example(caption, nth)
    text = found.text
    for old, new in swap.items():
        assert old.lstrip("_") in text, (caption, old)
        text = text.replace(old.lstrip("_"), new)
    return text


def answer(caption: str, nth: int = 0) -> Any:
    """An example answer's value (the spec page's no-break spaces read as the spaces they are
    in the provider's answers)."""
    return _spaces(example(caption, nth)[1].value)


def _spaces(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _spaces(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_spaces(v) for v in value]
    return value.replace("\xa0", " ") if isinstance(value, str) else value


def shape(value: Any) -> Any:
    """Keys and value types: what the golden comparison looks at."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def test_the_spec_has_sixty_examples_and_all_parse() -> None:
    assert len(EXAMPLES) == 60
    for found in EXAMPLES:
        assert isinstance(found.value, dict), found.caption


# -- the world ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class World:
    db: Path
    passwords: dict[str, str]


def build_world(directory: Path) -> World:
    store = Store.open(directory)
    jim = create_account(
        store,
        "jimsbusiness",
        now=T0,
        credits=1000,
        default_dial_code="61",
        timezone="Australia/Sydney",
    )
    off = create_account(store, "offline", now=T0, credits=5)
    strict = create_account(
        store, "strict", now=T0, credits=100, default_dial_code="61", timezone="Australia/Sydney"
    )
    broke = create_account(store, "broke", now=T0, credits=0, default_dial_code="61")
    store.set_account_policy(jim.account_id, {"allow_topup": True})
    store.set_account_policy(
        strict.account_id,
        {"allow_unicode": False, "allow_long": False, "allow_international": False},
    )
    store.conn.execute("UPDATE accounts SET api_enabled = 0 WHERE id = ?", (off.account_id,))
    for n, msisdn in enumerate(SIMS):
        store.bind_sim(iccid=f"896100000000000000{n}", imsi=None, msisdn=msisdn, now=T0)
    service = GatewayService(store, wall=lambda: T0)
    for c in (jim, strict, broke):  # scrypt once per process: later checks hit the cache
        service.account_by_credentials(c.sub_account, c.password)
    store.close()
    return World(
        directory / DATABASE_NAME, {c.sub_account: c.password for c in (jim, off, strict, broke)}
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


class Api:
    """A client of /api/* with Basic credentials."""

    def __init__(self, client: TestClient, world: World) -> None:
        self.client = client
        self.world = world

    def auth(self, user: str) -> str:
        token = base64.b64encode(f"{user}:{self.world.passwords[user]}".encode()).decode()
        return f"Basic {token}"

    async def call(
        self,
        path: str,
        body: Any = None,
        *,
        user: str = "jimsbusiness",
        method: str = "POST",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(HTTP status, decoded answer); `body` a dict (sent as JSON), str or bytes (as is)."""
        data = body if isinstance(body, str | bytes) or body is None else json.dumps(body)
        sent = {"Content-Type": "application/json"}
        if user:
            sent["Authorization"] = self.auth(user)
        sent.update(headers or {})
        response = await self.client.request(method, path, data=data, headers=sent)
        assert response.content_type == "application/json", await response.text()
        return response.status, json.loads(await response.text())

    async def ok(self, path: str, body: Any = None, *, user: str = "jimsbusiness") -> Any:
        status, got = await self.call(path, body, user=user)
        assert status == 200, got
        return got


Scenario = Callable[[Api, Store, GatewayService], Awaitable[None]]


def run(
    world: World, tmp_path: Path, scenario: Scenario, *, clock: Callable[[], datetime] = lambda: T0
) -> None:
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=clock)

    async def main() -> None:
        async with TestClient(TestServer(build_app(service))) as client:
            await scenario(Api(client, world), store, service)

    try:
        asyncio.run(main())
    finally:
        store.close()


def settle(
    store: Store,
    message_id: int,
    state: PartState,
    *,
    report: int | None = None,
    cms: int | None = None,
    error: str = "",
) -> None:
    """Walk a queued message's parts to `state` as the outbox and a status report would."""
    for part in store.parts(message_id):
        store.transition_part(part["id"], S.QUEUED, S.SENDING, now=T0, fields={"sim_id": 1})
        if state is S.FAILED and report is None:
            store.transition_part(
                part["id"], S.SENDING, S.FAILED, now=T0, fields={"cms_error": cms, "error": error}
            )
            continue
        store.transition_part(part["id"], S.SENDING, S.SENT, now=T0, fields={"tp_mr": 7})
        if state is not S.SENT:
            store.transition_part(
                part["id"],
                S.SENT,
                state,
                now=T0 + timedelta(seconds=5),
                fields={"report_status": report},
            )


# -- /api/campaign --------------------------------------------------------------------------------


def test_campaign_examples(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        one = await api.ok("/api/campaign", request_text("Send a message to one recipient"))
        assert shape(one) == shape(answer("Response when sending to one recipient"))
        assert (one["Messages"], one["Segments"], one["Credits"]) == (1, 1, 1)

        two = await api.ok("/api/campaign", request_text("Send a message to two recipients"))
        assert shape(two) == shape(answer("Response when sending to two recipients"))
        assert (two["Messages"], two["Credits"]) == (2, 2)

        five = await api.ok("/api/campaign", request_text("Schedule a message to five"))
        assert shape(five) == shape(answer("Response when sending to five recipients"))
        assert (five["Messages"], five["Credits"]) == (5, 5)
        more = await api.ok("/api/campaign", request_text("Add 5 more numbers"))
        assert shape(more) == shape(answer("Response when adding 5 more numbers"))
        # The same campaign, now ten numbers, all still scheduled for 30 Aug 2020 13:00 AEST.
        assert more["CampaignId"] == five["CampaignId"] and more["Messages"] == 5
        rows = service.list_messages(1, batch_id=five["CampaignId"], limit=100)
        assert len(rows) == 10 and {r["state"] for r in rows} == {"accepted"}
        assert {r["send_at"] for r in rows} == {"2020-08-30T03:00:00.000000+00:00"}
        assert {r["sender"] for r in rows} == {"+61400190499"}
        assert {json.loads(r["extra"])["Reference"] for r in rows} == {"1234567"}

        crm = await api.ok(
            "/api/crm",
            {
                "Action": "create",
                "Description": "Stored list",
                "Records": [{"Number": "61400555001,61400555002"}],
            },
        )
        to_list = await api.ok(
            "/api/campaign", request_text("Send an SMS to a stored list", _4398=str(crm["CrmId"]))
        )
        assert shape(to_list) == shape(answer("Response when sending to one recipient"))
        assert to_list["Messages"] == 2

        # The spec's error examples, exactly.
        sent = request_text("Send a message to one recipient")
        no_destination = json.dumps({**json.loads(sent.replace("\xa0", " ")), "Destinations": []})
        assert await api.ok("/api/campaign", no_destination) == answer(
            "Error Response when the destination"
        )
        blank = sent.replace("Hello,\xa0this\xa0is\xa0a\xa0test", "")
        assert await api.ok("/api/campaign", blank) == answer(
            "Error Response when the message text"
        )
        assert await api.ok("/api/campaign", sent, user="broke") == answer(
            "Error Response when there are not enough credits"
        )

        # modify (CampaignID as a string, as written), pause, unpause, status, delete.
        campaign = str(five["CampaignId"])
        modified = await api.ok(
            "/api/campaign", request_text("To modify the message text", _111626243=campaign)
        )
        assert shape(modified) == shape(
            answer("The JSON response object for a successfully modified")
        )
        assert (modified["CampaignId"], modified["Messages"], modified["Credits"]) == (
            int(campaign),
            10,
            10,
        )
        rows = service.list_messages(1, batch_id=int(campaign), limit=100)
        # As written: the spec's page mixes no-break spaces into some texts (they go as UCS-2).
        assert {(r["body"].replace("\xa0", " "), r["sender"], r["send_at"]) for r in rows} == {
            ("Modified message text", "+61400111222", "2020-08-30T03:30:00.000000+00:00")
        }

        status = request_text("To check the status of a campaign", _11967218=campaign)
        assert await api.ok("/api/campaign", status) == answer("Scheduled campaign:")
        paused = await api.ok(
            "/api/campaign", request_text("You can attempt to pause a campaign", _11967218=campaign)
        )
        assert paused == answer("The JSON response object for a successfully paused", 0)
        assert await api.ok("/api/campaign", status) == answer("Paused campaign:")
        unpaused = await api.ok(
            "/api/campaign", request_text("To unpause a campaign", _11967218=campaign)
        )
        assert shape(unpaused) == shape(
            answer("The JSON response object for a successfully paused", 1)
        )
        assert unpaused == {"Message": "Unpaused", "Code": 0}
        running = request_text(
            "To check the status of a campaign", _11967218=str(two["CampaignId"])
        )
        assert await api.ok("/api/campaign", running) == answer("Running campaign:")
        before = store.account(1)["credits"]
        deleted = await api.ok(
            "/api/campaign", request_text("To cancel/delete a campaign", _11967218=campaign)
        )
        assert deleted == answer("The JSON response object for a successfully cancelled")
        assert await api.ok("/api/campaign", status) == answer("Deleted campaign:")
        assert store.account(1)["credits"] == before + 10  # ten scheduled SMS refunded

    run(world, tmp_path, scenario)


# -- /api/DRStatus --------------------------------------------------------------------------------


def test_drstatus_examples(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        sent = await api.ok(
            "/api/campaign",
            {
                "Message": "Hi",
                "Originator": "61400190499",
                "Action": "create",
                "Destinations": ["61400123456", "61400123999", "61400123888", "61400123777"],
            },
        )
        cid = str(sent["CampaignId"])
        ids = [r["id"] for r in service.list_messages(1, batch_id=sent["CampaignId"])][::-1]
        settle(store, ids[0], S.DELIVERED, report=0x00)
        settle(store, ids[1], S.FAILED, report=0x41)
        settle(store, ids[2], S.SENT)  # no report yet: not shown

        every = await api.ok(
            "/api/DRStatus", request_text("Checking for delivery status of all", _11967215=cid)
        )
        one = await api.ok(
            "/api/DRStatus", request_text("Checking for delivery status of just", _11967215=cid)
        )
        assert shape(one) == shape(answer("Successful delivery of an SMS to 61400123456"))
        assert one["Destinations"] == [
            {
                "Destination": "61400123456",
                "TimeStamp": "2020-07-28T11:00:05",
                "Status": {"DeliveryReceiptStatusId": 1, "Code": 0},
            }
        ]
        assert shape(every) == shape(answer("(See Delivery Status Error Codes below)"))
        assert every["Count"] == 2
        assert every["Destinations"][1]["Status"] == {"DeliveryReceiptStatusId": 2, "Code": 0x41}
        # 11967210 is not the account's campaign: the spec's "no information" answer.
        assert await api.ok("/api/DRStatus", {"CampaignId": 11967210}) == answer(
            "No delivery status information"
        )

    run(world, tmp_path, scenario)


# -- /api/replies ---------------------------------------------------------------------------------


def test_replies_examples(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        await api.ok(
            "/api/campaign",
            {
                "Message": "See you tomorrow?",
                "Originator": "61400190444",
                "Destinations": ["61400123456"],
                "Reference": "4499850",
                "Action": "create",
            },
        )
        plain = await api.ok(
            "/api/campaign",
            {
                "Message": "Still on?",
                "Originator": "61400190555",
                "Destinations": ["61400987654"],
                "Action": "create",
            },
        )
        for row in service.list_messages(1):
            part = store.parts(row["id"])[0]
            store.transition_part(part["id"], S.QUEUED, S.SENDING, now=T0, fields={"sim_id": 3})
        for sender, sim, text in (
            ("+61400123456", 3, "Thanks, yes i will be at the appointment"),
            ("+61400987654", 4, "Can we reschedule?"),
        ):
            store.insert_inbound(
                {
                    "account_id": 1,
                    "sim_id": sim,
                    "originator": sender,
                    "recipient": SIMS[sim - 1],
                    "body": text,
                    "encoding": "gsm7",
                    "parts_received": 1,
                    "parts_total": 1,
                    "complete": 1,
                },
                [],
                now=T0 + timedelta(minutes=5),
            )

        test = await api.ok("/api/replies", request_text("To test replies without us flagging"))
        got = await api.ok("/api/replies", request_text("To retrieve all replies on your account"))
        assert test == got
        assert shape(got) == shape(answer("Retrieving 2 replies:"))
        assert got["Messages"] == [
            {
                "Received": "2020-07-28T11:05:00",
                "Originator": "61400123456",
                "Recipient": "61400190444",
                "MessageText": "Thanks, yes i will be at the appointment",
                "ReferenceId": "4499850",
            },
            {
                "Received": "2020-07-28T11:05:00",
                "Originator": "61400987654",
                "Recipient": "61400190555",
                "MessageText": "Can we reschedule?",
                "ReferenceId": str(plain["CampaignId"]),
            },  # no Reference: the campaign's id
        ]
        again = await api.ok("/api/replies", "{}")
        assert again == answer("No messages available to retrieve:")
        # Days and date ranges show what was received, retrieved or not.
        days = await api.ok("/api/replies", request_text("To check replies for the last 2 days"))
        assert days == got
        assert await api.ok(
            "/api/replies", request_text("To check replies for a date range.")
        ) == answer("No messages available to retrieve:")

    run(world, tmp_path, scenario)


# -- /api/RetrieveUserSettings, /api/credits ------------------------------------------------------


def test_user_settings_and_credits_examples(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        mine = await api.ok("/api/RetrieveUserSettings")
        assert mine == {
            "UserId": 1,
            "AllowUnicode": True,
            "AllowInternational": True,
            "Credits": 1000,
            "Code": 0,
        }
        assert shape(mine) == shape(answer("A balance of 116 SMS credits"))
        strict = await api.ok("/api/retrieveusersettings", user="strict")
        assert shape(strict) == shape(answer("A balance of 119 SMS credits"))
        assert (strict["AllowUnicode"], strict["AllowInternational"]) == (False, False)

        topped = await api.ok("/api/credits", request_text("To add 1000 credits to an account:"))
        assert shape(topped) == shape(answer("Successfully added 1000 credits"))
        assert topped == {"Credits": 2000, "Code": 0}
        assert store.conn.execute(
            "SELECT delta, reason FROM credits_ledger ORDER BY id DESC LIMIT 1"
        ).fetchone()[:] == (1000, "top-up by API")
        adding = request_text("To add 1000 credits to an account:")
        assert await api.ok("/api/credits", adding, user="strict") == answer(
            "Attempting to add credits to an account that does not have approval"
        )
        for amount in ("-1000", "0"):
            assert await api.ok("/api/credits", adding.replace("1000", amount)) == answer(
                "Attempting to add a negative amount"
            )

    run(world, tmp_path, scenario)


# -- /api/optouts ---------------------------------------------------------------------------------


def test_optout_examples(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        added = await api.ok("/api/optouts", request_text("To opt out (unsubscribe) the numbers"))
        assert added == answer("Successfully opted out a number:")
        assert service.contacts.opted_out(1, "+61400222333")
        back = await api.ok("/api/optouts", request_text("To opt the number 61400123456 back in"))
        assert back == answer("Successfully opted a number back in:")
        store.set_opt_out(1, "+61400999999", True, keyword="STOP", now=T0 + timedelta(hours=1))
        listed = await api.ok("/api/optouts", request_text("To retrieve a list of all opted out"))
        assert shape(listed) == shape(answer("Retrieving a list of all optouts."))
        assert listed == {
            "Count": 2,
            "OptOut": [
                {
                    "Added": "2020-07-28 11:00:00",
                    "Originator": "61400222333",
                    "MessageText": "",
                    "Reason": "Client",
                },
                {
                    "Added": "2020-07-28 12:00:00",
                    "Originator": "61400999999",
                    "MessageText": "STOP",
                    "Reason": "Reply",
                },
            ],
        }

    run(world, tmp_path, scenario)


# -- /api/crm -------------------------------------------------------------------------------------


def test_crm_examples(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        created = await api.ok("/api/crm", request_text("CREATE - To create a list"))
        assert shape(created) == shape(answer("CREATE - List successfully created."))
        crm = str(created["CrmId"])
        listed = await api.ok("/api/crm", request_text("LIST - To retrieve a list of all"))
        assert shape(listed) == shape(answer("LIST - Retrieving a list of all lists"))
        assert listed["Groups"] == [
            {
                "CrmId": int(crm),
                "Description": "Daily VIP client SMS",
                "Count": 2,
                "ParentGroup": 0,
                "ActiveCampaign": 0,
                "Deleted": "",
            }
        ]
        appended = await api.ok("/api/crm", request_text("APPEND - To add 2 more", _14456=crm))
        assert shape(appended) == shape(answer("APPEND - Successfully added 1 number"))
        assert appended == {"Message": "Added 2 numbers", "Code": 0}
        removed = await api.ok("/api/crm", request_text("REMOVE - To remove a number", _14456=crm))
        assert removed == answer("REMOVE - Successfully removed 1 number")
        details = await api.ok("/api/crm", request_text("DETAILS - To retrieve all", _1234=crm))
        assert shape(details) == shape(answer("DETAILS - Retrieving all of the numbers"))
        assert [r["Number"] for r in details["Records"]] == [
            "61400123456",
            "61400999111",
            "61400222333",
        ]
        # The spec's DELETE example has a trailing comma; Json.NET takes it, and so do we.
        deleted = await api.ok(
            "/api/crm", request_text("DELETE - To delete the above list.", _14456=crm)
        )
        assert deleted == answer("DELETE- Successfully deleted a list.")
        assert service.contacts.group_rows(1) == []

    run(world, tmp_path, scenario)


def test_every_example_of_the_spec_is_used() -> None:
    """The tests of this file send or compare against every one of the spec's 60 examples."""
    source = Path(__file__).read_text()
    used = set()
    for caption, nth in re.findall(r'(?:request_text|answer)\(\s*"([^"]+)"(?:,\s*(\d+))?', source):
        used.add(example(caption, int(nth or 0))[0])
    assert sorted(set(range(len(EXAMPLES))) - used) == []


# -- every error code -----------------------------------------------------------------------------

CREATE = {
    "Message": "Hello",
    "Originator": "61400190499",
    "Destinations": ["61400123456"],
    "Action": "create",
}


def _b64(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_authentication_errors(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        for header in (
            "",
            "Bearer abc",
            "Basic",
            "Basic !!!notbase64",
            _b64("no-colon"),
            _b64(":password-only"),
            "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
        ):
            status, got = await api.call(
                "/api/campaign",
                CREATE,
                user="",
                headers={"Authorization": header} if header else {},
            )
            assert (status, got) == (
                401,
                {"Message": "Authorization has been denied for this request.", "Code": -100},
            ), header
        for header in (_b64("jimsbusiness:wrong"), _b64("nobody:x")):
            status, got = await api.call(
                "/api/campaign", CREATE, user="", headers={"Authorization": header}
            )
            assert (status, got) == (401, {"Message": "Invalid username or password", "Code": -101})
        status, got = await api.call("/api/RetrieveUserSettings", user="offline")
        assert (status, got) == (403, {"Message": "Account disabled", "Code": -102})
        response = await api.client.post("/api/campaign", data="{}")
        assert response.headers["WWW-Authenticate"] == 'Basic realm="SMS Everyone"'
        assert store.list_messages(1) == []

    run(world, tmp_path, scenario)


def test_request_errors(world: World, tmp_path: Path) -> None:
    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        for body in ("{", "[1, 2]", '"text"', "null", b"\xff\xfe{}", "{'a': }", "[" * 100_000):
            status, got = await api.call("/api/campaign", body)
            assert (
                status == 400 and got["Code"] == -103 and got["Message"].startswith("Invalid JSON")
            ), body[:10]
        status, got = await api.call("/api/campaign", b"x" * (10 * 1024 * 1024))
        assert (status, got) == (413, {"Message": "Request body too large", "Code": -104})
        for path in ("/api/nothing", "/api/campaign/extra/bits", "/api/x/"):
            status, got = await api.call(path, CREATE)
            assert (status, got["Code"]) == (404, -105), path
        # /api/rest/v1/... is Zoom Connect's, /api_v1 BestSMS's, /apis/ UltraSMS's: not ours
        for path in ("/api/rest/v1/account/balance", "/api_v1", "/apis/getcreditbalance/"):
            response = await api.client.get(path)
            assert "-105" not in await response.text(), path
        for method in ("GET", "PUT", "DELETE"):
            status, got = await api.call("/api/campaign", None, method=method)
            assert (status, got["Code"]) == (405, -106), method
        # names of resources, properties and actions ignore case; a trailing slash is fine
        for path in ("/api/Campaign", "/API/campaign/", "/api/CAMPAIGN"):
            status, got = await api.call(
                path, {"message": "x", "DESTINATIONS": ["61400123456"], "aCtIoN": "Create"}
            )
            assert status == 200 and got["Code"] == 0, path

    run(world, tmp_path, scenario)


ERROR_CASES: list[tuple[str, Any, str, int]] = [
    # (path, body, user, code)
    ("/api/campaign", {"Action": "launch"}, "jimsbusiness", -107),
    ("/api/campaign", {}, "jimsbusiness", -107),
    ("/api/credits", {"credits": 5}, "jimsbusiness", -107),
    ("/api/optouts", {"Action": "purge"}, "jimsbusiness", -107),
    ("/api/crm", {"Action": "merge"}, "jimsbusiness", -107),
    ("/api/campaign", {**CREATE, "TimeScheduled": "2020-08-30 13:00"}, "jimsbusiness", -108),
    ("/api/campaign", {**CREATE, "TimeScheduled": "202002301300"}, "jimsbusiness", -108),
    ("/api/campaign", {**CREATE, "Reference": "r" * 201}, "jimsbusiness", -108),
    ("/api/campaign", {**CREATE, "CrmIds": ["list"]}, "jimsbusiness", -108),
    ("/api/campaign", {"Action": "status", "CampaignId": True}, "jimsbusiness", -108),
    ("/api/campaign", {"Action": "status", "CampaignId": "12a"}, "jimsbusiness", -108),
    ("/api/replies", {"Days": 0}, "jimsbusiness", -108),
    ("/api/replies", {"Days": "two"}, "jimsbusiness", -108),
    ("/api/replies", {"Test": "maybe"}, "jimsbusiness", -108),
    ("/api/replies", {"DateStart": "01/06/2020"}, "jimsbusiness", -108),
    ("/api/campaign", {**CREATE, "Destinations": []}, "jimsbusiness", -111),
    ("/api/campaign", {**CREATE, "Destinations": ["not a number", None, {}]}, "jimsbusiness", -111),
    ("/api/campaign", {**CREATE, "Destinations": 61400123456.5}, "jimsbusiness", -111),
    (
        "/api/campaign",
        {k: v for k, v in CREATE.items() if k != "Destinations"},
        "jimsbusiness",
        -111,
    ),
    ("/api/campaign", {**CREATE, "Destinations": ["6421123456"]}, "strict", -111),  # NZ: not home
    ("/api/DRStatus", {"CampaignId": 1, "Destination": "nope"}, "jimsbusiness", -111),
    ("/api/campaign", {**CREATE, "Originator": "61499999999"}, "jimsbusiness", -112),
    ("/api/campaign", {**CREATE, "Originator": "MyBrand"}, "jimsbusiness", -112),
    ("/api/campaign", {"Action": "pause", "CampaignId": 999}, "jimsbusiness", -114),
    ("/api/campaign", {"Action": "status"}, "jimsbusiness", -115),
    ("/api/DRStatus", {}, "jimsbusiness", -115),
    ("/api/campaign", {**CREATE, "Message": "x" * 2001}, "jimsbusiness", -116),
    ("/api/campaign", {**CREATE, "Message": "x" * 100_000}, "jimsbusiness", -116),
    ("/api/campaign", {**CREATE, "Message": "   "}, "jimsbusiness", -117),
    ("/api/campaign", {**CREATE, "Message": ["Hello"]}, "jimsbusiness", -117),
    ("/api/campaign", {**CREATE, "Message": "Hello 😀"}, "strict", -118),
    ("/api/campaign", {**CREATE, "Message": "x" * 161}, "strict", -119),
    ("/api/campaign", {**CREATE, "CrmIds": [999]}, "jimsbusiness", -121),
    ("/api/crm", {"Action": "details", "CrmId": 999}, "jimsbusiness", -121),
    ("/api/crm", {"Action": "details"}, "jimsbusiness", -122),
    ("/api/crm", {"Action": "create", "Records": []}, "jimsbusiness", -123),
    ("/api/optouts", {"Action": "add", "Originator": ["not a number"]}, "jimsbusiness", -125),
    ("/api/optouts", {"Action": "delete"}, "jimsbusiness", -125),
    ("/api/credits", {"credits": 1000, "action": "add"}, "strict", -129),
    ("/api/credits", {"credits": "lots", "action": "add"}, "jimsbusiness", -130),
    ("/api/credits", {"credits": 1.5, "action": "add"}, "jimsbusiness", -130),
    ("/api/credits", {"credits": 10**12, "action": "add"}, "jimsbusiness", -130),
    ("/api/campaign", CREATE, "broke", -202),
]


def test_every_error_code_with_its_message(world: World, tmp_path: Path) -> None:
    from api.smseveryone import ERRORS

    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        for path, body, user, code in ERROR_CASES:
            status, got = await api.call(path, body, user=user)
            message = ERRORS[code][0] if code != -108 else got["Message"]
            assert (status, got) == (200, {"Message": message, "Code": code}), (path, body)
            if code == -108:
                assert re.fullmatch(r"Invalid value for \w+", got["Message"]), got
        # the ones that need a campaign or a list first
        scheduled = await api.ok("/api/campaign", {**CREATE, "TimeScheduled": "202008301300"})
        cid = scheduled["CampaignId"]
        got = await api.ok(
            "/api/campaign",
            {"Action": "modify", "CampaignId": cid, "TimeScheduled": "202001011200"},
        )
        assert got == {"Message": "TimeScheduled is in the past", "Code": -113}
        got = await api.ok("/api/campaign", {"Action": "status", "CampaignId": cid}, user="strict")
        assert got == {"Message": "Campaign not found", "Code": -114}  # another account's
        await api.ok("/api/campaign", {"Action": "delete", "CampaignId": cid})
        for action in ("pause", "unpause", "modify"):
            got = await api.ok(
                "/api/campaign", {"Action": action, "CampaignId": cid, "Message": "x"}
            )
            assert got == {"Message": "Campaign has finished or was deleted", "Code": -120}, action
        await api.ok("/api/crm", {"Action": "create", "Description": "Twice"})
        got = await api.ok("/api/crm", {"Action": "create", "Description": "Twice"})
        assert got == {"Message": "A CRM list with that description already exists", "Code": -124}
        listed = await api.ok("/api/crm", {"Action": "list"})
        got = await api.ok(
            "/api/crm",
            {
                "Action": "append",
                "CrmId": listed["Groups"][0]["CrmId"],
                "Records": [{"Number": "junk"}],
            },
        )
        assert got == {"Message": "No valid number(s) specified", "Code": -125}
        assert store.account(4)["credits"] == 0 and store.list_messages(4) == []

    run(world, tmp_path, scenario)


def test_every_code_in_the_table_is_tested() -> None:
    from api.smseveryone import ERRORS

    tested = {code for *_, code in ERROR_CASES} | {
        -100,
        -101,
        -102,
        -103,
        -104,
        -105,
        -106,
        -113,
        -120,
        -124,
        -500,
        -429,  # tests/api/test_limits.py
        -503,  # tests/api/test_store_unavailable.py
    }
    assert set(ERRORS) == tested


def test_an_internal_failure_is_the_dialects_500(world: World, tmp_path: Path) -> None:
    import sqlite3

    async def scenario(api: Api, store: Store, service: GatewayService) -> None:
        def broken(*_: Any, **__: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        store.stage_batches = broken  # type: ignore[method-assign]
        status, got = await api.call("/api/campaign", CREATE)
        assert (status, got) == (500, {"Message": "Internal error", "Code": -500})
        assert store.account(1)["credits"] == 1000

    run(world, tmp_path, scenario)
