"""Discovery's decisions with a fake directory scan, prober, clock and udev monitor."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateway.accounts import create_account
from gateway.appliance.discovery import Discovery, PortRole, ScanResult, UdevWakeup, scan_ports
from gateway.config import Config
from gateway.daemon import Gateway
from gateway.models import PartState


class FakeWorkers:
    """Records what discovery asks of the gateway."""

    def __init__(self, uncertain: Sequence[int] = ()) -> None:
        self.started: list[str] = []
        self.removed: list[str] = []
        self.uncertain = list(uncertain)

    def start_worker(self, port: str, *, pin: str | None = None) -> None:
        self.started.append(port)

    async def remove_worker(self, port: str) -> list[int]:
        self.removed.append(port)
        return self.uncertain


class World:
    """The ports that exist (path -> device) and what probing each one answers."""

    def __init__(self) -> None:
        self.ports: dict[str, str] = {}
        self.answers: dict[str, str | None] = {}
        self.probed: Counter[str] = Counter()
        self.now = 0.0

    def scan(self, dirs: Sequence[Path | str]) -> dict[str, str]:
        return dict(self.ports)

    async def probe(self, port: str) -> str | None:
        self.probed[port] += 1
        return self.answers.get(port)

    def discovery(self, workers: FakeWorkers, **kw: Any) -> Discovery:
        return Discovery(
            workers, ["/dev/smsgw"], probe=self.probe, scan=self.scan,
            monotonic=lambda: self.now, **kw,
        )  # fmt: skip


def test_scan_prefers_the_first_directory_and_skips_dangling_links(tmp_path: Path) -> None:
    tty1, tty2 = tmp_path / "ttyUSB1", tmp_path / "ttyUSB2"
    tty1.write_text("")
    tty2.write_text("")
    smsgw, by_id = tmp_path / "smsgw", tmp_path / "by-id"
    smsgw.mkdir()
    by_id.mkdir()
    (smsgw / "zte-SN-if03").symlink_to(tty1)
    (by_id / "usb-ZTE_SN-if03-port0").symlink_to(tty1)  # the same tty: offered once
    (by_id / "usb-FTDI-if00-port0").symlink_to(tty2)
    (by_id / "usb-gone-if00-port0").symlink_to(tmp_path / "ttyUSB9")  # being unplugged
    found = scan_ports([smsgw, by_id, tmp_path / "missing"])
    assert found == {
        str(smsgw / "zte-SN-if03"): str(tty1),
        str(by_id / "usb-FTDI-if00-port0"): str(tty2),
    }
    every_name = scan_ports([smsgw, by_id], unique=False)
    assert list(every_name) == [
        str(smsgw / "zte-SN-if03"),
        str(by_id / "usb-FTDI-if00-port0"),
        str(by_id / "usb-ZTE_SN-if03-port0"),
    ]


def test_two_at_ports_of_one_sim_give_one_worker_and_the_other_takes_over() -> None:
    async def scenario() -> None:
        world, workers = World(), FakeWorkers()
        world.ports = {"/dev/smsgw/huawei-if00": "/dev/ttyUSB0",
                       "/dev/smsgw/huawei-if02": "/dev/ttyUSB2"}  # fmt: skip
        world.answers = dict.fromkeys(world.ports, "8944000000000000001")
        d = world.discovery(workers)
        scan = await d.rescan()
        assert scan.added == ("/dev/smsgw/huawei-if00",)
        assert scan.ignored == ("/dev/smsgw/huawei-if02",)
        assert d.known["/dev/smsgw/huawei-if02"].role is PortRole.DUPLICATE
        assert await d.rescan() == ScanResult()  # nothing changed, nothing probed again
        assert world.probed == Counter(dict.fromkeys(world.ports, 1))

        # The worker's port goes away (firmware re-enumerated it): the other port takes over.
        del world.ports["/dev/smsgw/huawei-if00"]
        scan = await d.rescan()
        assert scan.removed == ("/dev/smsgw/huawei-if00",)
        assert scan.added == ("/dev/smsgw/huawei-if02",)
        assert workers.started == ["/dev/smsgw/huawei-if00", "/dev/smsgw/huawei-if02"]

    asyncio.run(scenario())


def test_a_second_name_of_a_tty_in_use_is_an_alias_and_takes_over_when_the_first_goes() -> None:
    async def scenario() -> None:
        world, workers = World(), FakeWorkers()
        by_id = "/dev/serial/by-id/usb-Quectel_EC25_SN-if02-port0"
        smsgw = "/dev/smsgw/quectel-SN-if02"
        world.ports = {by_id: "/dev/ttyUSB2"}  # the udev rules were not installed yet
        world.answers = {by_id: "8944000000000000005", smsgw: "8944000000000000005"}
        d = world.discovery(workers)
        assert (await d.rescan()).added == (by_id,)
        # `smsgw install` reloads udev: the same tty gets its /dev/smsgw name as well.
        world.ports = {smsgw: "/dev/ttyUSB2", by_id: "/dev/ttyUSB2"}
        assert await d.rescan() == ScanResult()  # the worker keeps running
        assert d.known[smsgw].role is PortRole.ALIAS and smsgw not in world.probed
        # The by-id name goes (rules change); the other name of the tty takes over.
        world.ports = {smsgw: "/dev/ttyUSB2"}
        scan = await d.rescan()
        assert (scan.removed, scan.added) == ((by_id,), (smsgw,))
        assert workers.started == [by_id, smsgw]

    asyncio.run(scenario())


def test_silent_ports_are_probed_again_only_after_the_reprobe_time() -> None:
    async def scenario() -> None:
        world, workers = World(), FakeWorkers()
        gps = "/dev/serial/by-id/usb-u-blox_GNSS-if00"
        world.ports = {gps: "/dev/ttyACM0"}
        d = world.discovery(workers, reprobe_seconds=60.0)
        assert (await d.rescan()).ignored == (gps,)
        world.now = 59.0
        await d.rescan()
        assert world.probed[gps] == 1
        world.now = 60.0
        world.answers[gps] = "8944000000000000002"  # it was a modem still booting after all
        assert (await d.rescan()).added == (gps,)
        assert world.probed[gps] == 2

    asyncio.run(scenario())


def test_configured_ports_are_left_to_their_own_worker(tmp_path: Path) -> None:
    async def scenario() -> None:
        tty = tmp_path / "ttyUSB3"
        tty.write_text("")
        world, workers = World(), FakeWorkers()
        world.ports = {"/dev/smsgw/zte-SN-if03": str(tty)}
        d = world.discovery(workers, fixed=[str(tty)])
        scan = await d.rescan()
        assert scan.added == () and world.probed == Counter()
        assert d.known["/dev/smsgw/zte-SN-if03"].role is PortRole.FIXED
        del world.ports["/dev/smsgw/zte-SN-if03"]
        assert (await d.rescan()).removed == ()  # not ours to stop
        assert workers.removed == []

    asyncio.run(scenario())


def test_vanished_port_reports_the_parts_its_loss_made_uncertain() -> None:
    async def scenario() -> None:
        world, workers = World(), FakeWorkers(uncertain=[41])
        world.ports = {"/dev/smsgw/q-if02": "/dev/ttyUSB2"}
        world.answers = {"/dev/smsgw/q-if02": "8944000000000000003"}
        d = world.discovery(workers)
        await d.rescan()
        world.ports = {}
        scan = await d.rescan()
        assert (scan.removed, scan.uncertain_parts) == (("/dev/smsgw/q-if02",), (41,))

    asyncio.run(scenario())


class SocketMonitor:
    """pyudev.Monitor's surface (fileno, poll) over a socket pair."""

    def __init__(self) -> None:
        self.ours, self.theirs = socket.socketpair()
        self.ours.setblocking(False)

    def fileno(self) -> int:
        return self.ours.fileno()

    def poll(self, timeout: float = 0) -> bytes | None:
        try:
            return self.ours.recv(64) or None
        except BlockingIOError:
            return None

    def close(self) -> None:
        self.ours.close()
        self.theirs.close()


