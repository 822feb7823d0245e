"""Outgoing webhooks: events, the registry of formats, signing, URL rules and the sender.

Events are written to the store's outbox in the transaction of the change they report
(gateway.store.webhooks); `WebhookWorker` delivers them on tasks of its own, never on the send
path. This module knows no provider dialect: a dialect registers a formatter (`register_format`)
that turns an event into its provider's request, and the engine signs and sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from gateway.config import WebhookSettings
from gateway.models import WebhookKind, WebhookState
from gateway.outbox import Clock
from gateway.store import Store, WebhookAttempt

if TYPE_CHECKING:  # aiohttp is imported when the sender runs: the CLI starts faster without it
    import aiohttp

__all__ = [
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "WebhookEvent",
    "WebhookFormatter",
    "WebhookKind",
    "WebhookRequest",
    "WebhookState",
    "WebhookSubscription",
    "WebhookUrlError",
    "WebhookWorker",
    "check_url",
    "format_names",
    "redact_url",
    "register_format",
    "sign",
    "signature_scheme",
    "verify_signature",
]

log = logging.getLogger(__name__)

EVENT_ID_HEADER = "X-Smsgw-Event-Id"
TIMESTAMP_HEADER = "X-Smsgw-Timestamp"
SIGNATURE_HEADER = "X-Smsgw-Signature"
USER_AGENT = "smsgw-webhooks/1"
SIGNATURE_TOLERANCE = 300  # seconds a receiver should accept a timestamp off its own clock
MAX_URL_LENGTH = 2048
PURGE_EVERY = 3600.0  # seconds between purges of old delivered events
STOP_GRACE = 2.0  # seconds attempts in flight may finish when the daemon stops
# A claim on an event outlasts its attempt's timeout by this much (time to record the outcome):
# another box takes the event up only once a claim this old has run out (its box died).
CLAIM_MARGIN = 30.0


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event for one account, as a formatter sees it."""

    event_id: str  # stable across retries and crashes: the receiver's deduplication key
    kind: WebhookKind
    account_id: int
    created_at: datetime  # aware, UTC
    data: Mapping[str, Any]  # dialect-neutral facts, JSON-able


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The HTTP request a formatter makes of an event; the engine adds the signature headers."""

    method: str  # "POST" or "GET"
    url: str  # full URL incl. any query the format adds
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class WebhookSubscription:
    """Where one account's events of one kind go, and in which format."""

    kind: WebhookKind
    url: str
    format: str
    updated_at: datetime


# (event, subscriber URL) -> request; None: this format sends nothing for this event (say, a
# provider whose status callback only knows final states), which counts as delivered.
WebhookFormatter = Callable[[WebhookEvent, str], WebhookRequest | None]

_FORMAT_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")


def v1_format(event: WebhookEvent, url: str) -> WebhookRequest:
    """Our own /v1 format: a JSON POST of the event."""
    body = {
        "id": event.event_id,
        "type": event.kind.value,
        "account_id": event.account_id,
        "created_at": event.created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "data": dict(event.data),
    }
    return WebhookRequest(
        "POST",
        url,
        (("Content-Type", "application/json"),),
        json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
    )


_FORMATS: dict[str, WebhookFormatter] = {"v1": v1_format}


def register_format(name: str, formatter: WebhookFormatter) -> None:
    """Make a format available to subscriptions (a dialect calls this when it is mounted;
    registering a name again replaces its formatter)."""
    if not _FORMAT_NAME.fullmatch(name):
        raise ValueError(f"format names are lowercase words, not {name!r}")
    _FORMATS[name] = formatter


def format_names() -> tuple[str, ...]:
    """The formats registered in this process."""
    return tuple(sorted(_FORMATS))


# -- signing --------------------------------------------------------------------------------


def signed_content(timestamp: int, request: WebhookRequest) -> bytes:
    """What the signature covers: `<timestamp>.<body>`; a request without a body (a GET format)
    has its request target (path and query) signed in place of the body."""
    if request.body:
        payload = request.body
    else:
        parts = urlsplit(request.url)
        payload = ((parts.path or "/") + (f"?{parts.query}" if parts.query else "")).encode()
    return str(timestamp).encode() + b"." + payload


