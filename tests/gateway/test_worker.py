"""ModemWorker: binding (a SIM seen again keeps its pace); its state table (ready = registered)."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.accounts import create_account
from gateway.config import Config
from gateway.inbox import Inbox
from gateway.models import MODEM_TRANSITIONS, ModemState, PartState
from gateway.operator import LiveModem
from gateway.outbox import Clock, Outbox
from gateway.pool import SimPool
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher
from gateway.store import Store
from gateway.worker import ModemWorker
from modem.at.parsers import Operator, Registration, SignalQuality
from modem.client import Identity
from modem.emulator import EmulatorPool
from tests.emulated import serving
from tests.gateway.watch import StoreWatch

ICCID = "8944000000000000077"
T = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


class StubClient:
    async def identity(self) -> Identity:
        return Identity("ACME", "M1", "1.0", "350000000000001", "001010000000077", ICCID, None)


def test_throttle_continues_from_sends_before_a_restart(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    wall_now = datetime.now(UTC)
    account = create_account(store, "a", now=wall_now).account_id
    sim = store.bind_sim(iccid=ICCID, imsi=None, now=wall_now)
    store.conn.execute("UPDATE sims SET throttle_interval = 6 WHERE id = ?", (sim,))
    (part,) = store.accept_message(
        account_id=account,
        recipient="+15551230001",
        body="x",
        encoding="gsm7",
        parts=1,
        now=wall_now,
    ).part_ids
    # the previous daemon started AT+CMGS 2 s ago, then died
    store.transition_part(
        part,
        PartState.QUEUED,
        PartState.SENDING,
        now=wall_now - timedelta(seconds=2),
        fields={"sim_id": sim},
    )

    async def scenario() -> float:
        loop = asyncio.get_running_loop()
        pool = SimPool()
        outbox = Outbox(store, pool, {}, Clock(loop.time, lambda: wall_now, asyncio.sleep))
        dispatcher = Dispatcher(store, outbox)
        worker = ModemWorker(
            "/dev/null",
            store=store,
            pool=pool,
            dispatcher=dispatcher,
            inbox=Inbox(store),
            reports=ReportMatcher(store),
            wall=lambda: wall_now,
        )
        try:
            await worker._bind(StubClient())  # type: ignore[arg-type]
            decision = pool.get(sim).throttle.check(loop.time())
            assert not decision.allowed
            return decision.not_before - loop.time()
        finally:
            await dispatcher.close()

    try:
        wait = asyncio.run(scenario())
    finally:
        store.close()
    assert 3.9 < wait < 4.1  # 6 s interval, 2 s already gone before the restart


def test_distinct_recipients_per_day_continue_across_a_restart(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    wall_now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    account = create_account(store, "a", now=wall_now).account_id
    sim = store.bind_sim(iccid=ICCID, imsi=None, now=wall_now)
    store.set_sim_limits(sim, {"cap_recipients_per_day": 2})
    # Before the restart: three texts to two people, the first 20 hours ago.
    for hours_ago, recipient in ((20, "+15551230001"), (5, "+15551230002"), (1, "+15551230001")):
        (part,) = store.accept_message(
            account_id=account, recipient=recipient, body="x", encoding="gsm7", parts=1,
            now=wall_now - timedelta(hours=hours_ago),
        ).part_ids  # fmt: skip
        store.transition_part(part, PartState.QUEUED, PartState.SENDING,
                              now=wall_now - timedelta(hours=hours_ago),
                              fields={"sim_id": sim})  # fmt: skip

    async def scenario() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        pool = SimPool()
        outbox = Outbox(store, pool, {}, Clock(loop.time, lambda: wall_now, asyncio.sleep))
        dispatcher = Dispatcher(store, outbox)
        worker = ModemWorker(
            "/dev/null", store=store, pool=pool, dispatcher=dispatcher, inbox=Inbox(store),
            reports=ReportMatcher(store), wall=lambda: wall_now,
        )  # fmt: skip
        try:
            await worker._bind(StubClient())  # type: ignore[arg-type]
            throttle = pool.get(sim).throttle
            known = throttle.check(loop.time(), "+15551230002")
            new = throttle.check(loop.time(), "+15551230003")
            return known.allowed, new.allowed, new.not_before - loop.time()
        finally:
            await dispatcher.close()

    try:
        known_ok, new_ok, wait = asyncio.run(scenario())
    finally:
        store.close()
    assert known_ok  # one of the day's two recipients may be texted again
    assert not new_ok  # a third person must wait...
    assert abs(wait - 4 * 3600) < 5  # ...until the first recipient's day ends, 4 h from now


async def _first_inbound(emu: EmulatorPool, tmp_path: Path) -> tuple[int | None, int, int]:
    config = Config(data_dir=tmp_path, http_host="127.0.0.1", http_port=0)
    ports = [i.path for i in emu.info()]
    # Not waiting for the worker: the message is handed over while it still starts up.
    async with serving(config, ports, frontends=[], modems_ready=False) as gateway:
        store = gateway.store
        await StoreWatch(gateway).until(
            lambda: store.conn.execute("SELECT COUNT(*) FROM inbound").fetchone()[0] == 1
        )
        (worker,) = gateway.workers.values()
        await worker.ready.wait()
        (row,) = store.conn.execute("SELECT sim_id FROM inbound").fetchall()
        assert worker.sim_id is not None
        sim = store.sim(worker.sim_id)
        assert sim is not None
        return row[0], worker.sim_id, sim["received_count"]


def test_a_message_waiting_on_the_sim_at_start_is_received_on_that_sim(tmp_path: Path) -> None:
    # The start-up scan hands it over while the worker still asks the modem for its identity.
    with EmulatorPool(["generic"], seed=3) as emu:
        (info,) = emu.info()
        emu.inject_sms(info.msisdn, "sent while the box was off", sender="+15551230001")
        stored_sim, sim_id, received = asyncio.run(
            asyncio.wait_for(_first_inbound(emu, tmp_path), 30)
        )
    assert stored_sim == sim_id
    assert received == 1


class PhonesimClient:
    """Answers as ofono-phonesim does: serial "1234567890" (not an IMEI), IMSI "246813579"."""

    async def identity(self) -> Identity:
        return Identity("Meego", "Synthetic Device", "REV1", "1234567890", "246813579", None, None)


def test_a_modem_whose_serial_is_not_an_imei_still_binds_by_it(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    wall_now = datetime.now(UTC)

    async def scenario() -> list[int | None]:
        loop = asyncio.get_running_loop()
        pool = SimPool()
        outbox = Outbox(store, pool, {}, Clock(loop.time, lambda: wall_now, asyncio.sleep))
        dispatcher = Dispatcher(store, outbox)
        ids: list[int | None] = []
        try:
            for _ in range(2):  # the same modem seen twice is one modem, keyed by its serial
                worker = ModemWorker(
                    "/dev/pts/9",
                    store=store,
                    pool=pool,
                    dispatcher=dispatcher,
                    inbox=Inbox(store),
                    reports=ReportMatcher(store),
                    wall=lambda: wall_now,
                )
                await worker._bind(PhonesimClient())  # type: ignore[arg-type]
                ids.append(worker.modem_id)
        finally:
            await dispatcher.close()
        return ids

    try:
        ids = asyncio.run(scenario())
        modems = store.list_modems()
    finally:
        store.close()
    assert ids[0] is not None and ids == [ids[0], ids[0]]
    assert [m["imei"] for m in modems] == ["1234567890"]


class ScriptedClient(StubClient):
    """Answers +CREG? from a script (searching first, then home), like a modem finding a cell."""

    def __init__(self, stats: list[int]) -> None:
        self.stats = stats
        self.alive = True
        self.operator_asked = 0
        self.pin_checks = 0

    async def open(self) -> "ScriptedClient":
        return self

    async def registration(self) -> Registration:
        return Registration(self.stats.pop(0) if len(self.stats) > 1 else self.stats[0])

    async def signal(self) -> SignalQuality:
        return SignalQuality(20, 0)

    async def operator(self) -> Operator:
        self.operator_asked += 1
        return Operator(0, 0, "Test Net")

    async def ensure_unlocked(self, why: str = "") -> bool:
        self.pin_checks += 1
        return False

    def add_listener(self, callback: object) -> Callable[[], None]:
        return lambda: None

    async def close(self) -> None:
        self.alive = False


def test_worker_is_ready_only_once_registered_and_walks_the_state_table(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    seen: list[LiveModem] = []
    clients: list[ScriptedClient] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        pool = SimPool()
        outbox = Outbox(store, pool, {}, Clock(loop.time, lambda: T, asyncio.sleep))
        dispatcher = Dispatcher(store, outbox)
        stop = asyncio.Event()

        def factory(*args: object, **kwargs: object) -> ScriptedClient:
            clients.append(ScriptedClient([2, 2, 1]))
            return clients[-1]

        def on_status(status: LiveModem) -> None:
            seen.append(status)
            if status.state is ModemState.READY:
                stop.set()

        worker = ModemWorker(
            "/dev/ttyUSB7",
            store=store,
            pool=pool,
            dispatcher=dispatcher,
            inbox=Inbox(store),
            reports=ReportMatcher(store),
            wall=lambda: T,
            register_poll=0,
            client_factory=factory,
            on_status=on_status,
        )
        try:
            await worker.run(stop)
        finally:
            await dispatcher.close()
        assert worker.state is ModemState.STOPPED and not worker.ready.is_set()
        assert worker.sim_id is not None
        sim = store.sim(worker.sim_id) or {}
        assert (sim["registration"], sim["operator"]) == ("home", "Test Net")  # for smsgw top

    try:
        asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        store.close()
    assert [s.state for s in seen] == [
        ModemState.INITIALISING,
        ModemState.REGISTERING,  # bound, +CREG not read yet
        ModemState.REGISTERING,  # searching (news: registration read)
        ModemState.READY,
        ModemState.GONE,
        ModemState.STOPPED,
    ]
    assert [s.registration for s in seen[1:4]] == [None, "searching", "home"]
    ready = seen[3]
    assert (ready.iccid, ready.signal_dbm, ready.model) == (ICCID, -73, "ACME M1")
    (client,) = clients
    assert client.operator_asked == 1  # +COPS? once registered, not on every search poll
    assert client.pin_checks == 2  # while searching it looks whether the SIM wants its PIN


def test_modem_state_table_covers_every_state_and_refuses_the_rest(tmp_path: Path) -> None:
    assert set(MODEM_TRANSITIONS) == set(ModemState)
    store = Store.open(tmp_path)
    try:
        worker = ModemWorker(
            "/dev/null",
            store=store,
            pool=SimPool(),
            dispatcher=None,  # type: ignore[arg-type]
            inbox=Inbox(store),
            reports=ReportMatcher(store),
            wall=lambda: T,
        )
        with pytest.raises(RuntimeError, match="connecting -> ready"):
            worker._set_state(ModemState.READY)  # never ready without binding and registering
        assert worker.state is ModemState.CONNECTING and not worker.ready.is_set()
    finally:
        store.close()
