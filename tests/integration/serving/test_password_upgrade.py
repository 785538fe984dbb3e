"""Logins upgrade an old scrypt hash to the configured cost, in the user store and via the API."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.security.passwords import verify_password
from serving.security.users import UserStore
from tests.support.serving_app import PASSWORD, Api
from tickcast.config import Settings

pytestmark = pytest.mark.integration


async def test_login_upgrades_an_old_hash(redis: Redis, settings: Settings) -> None:
    prefix = settings.redis_key_prefix
    old_store = UserStore(redis, prefix=prefix, breaker=CircuitBreaker("t"), scrypt_n=2**10)
    await old_store.create("alice", PASSWORD, "viewer")
    key = f"{prefix}auth:user:alice"
    old = await redis.hget(key, "pw")
    assert old is not None
    assert old.startswith("scrypt$1024$")

    store = UserStore(redis, prefix=prefix, breaker=CircuitBreaker("t"), scrypt_n=2**12)
    assert await store.authenticate("alice", "wrong password!") is None
    assert await redis.hget(key, "pw") == old  # a failed login changes nothing
    user = await store.authenticate("alice", PASSWORD)
    assert user is not None
    assert user.username == "alice"
    upgraded = await redis.hget(key, "pw")
    assert upgraded is not None
    assert upgraded.startswith("scrypt$4096$")
    assert verify_password(PASSWORD, upgraded)
    assert await store.authenticate("alice", PASSWORD) is not None
    assert await redis.hget(key, "pw") == upgraded  # current hashes are left alone


async def test_the_api_login_upgrades_to_the_configured_cost(api: Api) -> None:
    prefix = api.settings.redis_key_prefix
    old_store = UserStore(api.redis, prefix=prefix, breaker=CircuitBreaker("t"), scrypt_n=2**10)
    await old_store.create("bob", PASSWORD, "viewer")
    response = await api.login("bob")
    assert response.status_code == 200, response.text
    stored = await api.redis.hget(f"{prefix}auth:user:bob", "pw")
    assert stored is not None
    assert stored.startswith(f"scrypt${api.settings.password_scrypt_n}$")