def sign(secret: str, timestamp: int, request: WebhookRequest) -> str:
    """The X-Smsgw-Signature value: `v1=` and the hex HMAC-SHA256 of signed_content."""
    digest = hmac.new(secret.encode(), signed_content(timestamp, request), hashlib.sha256)
    return "v1=" + digest.hexdigest()


def signature_scheme() -> dict[str, Any]:
    """How a receiver checks a request: what GET /v1/webhooks and `smsgw accounts webhooks`
    print as `signature`, from the constants the engine signs with."""
    return {
        "event_id_header": EVENT_ID_HEADER,
        "timestamp_header": TIMESTAMP_HEADER,
        "signature_header": SIGNATURE_HEADER,
        "scheme": "v1=<hex HMAC-SHA256(secret, timestamp + '.' + body)>",
        "tolerance_seconds": SIGNATURE_TOLERANCE,
    }


def verify_signature(
    secret: str,
    timestamp: str,
    signature: str,
    body: bytes,
    *,
    now: float | None = None,
    tolerance: int = SIGNATURE_TOLERANCE,
) -> bool:
    """A receiver's check of a POSTed event: the signature matches (constant-time) and the
    timestamp is within `tolerance` seconds of `now` (replays of old requests fail)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{sent}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest("v1=" + expected, signature.strip())


def with_signature(
    request: WebhookRequest, event_id: str, secret: str, timestamp: int
) -> WebhookRequest:
    """The request with the engine's headers (replacing any of the same name)."""
    ours = {EVENT_ID_HEADER.lower(), TIMESTAMP_HEADER.lower(), SIGNATURE_HEADER.lower()}
    headers = [(k, v) for k, v in request.headers if k.lower() not in ours]
    headers += [
        (EVENT_ID_HEADER, event_id),
        (TIMESTAMP_HEADER, str(timestamp)),
        (SIGNATURE_HEADER, sign(secret, timestamp, request)),
    ]
    return replace(request, headers=tuple(headers))


# -- URLs -----------------------------------------------------------------------------------


class WebhookUrlError(ValueError):
    """A URL that the sender will not call."""


_DEFAULT_PORTS = {"http": 80, "https": 443}


