"""Rotating refresh tokens with reuse detection, and revocation state, in Redis.

A login starts a *family* (its id is the access tokens' ``sid``). Each refresh token is
single-use: using it marks it used and issues the next one of the same family. Presenting a
token that was already used means it was copied — the legitimate client and an attacker both
hold it — so the whole family is revoked: no refresh token of it works any more, and every
access token with that ``sid`` is refused until it would have expired anyway.

Refresh tokens are opaque random strings; Redis keeps only their SHA-256. A family lives at
most ``refresh_ttl_s`` from login (no sliding renewal). Every key has a TTL; a revocation
marker lives ``marker_margin_s`` longer than any access token it refuses could still be
accepted (its lifetime, the lifetime slack and the verification leeway), so a revoked token
never comes back to life before it is refused as expired.

Keys (under ``<prefix>auth:``): ``rt:<sha256>`` hash {fam, sub, role, scope, fam_exp, state};
``revoked:sid:<sid>`` and ``revoked:jti:<jti>`` markers.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.security.tokens import LEEWAY_S, LIFETIME_SLACK_S
from tickcast.errors import RequestError

REFRESH_PREFIX = "rt."
#: Seconds a revocation marker outlives the tokens it refuses (leeway + slack + rounding).
MARKER_MARGIN_S = LEEWAY_S + LIFETIME_SLACK_S + 1

# KEYS[1]: the presented token's record. Returns {status, fam, sub}.
_CONSUME = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'missing', '', ''} end
local fam = redis.call('HGET', KEYS[1], 'fam')
local sub = redis.call('HGET', KEYS[1], 'sub')
if state == 'active' then
  redis.call('HSET', KEYS[1], 'state', 'used')
  return {'ok', fam, sub}
end
return {'reused', fam, sub}
"""


class RefreshError(RequestError):
    """The refresh token cannot be used; ``reused`` says the family was revoked for reuse."""

    def __init__(self, reason: str, *, reused: bool = False, family: str = "", sub: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.reused = reused
        self.family = family
        self.sub = sub


@dataclass(frozen=True, slots=True)
class RefreshGrant:
    """What a refresh token stands for."""

    family: str
    sub: str
    role: str
    scopes: frozenset[str]
    family_expires_at: float


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """Refresh-token families and revocation markers (all Redis calls through ``breaker``)."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        refresh_ttl_s: int,
        access_ttl_s: int,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.time,
        marker_margin_s: int = MARKER_MARGIN_S,
    ) -> None:
        # redis-py types results as bytes | str; this client decodes responses to str.
        self._redis: Any = redis
        self._prefix = f"{prefix}auth:"
        self.refresh_ttl_s = refresh_ttl_s
        self.access_ttl_s = access_ttl_s
        self.marker_margin_s = marker_margin_s
        self._breaker = breaker
        self._clock = clock
        self._consume: Any = redis.register_script(_CONSUME)

    def _rt_key(self, token: str) -> str:
        return f"{self._prefix}rt:{_digest(token)}"

    def _sid_key(self, sid: str) -> str:
        return f"{self._prefix}revoked:sid:{sid}"

    async def start(
        self, *, sub: str, role: str, scopes: frozenset[str]
    ) -> tuple[str, RefreshGrant]:
        """Start a family at login; returns its first refresh token and the grant."""
        grant = RefreshGrant(
            family=secrets.token_hex(16),
            sub=sub,
            role=role,
            scopes=scopes,
            family_expires_at=self._clock() + self.refresh_ttl_s,
        )
        return await self.issue(grant), grant

    async def issue(self, grant: RefreshGrant) -> str:
        """A new refresh token of ``grant``'s family, alive until the family expires."""
        ttl = math.ceil(grant.family_expires_at - self._clock())
        if ttl <= 0:
            raise RefreshError("session expired")
        token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        key = self._rt_key(token)
        record = {
            "fam": grant.family,
            "sub": grant.sub,
            "role": grant.role,
            "scope": " ".join(sorted(grant.scopes)),
            "fam_exp": repr(grant.family_expires_at),
            "state": "active",
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping=record)
        pipe.expire(key, ttl)
        await self._breaker.call(pipe.execute)
        return token

    async def consume(self, token: str) -> RefreshGrant:
        """Use a refresh token once: its grant, or :class:`RefreshError` (reuse revokes all)."""
        if not token.startswith(REFRESH_PREFIX) or len(token) > 256:
            raise RefreshError("malformed refresh token")
        key = self._rt_key(token)
        status, family, sub = await self._breaker.call(self._consume, keys=[key])
        if status == "missing":
            raise RefreshError("unknown or expired refresh token")
        if status == "reused":
            await self.revoke_session(family, self.refresh_ttl_s)
            raise RefreshError("refresh token reused", reused=True, family=family, sub=sub)
        if await self._breaker.call(self._redis.exists, self._sid_key(family)):
            raise RefreshError("session revoked", family=family, sub=sub)
        record = await self._breaker.call(self._redis.hgetall, key)
        return RefreshGrant(
            family=family,
            sub=sub,
            role=record.get("role", ""),
            scopes=frozenset(record.get("scope", "").split()),
            family_expires_at=float(record.get("fam_exp", "0")),
        )

    async def rotate(self, token: str) -> tuple[str, RefreshGrant]:
        """Consume ``token`` and issue its successor (for callers that need no checks between)."""
        grant = await self.consume(token)
        return await self.issue(grant), grant

    async def family_of(self, token: str) -> str | None:
        """The family of a refresh token, used or not, or None when unknown."""
        if not token.startswith(REFRESH_PREFIX) or len(token) > 256:
            return None
        family: str | None = await self._breaker.call(self._redis.hget, self._rt_key(token), "fam")
        return family

    async def revoke_session(self, sid: str, ttl_s: int | None = None) -> None:
        """Revoke a family (refresh tokens and access tokens with this ``sid``)."""
        ttl = max(ttl_s or self.refresh_ttl_s, self.access_ttl_s + self.marker_margin_s)
        await self._breaker.call(self._redis.set, self._sid_key(sid), "1", ex=ttl)

    async def revoke_access(self, jti: str, expires_at: float) -> None:
        """Refuse one access token until it expires (and its leeway has passed)."""
        ttl = math.ceil(expires_at - self._clock()) + self.marker_margin_s
        if ttl > 0:
            await self._breaker.call(
                self._redis.set, f"{self._prefix}revoked:jti:{jti}", "1", ex=ttl
            )

    def revocation_keys(self, *, jti: str, sid: str) -> list[str]:
        """The markers whose existence revokes an access token (``EXISTS`` them)."""
        return [f"{self._prefix}revoked:jti:{jti}", self._sid_key(sid)]

    async def is_revoked(self, *, jti: str, sid: str) -> bool:
        """Whether an access token was revoked, by itself or through its session."""
        keys = self.revocation_keys(jti=jti, sid=sid)
        found = await self._breaker.call(self._redis.exists, *keys)
        return bool(found)


def with_role(grant: RefreshGrant, role: str, scopes: frozenset[str]) -> RefreshGrant:
    """The grant narrowed to what ``role`` still allows (roles can change between refreshes)."""
    return replace(grant, role=role, scopes=grant.scopes & scopes)
