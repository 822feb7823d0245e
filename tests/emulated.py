"""A gateway on emulated modems, for end-to-end tests and benchmarks: the daemon itself
(`serving`), or its parts wired by hand around one store (`assembled`)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from gateway.config import Config
from gateway.daemon import Frontend, Gateway, serve
from gateway.inbox import Inbox
from gateway.models import PartState
from gateway.outbox import Clock, Outbox
from gateway.pool import SimPool
from gateway.reports import ReportMatcher
from gateway.scheduler import Dispatcher
from gateway.service import GatewayService
from gateway.store import Store
from gateway.worker import ModemWorker
from modem.client import ClientConfig
from modem.emulator import EmulatorPool
from modem.pdu import SmsSubmit
from tests.lockstep import LockstepClock


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(
    config: Config,
    ports: Sequence[str],
    *,
    frontends: Sequence[Frontend] | None = None,
    lockstep: LockstepClock | None = None,
    modems_ready: bool = True,
    ready_timeout: float | None = None,
    modems_timeout: float | None = None,
) -> AsyncIterator[Gateway]:
    """`serve(config)` on `ports` (on `lockstep`'s virtual clock if given) until the block ends;
    yields the gateway once it serves and, with `modems_ready`, every worker is ready."""
    stop = asyncio.Event()
    ready: asyncio.Future[Gateway] = asyncio.get_running_loop().create_future()
    daemon = asyncio.create_task(
        serve(
            config,
            stop=stop,
            ports=[(port, None) for port in ports],
            on_ready=ready.set_result,
            frontends=frontends,
            clock=lockstep.clock() if lockstep is not None else None,
        )
    )
    try:
        gateway = await asyncio.wait_for(ready, ready_timeout)
        if lockstep is not None:
            # Time may not move while an AT+CMGS is under way, so the network stamps a submit
            # at the very virtual instant the throttle let it start; nor while a group commit
            # is in its thread (the loop only looks idle).
            lockstep.hold_while(lambda: bool(gateway.outbox.on_wire) or gateway.service.committing)
        if modems_ready:
            await asyncio.wait_for(
                asyncio.gather(*(w.ready.wait() for w in gateway.workers.values())),
                modems_timeout,
            )
        yield gateway
    finally:
        stop.set()
        await daemon


@dataclass
class Assembled:
    """A gateway wired by hand on emulated modems, with the events a test waits on."""

    store: Store
    service: GatewayService
    workers: list[ModemWorker]
    sims: set[str]  # the SIMs' own numbers
    settled: asyncio.Queue[tuple[int, PartState]]  # (part id, final state) per status report
    inbound: asyncio.Queue[int]  # each received message's id
    client: TestClient  # the HTTP API (every dialect) on a real socket


@asynccontextmanager
async def assembled(
    store: Store,
    emu: EmulatorPool,
    *,
    lockstep: LockstepClock | None = None,
    wake_on_accept: bool = False,
) -> AsyncIterator[Assembled]:
    """Workers for every emulated modem, a dispatcher and the HTTP API over `store` (closed at
    the end), on `lockstep`'s virtual clock or the real one; yields once every worker is ready."""
    loop = asyncio.get_running_loop()
    wall = lockstep.wall if lockstep is not None else lambda: datetime.now(UTC)
    clock = lockstep.clock() if lockstep is not None else Clock(loop.time, wall, asyncio.sleep)
    settled: asyncio.Queue[tuple[int, PartState]] = asyncio.Queue()
    inbound: asyncio.Queue[int] = asyncio.Queue()
    pool = SimPool()
    reports = ReportMatcher(store, on_settled=lambda part, state: settled.put_nowait((part, state)))
    outbox = Outbox(store, pool, {}, clock,
                    on_sent=lambda part: reports.reconcile(part, now=wall()))  # fmt: skip
    if lockstep is not None:
        lockstep.hold_while(lambda: bool(outbox.on_wire))  # a submit is stamped when it starts
    dispatcher = Dispatcher(store, outbox)
    workers = [
        ModemWorker(
            info.path,
            store=store,
            pool=pool,
            dispatcher=dispatcher,
            inbox=Inbox(store, on_message=inbound.put_nowait),
            reports=reports,
            wall=wall,
            config=ClientConfig(),
        )
        for info in emu.info()
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    tasks.append(asyncio.create_task(dispatcher.run(stop)))
    service = GatewayService(store, wall=wall)
    if wake_on_accept:
        service.on_accepted = dispatcher.wake
    try:
        await asyncio.gather(*(w.ready.wait() for w in workers))
        sims = {store.sim(w.sim_id)["msisdn"] for w in workers if w.sim_id is not None}
        async with TestClient(TestServer(build_app(service))) as client:
            yield Assembled(store, service, workers, sims, settled, inbound, client)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await dispatcher.close()
        store.close()


def parts_sent(gateway: Gateway, count: int) -> asyncio.Event:
    """An event set once `count` parts are recorded sent (through the outbox's own hook, the
    report matcher's still called first): a test waits on it instead of polling."""
    reached = asyncio.Event()
    sent = 0
    reconcile = gateway.outbox.on_sent

    def on_sent(part_id: int) -> None:
        nonlocal sent
        if reconcile is not None:
            reconcile(part_id)
        sent += 1
        if sent >= count:
            reached.set()

    gateway.outbox.on_sent = on_sent
    return reached


class SubmitSpy:
    """Wraps a SIM's sender: hands over each SMS-SUBMIT as its AT+CMGS begins."""

    def __init__(self, inner: Any, started: asyncio.Queue[SmsSubmit]) -> None:
        self.inner = inner
        self.started = started

    async def send_submit(self, recipient: str, submit: SmsSubmit) -> Any:
        self.started.put_nowait(submit)
        return await self.inner.send_submit(recipient, submit)
