"""Console sessions: an opaque cookie, its state in Redis, a CSRF token per session.

The cookie holds 32 random bytes; Redis keeps only their SHA-256 (``<prefix>console:<hex>``)
with the user's subject, role, scopes, the token family it logged in with (``sid``: a
revocation of that family — logout elsewhere, reuse of a refresh token — ends the console
session too), the CSRF token and the creation time. The key's TTL is the idle time-out,
renewed on each use; the creation time bounds the whole session.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from serving.circuit import CircuitBreaker

COOKIE = "tickcast_console"


@dataclass(frozen=True)
class ConsoleSession:
    """Who is logged in, and the token their forms must carry."""

    sub: str
    role: str
    scopes: tuple[str, ...]
    sid: str
    csrf: str
    created: float

    def may(self, scope: str) -> bool:
        """Whether the session's role holds ``scope``."""
        return scope in self.scopes

    def csrf_ok(self, presented: str | None) -> bool:
        """Whether a form's CSRF token is this session's (constant-time)."""
        return bool(presented) and hmac.compare_digest(self.csrf, presented or "")


class ConsoleSessions:
    """Create, load (renewing the idle time-out) and end console sessions."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        idle_s: int,
        max_s: int,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis
        self.prefix = f"{prefix}console:"
        self.idle_s = idle_s
        self.max_s = max_s
        self.breaker = breaker
        self.clock = clock

    def _key(self, cookie: str) -> str:
        return self.prefix + hashlib.sha256(cookie.encode()).hexdigest()

    async def create(self, *, sub: str, role: str, scopes: frozenset[str], sid: str) -> str:
        """A new session; returns the cookie value."""
        cookie = secrets.token_urlsafe(32)
        session = ConsoleSession(
            sub, role, tuple(sorted(scopes)), sid, secrets.token_urlsafe(32), self.clock()
        )
        payload = json.dumps(asdict(session))
        await self.breaker.call(self.redis.set, self._key(cookie), payload, ex=self.idle_s)
        return cookie

    async def load(self, cookie: str | None) -> ConsoleSession | None:
        """The session of ``cookie`` (idle time-out renewed), or None when there is none."""
        if not cookie or len(cookie) > 128:
            return None
        key = self._key(cookie)
        raw = await self.breaker.call(self.redis.getex, key, ex=self.idle_s)
        if raw is None:
            return None
        data = json.loads(raw)
        session = ConsoleSession(**{**data, "scopes": tuple(data["scopes"])})
        if self.clock() - session.created > self.max_s:
            await self.breaker.call(self.redis.delete, key)
            return None
        return session

    async def end(self, cookie: str | None) -> None:
        """Forget the session of ``cookie`` (logout)."""
        if cookie and len(cookie) <= 128:
            await self.breaker.call(self.redis.delete, self._key(cookie))
