"""Sub-account isolation over every endpoint of every dialect: account A, naming B's ids, groups
and codes, can never read, cancel, change or count B's messages, contacts, groups, replies,
OTPs or webhooks. A route or call without a case here fails the coverage tests below."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import encode_basic_auth
from aiohttp.test_utils import TestClient, TestServer

from api import bestsms, native, smseveryone, ultrasms, zoomconnect
from api.app import build_app
from gateway.accounts import secret_digest
from gateway.models import PartState as S
from gateway.service import GatewayService, Outgoing
from gateway.store import DATABASE_NAME, Store
from tests.api.test_bestsms import T0, World, build_world

B = 1  # the world's main sub-account holds the data; A is its "003_poor" sub-account
A_NAME = "003_poor"
# What must never show in an answer to A: B's texts, a contact's name, B's webhook URL, and the
# number B's delivered message went to (drstatus, messages, reports).
SECRETS = ("B-secret-body", "B-secret-reply", "Pearl", "b-hook", "2348086689567")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return build_world(tmp_path_factory.mktemp("world"))


@dataclass(frozen=True)
class Ids:
    """B's objects, as A would name them."""

    message: int
    batch: int
    scheduled_batch: int
    event: str
    otp: str
    contact: int
    group: int
    inbound: int
    b: int = B

    @property
    def zoom_out(self) -> str:
        return zoomconnect.message_ref("out", self.message)

    @property
    def zoom_in(self) -> str:
        return zoomconnect.message_ref("in", self.inbound)


@dataclass(frozen=True)
class Case:
    dialect: str
    route: str  # "METHOD /path" for /v1, the action or call name for the others
    request: Callable[[Ids], tuple[str, str, dict[str, Any]]]  # method, path, params/json


def _v1(method: str, path: str, body: dict[str, Any] | None = None) -> Callable[..., Any]:
    return lambda ids: (method, "/v1" + path.format(ids=ids), {"json": body} if body else {})


def _best(action: str, **params: str) -> Callable[..., Any]:
    return lambda ids: ("POST", "/api_v1", {"data": {"action": action, **{
        k: v.format(ids=ids) for k, v in params.items()}}})  # fmt: skip


def _ultra(name: str, **params: str) -> Callable[..., Any]:
    return lambda ids: ("POST", f"/apis/{name}/", {"data": {
        k: v.format(ids=ids) for k, v in params.items()}})  # fmt: skip


def _zoom(method: str, path: str, body: dict[str, Any] | None = None) -> Callable[..., Any]:
    return lambda ids: (method, "/app/api/rest/v1/" + path.format(ids=ids),
                        {"json": body} if body else {})  # fmt: skip


def _sme(resource: str, body: Callable[[Ids], dict[str, Any]]) -> Callable[..., Any]:
    return lambda ids: ("POST", f"/api/{resource}", {"json": body(ids)})


SME_CASES = [
    ("campaign:create", "campaign",
     lambda i: {"Action": "Create", "Message": "A", "Destinations": ["2348094309926"]}),
    ("campaign:delete", "campaign",
     lambda i: {"Action": "Delete", "CampaignId": i.scheduled_batch}),
    ("campaign:modify", "campaign",
     lambda i: {"Action": "Modify", "CampaignId": i.scheduled_batch, "Message": "hijacked"}),
    ("campaign:pause", "campaign", lambda i: {"Action": "Pause", "CampaignId": i.scheduled_batch}),
    ("campaign:unpause", "campaign", lambda i: {"Action": "Unpause", "CampaignId": i.batch}),
    ("campaign:status", "campaign", lambda i: {"Action": "Status", "CampaignId": i.batch}),
    ("drstatus", "drstatus", lambda i: {"CampaignId": i.batch}),
    ("replies", "replies", lambda i: {"Days": 30}),
    ("retrieveusersettings", "RetrieveUserSettings", lambda i: {}),
    ("optouts:list", "optouts", lambda i: {"Action": "List"}),
    ("optouts:delete", "optouts", lambda i: {"Action": "Delete", "Originator": ["447700900555"]}),
    ("crm:list", "crm", lambda i: {"Action": "List"}),
    ("crm:details", "crm", lambda i: {"Action": "Details", "CrmId": i.group}),
    ("crm:append", "crm",
     lambda i: {"Action": "Append", "CrmId": i.group, "Destinations": ["2348011111111"]}),
    ("crm:delete", "crm", lambda i: {"Action": "Delete", "CrmId": i.group}),
    ("credits", "credits", lambda i: {"Action": "Add", "Credits": 5}),
]  # fmt: skip

