"""The aiohttp application: one sub-app per API dialect, /metrics and the dashboard, all over
GatewayService."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from api import bestsms, dashboard, native, smseveryone, ultrasms, zoomconnect
from api.connections import start_site
from api.dashboard.auth import LoginGuard
from gateway.config import Config
from gateway.metrics import WebhookCounts, build_registry
from gateway.service import GatewayService

log = logging.getLogger(__name__)

SERVICE_KEY = web.AppKey("service", GatewayService)
REGISTRY_KEY = web.AppKey("metrics_registry", CollectorRegistry)
METRICS_TOKEN_KEY = web.AppKey("metrics_token", str)


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format; a bearer token when the config sets one."""
    token = request.app[METRICS_TOKEN_KEY]
    if token and not hmac.compare_digest(
        request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()
    ):
        return web.Response(
            status=401, text="bearer token required\n", headers={"WWW-Authenticate": "Bearer"}
        )
    body = generate_latest(request.app[REGISTRY_KEY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(
    service: GatewayService,
    *,
    metrics_token: str = "",
    webhook_counts: WebhookCounts | None = None,
    login_guard: LoginGuard | None = None,
    refresh_ms: int = 2000,
) -> web.Application:
    """The whole HTTP surface: /v1 (our JSON API), the provider dialects, /metrics and the
    operator's dashboard at /. `webhook_counts` feeds the webhook gauges once a webhook sender
    provides them."""
    app = web.Application(client_max_size=1024 * 1024)
    app[SERVICE_KEY] = service
    app[REGISTRY_KEY] = build_registry(service, webhook_counts=webhook_counts)
    app[METRICS_TOKEN_KEY] = metrics_token
    app.add_subapp("/v1", native.build(service))
    bestsms.install(app, service)
    ultrasms.install(app, service)
    zoomconnect.install(app, service)
    smseveryone.install(app, service)
    app.router.add_get("/metrics", metrics)
    dashboard.install(
        app, service, guard=login_guard, webhook_counts=webhook_counts, refresh_ms=refresh_ms
    )
    return app


async def start(service: GatewayService, config: Config) -> Callable[[], Awaitable[None]]:
    """Entry point for gateway.daemon (group `smsgw.frontends`): serve until the stop call."""
    app = build_app(
        service, metrics_token=config.metrics_token, webhook_counts=service.webhook_counts
    )
    runner = await start_site(app, config.http, config.http_host, config.http_port)
    log.info(
        "HTTP API on %s:%d (dashboard at /, metrics at /metrics), at most %d connections",
        config.http_host,
        config.http_port,
        runner.max_connections,
    )
    if not service.has_admin_password():
        log.warning("no dashboard admin password is set: run `smsgw admin set-password`")
    return runner.cleanup
