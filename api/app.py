"""The aiohttp application: one sub-app per API dialect, all over GatewayService."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from api import bestsms, native, ultrasms
from gateway.config import Config
from gateway.service import GatewayService

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("service", GatewayService)


def build_app(service: GatewayService) -> web.Application:
    """The whole HTTP surface: /v1 (our JSON API), then the provider dialects."""
    app = web.Application(client_max_size=1024 * 1024)
    app[SERVICE_KEY] = service
    app.add_subapp("/v1", native.build(service))
    bestsms.install(app, service)
    ultrasms.install(app, service)
    return app


async def start(service: GatewayService, config: Config) -> Callable[[], Awaitable[None]]:
    """Entry point for gateway.daemon (group `smsgw.frontends`): serve until the stop call."""
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.http_host, config.http_port)
    await site.start()
    log.info("HTTP API on %s:%d", config.http_host, config.http_port)
    return runner.cleanup
