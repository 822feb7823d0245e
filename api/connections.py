"""Connection hygiene for the HTTP front-end: idle and slow (slowloris) clients are dropped, so
are clients that never read their responses, and the number of open connections is capped, in
all and per client address, so a flood of sockets never stops sending or the other clients."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
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


def peer_key(peername: object) -> str:
    """The client a connection counts against for the per-address cap: its IPv4 address, or
    the /64 of its IPv6 one (one site's, which its hosts pick addresses from at will)."""
    if not isinstance(peername, tuple) or not peername:
        return "local"  # a Unix socket: one local client
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%")[0])
    except ValueError:
        return str(peername[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class GuardedHandler(RequestHandler):
    """aiohttp's connection protocol, telling its GuardedServer when the client stops taking
    its responses (the transport's write buffer past its high-water mark) and takes them again."""

    def pause_writing(self) -> None:
        super().pause_writing()
        if isinstance(self._manager, GuardedServer):
            self._manager.writes_paused(self)

    def resume_writing(self) -> None:
        super().resume_writing()
        if isinstance(self._manager, GuardedServer):
            self._manager.writes_resumed(self)


class GuardedServer(web.Server):
    """aiohttp's low-level server with connection caps, a body deadline and a write deadline.

    At the cap the oldest connection that is not inside a request (idle keep-alive, or a request
    head still trickling in) is closed to make room; if every one is busy the newcomer is. The
    same happens among one address's connections at its own cap, so a client holding many
    (idle, or busy with slow bodies) crowds out only itself. Either way accepting stays O(1),
    so a flood cannot starve the loop. The request head and idle time are bounded by aiohttp's
    keep-alive timer (it closes a connection that has no complete request `keepalive_timeout`
    after it opened or answered its last request); a client that takes none of its response for
    `write_timeout` is cut off (aiohttp already reads no further requests meanwhile). A request
    whose client is gone before its body came (dropped for slowness, or it hung up) is
    cancelled, so the dialects never see, and log, a half-read body.
    """

    def __init__(
        self,
        handler: _Handler,
        *,
        max_connections: int,
        body_timeout: float,
        max_per_ip: int | None = None,
        write_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip if max_per_ip is not None else max_connections
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        self.shed = 0  # connections closed to stay under the cap
        self.shed_per_ip = 0  # of those, closed to keep one address under its own cap
        self.slow_bodies = 0  # requests dropped for a body slower than body_timeout
        self.stalled_writes = 0  # connections cut off for not reading their responses
        self.largest_stall = 0  # the most response bytes one such connection had waiting
        self._open: dict[RequestHandler, None] = {}  # insertion order: oldest first
        self._by_peer: dict[str, dict[RequestHandler, None]] = {}  # the same, per address
        self._peer_of: dict[RequestHandler, str] = {}
        self._busy: set[RequestHandler] = set()
        # Requests still waiting for body bytes, and the tasks cancelled for a lost client.
        self._reading: dict[RequestHandler, tuple[web.BaseRequest, asyncio.Task[Any]]] = {}
        self._cut: set[asyncio.Task[Any]] = set()
        self._stalled: dict[RequestHandler, asyncio.TimerHandle] = {}
        inner = self.request_handler

        async def guarded(request: web.BaseRequest) -> web.StreamResponse:
            protocol = request.protocol
            if protocol.transport is None:
                # Closed to make room between its request head and this call (not busy yet):
                # nobody to answer, and its body can no longer be read.
                return web.Response(status=503)
            self._busy.add(protocol)
            task = asyncio.current_task()
            timer = None
            if not request.content.is_eof():
                if task is not None:
                    self._reading[protocol] = (request, task)
                timer = self._loop.call_later(
                    self.body_timeout, self._body_deadline, request, protocol
                )
            try:
                return await inner(request)
            except asyncio.CancelledError:
                if task is None or task not in self._cut:
                    raise
                self._cut.discard(task)
                if task.uncancel() > 0:
                    raise  # cancelled for another reason too (shutting down)
                # Nobody to answer: aiohttp finds the connection closed and drops this quietly.
                return web.Response(status=408)
            finally:
                self._busy.discard(protocol)
                self._reading.pop(protocol, None)
                if timer is not None:
                    timer.cancel()

        self.request_handler = guarded

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)

    def _body_deadline(self, request: web.BaseRequest, protocol: RequestHandler) -> None:
        if not request.content.is_eof():
            self.slow_bodies += 1
            log.info(
                "dropped %s: request body slower than %g s", _peer(protocol), self.body_timeout
            )
            _drop(protocol)

    def writes_paused(self, handler: RequestHandler) -> None:
        """The client stopped taking its response: cut it off unless it takes some within
        write_timeout."""
        transport = handler.transport
        if transport is not None and handler not in self._stalled:
            self._arm_write_deadline(handler, transport.get_write_buffer_size())

    def writes_resumed(self, handler: RequestHandler) -> None:
        """The client took its response down to the low-water mark."""
        timer = self._stalled.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _arm_write_deadline(self, handler: RequestHandler, pending: int) -> None:
        self._stalled[handler] = self._loop.call_later(
            self.write_timeout, self._write_deadline, handler, pending
        )

    def _write_deadline(self, handler: RequestHandler, pending_before: int) -> None:
        self._stalled.pop(handler, None)
        transport = handler.transport
        if transport is None:
            return
        pending = transport.get_write_buffer_size()
        if pending < pending_before:  # it took some: a slow reader, not a stuck one
            self._arm_write_deadline(handler, pending)
            return
        self.stalled_writes += 1
        self.largest_stall = max(self.largest_stall, pending)
        log.info(
            "dropped %s: took none of its responses for %g s (%d bytes waiting)",
            _peer(handler),
            self.write_timeout,
            pending,
        )
        _drop(handler)

    def connection_made(self, handler: RequestHandler, transport: Any) -> None:
        super().connection_made(handler, transport)
        self._open[handler] = None
        peer = peer_key(transport.get_extra_info("peername"))
        self._peer_of[handler] = peer
        mine = self._by_peer.setdefault(peer, {})
        mine[handler] = None
        if len(mine) > self.max_per_ip:
            self.shed_per_ip += 1
            if self.shed_per_ip == 1 or self.shed_per_ip % 1000 == 0:
                log.warning(
                    "HTTP connection cap per address (%d) reached by %s: closing its idle"
                    " connections (%d so far)",
                    self.max_per_ip,
                    peer,
                    self.shed_per_ip,
                )
            self._shed(handler, mine)
        elif len(self._open) > self.max_connections:
            at_cap = self.shed - self.shed_per_ip + 1
            if at_cap == 1 or at_cap % 1000 == 0:
                log.warning(
                    "HTTP connection cap %d reached: closing idle connections (%d so far)",
                    self.max_connections,
                    at_cap,
                )
            self._shed(handler, self._open)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._forget(handler)
        self._busy.discard(handler)
        self.writes_resumed(handler)
        reading = self._reading.pop(handler, None)
        if reading is not None:
            request, task = reading
            if not request.content.is_eof() and not task.done():
                # Called before aiohttp fails the body read with ConnectionResetError: the
                # handler is cancelled at that read instead (see guarded).
                self._cut.add(task)
                task.cancel()
                log.debug("%s went away before its request body was complete", _peer(handler))

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        return len(self._open)

    @property
    def waiting_for_bodies(self) -> int:
        """Requests under way whose body has not all come yet."""
        return len(self._reading)

    def connections_from(self, peer: str) -> int:
        """Open connections counted against `peer` (a peer_key)."""
        return len(self._by_peer.get(peer, ()))

    def _forget(self, handler: RequestHandler) -> None:
        self._open.pop(handler, None)
        peer = self._peer_of.pop(handler, None)
        mine = self._by_peer.get(peer, {}) if peer is not None else {}
        mine.pop(handler, None)
        if not mine and peer in self._by_peer:
            del self._by_peer[peer]

    def _shed(self, newest: RequestHandler, among: dict[RequestHandler, None]) -> None:
        """Close the oldest idle connection of `among` (else the newcomer) to make room."""
        victim = newest
        for candidate in among:
            if candidate is not newest and candidate not in self._busy:
                victim = candidate
                break
        self._forget(victim)
        self.shed += 1
        if victim is newest:
            # Not right away: its start() task is not running yet, and aiohttp expects it to
            # run before the connection is lost.
            self._loop.call_soon(_drop, victim)
        else:  # at once, so an accept burst gives descriptors back as it goes
            _drop(victim)


def _drop(protocol: RequestHandler) -> None:
    """Close a connection now, even with a response waiting for a client that does not read
    (closing the transport would wait for that response to be taken first)."""
    transport = protocol.transport
    if transport is not None and transport.get_write_buffer_size():
        transport.abort()
    protocol.force_close()


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
        self.max_per_ip = min(settings.max_connections_per_ip, self.max_connections)
        self.backlog = accept_backlog(settings, fd_limit)

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs startup and freezes the app
        # Same arguments as the plain server aiohttp built, through the guarded class.
        return GuardedServer(
            plain.request_handler,
            max_connections=self.max_connections,
            max_per_ip=self.max_per_ip,
            body_timeout=self.settings.body_timeout,
            write_timeout=self.settings.write_timeout,
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
