"""Request rate limits (token buckets per account and per client address) and the backoff that
slows a client guessing passwords or API keys; pure logic on an injected monotonic clock."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_TRACKED = 10_000  # keys remembered per table; the least recently seen go first


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """`[limits]` in the TOML file; a rate of 0 switches that limit off."""

    # Well above what the box accepts (~3,000 sends/s): they stop a runaway client hogging the
    # one thread, not honest bulk senders.
    account_rate: float = 500.0  # requests per second an account may make, sustained
    account_burst: int = 1000  # ... and at once
    ip_rate: float = 1000.0  # the same per client address (before authentication)
    ip_burst: int = 2000
    auth_free_failures: int = 5  # failed logins/keys from one address before backoff starts
    auth_backoff_first: float = 1.0  # seconds, doubling per further failure
    auth_backoff_cap: float = 300.0

    def __post_init__(self) -> None:
        if min(self.account_rate, self.ip_rate, self.auth_backoff_first) < 0:
            raise ValueError("limits cannot be negative")
        if self.account_burst < 1 or self.ip_burst < 1 or self.auth_free_failures < 0:
            raise ValueError("limits.*_burst must be at least 1, auth_free_failures at least 0")
        if self.auth_backoff_cap < self.auth_backoff_first:
            raise ValueError("limits.auth_backoff_cap must be at least auth_backoff_first")


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per key: `rate` tokens a second, up to `burst` saved."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()

    def take(self, key: object, now: float) -> float:
        """Take one token for `key`: 0.0 when allowed, else the seconds until one is free."""
        if self.rate <= 0:
            return 0.0
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        else:
            elapsed = max(now - bucket.stamp, 0.0)  # a clock step back refills nothing
            bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
            bucket.stamp = now
        self._buckets[key] = bucket
        if len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


@dataclass(slots=True)
class _Failures:
    count: int
    blocked_until: float


class AuthBackoff:
    """Failed logins per client address: after a few free ones, each further failure blocks
    the address for a doubling time; a success clears it."""

    def __init__(self, free: int, first: float, cap: float) -> None:
        self.free = free
        self.first = first
        self.cap = cap
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def blocked(self, source: str, now: float) -> float:
        """Seconds `source` must still wait before its next attempt is even checked (0: go)."""
        entry = self._failures.get(source)
        return max(entry.blocked_until - now, 0.0) if entry is not None else 0.0

    def failed(self, source: str, now: float) -> float:
        """Record a failure; return the backoff it started (0.0 while still free)."""
        entry = self._failures.pop(source, None) or _Failures(0, now)
        entry.count += 1
        over = entry.count - self.free
        delay = min(self.first * 2 ** (over - 1), self.cap) if over > 0 else 0.0
        entry.blocked_until = now + delay
        self._failures[source] = entry
        if len(self._failures) > MAX_TRACKED:
            self._failures.popitem(last=False)
        return delay

    def succeeded(self, source: str) -> None:
        """A right secret from `source`: forget its failures."""
        self._failures.pop(source, None)


class RateLimiter:
    """Every limit of the HTTP front-end, on one clock."""

    def __init__(self, settings: LimitSettings, monotonic: Callable[[], float]) -> None:
        self.settings = settings
        self.monotonic = monotonic
        self.accounts = TokenBuckets(settings.account_rate, settings.account_burst)
        self.addresses = TokenBuckets(settings.ip_rate, settings.ip_burst)
        self.auth = AuthBackoff(
            settings.auth_free_failures, settings.auth_backoff_first, settings.auth_backoff_cap
        )

    def admit_address(self, address: str) -> float:
        """Before authentication: 0.0, or how long this address must wait."""
        now = self.monotonic()
        return self.auth.blocked(address, now) or self.addresses.take(address, now)

    def admit_account(self, account_id: int) -> float:
        """After authentication: 0.0, or how long this account must wait."""
        return self.accounts.take(account_id, self.monotonic())

    def auth_failed(self, address: str) -> float:
        """A wrong password or API key from `address`; return the backoff it now has."""
        return self.auth.failed(address, self.monotonic())

    def auth_succeeded(self, address: str) -> None:
        """A right secret from `address`."""
        self.auth.succeeded(address)