def check_url(url: str) -> str:
    """Check a subscriber URL (absolute http/https, a host, no fragment or blanks); return
    the host key that concurrency is counted on (`host:port`)."""
    if not isinstance(url, str) or not url:
        raise WebhookUrlError("a webhook URL is required")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlError(f"a webhook URL is at most {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise WebhookUrlError("a webhook URL cannot contain blanks or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise WebhookUrlError(
            f"a webhook URL must be http:// or https://, not {scheme + ':' if scheme else url!r}"
        )
    try:
        port = parts.port
    except ValueError:
        raise WebhookUrlError("the webhook URL's port is not a number from 1 to 65535") from None
    if not parts.hostname:
        raise WebhookUrlError("the webhook URL has no host")
    if port == 0:
        raise WebhookUrlError("the webhook URL's port is not a number from 1 to 65535")
    if parts.fragment or url.endswith("#"):
        raise WebhookUrlError("a webhook URL cannot have a #fragment (it is never sent)")
    return f"{parts.hostname}:{port or _DEFAULT_PORTS[scheme]}"


def redact_url(url: str) -> str:
    """A URL fit for logs: no user info, and no query (it may hold a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}" + ("?…" if parts.query else "")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def same_host(source: str, target: str) -> bool:
    """Whether a redirect stays on the subscriber's host (same scheme and port, or the same
    host's https on its default port)."""
    a, b = _origin(source), _origin(target)
    if a == b:
        return True
    return a[1] == b[1] and a[0] == "http" and a[2] == 80 and b == ("https", a[1], 443)


# -- one delivery ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one attempt ended: `ok` on a 2xx answer."""

    ok: bool
    status: int | None = None
    error: str = ""


def _describe(exc: BaseException, url: str) -> str:
    """An error for the store and logs, without the URL's query or user info."""
    import aiohttp

    if isinstance(exc, aiohttp.ClientResponseError):  # its str() carries the full URL
        text = f"{type(exc).__name__}: {exc.status} {exc.message}"
    else:
        text = f"{type(exc).__name__}: {exc}".replace(url, redact_url(url))
    return text[:300]


async def _read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """Up to `limit` bytes of the body; a longer one is cut off and its connection dropped."""
    data = bytearray()
    while len(data) < limit:
        chunk = await response.content.read(limit - len(data))
        if not chunk:
            return bytes(data)
        data += chunk
    if not response.content.at_eof():
        response.close()  # never read the rest of a huge (or endless) body
    return bytes(data)


async def send_request(
    session: aiohttp.ClientSession, request: WebhookRequest, settings: WebhookSettings
) -> DeliveryResult:
    """Send one request: no redirect to another host, a bounded body read, one deadline."""
    import aiohttp

    url = request.url
    status: int | None = None
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=settings.connect_timeout)
    try:
        async with asyncio.timeout(settings.timeout):
            for _ in range(settings.max_redirects + 1):
                async with session.request(
                    request.method,
                    url,
                    data=request.body or None,
                    headers=list(request.headers),
                    allow_redirects=False,
                    timeout=timeout,
                    ssl=settings.verify_tls,
                ) as response:
                    status = response.status
                    location = response.headers.get("Location")
                    if status in (301, 302, 303, 307, 308) and location:
                        target = urljoin(url, location)
                        if not same_host(url, target):
                            return DeliveryResult(
                                False, status, f"redirect to another host refused ({status})"
                            )
                        url = target  # the same request again: a webhook is never a GET
                        continue
                    body = await _read_limited(response, settings.max_response_bytes)
                    if 200 <= status < 300:
                        return DeliveryResult(True, status)
                    snippet = body[:200].decode("utf-8", "replace").strip()
                    return DeliveryResult(
                        False, status, f"HTTP {status}" + (f": {snippet}" if snippet else "")
                    )
            return DeliveryResult(False, status, f"more than {settings.max_redirects} redirects")
    except TimeoutError:
        return DeliveryResult(False, status, f"no answer within {settings.timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        return DeliveryResult(False, status, _describe(exc, url))


def new_session(settings: WebhookSettings) -> aiohttp.ClientSession:
    """The sender's HTTP client: pooled connections, bounded per host, no proxy from the
    environment, no cookies kept between subscribers."""
    import aiohttp

    connector = aiohttp.TCPConnector(
        limit=settings.concurrency, limit_per_host=settings.per_host, ttl_dns_cache=60
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"User-Agent": USER_AGENT},
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
    )


def sample_event(kind: WebhookKind, account_id: int, now: datetime, event_id: str) -> WebhookEvent:
    """A test event of `kind` with the shape of a real one (and `"test": true` in its data)."""
    stamp = now.astimezone(UTC).isoformat(timespec="microseconds")
    return WebhookEvent(event_id, kind, account_id, now, sample_data(kind, stamp))


def sample_data(kind: WebhookKind, stamp: str) -> dict[str, Any]:
    """The data of a test event of `kind`."""
    if kind is WebhookKind.REPLY:
        return {
            "inbound_id": 0, "from": "+15005550000", "to": "", "text": "smsgw webhook test",
            "encoding": "gsm7", "received_at": stamp, "parts": 1, "complete": True,
            "replied_to_message_id": None, "replied_to_extra": {}, "test": True,
        }  # fmt: skip
    return {
        "message_id": 0, "state": "delivered", "previous_state": "sent",
        "recipient": "+15005550000", "sender": "", "part_id": None, "part_state": "delivered",
        "tp_status": 0, "error": None, "at": stamp, "extra": {}, "test": True,
    }  # fmt: skip


