"""The whole daemon on emulated modems, with its HTTP front-end on a free port, in a thread of its
own: for clients that block (a browser driven by selenium, curl)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from aiohttp import web

from api.app import build_app
from api.dashboard.auth import LoginGuard
from gateway.accounts import create_account
from gateway.config import Config
from gateway.daemon import Gateway, serve
from gateway.service import GatewayService
from modem.emulator import EmulatorPool

T = TypeVar("T")
START_TIMEOUT = 30.0
CALL_TIMEOUT = 10.0
ADMIN_PASSWORD = "a dashboard passphrase"


class LiveGateway:
    """`smsgw serve` on `personalities` emulated modems (manual emulator clock: status reports
    come when the test advances it by `report_delay`), dashboard refresh every `refresh_ms`."""

    def __init__(
        self,
        data_dir: Path,
        personalities: tuple[str, ...] = ("generic", "huawei", "sim800"),
        *,
        report_delay: float = 5.0,
        refresh_ms: int = 400,
    ) -> None:
        self.data_dir = data_dir
        self.personalities = personalities
        self.report_delay = report_delay
        self.refresh_ms = refresh_ms
        self.port = 0
        self.account_id = 0
        self._ready = threading.Event()
        self._failed: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._gateway: Gateway | None = None
        self.emulator = EmulatorPool(list(personalities), seed=14, report_delay=report_delay)
        self.emulator.boot()  # boot URCs ("SMS Ready") before the gateway connects
        self._thread = threading.Thread(target=self._run, name="live-gateway")

    @property
    def url(self) -> str:
        """The front-end's base URL."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Gateway:
        """The running gateway (touch it only through call())."""
        assert self._gateway is not None
        return self._gateway

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._failed is not None:
            self.close()
            raise RuntimeError(f"the gateway did not start: {self._failed!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the daemon, then the emulator."""
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread.is_alive():
            self._thread.join(START_TIMEOUT)
        self.emulator.close()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the waiting test thread
            self._failed = exc
            self._ready.set()

    async def _frontend(
        self, service: GatewayService, config: Config
    ) -> Callable[[], Awaitable[None]]:
        app = build_app(
            service, login_guard=LoginGuard(first_delay=0.05), refresh_ms=self.refresh_ms
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        return runner.cleanup

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        ready: asyncio.Future[Gateway] = self._loop.create_future()
        config = Config(data_dir=self.data_dir, http_host="127.0.0.1", http_port=0, discover=())
        ports = [(info.path, None) for info in self.emulator.info()]
        daemon = asyncio.create_task(
            serve(
                config,
                stop=self._stop,
                ports=ports,
                on_ready=ready.set_result,
                frontends=[self._frontend],
            )
        )
        try:
            gateway = await asyncio.wait_for(ready, START_TIMEOUT)
            await asyncio.wait_for(
                asyncio.gather(*(w.ready.wait() for w in gateway.workers.values())), START_TIMEOUT
            )
            self._gateway = gateway
            self.account_id = create_account(
                gateway.store, "shop", now=datetime.now(UTC), unlimited=True
            ).account_id
            gateway.service.set_admin_password(ADMIN_PASSWORD)
        except BaseException:
            self._stop.set()
            await daemon
            raise
        self._ready.set()
        await daemon

    def call(self, fn: Callable[[Gateway], T]) -> T:
        """Run fn(gateway) on the daemon's loop thread (the store has one writer) and return
        what it returns."""
        assert self._loop is not None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(self.gateway))
            except BaseException as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(CALL_TIMEOUT)
