"""Connection hygiene for the HTTP front-end: idle and slow (slowloris) clients are dropped and
the number of open connections is capped, so a flood of sockets never stops sending or the
other clients."""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import resource
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.config import HttpSettings

log = logging.getLogger(__name__)

# File descriptors kept for everything that is not an HTTP connection: the store, modems,
# webhook sockets, hot-plug, logs.
FD_RESERVE = 64
# How long stopping waits for requests in flight (ours answer in milliseconds; what is left is
# a client still trickling its body) before their connections are cut.
SHUTDOWN_SECONDS = 3.0

_Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (systemd's soft default is 1024); return the
    soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            log.warning("could not raise the open-file limit from %d", soft)
    return soft


def accept_backlog(settings: HttpSettings, fd_limit: int) -> int:
    """The listen backlog, small enough for the open-file limit: asyncio accepts up to this
    many connections in one go before any is closed to stay under the cap."""
    return max(16, min(settings.backlog, fd_limit // 8))


def connection_cap(settings: HttpSettings, fd_limit: int) -> int:
    """The configured cap, lowered so that the cap, one accept burst and FD_RESERVE descriptors
    for the rest of the daemon fit under the open-file limit."""
    room = fd_limit - FD_RESERVE - accept_backlog(settings, fd_limit)
    return max(1, min(settings.max_connections, room))


class AcceptErrors:
    """A loop exception handler that turns asyncio's "socket.accept() out of system resource"
    (EMFILE: it retries a second later, once per connection waiting) into one warning a
    minute; everything else goes to the previous handler."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.previous = loop.get_exception_handler()
        self.count = 0
        self._last = -math.inf

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
            self.count += 1
            now = loop.time()
            if now - self._last >= 60.0:
                self._last = now
                log.warning(
                    "out of file descriptors: new HTTP connections wait (%d refusal(s)): %s",
                    self.count,
                    exc.strerror,
                )
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)


class GuardedServer(web.Server):
    """aiohttp's low-level server with a connection cap and a body deadline.

    At the cap the oldest connection that is not inside a request (idle keep-alive, or a request
    head still trickling in) is closed to make room; if every one is busy the newcomer is.
    Either way accepting stays O(1), so a flood cannot starve the loop. The request head and
    idle time are bounded by aiohttp's keep-alive timer (it closes a connection that has no
    complete request `keepalive_timeout` after it opened or answered its last request).
    """

    def __init__(
        self,
        handler: _Handler,
        *,
        max_connections: int,
        body_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.body_timeout = body_timeout
        self.shed = 0  # connections closed to stay under the cap
        self.slow_bodies = 0  # requests dropped for a body slower than body_timeout
        self._open: dict[RequestHandler, None] = {}  # insertion order: oldest first
        self._busy: set[RequestHandler] = set()
        inner = self.request_handler

        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            self._busy.add(protocol)
            timer = None
            if not request.content.is_eof():
                timer = self._loop.call_later(
                    self.body_timeout, self._body_deadline, request, protocol
                )
            try:
                return await inner(request)
            finally:
                self._busy.discard(protocol)
                if timer is not None:
                    timer.cancel()

        self.request_handler = guarded

    def _body_deadline(self, request: web.BaseRequest, protocol: RequestHandler) -> None:
        if not request.content.is_eof():
            self.slow_bodies += 1
            log.info(
                "dropped %s: request body slower than %g s", _peer(protocol), self.body_timeout
            )
            protocol.force_close()

    def connection_made(self, handler: RequestHandler, transport: Any) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None
        if len(self._open) > self.max_connections:
            self._shed(handler)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._open.pop(handler, None)
        self._busy.discard(handler)

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        return len(self._open)

    def _shed(self, newest: RequestHandler) -> None:
        victim = newest
        for candidate in self._open:
            if candidate is not newest and candidate not in self._busy:
                victim = candidate
                break
        self._open.pop(victim, None)
        self.shed += 1
        if self.shed == 1 or self.shed % 1000 == 0:
            log.warning(
                "HTTP connection cap %d reached: closing idle connections (%d so far)",
                self.max_connections,
                self.shed,
            )
        if victim is newest:
            # Not right away: its start() task is not running yet, and aiohttp expects it to
            # run before the connection is lost.
            self._loop.call_soon(victim.force_close)
        else:  # at once, so an accept burst gives descriptors back as it goes
            victim.force_close()


def _peer(protocol: RequestHandler) -> str:
    peer = protocol.peername
    return str(peer[0]) if isinstance(peer, tuple) else "a client"


class GuardedRunner(web.AppRunner):
    """web.AppRunner serving through GuardedServer with `settings` (and the fd-derived cap)."""

    def __init__(self, app: web.Application, settings: HttpSettings, *, fd_limit: int) -> None:
        super().__init__(
            app,
            access_log=None,
            shutdown_timeout=SHUTDOWN_SECONDS,
            keepalive_timeout=settings.idle_timeout,
            max_line_size=settings.max_line_size,
            max_field_size=settings.max_line_size,
        )
        self.settings = settings
        self.max_connections = connection_cap(settings, fd_limit)
        self.backlog = accept_backlog(settings, fd_limit)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs startup and freezes the app
        # Same arguments as the plain server aiohttp built, through the guarded class.
        return GuardedServer(
            plain.request_handler,
            max_connections=self.max_connections,
            body_timeout=self.settings.body_timeout,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )

    @property
    def guarded(self) -> GuardedServer:
        """The running server (counters for tests and metrics)."""
        server = self.server
        assert isinstance(server, GuardedServer)
        return server


async def start_site(
    app: web.Application, settings: HttpSettings, host: str, port: int
) -> GuardedRunner:
    """Serve `app` on host:port behind the guard; returns the runner (cleanup() stops it)."""
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(AcceptErrors(loop))
    runner = GuardedRunner(app, settings, fd_limit=raise_fd_limit())
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=runner.backlog)
    await site.start()
    return runner
