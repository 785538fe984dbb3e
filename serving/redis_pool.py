"""The API's Redis connections: fail fast, on a bounded pool."""

from __future__ import annotations

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tickcast.config import Settings

#: Connections per Redis pool of one API process: a burst waits for a free connection rather
#: than opening hundreds at once (which alone would blow the per-call timeout).
MAX_REDIS_CONNECTIONS = 32


def redis_client(settings: Settings, *, decode_responses: bool = True) -> Redis:
    """An asyncio Redis client that fails fast (no retries, short socket timeouts) on a bounded
    pool (:data:`MAX_REDIS_CONNECTIONS`; waiting for a connection counts in the timeout)."""
    timeout = max(settings.dependency_timeout_s, 0.05)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=MAX_REDIS_CONNECTIONS,
        timeout=timeout,
        decode_responses=decode_responses,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=30,
    )
    return Redis.from_pool(pool)
