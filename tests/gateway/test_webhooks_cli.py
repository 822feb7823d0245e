"""`smsgw accounts webhooks` and `smsgw webhooks list|retry|purge|test` over one data dir."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from gateway.cli import main
from gateway.models import PartState
from gateway.store import Store, WebhookAttempt
from gateway.webhooks import SIGNATURE_TOLERANCE, WebhookRequest, WebhookState, with_signature


def _invoke(*args: str, data_dir: Path) -> Result:
    return CliRunner().invoke(main, [*args, "--data-dir", str(data_dir)], catch_exceptions=False)


def _run(*args: str, data_dir: Path) -> str:
    result = _invoke(*args, data_dir=data_dir)
    assert result.exit_code == 0, result.output
    return result.output


def test_set_show_and_remove_webhooks(tmp_path: Path) -> None:
    _run("accounts", "create", "shop", data_dir=tmp_path)
    shown = json.loads(
        _run(
            "accounts",
            "webhooks",
            "shop",
            "--on-reply",
            "https://crm.example/in",
            "--on-status",
            "http://10.0.0.7/dlr",
            data_dir=tmp_path,
        )
    )
    assert shown["webhooks"] == {
        "reply": {"url": "https://crm.example/in", "format": "v1"},
        "status": {"url": "http://10.0.0.7/dlr", "format": "v1"},
    }
    secret = shown["secret"]
    again = json.loads(_run("accounts", "webhooks", "shop", data_dir=tmp_path))
    assert again == shown  # without options: shows, changes nothing
    rotated = json.loads(
        _run(
            "accounts",
            "webhooks",
            "shop",
            "--remove",
            "status",
            "--rotate-secret",
            data_dir=tmp_path,
        )
    )
    assert rotated["webhooks"]["status"] is None
    assert rotated["secret"] != secret

    bad = _invoke("accounts", "webhooks", "shop", "--on-status", "ftp://x/", data_dir=tmp_path)
    assert bad.exit_code == 1
    assert "status webhook: a webhook URL must be http:// or https://" in bad.output
    missing = _invoke("accounts", "webhooks", "nobody", "--on-reply", "https://x/",
                      data_dir=tmp_path)  # fmt: skip
    assert "no account 'nobody'" in missing.output


def test_webhooks_shows_how_to_check_a_signature_as_the_api_does(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from api.app import build_app
    from gateway.service import GatewayService

    created = _run("accounts", "create", "shop", data_dir=tmp_path).splitlines()[-1]
    key = json.loads(created)["api_key"]  # after the dial-code note on stderr
    shown = json.loads(_run("accounts", "webhooks", "shop", data_dir=tmp_path))
    scheme = shown["signature"]

    async def api_view() -> dict[str, object]:
        store = Store.open(tmp_path)
        try:
            app = build_app(GatewayService(store, wall=lambda: datetime.now(UTC)))
            async with TestClient(TestServer(app)) as client:
                r = await client.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}"})
                body: dict[str, object] = await r.json()
                return body
        finally:
            store.close()

    answered = asyncio.run(api_view())
    assert (answered["secret"], answered["signature"]) == (shown["secret"], scheme)
    # It names what the engine really sends: these headers, this HMAC, this tolerance.
    request = WebhookRequest("POST", "https://crm.example/in", body=b'{"id": "evt_1"}')
    headers = dict(with_signature(request, "evt_1", shown["secret"], 1_764_000_000).headers)
    assert headers[scheme["event_id_header"]] == "evt_1"
    assert headers[scheme["timestamp_header"]] == "1764000000"
    digest = hmac.new(shown["secret"].encode(), b'1764000000.{"id": "evt_1"}', hashlib.sha256)
    assert headers[scheme["signature_header"]] == "v1=" + digest.hexdigest()
    assert scheme["scheme"].startswith("v1=<hex HMAC-SHA256(")
    assert scheme["tolerance_seconds"] == SIGNATURE_TOLERANCE


def _outbox(tmp_path: Path) -> tuple[int, list[str]]:
    """An account with three status events: one delivered, one failed, one pending."""
    now = datetime.now(UTC)
    _run("accounts", "create", "shop", data_dir=tmp_path)
    _run("accounts", "webhooks", "shop", "--on-status", "http://127.0.0.1:9/", data_dir=tmp_path)
    store = Store.open(tmp_path)
    try:
        account = int(store.account_by_name("shop")["id"])  # type: ignore[index]
        for n in range(3):
            (part,) = store.parts(
                store.accept_message(
                    account_id=account, recipient=f"+1555000{n}", body="x", encoding="gsm7",
                    parts=1, now=now,
                ).message_id
            )  # fmt: skip
            store.transition_part(part["id"], PartState.QUEUED, PartState.SENDING, now=now)
        rows = sorted(store.list_webhook_events(), key=lambda r: r["id"])
        old = now - timedelta(days=10)
        store.record_webhook_attempts(
            [
                WebhookAttempt(rows[0]["id"], WebhookState.DELIVERED, old, status=204),
                WebhookAttempt(
                    rows[1]["id"], WebhookState.FAILED, old, status=500, error="HTTP 500"
                ),
            ]
        )
        return account, [r["event_id"] for r in rows]
    finally:
        store.close()


def test_list_retry_and_purge(tmp_path: Path) -> None:
    _, (delivered, failed, pending) = _outbox(tmp_path)
    listed = json.loads(_run("webhooks", "list", "--json", data_dir=tmp_path))
    assert {e["event_id"]: e["state"] for e in listed} == {
        delivered: "delivered", failed: "failed", pending: "pending",
    }  # fmt: skip
    (only,) = json.loads(_run("webhooks", "list", "--state", "failed", "--json", data_dir=tmp_path))
    assert (only["event_id"], only["last_status"], only["last_error"]) == (failed, 500, "HTTP 500")
    piped = _run("webhooks", "list", "--account", "shop", data_dir=tmp_path).splitlines()
    assert piped[0].split("\t")[:4] == ["event_id", "account_id", "kind", "state"]
    assert len(piped) == 4  # a header and three events, tab-separated

    # Purge: delivered only by default, failed on request, never pending.
    assert json.loads(_run("webhooks", "purge", "--older-than", "30", data_dir=tmp_path)) == {
        "purged": 0
    }
    assert json.loads(_run("webhooks", "purge", "--older-than", "7", data_dir=tmp_path)) == {
        "purged": 1
    }
    # Retry: every undelivered one (failed and pending), from now.
    assert json.loads(_run("webhooks", "retry", "--account", "shop", data_dir=tmp_path)) == {
        "retried": 2
    }
    states = {e["state"] for e in json.loads(_run("webhooks", "list", "--json", data_dir=tmp_path))}
    assert states == {"pending"}
    assert json.loads(_run("webhooks", "purge", "--failed", data_dir=tmp_path)) == {"purged": 0}
    unknown = _invoke("webhooks", "retry", "evt_nope", data_dir=tmp_path)
    assert unknown.exit_code == 1 and "1 event id(s) not found" in unknown.output


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A receiver on a thread of its own (the CLI runs its own event loop)."""
    bodies: list[bytes] = []
    ready = threading.Event()
    loop = asyncio.new_event_loop()
    url: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        bodies.append(await request.read())
        return web.Response(status=204)

    async def start() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/hook", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        url.append(f"http://127.0.0.1:{port}/hook")
        return runner

    runner_box: list[web.AppRunner] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        runner_box.append(loop.run_until_complete(start()))
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner_box[0].cleanup())
        loop.close()

    thread = threading.Thread(target=serve, name="receiver")
    thread.start()
    ready.wait(10)
    try:
        yield url[0], bodies
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def test_test_fire_now_and_queued(tmp_path: Path, receiver: tuple[str, list[bytes]]) -> None:
    url, bodies = receiver
    _run("accounts", "create", "shop", data_dir=tmp_path)
    nothing = _invoke("webhooks", "test", "shop", data_dir=tmp_path)
    assert nothing.exit_code == 1 and "no status webhook is set" in nothing.output
    _run("accounts", "webhooks", "shop", "--on-status", url, data_dir=tmp_path)
    result = json.loads(_run("webhooks", "test", "shop", data_dir=tmp_path))
    assert result == {"url": url, "ok": True, "status": 204, "error": None}
    (body,) = bodies
    assert json.loads(body)["data"]["test"] is True

    queued = json.loads(_run("webhooks", "test", "shop", "--queue", data_dir=tmp_path))
    (event,) = json.loads(_run("webhooks", "list", "--json", data_dir=tmp_path))
    assert (event["event_id"], event["state"]) == (queued["event_id"], "pending")

    _run("accounts", "webhooks", "shop", "--on-status", "http://127.0.0.1:9/", data_dir=tmp_path)
    down = _invoke("webhooks", "test", "shop", data_dir=tmp_path)
    assert down.exit_code == 1
    assert json.loads(down.output)["ok"] is False
