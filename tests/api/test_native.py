"""The /v1 JSON API over GatewayService (in-process aiohttp server)."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.accounts import create_account
from gateway.service import GatewayService
from gateway.store import Store

T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _run(
    tmp_path: Path, scenario: Callable[[TestClient, dict[str, str], Store], Awaitable[None]]
) -> None:
    store = Store.open(tmp_path)
    creds = create_account(store, "shop", now=T0, credits=3, default_dial_code="44")
    headers = {"Authorization": f"Bearer {creds.api_key}"}

    async def main() -> None:
        async with TestClient(
            TestServer(build_app(GatewayService(store, wall=lambda: T0)))
        ) as client:
            await scenario(client, headers, store)

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_submit_list_get_cancel(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.post(
            "/v1/messages", json={"to": ["07700 900123", "x"], "text": "Hi ✓"}, headers=headers
        )
        assert r.status == 201
        body: dict[str, Any] = await r.json()
        assert body["encoding"] == "ucs2"
        assert body["credits_charged"] == 1
        assert body["rejected"][0]["to"] == "x"
        (mid,) = body["message_ids"]
        assert store.message(mid)["state"] == "queued"  # durable before the 201

        r = await client.get("/v1/messages", params={"state": "queued"}, headers=headers)
        (listed,) = (await r.json())["messages"]
        assert (listed["id"], listed["to"], listed["parts"]) == (mid, "+447700900123", 1)

        r = await client.get(f"/v1/messages/{mid}", headers=headers)
        detail = await r.json()
        assert detail["part_details"][0]["state"] == "queued"

        r = await client.delete(f"/v1/messages/{mid}", headers=headers)
        assert (await r.json()) == {"cancelled_parts": 1}
        assert store.account(1)["credits"] == 3  # refunded

    _run(tmp_path, scenario)


def test_errors_are_json_with_the_right_status(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.post("/v1/messages", json={"to": "+15551230001", "text": "hi"})
        assert r.status == 401
        assert (await r.json())["error"]["code"] == "unknown_account"
        r = await client.post("/v1/messages", data=b"{nope", headers=headers)
        assert r.status == 400
        assert "not JSON" in (await r.json())["error"]["message"]
        r = await client.post("/v1/messages", json={"to": 5, "text": "hi"}, headers=headers)
        assert r.status == 400
        many = [f"+1555123000{i}" for i in range(4)]
        r = await client.post("/v1/messages", json={"to": many, "text": "hi"}, headers=headers)
        assert r.status == 402
        assert (await r.json())["error"]["code"] == "insufficient_credits"
        r = await client.get("/v1/messages/999", headers=headers)
        assert r.status == 404
        # Unknown paths, bad ids and wrong methods answer in the API's own JSON, not aiohttp's text.
        for path in ("/v1/messages/None", "/v1/nope"):
            r = await client.get(path, headers=headers)
            assert (r.status, r.content_type) == (404, "application/json")
            assert (await r.json())["error"]["code"] == "not_found"
        r = await client.put("/v1/messages", json={}, headers=headers)
        assert (r.status, r.content_type) == (405, "application/json")
        assert (await r.json())["error"]["code"] == "method_not_allowed"
        assert "POST" in r.headers["Allow"]
        r = await client.get("/v1/messages", params={"state": "bogus"}, headers=headers)
        assert r.status == 400
        r = await client.post(
            "/v1/messages",
            json={"to": "+15551230001", "text": "hi", "send_at": "2026-12-01 10:00"},
            headers=headers,
        )
        assert r.status == 400
        assert "offset" in (await r.json())["error"]["message"]
        # JSON may carry a lone surrogate, which no SMS alphabet can encode: a 400, not a 500.
        body = b'{"to": "+15551230001", "text": "bad \\ud800 text"}'
        r = await client.post(
            "/v1/messages", data=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert r.status == 400
        assert "cannot be encoded" in (await r.json())["error"]["message"]

    _run(tmp_path, scenario)


def test_health_and_openapi_are_public(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.get("/v1/health")
        assert r.status == 503  # answered without a key; no daemon here, so no modem is ready
        body = await r.json()
        assert (body["database"], body["status"]) == ("ok", "not_ready")
        assert body["problems"] == ["no modem configured or discovered"]
        r = await client.get("/v1/openapi.json")
        doc = await r.json()
        assert doc["openapi"].startswith("3.")
        assert {"/messages", "/messages/{id}", "/inbox", "/sims", "/health"} <= set(doc["paths"])

    _run(tmp_path, scenario)


def test_openapi_message_schema_describes_every_field_of_the_message_views(
    tmp_path: Path,
) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.post(
            "/v1/messages", json={"to": "+15551230001", "text": "hi"}, headers=headers
        )
        (mid,) = (await r.json())["message_ids"]
        r = await client.get("/v1/messages", headers=headers)
        (listed,) = (await r.json())["messages"]
        r = await client.get(f"/v1/messages/{mid}", headers=headers)
        detail = await r.json()
        doc = await (await client.get("/v1/openapi.json")).json()
        schema = doc["components"]["schemas"]["Message"]["properties"]
        assert set(listed) | {"part_details"} == set(detail) == set(schema)
        assert set(detail["part_details"][0]) == set(schema["part_details"]["items"]["properties"])
        assert "SIM that took its first part" in schema["sent_from"]["description"]
        ref = {"$ref": "#/components/schemas/Message"}
        one = doc["paths"]["/messages/{id}"]["get"]["responses"]["200"]["content"]
        assert one["application/json"]["schema"] == ref
        many = doc["paths"]["/messages"]["get"]["responses"]["200"]["content"]
        assert many["application/json"]["schema"]["properties"]["messages"]["items"] == ref

    _run(tmp_path, scenario)


def test_batches_contacts_groups_and_modems(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.post(
            "/v1/messages",
            json={"to": ["+15551230001", "+15551230002"], "text": "hi"},
            headers=headers,
        )
        batch = (await r.json())["batch_id"]
        r = await client.post(f"/v1/batches/{batch}/pause", headers=headers)
        assert (await r.json())["state"] == "paused"
        r = await client.get(f"/v1/batches/{batch}", headers=headers)
        detail = await r.json()
        assert (detail["state"], detail["messages"]) == ("paused", {"queued": 2})
        r = await client.post(f"/v1/batches/{batch}/resume", headers=headers)
        assert r.status == 200
        r = await client.patch(f"/v1/batches/{batch}", json={"text": "changed"}, headers=headers)
        assert (await r.json())["messages_changed"] == 0  # already queued: not scheduled any more
        r = await client.patch(f"/v1/batches/{batch}", json={}, headers=headers)
        assert r.status == 400
        r = await client.delete(f"/v1/batches/{batch}", headers=headers)
        assert (await r.json())["cancelled_parts"] == 2
        r = await client.post(f"/v1/batches/{batch}/resume", headers=headers)
        assert r.status == 400  # a cancelled batch stays cancelled
        r = await client.get("/v1/batches/999", headers=headers)
        assert r.status == 404

        r = await client.post(
            "/v1/contacts",
            headers=headers,
            json={
                "contacts": [
                    {"number": "07700900123", "first_name": "Ann", "group": "vip"},
                    {"number": "nope"},
                ]
            },
        )
        assert r.status == 201
        saved = await r.json()
        assert len(saved["saved"]) == 1
        assert saved["rejected"] == ["nope"]
        r = await client.get("/v1/contacts", params={"group": "vip"}, headers=headers)
        body = await r.json()
        assert body["total"] == 1
        assert body["contacts"][0]["number"] == "+447700900123"
        r = await client.get("/v1/groups", headers=headers)
        assert {"name": "vip", "contacts": 1} in (await r.json())["groups"]
        r = await client.post("/v1/contacts", headers=headers, json={"contacts": [{"x": 1}]})
        assert r.status == 400
        r = await client.get("/v1/modems", headers=headers)
        assert (await r.json()) == {"modems": []}

    _run(tmp_path, scenario)


def test_submit_without_rotation_makes_a_one_sim_batch(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.post(
            "/v1/messages",
            json={"to": ["+15551230001", "+15551230002"], "text": "hi", "rotate": False},
            headers=headers,
        )
        assert r.status == 201
        batch = store.batch((await r.json())["batch_id"])
        assert batch is not None and batch["rotate"] == 0  # the dispatcher keeps it to one SIM

    _run(tmp_path, scenario)


def test_inbox_shows_what_was_repaired_in_a_malformed_pdu(tmp_path: Path) -> None:
    from gateway.inbox import Inbox
    from modem.pdu import Address, SmsDeliver, UserData, encode_pdu

    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        sim = store.bind_sim(iccid="8944000000000000001", imsi=None, now=T0)
        store.grant_sim(1, sim)
        deliver = SmsDeliver(
            originator=Address.parse("+44770090055"), scts=T0, user_data=UserData(text="hi")
        )
        raw = bytearray.fromhex(encode_pdu(deliver).hex)
        raw[2] = 12  # after SMSC field 00 and FO: the TP-OA length, counting the F filler
        Inbox(store).receive(sim, raw.hex(), now=T0)
        r = await client.get("/v1/inbox", headers=headers)
        (message,) = (await r.json())["messages"]
        assert message["text"] == "hi"
        assert message["anomalies"] == [
            {
                "seq": 1,
                "code": "address-filler-counted",
                "octet": 2,
                "detail": "TP-OA address length 12 counts 1 F filler semi-octet(s) as digits"
                " at octet 2",
            }
        ]

    _run(tmp_path, scenario)
