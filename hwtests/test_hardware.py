"""Real modems: probe, loopback with a status report, concatenated UCS-2, USSD, unplug/replug.

Run with `pytest hwtests` (see the README, "Running on real hardware"). Each test records its AT
traffic as a transcript under SMSGW_HW_TRANSCRIPTS, ready to join ../shared/transcripts.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TypeVar

import pytest

from hwtests.conftest import Hardware, Transcripts, hardware_from_env
from hwtests.tap import tap_factory
from modem.client import (
    ClientConfig,
    Inbound,
    InboundSms,
    InboundStatusReport,
    ModemClient,
    SubmitStatus,
)
from modem.pdu import Reassembler

pytestmark = pytest.mark.hardware

T = TypeVar("T")
NETWORK = 180.0  # seconds a real network may take to deliver a message or a report
COMMAND = 120.0  # opening and initialising a modem, USSD
REPLUG = 120.0  # the operator pulls and replugs the stick within this time
UCS2_TEXT = "Grüße aus dem Test 👋 — Привет, мир! 你好 " * 3  # > 70 UCS-2 units: 3 parts


class Inbox:
    """Everything a modem received, with a way to wait for the next item of a kind."""

    def __init__(self) -> None:
        self.items: asyncio.Queue[Inbound] = asyncio.Queue()

    async def handler(self, item: Inbound) -> bool:
        self.items.put_nowait(item)
        return True  # taken: the driver may delete it from the SIM

    async def next(self, kind: type[T], accept: Callable[[T], bool] = lambda _: True) -> T:
        while True:
            item = await self.items.get()
            if isinstance(item, kind) and accept(item):
                return item


@asynccontextmanager
async def modem(
    port: str, hw: Hardware, transcripts: Transcripts, inbox: Inbox | None = None
) -> AsyncIterator[ModemClient]:
    """An initialised client on `port`, recorded through the tap."""
    recorder = transcripts.for_port(port)
    client = ModemClient(
        port,
        config=ClientConfig(pin=hw.pin),
        on_inbound=inbox.handler if inbox is not None else None,
        transport_factory=tap_factory(port, recorder),
    )
    async with asyncio.timeout(COMMAND):
        await client.open()
    if client.manufacturer or client.model:
        recorder.title = f"{client.manufacturer} {client.model} (smsgw hwtests, {port})"
    try:
        yield client
    finally:
        await client.close()


def run(coro: Awaitable[T], seconds: float) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(seconds):
            return await coro

    return asyncio.run(bounded())


def need_peer(hw: Hardware) -> tuple[str, str, str]:
    """(sending port, receiving port, receiving SIM's number) or skip."""
    if len(hw.ports) < 2 or not hw.peer:
        pytest.skip("needs two ports in SMSGW_HW_PORTS and SMSGW_HW_PEER (the second SIM's number)")
    return hw.ports[0], hw.ports[1], hw.peer


@pytest.mark.parametrize("index", range(max(len(hardware_from_env().ports), 1)))
def test_probe(hw: Hardware, transcripts: Transcripts, index: int) -> None:
    if index >= len(hw.ports):
        pytest.skip("fewer ports than parameters (SMSGW_HW_PORTS separated by commas)")
    port = hw.ports[index]

    async def probe() -> None:
        async with modem(port, hw, transcripts) as client:
            who = await client.identity()
            transcripts.for_port(port).note(f"{who.manufacturer} {who.model} {who.revision}")
            assert who.manufacturer and who.model
            assert who.iccid or who.imsi, "the SIM reports neither ICCID nor IMSI"
            signal = await client.signal()
            registration = await client.registration()
            assert signal.dbm is not None, "no signal reading (+CSQ 99)"
            assert registration.registered, f"not registered (stat {registration.stat})"

    run(probe(), COMMAND)


def test_loopback_with_status_report(hw: Hardware, transcripts: Transcripts) -> None:
    sender_port, receiver_port, peer = need_peer(hw)
    text = f"smsgw hwtest loopback {datetime.now(UTC):%H:%M:%S}"

    async def loopback() -> None:
        sent_box, received_box = Inbox(), Inbox()
        async with (
            modem(sender_port, hw, transcripts, sent_box) as sender,
            modem(receiver_port, hw, transcripts, received_box) as _receiver,
        ):
            (result,) = await sender.send_sms(peer, text, status_report=True)
            assert result.status is SubmitStatus.SENT, result.reason
            mr = result.message_reference
            sms = await received_box.next(InboundSms, lambda s: s.deliver.user_data.text == text)
            assert sms.deliver.user_data.text == text
            report = await sent_box.next(
                InboundStatusReport, lambda r: r.report.message_reference == mr
            )
            transcripts.for_port(sender_port).note(
                f"status report for TP-MR {mr}: TP-ST {report.report.status}"
            )
            assert report.report.status == 0, "the network did not report 'delivered'"

    run(loopback(), NETWORK)


def test_concatenated_ucs2(hw: Hardware, transcripts: Transcripts) -> None:
    sender_port, receiver_port, peer = need_peer(hw)

    async def concatenated() -> None:
        received = Inbox()
        async with (
            modem(sender_port, hw, transcripts) as sender,
            modem(receiver_port, hw, transcripts, received) as _receiver,
        ):
            results = await sender.send_sms(peer, UCS2_TEXT, status_report=False)
            assert len(results) >= 2
            assert all(r.status is SubmitStatus.SENT for r in results), results
            joiner = Reassembler()
            while True:
                sms = await received.next(InboundSms)
                whole = joiner.add(sms.deliver, now=datetime.now(UTC))
                if whole is not None and whole.text == UCS2_TEXT:
                    assert len(whole.parts) == len(results)
                    return

    run(concatenated(), NETWORK)


def test_ussd_balance(hw: Hardware, transcripts: Transcripts) -> None:
    async def balance() -> None:
        async with modem(hw.ports[0], hw, transcripts) as client:
            answer = await client.ussd(hw.ussd)
            transcripts.for_port(hw.ports[0]).note(
                f"USSD {hw.ussd}: status {answer.status}, dcs {answer.dcs}"
            )
            assert answer.text, f"empty USSD answer: {answer}"

    run(balance(), COMMAND)


def test_unplug_and_replug(hw: Hardware, transcripts: Transcripts) -> None:
    if not hw.replug:
        pytest.skip("set SMSGW_HW_REPLUG=1 to pull and replug the first modem by hand")
    port = hw.ports[0]

    async def replug() -> None:
        async with modem(port, hw, transcripts) as client:
            before = await client.identity()
        print(f"\n>>> pull the modem on {port} out now, then plug it back in <<<", flush=True)
        transcripts.for_port(port).note("operator unplugs the modem")
        await _wait_for(lambda: not os.path.exists(port), REPLUG)
        transcripts.for_port(port).note("operator plugs it back in")
        await _wait_for(lambda: os.path.exists(port), REPLUG)
        async with modem(port, hw, transcripts) as client:
            after = await client.identity()
        assert (after.iccid, after.imsi) == (before.iccid, before.imsi)

    run(replug(), 2 * REPLUG + 2 * COMMAND)


async def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    """Poll the filesystem (a person is moving the plug: there is no event to wait on)."""
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.2)
