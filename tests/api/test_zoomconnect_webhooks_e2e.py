"""End to end on the emulator through the daemon (`serve`: its HTTP API and webhook sender):
Zoom Connect sms/send to the magic delivered number shows DELIVERED in messages/{id} and at
the DLR webhook, a reply reaches the reply webhook with repliedToMessageId set, and the
balance drops by the message's credit cost. The subscriptions are set the way an owner does,
with `smsgw accounts webhooks --format zoomconnect` in a process of its own."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateway.accounts import create_account
from gateway.config import Config
from modem.emulator import MAGIC_DELIVERED, EmulatorPool
from tests.emulated import free_port, serving
from tests.gateway.webhook_support import Receiver, Seen, signature_ok

DEADLINE = 60.0
EMAIL = "shop@example.com"


def test_dlr_and_reply_webhooks_in_the_zoomconnect_format(tmp_path: Path) -> None:
    with EmulatorPool(["generic"], seed=5) as emu:
        (info,) = emu.info()
        asyncio.run(asyncio.wait_for(_scenario(tmp_path, emu, info.path, info.msisdn), DEADLINE))


async def _until(receiver: Receiver, path: str, match: Any) -> Seen:
    while True:
        for seen in receiver.seen:
            if seen.path == path and match(dict(urllib.parse.parse_qsl(seen.query))):
                return seen
        receiver.arrived.clear()
        await receiver.arrived.wait()


async def _cli(*args: str) -> dict[str, Any]:
    """`smsgw ...` as an owner runs it (its own process, stdin closed, output piped)."""
    smsgw = Path(sys.executable).with_name("smsgw")
    proc = await asyncio.create_subprocess_exec(
        str(smsgw), *args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return dict(json.loads(out))


async def _scenario(tmp_path: Path, emu: EmulatorPool, port: str, msisdn: str) -> None:
    http_port = free_port()
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=http_port, discover=())
    async with (
        serving(config, [port]) as gateway,
        Receiver() as receiver,
        aiohttp.ClientSession() as client,
    ):
        creds = create_account(gateway.store, "shop", now=datetime.now(UTC), credits=10,
                               email=EMAIL)  # fmt: skip
        set_up = await _cli(
            "accounts", "webhooks", "shop", "--data-dir", str(tmp_path), "--format",
            "zoomconnect", "--on-reply", receiver.url("/receive-sms.php"),
            "--on-status", receiver.url("/delivery/report.php?key=k1"),
        )  # fmt: skip
        assert {k: v["format"] for k, v in set_up["webhooks"].items()} == {
            "reply": "zoomconnect", "status": "zoomconnect"}  # fmt: skip
        secret = set_up["secret"]
        base = f"http://127.0.0.1:{http_port}/app/api/rest/v1"
        auth = {"email": EMAIL, "token": creds.token}

        text = "Your order has shipped"
        r = await client.post(f"{base}/sms/send", headers=auth, json={
            "recipientNumber": MAGIC_DELIVERED, "message": text, "campaign": "shoe campaign",
            "dataField": "custom"})  # fmt: skip
        assert r.status == 200
        message_id = (await r.json())["messageId"]

        # The delivery report: status + messageId, in the URL and as a form body.
        dlr = await _until(receiver, "/delivery/report.php",
                           lambda q: q.get("status") == "DELIVERED")  # fmt: skip
        assert dlr.method == "POST"
        assert urllib.parse.parse_qsl(dlr.query) == [
            ("key", "k1"),
            ("status", "DELIVERED"),
            ("messageId", message_id),
        ]
        assert urllib.parse.parse_qsl(dlr.body.decode()) == [
            ("status", "DELIVERED"),
            ("messageId", message_id),
        ]
        assert dlr.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert signature_ok(secret, dlr.headers, dlr.body)  # the engine signs every format
        # Only settled states are reported: no SENDING/SENT callbacks in this format.
        assert [s.path for s in receiver.seen] == ["/delivery/report.php"]

        r = await client.get(f"{base}/messages/{message_id}", headers=auth)
        assert (await r.json())["messageStatus"] == "DELIVERED"
        r = await client.post(f"{base}/messages/analyse/message-credit-cost", headers=auth,
                              json={"message": text})  # fmt: skip
        cost = await r.json()
        r = await client.get(f"{base}/account/balance", headers=auth)
        assert (await r.json())["creditBalance"] == 10.0 - cost

        # The recipient answers: the reply webhook as the spec's example.
        emu.inject_sms(msisdn, "REPLY", sender=MAGIC_DELIVERED)
        reply = await _until(receiver, "/receive-sms.php", lambda q: q.get("message"))
        fields = dict(urllib.parse.parse_qsl(reply.query))
        assert fields["repliedToMessageId"] == message_id
        assert (fields["from"], fields["message"]) == (MAGIC_DELIVERED, "REPLY")
        assert (fields["campaign"], fields["dataField"]) == ("shoe campaign", "custom")
        assert re.fullmatch(r"20\d{10}", fields["date"])  # yyyyMMddHHmm
        assert dict(urllib.parse.parse_qsl(reply.body.decode())) == fields
        r = await client.get(f"{base}/messages/{fields['messageId']}", headers=auth)
        shown = await r.json()
        assert (shown["messageType"], shown["repliedToMessage"]["messageId"]) == (
            "INBOUND",
            message_id,
        )