def test_a_udev_event_wakes_the_poller_at_once() -> None:
    monitor = SocketMonitor()

    async def scenario() -> None:
        scans: asyncio.Queue[int] = asyncio.Queue()
        count = 0

        def scan(dirs: Sequence[Path | str]) -> dict[str, str]:
            nonlocal count
            count += 1
            scans.put_nowait(count)
            return {}

        loop = asyncio.get_running_loop()
        d = Discovery(FakeWorkers(), ["/dev/smsgw"], scan=scan, monotonic=loop.time,
                      poll_seconds=3600.0, wakeup=UdevWakeup(monitor))  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(d.run(stop))
        assert await asyncio.wait_for(scans.get(), 10) == 1
        monitor.theirs.send(b"add@/devices/.../ttyUSB2")  # a uevent, long before the hour
        assert await asyncio.wait_for(scans.get(), 10) == 2
        stop.set()
        await asyncio.wait_for(task, 10)

    try:
        asyncio.run(scenario())
    finally:
        monitor.close()


def test_without_pyudev_the_wakeup_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyudev(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "pyudev":
            raise ImportError("no pyudev here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyudev)
    assert UdevWakeup.create().monitor is None


def test_gateway_remove_worker_turns_its_sending_parts_uncertain(tmp_path: Path) -> None:
    async def scenario() -> None:
        gateway = Gateway.build(Config(data_dir=tmp_path, discover=()))
        try:
            now = datetime.now(UTC)
            sim_id = gateway.store.bind_sim(iccid="8944000000000000004", imsi=None, now=now)
            account = create_account(gateway.store, "a", now=now, credits=10).account_id
            (message_id,) = gateway.service.submit(account, ["+15005550000"], "hi").message_ids
            gateway.store.promote_due(now)
            (part,) = gateway.store.parts(message_id)
            gateway.store.transition_part(part["id"], PartState.QUEUED, PartState.SENDING,
                                          now=now, fields={"sim_id": sim_id})  # fmt: skip
            port = str(tmp_path / "no-such-tty")  # the worker just keeps backing off
            worker = gateway.start_worker(port)
            assert gateway.start_worker(port) is worker  # idempotent
            worker.sim_id = sim_id  # as if it had bound the SIM before the plug was pulled
            assert await gateway.remove_worker(port) == [part["id"]]
            assert port not in gateway.workers and port not in gateway.running
            (after,) = gateway.store.parts(message_id)
            assert after["state"] == PartState.UNCERTAIN.value
            assert (gateway.store.message(message_id) or {})["state"] == "uncertain"
            assert await gateway.remove_worker(port) == []
        finally:
            await gateway.stop_workers()
            await gateway.dispatcher.close()
            gateway.store.close()

    asyncio.run(scenario())
    assert not os.path.exists(tmp_path / "no-such-tty")
