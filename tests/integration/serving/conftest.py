"""Fixtures for the serving tests: the session stack's Redis, a fresh key prefix and app per test.

Each test gets its own Redis key prefix (the session ``namespace``) and an in-memory
LatestStore. A test that stops Redis starts a :class:`~tests.support.redis_fault.PrivateRedis`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from serving.store import InMemoryLatestStore
from tests.support.serving_app import Api, make_settings, running_api
from tickcast.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def redis_url(stack: Settings) -> str:
    """The session stack's Redis."""
    return stack.redis_url


@pytest.fixture
def settings(redis_url: str, namespace: str) -> Settings:
    """Serving settings on the stack's Redis, with this test's own key prefix."""
    return make_settings(redis_url, redis_key_prefix=f"{namespace}:")


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """An asyncio client decoding responses, closed after the test."""
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
def store() -> InMemoryLatestStore:
    """An empty in-memory store."""
    return InMemoryLatestStore()


@pytest.fixture
def clock() -> list[float]:
    """A settable wall clock for freshness (``clock[0]`` is now, epoch seconds)."""
    return [time.time()]


@pytest.fixture
async def api(
    settings: Settings, redis: Redis, store: InMemoryLatestStore, clock: list[float]
) -> AsyncIterator[Api]:
    """The app under test on the session stack's Redis."""
    async for running in running_api(settings, redis, store, lambda: clock[0]):
        yield running
