"""The serving API under test: its settings, a running app with an HTTP client, auth helpers.

Integration tests run it on the session stack's Redis (``tests/integration/serving/conftest.py``
gives each test its own key prefix); a test that stops Redis runs it on a
:class:`~tests.support.redis_fault.PrivateRedis`.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.clients import Clients
from serving.main import create_app
from serving.security.users import UserStore
from serving.store import InMemoryLatestStore
from tickcast.config import Settings, load_settings

PASSWORD = "a-long-test-password-0"  # test fixture only


def make_settings(redis_url: str, **overrides: Any) -> Settings:
    """Settings for one test: its own key prefix, limits high enough not to interfere."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "redis_key_prefix": f"t{uuid.uuid4().hex[:10]}:",
        "rate_limit_per_subject": 10_000,
        "rate_limit_global": 100_000,
        "rate_limit_auth": 10_000,
        "rate_limit_unauthenticated": 10_000,
        "rate_limit_failed_auth": 10_000,
        "rate_limit_login_account": 10_000,
        "stale_after_s": 60,
        "dependency_timeout_s": 0.5,
        "data_dir": Path(tempfile.gettempdir()) / "tickcast-serving-tests",
        # scrypt at 2**14 (0.05 s) instead of the default 2**17 (0.4 s): tests hash a lot
        "password_scrypt_n": 2**14,
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class Api:
    """A running app and an HTTP client on it."""

    client: httpx.AsyncClient
    settings: Settings
    redis: Redis
    store: InMemoryLatestStore
    app: Any

    async def user(self, role: str, username: str | None = None) -> str:
        """Create a user with ``role``; returns the username (password is ``PASSWORD``)."""
        name = username or f"{role}-{uuid.uuid4().hex[:8]}"
        users = UserStore(
            self.redis,
            prefix=self.settings.redis_key_prefix,
            breaker=CircuitBreaker("t"),
            scrypt_n=self.settings.password_scrypt_n,
        )
        await users.create(name, PASSWORD, role)
        return name

    async def login(self, username: str, password: str = PASSWORD, **extra: str) -> httpx.Response:
        """POST the password grant."""
        form = {"grant_type": "password", "username": username, "password": password, **extra}
        return await self.client.post("/v1/auth/token", data=form)

    async def token(self, role: str) -> str:
        """An access token of a fresh user with ``role``."""
        response = await self.login(await self.user(role))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


async def running_api(
    settings: Settings, redis: Redis, store: InMemoryLatestStore, clock: Callable[[], float]
) -> AsyncIterator[Api]:
    """An app with its lifespan running, and an httpx client on it."""
    app = create_app(settings, clients=Clients(redis=redis, store=store, clock=clock))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Api(client, settings, redis, store, app)
