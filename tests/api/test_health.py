"""GET /v1/health: ready only while every expected modem is registered; 503 otherwise."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.config import Config
from gateway.daemon import Gateway
from gateway.models import ModemState
from gateway.operator import LiveModem
from gateway.service import GatewayService
from gateway.store import Store
from modem.emulator import EmulatorPool

DEADLINE = 60.0  # wall seconds per scenario: fails instead of hanging


async def _until(gateway: Gateway, condition: Callable[[], bool]) -> None:
    """Wait for the workers' own state changes (no polling, no sleeps)."""
    while not condition():
        gateway.changed.clear()
        await gateway.changed.wait()


async def _health(http: TestClient) -> tuple[int, dict[str, Any], str]:
    r = await http.get("/v1/health")
    text = await r.text()
    return r.status, await r.json(), text


@pytest.mark.parametrize(("stat", "word"), [(2, "searching"), (3, "denied")])
def test_a_modem_held_off_the_network_keeps_health_not_ready(
    tmp_path: Path, stat: int, word: str
) -> None:
    with EmulatorPool(["generic", "generic"], seed=5) as emu:
        emu.set_fault(1, "deregister", stat=stat)  # the network holds its registration
        asyncio.run(asyncio.wait_for(_held_off(tmp_path, emu, word), DEADLINE))


async def _held_off(tmp_path: Path, emu: EmulatorPool, word: str) -> None:
    good, held = emu.info()
    gateway = Gateway.build(Config(data_dir=tmp_path, discover=()))
    try:
        async with TestClient(TestServer(build_app(gateway.service))) as http:
            workers = [gateway.start_worker(good.path), gateway.start_worker(held.path)]
            for worker in workers:  # +CREG? read often, so changes show within the test
                worker.poll_interval = worker.register_poll = 0.05
            first, second = workers
            await _until(
                gateway,
                lambda: first.state is ModemState.READY and second.status().registration == word,
            )
            status, body, text = await _health(http)
            assert status == 503
            assert body["status"] == "not_ready"
            assert (body["modems_ready"], body["modems_expected"]) == (1, 2)
            assert body["problems"] == [f"{held.path}: registering ({word})"]
            modems = {m["port"]: m for m in body["modems"]}
            assert set(modems) == {good.path, held.path}
            assert modems[held.path]["state"] == "registering"
            assert modems[held.path]["registration"] == word
            assert modems[good.path]["state"] == "ready"
            assert modems[good.path]["registration"] == "home"
            assert modems[good.path]["signal_dbm"] is not None
            # Unauthenticated: the SIMs' numbers and ICCIDs are masked, their last digits kept.
            for info in (good, held):
                assert info.msisdn not in text
                assert modems[info.path]["number"].endswith(info.msisdn[-3:])
                assert info.iccid not in text
                assert modems[info.path]["iccid"] == "*" * (len(info.iccid) - 5) + info.iccid[-5:]

            emu.clear_fault(1, "deregister")  # the network lets it in
            await asyncio.wait_for(gateway.all_ready(), 10)
            status, body, _ = await _health(http)
            assert (status, body["status"], body["problems"]) == (200, "ready", [])
            assert [m["state"] for m in body["modems"]] == ["ready", "ready"]

            emu.set_fault(0, "deregister", stat=2)  # coverage lost while ready
            await _until(gateway, lambda: first.state is ModemState.REGISTERING)
            status, body, _ = await _health(http)
            assert status == 503
            assert body["problems"] == [f"{good.path}: registering (searching)"]
    finally:
        await gateway.stop_workers()
        await gateway.dispatcher.close()
        gateway.store.close()


def test_a_configured_port_that_is_missing_is_reported_with_its_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        gateway = Gateway.build(Config(data_dir=tmp_path, discover=()))
        missing = str(tmp_path / "no-such-modem")
        try:
            async with TestClient(TestServer(build_app(gateway.service))) as http:
                worker = gateway.start_worker(missing)
                await _until(gateway, lambda: worker.state is ModemState.BACKOFF)
                status, body, _ = await _health(http)
                assert status == 503
                (modem,) = body["modems"]
                assert (modem["port"], modem["state"]) == (missing, "backoff")
                assert "no-such-modem" in modem["error"]
                assert body["problems"][0].startswith(f"{missing}: backoff: ")
        finally:
            await gateway.stop_workers()
            await gateway.dispatcher.close()
            gateway.store.close()

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE))


def _service_with(tmp_path: Path, *modems: LiveModem) -> tuple[Store, GatewayService]:
    store = Store.open(tmp_path)
    service = GatewayService(store, wall=lambda: datetime.now(UTC))
    service.live_modems = lambda: modems
    return store, service


def test_no_expected_modem_is_not_ready(tmp_path: Path) -> None:
    store, service = _service_with(tmp_path)
    try:
        report = service.health()
        assert not report.ready
        assert report.problems == ("no modem configured or discovered",)
    finally:
        store.close()


def test_every_modem_ready_is_ready_and_each_one_not_ready_says_why(tmp_path: Path) -> None:
    ready = LiveModem(
        "/dev/ttyUSB0", ModemState.READY, registration="home", iccid="8944", signal_dbm=-71
    )
    store, service = _service_with(tmp_path, ready, ready)
    try:
        assert service.health().ready
        assert service.health().modems_ready == 2
    finally:
        store.close()
    waiting = [
        (LiveModem("/dev/a", ModemState.CONNECTING), "/dev/a: connecting"),
        (LiveModem("/dev/b", ModemState.INITIALISING), "/dev/b: initialising"),
        (
            LiveModem("/dev/c", ModemState.REGISTERING),
            "/dev/c: registering (registration not read yet)",
        ),
        (
            LiveModem("/dev/d", ModemState.BACKOFF, "port vanished"),
            "/dev/d: backoff: port vanished",
        ),
    ]
    for n, (status, why) in enumerate(waiting):
        store, service = _service_with(tmp_path / str(n), ready, status)
        try:
            report = service.health()
            assert not report.ready
            assert report.problems == (why,)
        finally:
            store.close()


def test_the_daemon_checks_integrity_in_a_thread_and_health_reports_the_last_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        gateway = Gateway.build(Config(data_dir=tmp_path, discover=()))
        try:
            # Health never reads the whole file on the loop (seconds on a big database).
            monkeypatch.setattr(
                gateway.store, "integrity_check", lambda: pytest.fail("checked on the loop")
            )
            async with TestClient(TestServer(build_app(gateway.service))) as http:
                assert await gateway.check_integrity() == []  # the real file, from a thread
                _, body, _ = await _health(http)
                assert body["database"] == "ok"
                loop_thread = threading.get_ident()
                seen: list[int] = []

                def corrupt() -> list[str]:
                    seen.append(threading.get_ident())
                    return ["row 7 missing from index parts_state"]

                monkeypatch.setattr(gateway.store, "check_offline", corrupt)
                assert await gateway.check_integrity() == ["row 7 missing from index parts_state"]
                assert seen and seen[0] != loop_thread
                status, body, _ = await _health(http)
                assert (status, body["database"]) == (503, "corrupt")
                assert "database corrupt" in body["problems"]
        finally:
            gateway.store.close()

    asyncio.run(asyncio.wait_for(scenario(), DEADLINE))