ZOOM_CASES = [
    ("GET", "account/balance", None),
    ("GET", "account/statistics", None),
    ("POST", "account/transfer", {"numberOfCreditsToTransfer": 1,
                                  "transferFromEmailAddress": "example@gmail.com",
                                  "transferToEmailAddress": "a@example.com"}),
    ("GET", "account/user", None),
    ("PUT", "account/user", {"emailAddress": "new@example.com", "firstName": "N"}),
    ("GET", "account/user/{ids.b}", None),
    ("POST", "account/user/{ids.b}", {"firstName": "hijacked", "creditBalance": 0}),
    ("GET", "sms/send", None),
    ("POST", "sms/send", {"recipientNumber": "+2348094309926", "message": "A"}),
    ("GET", "sms/send-bulk", None),
    ("POST", "sms/send-bulk", {"sendSmsRequests": [{"recipientNumber": "+2348094309926",
                                                    "message": "A"}]}),
    ("GET", "sms/send-url-parameters", None),
    ("GET", "sms/send-url/{{token}}", None),
    ("GET", "contacts/all", None),
    ("POST", "contacts/create", {"firstName": "A", "contactNumber": "+2348094309926"}),
    ("GET", "contacts/{ids.contact}", None),
    ("POST", "contacts/{ids.contact}", {"firstName": "hijacked"}),
    ("DELETE", "contacts/{ids.contact}", None),
    ("POST", "contacts/{ids.contact}/addFromGroup/{ids.group}", None),
    ("POST", "contacts/{ids.contact}/addToGroup/{ids.group}", None),
    ("GET", "groups/all", None),
    ("POST", "groups/create", {"name": "My Customers"}),
    ("GET", "groups/{ids.group}", None),
    ("POST", "groups/{ids.group}", {"name": "hijacked"}),
    ("DELETE", "groups/{ids.group}", None),
    ("POST", "groups/{ids.group}/addContact/{ids.contact}", None),
    ("POST", "groups/{ids.group}/removeContact/{ids.contact}", None),
    ("GET", "messages/all", None),
    ("POST", "messages/analyse/full", {"message": "hi"}),
    ("POST", "messages/analyse/message-credit-cost", {"message": "hi"}),
    ("POST", "messages/analyse/message-encoding", {"message": "hi"}),
    ("POST", "messages/analyse/message-length", {"message": "hi"}),
    ("POST", "messages/analyse/number-of-messages", {"message": "hi"}),
    ("POST", "messages/analyse/message-length-within-max-allowed", {"message": "hi"}),
    ("GET", "messages/{ids.zoom_out}", None),
    ("GET", "messages/{ids.zoom_in}", None),
    ("DELETE", "messages/{ids.zoom_out}", None),
    ("DELETE", "messages/{ids.zoom_in}", None),
    ("POST", "messages/{ids.zoom_in}/markRead", None),
    ("POST", "messages/{ids.zoom_in}/markUnread", None),
    ("GET", "templates/all", None),
    ("GET", "templates/1", None),
    ("DELETE", "templates/1", None),
]  # fmt: skip

