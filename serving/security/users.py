"""The user store: one Redis hash per user, passwords kept as salted scrypt hashes.

``create_user_command`` is the CLI entry point (``tickcast`` wires it to a command).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.security.passwords import (
    N,
    check_strength,
    dummy_hash,
    hash_password,
    needs_rehash,
    verify_password,
)
from serving.security.scopes import ROLES
from tickcast.config import Settings
from tickcast.errors import RequestError

USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
log = structlog.get_logger(__name__)


class UserError(RequestError, ValueError):
    """A user cannot be created or changed as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    """A user as the API sees it (no password hash)."""

    username: str
    role: str
    disabled: bool
    created_at: float

    @property
    def subject(self) -> str:
        """The token subject of this user."""
        return f"user:{self.username}"


def _user(username: str, record: dict[str, str]) -> User:
    return User(
        username=username,
        role=record.get("role", ""),
        disabled=record.get("disabled", "0") == "1",
        created_at=float(record.get("created_at", "0")),
    )


class UserStore:
    """Users under ``<prefix>auth:user:<username>`` (Redis calls through ``breaker``).

    Passwords are hashed with scrypt cost ``scrypt_n`` (``TICKCAST_PASSWORD_SCRYPT_N``); a hash
    made with other parameters is replaced at the user's next successful login.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.time,
        scrypt_n: int = N,
    ) -> None:
        # redis-py types results as bytes | str; this client decodes responses to str.
        self._redis: Any = redis
        self._prefix = f"{prefix}auth:user:"
        self._breaker = breaker
        self._clock = clock
        self._n = scrypt_n
        self._dummy = dummy_hash(scrypt_n)

    async def create(self, username: str, password: str, role: str) -> User:
        """Create a user; :class:`UserError` if the name is taken or a value is invalid."""
        if not USERNAME.fullmatch(username):
            raise UserError("username must match ^[A-Za-z0-9_.@-]{1,64}$")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        try:
            check_strength(password)
        except ValueError as exc:
            raise UserError(str(exc)) from None
        encoded = await asyncio.to_thread(hash_password, password, n=self._n)
        key = self._prefix + username
        created = await self._breaker.call(self._redis.hsetnx, key, "pw", encoded)
        if not created:
            raise UserError(f"user {username} exists")
        now = self._clock()
        record = {"role": role, "disabled": "0", "created_at": repr(now)}
        await self._breaker.call(self._redis.hset, key, mapping=record)
        return _user(username, record)

    async def get(self, username: str) -> User | None:
        """The user, or None."""
        if not USERNAME.fullmatch(username):
            return None
        record = await self._breaker.call(self._redis.hgetall, self._prefix + username)
        return _user(username, record) if record.get("pw") else None

    async def authenticate(self, username: str, password: str) -> User | None:
        """The user if the password matches and the user is enabled, else None.

        Unknown users cost the same scrypt work, so timing does not reveal which names exist.
        """
        record: dict[str, str] = {}
        if USERNAME.fullmatch(username):
            record = await self._breaker.call(self._redis.hgetall, self._prefix + username)
        encoded = record.get("pw") or self._dummy
        ok = await asyncio.to_thread(verify_password, password, encoded)
        if not ok or not record.get("pw"):
            return None
        user = _user(username, record)
        if user.disabled:
            return None
        if needs_rehash(encoded, self._n):
            await self._rehash(username, password, encoded)
        return user

    async def _rehash(self, username: str, password: str, old: str) -> None:
        """Store a hash of the current cost in place of ``old`` (unless it changed meanwhile)."""
        fresh = await asyncio.to_thread(hash_password, password, n=self._n)
        key = self._prefix + username
        try:
            if await self._breaker.call(self._redis.hget, key, "pw") == old:
                await self._breaker.call(self._redis.hset, key, "pw", fresh)
                log.info("password hash upgraded", user=username, scrypt_n=self._n)
        except Exception as exc:  # the login succeeded; the upgrade is retried next time
            log.warning("password hash upgrade failed", user=username, error=str(exc))

    async def set_disabled(self, username: str, disabled: bool = True) -> bool:
        """Disable (or enable) a user; False when the user does not exist."""
        key = self._prefix + username
        if not await self._breaker.call(self._redis.hexists, key, "pw"):
            return False
        await self._breaker.call(self._redis.hset, key, "disabled", "1" if disabled else "0")
        return True


async def create_user(settings: Settings, username: str, password: str, role: str) -> User:
    """Create a user in the Redis of ``settings`` (opens and closes its own connection)."""
    redis = Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        store = UserStore(
            redis,
            prefix=settings.redis_key_prefix,
            breaker=CircuitBreaker("redis", timeout_s=10.0),
            scrypt_n=settings.password_scrypt_n,
        )
        return await store.create(username, password, role)
    finally:
        await redis.aclose()


def create_user_command(settings: Settings, username: str, password: str, role: str) -> User:
    """Synchronous form of :func:`create_user` for a CLI command."""
    return asyncio.run(create_user(settings, username, password, role))
