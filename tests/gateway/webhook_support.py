"""Shared pieces of the webhook tests: a manual clock, a recording receiver, a signature check
written from the README's description (not from gateway.webhooks)."""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import hmac
import itertools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.outbox import Clock


class ManualClock:
    """Virtual time for the webhook sender: sleeps end only when the test advances the clock."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.mono = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def sleep(self, seconds: float) -> asyncio.Future[None]:
        # Registered at the call, not when a task first runs it: the deadline is exact.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.mono + seconds, next(self._ids), future))
        return future

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.now += timedelta(seconds=seconds)
        while self._sleepers and self._sleepers[0][0] <= self.mono:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def clock(self) -> Clock:
        return Clock(self.monotonic, self.wall, self.sleep)


def signature_ok(secret: str, headers: Any, body: bytes) -> bool:
    """The README's receiver check: hex HMAC-SHA256 of `<timestamp>.<body>`, prefixed `v1=`."""
    timestamp = headers["X-Smsgw-Timestamp"]
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("v1=" + expected.hexdigest(), headers["X-Smsgw-Signature"])


@dataclass
class Seen:
    """One request a receiver got."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Behaviour = Callable[[web.Request, "Receiver"], Awaitable[web.StreamResponse]]


async def ok(request: web.Request, receiver: Receiver) -> web.StreamResponse:
    return web.Response(text="ok")


@dataclass
class Receiver:
    """A local aiohttp server recording every request; `behaviour` decides each answer."""

    behaviour: Behaviour = ok
    host: str = "127.0.0.1"
    port: int | None = None  # None: any free port
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: TestServer | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path,
                request.query_string,
                dict(request.headers),
                await request.read(),
            )
        )
        self.arrived.set()
        return await self.behaviour(request, self)

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = TestServer(app, host=self.host, port=self.port)
        await self.server.start_server()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        await self.server.close()

    def url(self, path: str = "/hook") -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def wait_for(self, count: int) -> None:
        while len(self.seen) < count:
            self.arrived.clear()
            await self.arrived.wait()
