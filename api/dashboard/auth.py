"""Dashboard sessions: a signed cookie (HttpOnly, SameSite=Strict), a CSRF token per session,
and a guard that slows and then refuses repeated failed logins from one client."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

SESSION_COOKIE = "smsgw_session"
LOGIN_COOKIE = "smsgw_login"  # the login form's CSRF token (double-submit: no session yet)
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in browser: its nonce names the session, its token guards every form."""

    nonce: str
    expires: int
    csrf: str


def _sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def new_session(key: bytes, now: float) -> tuple[Session, str]:
    """A fresh session and the cookie value that carries it."""
    nonce = secrets.token_urlsafe(18)
    expires = int(now) + SESSION_SECONDS
    body = f"{expires}.{nonce}"
    return Session(nonce, expires, _sign(key, "csrf:" + nonce)), f"{body}.{_sign(key, body)}"


def read_session(key: bytes, cookie: str | None, now: float) -> Session | None:
    """The session a cookie carries, if its signature holds and it has not expired.

    The key changes with the admin password, so a new password ends every session.
    """
    if not cookie or cookie.count(".") != 2:
        return None
    expires_text, nonce, signature = cookie.split(".")
    if not hmac.compare_digest(_sign(key, f"{expires_text}.{nonce}"), signature):
        return None
    try:
        expires = int(expires_text)
    except ValueError:
        return None
    if expires <= now:
        return None
    return Session(nonce, expires, _sign(key, "csrf:" + nonce))


def token_matches(expected: str, given: object) -> bool:
    """Constant-time check of a submitted CSRF token (missing or not text: no)."""
    return isinstance(given, str) and bool(given) and hmac.compare_digest(expected, given)


def set_cookie(response: web.StreamResponse, name: str, value: str, max_age: int) -> None:
    """A cookie scripts cannot read and other sites cannot make the browser send."""
    response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="Strict")


@dataclass
class LoginGuard:
    """Failed logins from one client: each one answers later than the last (doubling, capped),
    and after `lock_after` in a row that client is refused until its delay has passed."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    first_delay: float = 0.5
    max_delay: float = 30.0
    lock_after: int = 5
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def locked_for(self, client: str) -> float:
        """Seconds this client must still wait before it may try again (0: it may)."""
        count, last = self._failures.get(client, (0, 0.0))
        if count < self.lock_after:
            return 0.0
        return max(last + self.delay(count) - self.clock(), 0.0)

    def delay(self, failures: int) -> float:
        """How long the answer to the `failures`-th failure in a row is held back."""
        return float(min(self.first_delay * 2 ** max(failures - 1, 0), self.max_delay))

    async def failed(self, client: str) -> None:
        """Count a failure and hold the answer back."""
        count = self._failures.get(client, (0, 0.0))[0] + 1
        if len(self._failures) > 10_000:  # bounded memory under a spray
            self._failures.clear()
        self._failures[client] = (count, self.clock())
        await self.sleep(self.delay(count))

    def succeeded(self, client: str) -> None:
        """The right password: this client starts afresh."""
        self._failures.pop(client, None)
