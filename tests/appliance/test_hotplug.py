"""Hot-plug on the emulator: a SIM pulled out and plugged into another port is the same SIM."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.accounts import create_account
from gateway.appliance.discovery import Discovery
from gateway.config import Config
from gateway.daemon import Gateway, serve
from gateway.models import PartState
from gateway.pool import SimAvailability
from modem.emulator import EmulatorPool
from modem.pdu import SmsSubmit, decode_tpdu
from tests.emulated import SubmitSpy

DEADLINE = 60.0  # wall seconds for the scenario: fails instead of hanging
DESTINATION = "+15005550000"  # the emulator's "always delivered" number


def _wall() -> datetime:
    return datetime.now(UTC)


def test_moved_sim_keeps_identity_counters_throttle_and_queue(tmp_path: Path) -> None:
    with EmulatorPool(["generic"], seed=23) as emu:
        asyncio.run(asyncio.wait_for(_moved_sim(tmp_path, emu), DEADLINE))


async def _moved_sim(tmp_path: Path, emu: EmulatorPool) -> None:
    links = tmp_path / "dev-smsgw"  # what udev maintains as /dev/smsgw
    links.mkdir()
    first = links / "generic-usb-1.2-if00"
    (info,) = emu.info()
    os.symlink(info.path, first)

    gateway = Gateway.build(Config(data_dir=tmp_path / "data", discover=()))
    sent: asyncio.Queue[int] = asyncio.Queue()
    record = gateway.outbox.on_sent

    def on_sent(part_id: int) -> object:
        result = record(part_id) if record is not None else None
        sent.put_nowait(part_id)
        return result

    gateway.outbox.on_sent = on_sent
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(gateway.dispatcher.run(stop))
    loop = asyncio.get_running_loop()
    discovery = Discovery(gateway, [links], monotonic=loop.time)
    try:
        # Plugged in: probed, its SIM joins the pool.
        scan = await discovery.rescan()
        assert scan.added == (str(first),)
        worker = gateway.workers[str(first)]
        await worker.ready.wait()
        sim_id = worker.sim_id
        assert sim_id is not None
        sim = gateway.store.sim(sim_id)
        assert sim is not None and sim["iccid"] == info.iccid
        account = create_account(gateway.store, "shop", now=_wall(), credits=100).account_id
        gateway.store.grant_sim(account, sim_id)

        before = [f"before unplug {i}" for i in range(2)]
        for text in before:
            gateway.service.submit(account, [DESTINATION], text)
        for _ in before:
            await sent.get()
        pooled = gateway.pool.get(sim_id)
        sends_before = list(pooled.throttle._sends)
        assert len(sends_before) == 2
        assert (gateway.store.sim(sim_id) or {})["sent_count"] == 2

        # Pulled out: udev removes the link; the SIM is gone from rotation, not forgotten.
        new_path = emu.unplug(0, seconds=5)
        first.unlink()
        scan = await discovery.rescan()
        assert scan.removed == (str(first),)
        assert scan.uncertain_parts == ()
        assert str(first) not in gateway.workers
        assert gateway.pool.availability(sim_id, loop.time()) is SimAvailability.GONE
        assert (gateway.store.sim(sim_id) or {})["state"] == "gone"

        # Messages accepted while it is away wait in the queue.
        after = [f"sent after replug {i}" for i in range(2)]
        ids = [gateway.service.submit(account, [DESTINATION], t).message_ids[0] for t in after]
        gateway.dispatcher.tick()
        assert [(gateway.store.message(i) or {})["state"] for i in ids] == ["queued"] * 2

        # Plugged into another USB port: a new tty and a new link, the same SIM.
        emu.advance(5)
        emu.boot()
        assert emu.path(0) == new_path != info.path
        second = links / "generic-usb-1.4-if00"
        os.symlink(new_path, second)
        scan = await discovery.rescan()
        assert scan.added == (str(second),)
        worker = gateway.workers[str(second)]
        await worker.ready.wait()
        assert worker.sim_id == sim_id  # bound by ICCID: same row, same counters
        assert gateway.pool.get(sim_id) is pooled  # same throttle and health state
        for _ in after:
            await sent.get()

        # Pacing history is kept across the move.
        assert list(pooled.throttle._sends)[:2] == sends_before
        assert len(pooled.throttle._sends) == 4
        assert (gateway.store.sim(sim_id) or {})["sent_count"] == 4
        assert gateway.store.list_sims()[0]["last_port"] == str(second)
        for message_id in ids:
            parts = gateway.store.parts(message_id)
            assert [p["state"] for p in parts] in (["sent"], ["delivered"])
            assert all(p["sim_id"] == sim_id for p in parts)

        # The network is the judge: every text went out exactly once, from this SIM.
        outside = [o for o in emu.outside() if o.destination == DESTINATION]
        texts: list[str] = []
        for o in outside:
            submit = decode_tpdu(o.tpdu)
            assert isinstance(submit, SmsSubmit)
            texts.append(submit.user_data.text or "")
        assert sorted(texts) == sorted(before + after)
        assert {o.sender for o in outside} == {info.msisdn}
        counts = gateway.store.count_by_state("parts")
        assert PartState.UNCERTAIN.value not in counts
    finally:
        stop.set()
        await dispatcher
        await gateway.stop_workers()
        await gateway.dispatcher.close()
        gateway.store.close()


def test_part_on_the_wire_when_unplugged_becomes_uncertain_and_is_never_resent(
    tmp_path: Path,
) -> None:
    with EmulatorPool(["generic"], seed=29) as emu:
        asyncio.run(asyncio.wait_for(_unplugged_mid_send(tmp_path, emu), DEADLINE))


async def _unplugged_mid_send(tmp_path: Path, emu: EmulatorPool) -> None:
    links = tmp_path / "dev-smsgw"
    links.mkdir()
    first = links / "generic-usb-1.2-if00"
    (info,) = emu.info()
    os.symlink(info.path, first)
    gateway = Gateway.build(Config(data_dir=tmp_path / "data", discover=()))
    stop = asyncio.Event()
    dispatcher = asyncio.create_task(gateway.dispatcher.run(stop))
    loop = asyncio.get_running_loop()
    discovery = Discovery(gateway, [links], monotonic=loop.time)
    try:
        await discovery.rescan()
        worker = gateway.workers[str(first)]
        await worker.ready.wait()
        sim_id = worker.sim_id
        assert sim_id is not None
        account = create_account(gateway.store, "shop", now=_wall(), credits=100).account_id
        gateway.store.grant_sim(account, sim_id)
        started: asyncio.Queue[SmsSubmit] = asyncio.Queue()
        gateway.outbox.senders[sim_id] = SubmitSpy(gateway.outbox.senders[sim_id], started)
        sent: asyncio.Queue[int] = asyncio.Queue()
        record = gateway.outbox.on_sent

        def on_sent(part_id: int) -> object:
            result = record(part_id) if record is not None else None
            sent.put_nowait(part_id)
            return result

        gateway.outbox.on_sent = on_sent

        # The radio is slow: the modem holds the PDU and has not answered +CMGS yet.
        emu.set_fault(0, "slow_radio", seconds=30)
        bytes_before = emu.call(lambda: emu.core(0).bytes_in)
        (in_flight,) = gateway.service.submit(account, [DESTINATION], "on the wire").message_ids
        submit = await started.get()
        await loop.run_in_executor(
            None, emu.wait_for_input, 0, bytes_before + 2 * len(submit.encode())
        )
        (part,) = gateway.store.parts(in_flight)
        assert part["state"] == PartState.SENDING.value

        # Pulled out mid-send: the part may or may not have left, so it becomes uncertain.
        new_path = emu.unplug(0, seconds=5)
        first.unlink()
        await discovery.rescan()
        (part,) = gateway.store.parts(in_flight)
        assert part["state"] == PartState.UNCERTAIN.value
        queued = gateway.service.submit(account, [DESTINATION], "after the replug").message_ids

        emu.clear_fault(0, "slow_radio")
        emu.advance(5)
        emu.boot()
        second = links / "generic-usb-1.4-if00"
        os.symlink(new_path, second)
        await discovery.rescan()
        await gateway.workers[str(second)].ready.wait()
        await sent.get()  # the message queued while the modem was away

        (part,) = gateway.store.parts(in_flight)
        assert part["state"] == PartState.UNCERTAIN.value  # never silently resent
        assert (gateway.store.message(queued[0]) or {})["state"] in ("sent", "delivered")
        texts = Counter(
            decode_tpdu(o.tpdu).user_data.text  # type: ignore[union-attr]
            for o in emu.outside()
        )
        # The power cut lost the PDU inside the modem; the network saw each message at most once.
        assert texts == Counter({"after the replug": 1})
    finally:
        stop.set()
        await dispatcher
        await gateway.stop_workers()
        await gateway.dispatcher.close()
        gateway.store.close()


def test_the_daemon_finds_a_modem_plugged_in_while_it_runs(tmp_path: Path) -> None:
    with EmulatorPool(["generic"], seed=31) as emu:
        asyncio.run(asyncio.wait_for(_daemon_hotplug(tmp_path, emu), DEADLINE))


async def _daemon_hotplug(tmp_path: Path, emu: EmulatorPool) -> None:
    links = tmp_path / "dev-smsgw"
    links.mkdir()
    config = Config(data_dir=tmp_path / "data", discover=(str(links),))
    stop = asyncio.Event()
    ready: asyncio.Queue[Gateway] = asyncio.Queue()
    daemon = asyncio.create_task(serve(config, stop=stop, on_ready=ready.put_nowait, frontends=[]))
    try:
        gateway = await ready.get()
        assert gateway.workers == {}
        started: asyncio.Queue[str] = asyncio.Queue()
        start_worker = gateway.start_worker

        def spy(port: str, *, pin: str | None = None) -> Any:
            worker = start_worker(port, pin=pin)
            started.put_nowait(port)
            return worker

        gateway.start_worker = spy  # type: ignore[method-assign]
        (info,) = emu.info()
        link = links / "generic-usb-1.3-if00"
        os.symlink(info.path, link)  # udev names the new stick
        assert await started.get() == str(link)  # the daemon's own poller found it
        worker = gateway.workers[str(link)]
        await worker.ready.wait()
        sim = gateway.store.sim(worker.sim_id or 0)
        assert sim is not None and sim["iccid"] == info.iccid
    finally:
        stop.set()
        await daemon