def backoff_delay(attempts: int, settings: WebhookSettings, rng: random.Random) -> float:
    """Seconds before the next attempt after `attempts` failed ones: capped exponential, with
    half of it random (receivers coming back are not hit by every sender at once)."""
    growth = float(2 ** min(max(attempts - 1, 0), 30))
    ceiling = min(settings.backoff_cap, settings.backoff_first * growth)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def event_of(row: Mapping[str, Any]) -> WebhookEvent:
    """The event a stored outbox row holds."""
    return WebhookEvent(
        event_id=str(row["event_id"]),
        kind=WebhookKind(row["kind"]),
        account_id=int(row["account_id"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        data=json.loads(row["payload"]),
    )


def build_request(
    event: WebhookEvent, url: str, fmt: str, secret: str, timestamp: int
) -> WebhookRequest | None:
    """The signed request for an event in a format (None: the format skips it). Raises
    LookupError for an unknown format and WebhookUrlError for a URL the format made bad."""
    formatter = _FORMATS.get(fmt)
    if formatter is None:
        raise LookupError(f"unknown webhook format {fmt!r} (no dialect registered it)")
    request = formatter(event, url)
    if request is None:
        return None
    if request.method not in ("POST", "GET", "PUT"):
        raise ValueError(f"format {fmt!r} made a {request.method} request")
    check_url(request.url)
    return with_signature(request, event.event_id, secret, timestamp)


# -- the sender -----------------------------------------------------------------------------


class WebhookWorker:
    """Delivers due outbox events on tasks of its own, bounded per host and in all.

    Per order key (one message's status changes, one conversation's replies) at most one event
    is in flight, and the next is only due once it is delivered or given up. An attempt's
    outcome is recorded after it ends, so a crash in between repeats it (same event id).

    Every attempt is claimed in the store first, by this process (`owner`, on box `box_id`)
    until its timeout plus CLAIM_MARGIN: in fleet mode each box runs a sender over the one
    outbox, and a claim keeps the others off an event while it is in flight. A box that dies
    mid-attempt leaves its claims to run out, then another box tries those events again; a
    clean stop lets its dropped attempts go at once, and a restarted daemon lets go of the
    claims its box's previous process left.
    """

    def __init__(
        self,
        store: Store,
        settings: WebhookSettings | None = None,
        *,
        clock: Clock,
        rng: random.Random | None = None,
        session_factory: Callable[[WebhookSettings], aiohttp.ClientSession] = new_session,
        box_id: str = "",
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or WebhookSettings()
        self.box_id = box_id
        self.owner = owner or secrets.token_hex(8)  # this process, as its claims name it
        self.claim_ttl = self.settings.timeout + CLAIM_MARGIN
        self.clock = clock
        self.rng = rng or random.Random()
        self.session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._wake = asyncio.Event()
        self._inflight: dict[int, tuple[str, asyncio.Task[None]]] = {}  # row id -> host, task
        self._hosts: Counter[str] = Counter()
        self._results: list[WebhookAttempt] = []
        self._failing_hosts: set[str] = set()
        self._waiting_until: float | None = None  # on the monotonic clock it sleeps on
        self._quiet_waiters: list[asyncio.Future[None]] = []
        self._last_purge: float | None = None
        self.delivered = 0  # deliveries since start (benchmarks, logs)

    def wake(self) -> None:
        """Look for due events now (new ones were committed, or one was retried)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; attempts still in flight after STOP_GRACE are dropped
        (sent again at the next start, with the same event id)."""
        async with self.session_factory(self.settings) as session:
            self._session = session
            try:
                self._release_left_claims()
                while not stop.is_set():
                    delay = self.settings.poll_interval
                    try:
                        delay = self._step()
                    except Exception:
                        log.exception("webhook sender: a round failed; trying again shortly")
                    await self._wait(stop, delay)
            finally:
                tasks = [task for _, task in self._inflight.values()]
                if tasks:  # answers on their way are recorded, not sent again next start
                    await asyncio.wait(tasks, timeout=STOP_GRACE)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                with contextlib.suppress(Exception):
                    self._flush()
                with contextlib.suppress(Exception):
                    # Dropped, not recorded: any sender may try them again at once.
                    self.store.release_webhook_claims(list(self._inflight), owner=self.owner)
                self._session = None
                for waiter in self._quiet_waiters:
                    if not waiter.done():
                        waiter.set_result(None)

    async def quiet(self) -> None:
        """Return once nothing is in flight or due and the sender waits for its clock (tests
        that step a manual clock)."""
        loop = asyncio.get_running_loop()
        while not (
            not self._inflight
            and not self._wake.is_set()
            and self._waiting_until is not None
            and self._waiting_until > self.clock.monotonic()
        ):
            waiter: asyncio.Future[None] = loop.create_future()
            self._quiet_waiters.append(waiter)
            await waiter

    def _step(self) -> float:
        """Record finished attempts, start due ones; return seconds until the next look."""
        self._wake.clear()
        now = self.clock.wall()
        # No back-off is longer than its cap: a retry put off further was put off before the
        # wall clock was stepped back, and would otherwise wait for as long as the step.
        pulled = self.store.pull_in_webhook_retries(
            now, timedelta(seconds=self.settings.backoff_cap)
        )
        if pulled:
            log.warning("%d webhook retry(s) put off before the clock went back: due now", pulled)
        self._launch(now)
        self._purge()
        nxt = self.store.next_webhook_due(exclude_ids=self._inflight.keys(), now=now)
        delay = self.settings.poll_interval
        if nxt is not None and nxt > now:
            delay = min(delay, (nxt - now).total_seconds())
        return delay

    async def _wait(self, stop: asyncio.Event, delay: float) -> None:
        self._waiting_until = self.clock.monotonic() + delay
        if not self._inflight:
            waiters, self._quiet_waiters = self._quiet_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        waits = [
            asyncio.ensure_future(self.clock.sleep(delay)),
            asyncio.ensure_future(self._wake.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiting_until = None
            for w in waits:
                w.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _launch(self, now: datetime) -> None:
        """Record the finished attempts and claim due events for the slots free then, in one
        transaction of the store (one commit a round, as before claims)."""
        results, self._results = self._results, []
        done = {a.row_id for a in results}
        hosts = Counter(host for row_id, (host, _) in self._inflight.items() if row_id not in done)
        free = self.settings.concurrency - (len(self._inflight) - len(done))
        if free <= 0 and not results:
            return
        try:
            rows = self.store.claim_webhook_events(
                now, max(free, 0), box=self.box_id, owner=self.owner,
                until=now + timedelta(seconds=self.claim_ttl), exclude_ids=self._inflight.keys(),
                room=lambda host: self.settings.per_host - hosts[host], record=results,
            )  # fmt: skip
        except Exception:
            self._results = results + self._results  # kept: recorded on the next round
            raise
        self._let_go(results)
        for row in rows:
            self._start(row, str(row["host"]))

    def _start(self, row: dict[str, Any], host: str) -> None:
        row_id = int(row["id"])
        task = asyncio.create_task(self._attempt(row), name=f"webhook {row['event_id']}")
        self._inflight[row_id] = (host, task)
        self._hosts[host] += 1

    async def _attempt(self, row: dict[str, Any]) -> None:
        try:
            result = await self._deliver(row)
            attempt = self._outcome(row, result)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a formatter's bug: never retried into a loop
            log.exception("webhook %s: cannot be built", row["event_id"])
            attempt = WebhookAttempt(
                int(row["id"]), WebhookState.FAILED, self.clock.wall(), error=str(exc)[:300]
            )
        self._results.append(attempt)
        self._wake.set()

    async def _deliver(self, row: dict[str, Any]) -> DeliveryResult | WebhookAttempt:
        now = self.clock.wall()
        event = event_of(row)
        try:
            request = build_request(
                event, str(row["url"]), str(row["format"]), str(row["secret"] or ""),
                int(now.timestamp()),
            )  # fmt: skip
        except (LookupError, ValueError) as exc:
            return WebhookAttempt(int(row["id"]), WebhookState.FAILED, now, error=str(exc))
        if request is None:
            return WebhookAttempt(
                int(row["id"]), WebhookState.DELIVERED, now,
                error=f"nothing to send in format {row['format']!r}",
            )  # fmt: skip
        assert self._session is not None
        return await send_request(self._session, request, self.settings)

    def _outcome(
        self, row: dict[str, Any], result: DeliveryResult | WebhookAttempt
    ) -> WebhookAttempt:
        if isinstance(result, WebhookAttempt):
            return result
        now = self.clock.wall()
        row_id = int(row["id"])
        host = str(row["host"] or "")
        where = redact_url(str(row["url"]))
        if result.ok:
            self.delivered += 1
            if host in self._failing_hosts:
                self._failing_hosts.discard(host)
                log.info("webhooks to %s are delivered again", where)
            log.debug("webhook %s delivered to %s (%s)", row["event_id"], where, result.status)
            return WebhookAttempt(row_id, WebhookState.DELIVERED, now, status=result.status)
        attempts = int(row["attempts"]) + 1
        retry_at = now + timedelta(seconds=backoff_delay(attempts, self.settings, self.rng))
        deadline = datetime.fromisoformat(row["window_start"]) + timedelta(
            seconds=self.settings.retry_window
        )
        if host not in self._failing_hosts:
            self._failing_hosts.add(host)
            log.info("webhooks to %s failing: %s", where, result.error)
        if retry_at > deadline:
            log.warning(
                "webhook %s to %s given up after %d attempt(s): %s",
                row["event_id"], where, attempts, result.error,
            )  # fmt: skip
            return WebhookAttempt(
                row_id, WebhookState.FAILED, now, status=result.status, error=result.error
            )
        return WebhookAttempt(
            row_id, WebhookState.PENDING, now, status=result.status, error=result.error,
            next_attempt_at=retry_at,
        )  # fmt: skip

    def _flush(self) -> None:
        """Record finished attempts in one transaction, then let their slots go."""
        if not self._results:
            return
        results, self._results = self._results, []
        try:
            self.store.record_webhook_attempts(results, owner=self.owner)
        except Exception:
            self._results = results + self._results  # kept: recorded on the next round
            raise
        self._let_go(results)

    def _let_go(self, results: list[WebhookAttempt]) -> None:
        """Free the slots of recorded attempts."""
        for attempt in results:
            host, _ = self._inflight.pop(attempt.row_id, ("", None))
            if host:
                self._hosts[host] -= 1
                if self._hosts[host] <= 0:
                    del self._hosts[host]

    def _release_left_claims(self) -> None:
        """Let go of the claims this box's previous process left (it died mid-attempt: no
        other box has to wait for them to run out)."""
        try:
            released = self.store.release_webhook_claims(owner=self.owner, box=self.box_id)
        except Exception as exc:  # they run out on their own
            log.warning("webhook sender: claims of the previous run not released (%s)", exc)
            return
        if released:
            log.info("webhook sender: %d attempt(s) of the previous run to make again", released)

    def _purge(self) -> None:
        tick = self.clock.monotonic()
        if self._last_purge is not None and tick - self._last_purge < PURGE_EVERY:
            return
        self._last_purge = tick
        before = self.clock.wall() - timedelta(days=self.settings.keep_delivered_days)
        purged = self.store.purge_webhook_events(states=(WebhookState.DELIVERED,), before=before)
        if purged:
            log.info("purged %d delivered webhook event(s) older than %s", purged, before.date())


async def deliver_once(
    event: WebhookEvent,
    url: str,
    fmt: str,
    secret: str,
    settings: WebhookSettings | None = None,
) -> DeliveryResult:
    """One attempt at one event, right now, outside the outbox (the operator's test fire)."""
    settings = settings or WebhookSettings()
    request = build_request(event, url, fmt, secret, int(time.time()))
    if request is None:
        return DeliveryResult(True, None, f"nothing to send in format {fmt!r}")
    async with new_session(settings) as session:
        return await send_request(session, request, settings)
