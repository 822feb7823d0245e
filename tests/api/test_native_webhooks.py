"""/v1/webhooks: set, read and remove the URLs, bad URLs refused in /v1's error format, test
fire, the outcome of deliveries."""

from __future__ import annotations

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
Scenario = Callable[[TestClient, dict[str, str], Store], Awaitable[None]]


def _run(tmp_path: Path, scenario: Scenario) -> None:
    store = Store.open(tmp_path)
    creds = create_account(store, "shop", now=T0, credits=3)
    headers = {"Authorization": f"Bearer {creds.api_key}"}

    async def main() -> None:
        service = GatewayService(store, wall=lambda: T0)
        async with TestClient(TestServer(build_app(service))) as client:
            await scenario(client, headers, store)

    try:
        asyncio.run(main())
    finally:
        store.close()


def test_put_get_and_remove_webhooks(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.get("/v1/webhooks", headers=headers)
        body: dict[str, Any] = await r.json()
        assert body["webhooks"] == {"reply": None, "status": None}
        secret = body["secret"]
        assert secret.startswith("whsec_") and len(secret) > 40
        assert body["signature"]["signature_header"] == "X-Smsgw-Signature"

        r = await client.put(
            "/v1/webhooks",
            json={"reply": "https://crm.example/in?key=1", "status": "http://10.0.0.7:8000/dlr"},
            headers=headers,
        )
        assert r.status == 200
        body = await r.json()
        assert body["webhooks"]["reply"]["url"] == "https://crm.example/in?key=1"
        assert body["webhooks"]["status"]["format"] == "v1"
        assert body["secret"] == secret  # unchanged unless rotated

        r = await client.put("/v1/webhooks", json={"status": None}, headers=headers)
        body = await r.json()
        assert body["webhooks"]["status"] is None
        assert body["webhooks"]["reply"] is not None  # left alone

        r = await client.put("/v1/webhooks", json={"rotate_secret": True}, headers=headers)
        assert (await r.json())["secret"] != secret

    _run(tmp_path, scenario)


def test_bad_urls_are_400_in_the_v1_error_format_and_change_nothing(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        for url in ("ftp://files.example/x", "crm.example/in", "http://", "https://h:0/",
                    "javascript:alert(1)", "http://exa mple/"):  # fmt: skip
            r = await client.put(
                "/v1/webhooks", json={"reply": "https://ok.example/", "status": url},
                headers=headers,
            )  # fmt: skip
            assert r.status == 400, url
            error = (await r.json())["error"]
            assert error["code"] == "invalid_webhook_url"
            assert error["message"].startswith("status webhook: ")
        r = await client.get("/v1/webhooks", headers=headers)
        assert (await r.json())["webhooks"] == {"reply": None, "status": None}  # nothing set

        for body, message in (
            ({"reply": 5}, "'reply' must be a URL or null"),
            ({"bounce": "https://x/"}, "unknown field(s): bounce"),
            ({"rotate_secret": "yes"}, "'rotate_secret' must be true or false"),
        ):
            r = await client.put("/v1/webhooks", json=body, headers=headers)
            assert r.status == 400
            assert (await r.json())["error"] == {"code": "invalid_request", "message": message}
        r = await client.put("/v1/webhooks", data="not json", headers=headers)
        assert r.status == 400
        r = await client.get("/v1/webhooks")
        assert r.status == 401

    _run(tmp_path, scenario)


def test_test_fire_and_the_events_outcome(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        r = await client.post("/v1/webhooks/test", json={"type": "reply"}, headers=headers)
        assert r.status == 400
        assert (await r.json())["error"]["message"] == "no reply webhook is set for this account"
        await client.put("/v1/webhooks", json={"reply": "http://127.0.0.1:9/"}, headers=headers)
        r = await client.post("/v1/webhooks/test", json={"type": "reply"}, headers=headers)
        assert r.status == 202
        event_id = (await r.json())["event_id"]

        r = await client.get("/v1/webhooks/events", params={"state": "pending"}, headers=headers)
        (event,) = (await r.json())["events"]
        assert (event["id"], event["type"], event["attempts"]) == (event_id, "reply", 0)
        assert event["data"]["test"] is True
        r = await client.get("/v1/webhooks/events", params={"state": "lost"}, headers=headers)
        assert r.status == 400

        r = await client.post(f"/v1/webhooks/events/{event_id}/retry", headers=headers)
        assert (await r.json()) == {"id": event_id, "state": "pending"}
        r = await client.post("/v1/webhooks/events/evt_nope/retry", headers=headers)
        assert r.status == 404

    _run(tmp_path, scenario)


def test_openapi_describes_the_webhooks(tmp_path: Path) -> None:
    async def scenario(client: TestClient, headers: dict[str, str], store: Store) -> None:
        doc = await (await client.get("/v1/openapi.json")).json()
        assert {"get", "put"} <= set(doc["paths"]["/webhooks"])
        assert "/webhooks/events" in doc["paths"]
        assert set(doc["webhooks"]) == {"reply", "status"}

    _run(tmp_path, scenario)


def test_the_daemons_http_frontend_exports_webhook_counts(tmp_path: Path) -> None:
    """api.app.start (what the daemon loads) feeds /metrics and the dashboard from
    GatewayService.webhook_counts()."""
    import socket

    import aiohttp

    from api.app import start
    from gateway.config import Config

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    store = Store.open(tmp_path)
    account = create_account(store, "shop", now=T0).account_id
    service = GatewayService(store, wall=lambda: T0)
    service.set_webhook(account, "reply", "http://127.0.0.1:9/")
    service.fire_test_webhook(account, "reply")

    async def main() -> str:
        stop = await start(service, Config(data_dir=tmp_path, http_host="127.0.0.1",
                                           http_port=port))  # fmt: skip
        try:
            async with aiohttp.ClientSession() as client:
                r = await client.get(f"http://127.0.0.1:{port}/metrics")
                return await r.text()
        finally:
            await stop()

    try:
        text = asyncio.run(main())
    finally:
        store.close()
    assert 'smsgw_webhook_deliveries{state="pending"} 1.0' in text
    assert "smsgw_webhook_delivered_total 0.0" in text
