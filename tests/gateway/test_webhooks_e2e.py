"""End to end on the emulator: the daemon (`serve`, its HTTP API and webhook sender) sends a
message whose delivery report, and then a reply, reach a local aiohttp receiver signed as the
README says."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.accounts import create_account
from gateway.config import Config
from gateway.daemon import Gateway
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.emulated import free_port, serving
from tests.gateway.webhook_support import Receiver, Seen, signature_ok

DEADLINE = 45.0


def test_a_delivery_report_and_a_reply_reach_the_receiver_signed(tmp_path: Path) -> None:
    with EmulatorPool(["generic"], seed=5) as emu:
        (info,) = emu.info()
        asyncio.run(asyncio.wait_for(_scenario(tmp_path, emu, info.path, info.msisdn), DEADLINE))


async def _until(receiver: Receiver, match: Any) -> Seen:
    while True:
        for seen in receiver.seen:
            if match(seen.json()):
                return seen
        receiver.arrived.clear()
        await receiver.arrived.wait()


async def _scenario(tmp_path: Path, emu: EmulatorPool, port: str, msisdn: str) -> None:
    http_port = free_port()
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=http_port, discover=())
    async with (
        serving(config, [port]) as gateway,
        Receiver() as receiver,
        aiohttp.ClientSession() as client,
    ):
        creds = create_account(gateway.store, "shop", now=datetime.now(UTC), credits=10)
        (worker,) = gateway.workers.values()
        assert worker.sim_id is not None
        gateway.store.grant_sim(creds.account_id, worker.sim_id)
        base = f"http://127.0.0.1:{http_port}/v1"
        auth = {"Authorization": f"Bearer {creds.api_key}"}

        # The customer sets its URLs through /v1 and learns its secret there.
        r = await client.put(
            f"{base}/webhooks",
            json={"reply": receiver.url("/in?k=1"), "status": receiver.url("/dlr")},
            headers=auth,
        )
        assert r.status == 200
        secret = (await r.json())["secret"]

        r = await client.post(
            f"{base}/messages",
            json={"to": MAGIC_DELIVERED, "text": "Your code is 4411"},
            headers=auth,
        )
        assert r.status == 201
        (message_id,) = (await r.json())["message_ids"]

        delivered = await _until(
            receiver, lambda b: b["type"] == "status" and b["data"]["state"] == "delivered"
        )
        body = delivered.json()
        assert delivered.path == "/dlr"
        assert signature_ok(secret, delivered.headers, delivered.body)
        assert delivered.headers["X-Smsgw-Event-Id"] == body["id"]
        data = body["data"]
        assert (data["message_id"], data["recipient"]) == (message_id, MAGIC_DELIVERED)
        assert (data["previous_state"], data["tp_status"]) == ("sent", 0)
        assert data["sender"] == msisdn  # the SIM that sent it
        assert body["account_id"] == creds.account_id
        # Every status change of the message came, in order, before the report's.
        states = [
            s.json()["data"]["state"]
            for s in receiver.seen
            if s.path == "/dlr" and s.json()["data"]["message_id"] == message_id
        ]
        assert states == ["sending", "sent", "delivered"]

        # The recipient answers: a reply webhook naming the message it answers.
        emu.inject_sms(msisdn, "Thanks, got it ✓", sender=MAGIC_DELIVERED)
        reply = await _until(receiver, lambda b: b["type"] == "reply")
        assert reply.path == "/in" and reply.query == "k=1"
        assert signature_ok(secret, reply.headers, reply.body)
        data = reply.json()["data"]
        assert (data["from"], data["to"], data["text"]) == (
            MAGIC_DELIVERED, msisdn, "Thanks, got it ✓",
        )  # fmt: skip
        assert data["replied_to_message_id"] == message_id
        assert data["complete"] is True

        r = await client.get(f"{base}/webhooks/events", headers=auth)
        events = (await r.json())["events"]
        assert len(events) == 4
        await _settled(gateway)
        assert gateway.service.webhook_counts() == {"pending": 0, "delivered": 4, "failed": 0}


async def _settled(gateway: Gateway) -> None:
    """Wait until the sender has recorded what the receiver already answered."""
    while gateway.service.webhook_counts()["pending"]:
        await gateway.webhooks.quiet()