CASES = [
    Case("v1", "POST /messages", _v1("POST", "/messages", {"to": "+2348094309926", "text": "A"})),
    Case("v1", "GET /messages", _v1("GET", "/messages?limit=200")),
    Case("v1", "GET /messages/{id}", _v1("GET", "/messages/{ids.message}")),
    Case("v1", "DELETE /messages/{id}", _v1("DELETE", "/messages/{ids.message}")),
    Case("v1", "GET /batches/{id}", _v1("GET", "/batches/{ids.batch}")),
    Case("v1", "POST /batches/{id}/{action}", _v1("POST", "/batches/{ids.scheduled_batch}/pause")),
    Case("v1", "DELETE /batches/{id}", _v1("DELETE", "/batches/{ids.scheduled_batch}")),
    Case("v1", "PATCH /batches/{id}",
         _v1("PATCH", "/batches/{ids.scheduled_batch}", {"text": "hijacked"})),
    Case("v1", "GET /modems", _v1("GET", "/modems")),
    Case("v1", "GET /contacts", _v1("GET", "/contacts?group=My%20Customers")),
    Case("v1", "POST /contacts",
         _v1("POST", "/contacts", {"contacts": [{"number": "+2348094309926",
                                                 "group": "My Customers"}]})),
    Case("v1", "GET /groups", _v1("GET", "/groups")),
    Case("v1", "GET /inbox", _v1("GET", "/inbox")),
    Case("v1", "GET /sims", _v1("GET", "/sims")),
    Case("v1", "GET /webhooks", _v1("GET", "/webhooks")),
    Case("v1", "PUT /webhooks", _v1("PUT", "/webhooks", {"reply": "https://a.example/"})),
    Case("v1", "POST /webhooks/test", _v1("POST", "/webhooks/test", {"type": "reply"})),
    Case("v1", "GET /webhooks/events", _v1("GET", "/webhooks/events")),
    Case("v1", "POST /webhooks/events/{id}/retry",
         _v1("POST", "/webhooks/events/{ids.event}/retry")),
    Case("v1", "GET /health", _v1("GET", "/health")),
    Case("v1", "GET /openapi.json", _v1("GET", "/openapi.json")),
    Case("bestsms", "send_sms", _best("send_sms", message="A", recipients="+2348094309926")),
    Case("bestsms", "fetch_sms", _best("fetch_sms", sms_ids="{ids.message}")),
    Case("bestsms", "account_info", _best("account_info")),
    Case("bestsms", "stop_sms", _best("stop_sms", sms_ids="{ids.message}")),
    Case("bestsms", "delete_sms", _best("delete_sms", sms_ids="{ids.message}")),
    Case("bestsms", "get_total_units", _best("get_total_units", sms_ids="{ids.message}")),
    Case("bestsms", "save_contacts",
         _best("save_contacts", contacts="+2348094309926", group_name="My Customers")),
    Case("bestsms", "fetch_contacts", _best("fetch_contacts", contact_ids="{ids.contact}")),
    Case("bestsms", "get_contact_groups", _best("get_contact_groups")),
    Case("bestsms", "delete_contacts", _best("delete_contacts", contact_ids="{ids.contact}")),
    Case("ultrasms", "addcontact", _ultra("addcontact", group="My Customers", number="2348011")),
    Case("ultrasms", "getcontacts", _ultra("getcontacts", group="My Customers")),
    Case("ultrasms", "smsgroup", _ultra("smsgroup", to="My Customers", message="A",
                                         **{"from": "447700900001"})),
    Case("ultrasms", "getbulksmsdeliveryreport",
         _ultra("getbulksmsdeliveryreport", groupsmsid="{ids.batch}")),
    Case("ultrasms", "smscontact", _ultra("smscontact", to="+2348094309926", message="A",
                                           **{"from": "447700900001"})),
    Case("ultrasms", "getcontactsmsdeliveryreport",
         _ultra("getcontactsmsdeliveryreport", number="+2348086689567")),
    Case("ultrasms", "getcreditbalance", _ultra("getcreditbalance", type="1")),
    Case("ultrasms", "addappointment", _ultra("addappointment", number="+2348094309926",
                                               apptdate="01-12-2026 10:00", status="Confirmed")),
    Case("ultrasms", "generateotp", _ultra("generateotp")),
    Case("ultrasms", "validateotp", _ultra("validateotp", otp="{ids.otp}")),
    *(Case("zoomconnect", f"{m} {p}", _zoom(m, p, b)) for m, p, b in ZOOM_CASES),
    *(Case("smseveryone", route, _sme(resource, body)) for route, resource, body in SME_CASES),
]  # fmt: skip


def _b_rows(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of B's, in every table that has an account, plus its parts and account."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    for table in store.table_names():
        columns = [r[1] for r in store.conn.execute(f"PRAGMA table_info({table})")]
        if "account_id" in columns:
            rows[table] = [tuple(r) for r in store.conn.execute(
                f"SELECT * FROM {table} WHERE account_id = ? ORDER BY rowid", (B,))]  # fmt: skip
    rows["parts"] = [tuple(r) for r in store.conn.execute(
        "SELECT p.* FROM parts p JOIN messages m ON m.id = p.message_id WHERE m.account_id = ?"
        " ORDER BY p.id", (B,))]  # fmt: skip
    rows["accounts"] = [
        tuple(store.conn.execute("SELECT * FROM accounts WHERE id = ?", (B,)).fetchone())
    ]
    return rows


def _b_data(store: Store, service: GatewayService) -> Ids:
    """B sends a batch (now) and one for later, gets a reply, a webhook event and an OTP."""
    now = service.submit_batch(B, [Outgoing("+2348086689567", "B-secret-body")])
    # Delivered, with a status report: reports and receipts of B exist to be asked for.
    for part in store.parts(now.message_ids[0]):
        store.transition_part(part["id"], S.QUEUED, S.SENDING, now=T0, fields={"sim_id": 1})
        store.transition_part(part["id"], S.SENDING, S.SENT, now=T0, fields={"tp_mr": 7})
        store.transition_part(part["id"], S.SENT, S.DELIVERED, now=T0 + timedelta(seconds=5),
                              fields={"report_status": 0})  # fmt: skip
    later = service.submit_batch(
        B, [Outgoing("+2348094309926", "B-secret-body", send_at=T0 + timedelta(days=3))]
    )
    store.insert_inbound(
        {"account_id": B, "sim_id": None, "originator": "+2348086689567",
         "recipient": "+447700900001", "body": "B-secret-reply", "encoding": "gsm7",
         "parts_received": 1, "parts_total": 1, "complete": 1, "scts": T0.isoformat()},
        [], now=T0,
    )  # fmt: skip
    service.set_webhook(B, "reply", "https://b.example/b-hook")
    event = service.fire_test_webhook(B, "reply")
    otp = service.generate_otp(B, None)
    contact = store.conn.execute(
        "SELECT id FROM contacts WHERE account_id = ? AND first_name = 'Pearl'", (B,)
    ).fetchone()[0]
    group = store.conn.execute(
        "SELECT id FROM contact_groups WHERE account_id = ? AND name = 'My Customers'", (B,)
    ).fetchone()[0]
    inbound = store.conn.execute("SELECT id FROM inbound WHERE account_id = ?", (B,)).fetchone()[0]
    store.conn.execute("UPDATE accounts SET email = 'a@example.com', token = ? WHERE id = 3",
                       (secret_digest("zoom-token-of-a"),))  # fmt: skip
    return Ids(now.message_ids[0], now.batch_id, later.batch_id, event, otp.code, int(contact),
               int(group), int(inbound))  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.dialect}:{c.route}")
