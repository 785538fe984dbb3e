"""API keys for machine clients: shown once at creation, stored only as SHA-256, revocable.

A key reads ``tck_<key id>_<secret>``; the key id (12 hex digits) is public, the secret is 256
random bits, so a plain SHA-256 of the whole key is a safe verifier. Clients exchange a key for
an access token with the OAuth ``client_credentials`` grant.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.security.scopes import ROLES
from tickcast.errors import RequestError

KEY_FORMAT = re.compile(r"^tck_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
KEY_ID = re.compile(r"^[0-9a-f]{12}$")


class ApiKeyError(RequestError, ValueError):
    """An API key cannot be created as asked."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public record (never the secret)."""

    key_id: str
    name: str
    role: str
    created_at: float
    created_by: str
    revoked_at: float | None

    @property
    def subject(self) -> str:
        """The token subject of this key's client."""
        return f"client:{self.key_id}"

    @property
    def session_id(self) -> str:
        """The ``sid`` of this key's access tokens (revoking the key revokes them)."""
        return f"key-{self.key_id}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _record(key_id: str, record: dict[str, str]) -> ApiKey:
    revoked = record.get("revoked_at")
    return ApiKey(
        key_id=key_id,
        name=record.get("name", ""),
        role=record.get("role", ""),
        created_at=float(record.get("created_at", "0")),
        created_by=record.get("created_by", ""),
        revoked_at=float(revoked) if revoked else None,
    )


class ApiKeyStore:
    """Keys under ``<prefix>auth:key:<id>``, ids in the set ``<prefix>auth:keys``."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # redis-py types results as bytes | str; this client decodes responses to str.
        self._redis: Any = redis
        self._prefix = f"{prefix}auth:"
        self._breaker = breaker
        self._clock = clock

    def _key(self, key_id: str) -> str:
        return f"{self._prefix}key:{key_id}"

    async def create(self, name: str, role: str, *, created_by: str) -> tuple[ApiKey, str]:
        """A new key: its record and the secret key (shown to the caller this once)."""
        if role not in ROLES:
            raise ApiKeyError(f"role must be one of {', '.join(ROLES)}")
        key_id = secrets.token_hex(6)
        secret = f"tck_{key_id}_{secrets.token_urlsafe(32)}"
        record = {
            "hash": _digest(secret),
            "name": name,
            "role": role,
            "created_at": repr(self._clock()),
            "created_by": created_by,
        }
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._key(key_id), mapping=record)
        pipe.sadd(f"{self._prefix}keys", key_id)
        await self._breaker.call(pipe.execute)
        return _record(key_id, record), secret

    async def get(self, key_id: str) -> ApiKey | None:
        """A key's record, or None."""
        if not KEY_ID.fullmatch(key_id):
            return None
        record = await self._breaker.call(self._redis.hgetall, self._key(key_id))
        return _record(key_id, record) if record else None

    async def verify(self, secret: str) -> ApiKey | None:
        """The key's record if ``secret`` is a live key, else None (constant-time compare)."""
        match = KEY_FORMAT.fullmatch(secret)
        if not match:
            return None
        record = await self._breaker.call(self._redis.hgetall, self._key(match.group(1)))
        if not record or not hmac.compare_digest(record.get("hash", ""), _digest(secret)):
            return None
        key = _record(match.group(1), record)
        return None if key.revoked_at is not None else key

    async def list(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        ids = await self._breaker.call(self._redis.smembers, f"{self._prefix}keys")
        pipe = self._redis.pipeline(transaction=False)
        ordered = sorted(ids)
        for key_id in ordered:
            pipe.hgetall(self._key(key_id))
        records = await self._breaker.call(pipe.execute)
        keys = [_record(k, r) for k, r in zip(ordered, records, strict=True) if r]
        return sorted(keys, key=lambda key: key.created_at)

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key (idempotent); None when it does not exist."""
        key = await self.get(key_id)
        if key is None:
            return None
        if key.revoked_at is None:
            now = self._clock()
            await self._breaker.call(self._redis.hset, self._key(key_id), "revoked_at", repr(now))
            key = replace(key, revoked_at=now)
        return key