def test_account_a_cannot_touch_account_b(world: World, tmp_path: Path, case: Case) -> None:
    shutil.copy(world.db, tmp_path / DATABASE_NAME)
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=lambda: T0)
    store.add_credits(3, 50, "test", now=T0)  # A can pay for what it tries
    ids = _b_data(store, service)
    before = _b_rows(store)
    auth = {
        "v1": {"headers": {"Authorization": f"Bearer {world.poor_key}"}},
        "bestsms": {"sub_account": A_NAME, "sub_account_pass": world.poor_password},
        "ultrasms": {"apikey": world.poor_key},
        "zoomconnect": {"headers": {"email": "a@example.com", "token": "zoom-token-of-a"}},
        "smseveryone": {
            "headers": {"Authorization": encode_basic_auth(A_NAME, world.poor_password)}
        },
    }[case.dialect]

    async def main() -> str:
        async with TestClient(TestServer(build_app(service))) as client:
            method, path, kwargs = case.request(ids)
            if case.dialect in ("v1", "zoomconnect", "smseveryone"):
                kwargs = {**kwargs, **auth}
            else:
                kwargs = {"data": {**kwargs["data"], **auth}}
            response = await client.request(method, path, **kwargs)
            assert response.status < 500 or path == "/v1/health"  # no modem: not ready
            return await response.text()

    try:
        text = asyncio.run(main())
        leaked = [s for s in (*SECRETS, ids.event) if s in text]
        assert not leaked, text
        assert _b_rows(store) == before  # nothing of B's read-and-changed, cancelled or used
        assert service.validate_otp(B, ids.otp).value == "valid"  # B's code still works
    finally:
        store.close()


def test_every_v1_route_has_an_isolation_case() -> None:
    app = native.build(GatewayService.__new__(GatewayService))
    routes = {
        f"{r.method} {r.resource.canonical[len('') :]}"
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    covered = {c.route for c in CASES if c.dialect == "v1"}
    normalised = {r.replace("{action:pause|resume}", "{action}") for r in routes}
    assert normalised == covered


def test_every_zoomconnect_route_has_an_isolation_case() -> None:
    covered = {c.route.split(" ", 1)[1].replace("{ids.zoom_out}", "{messageId}")
               .replace("{ids.zoom_in}", "{messageId}").replace("{ids.contact}", "{contactId}")
               .replace("{ids.group}", "{groupId}").replace("{ids.b}", "{userId}")
               .replace("{{token}}", "{token}").replace("templates/1", "templates/{templateId}")
               for c in CASES if c.dialect == "zoomconnect"}  # fmt: skip
    assert {path for _, path, _ in zoomconnect.ROUTES} == covered


def test_every_smseveryone_resource_and_action_has_an_isolation_case() -> None:
    covered = {c.route for c in CASES if c.dialect == "smseveryone"}
    expected = {f"campaign:{a}" for a in smseveryone._CAMPAIGN_ACTIONS}
    expected |= set(smseveryone.RESOURCES) - {"campaign", "optouts", "crm"}
    expected |= {"optouts:list", "optouts:delete", "crm:list", "crm:details", "crm:append",
                 "crm:delete"}  # fmt: skip
    assert covered == expected


def test_every_bestsms_action_and_ultrasms_call_has_an_isolation_case() -> None:
    assert set(bestsms.ACTIONS) == {c.route for c in CASES if c.dialect == "bestsms"}
    assert set(ultrasms.CALLS) == {c.route for c in CASES if c.dialect == "ultrasms"}
