"""What the console keeps per application (on ``app.state.console``), built at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.console.data import ConsoleReader
from serving.console.live import LiveFeed
from serving.console.sessions import ConsoleSessions
from sinks.redis_keys import updates_channel
from tickcast.config import Settings


@dataclass
class ConsoleState:
    """Sessions, the live feed and the ClickHouse reader of the console."""

    sessions: ConsoleSessions
    live: LiveFeed
    reader: ConsoleReader

    @classmethod
    def build(cls, settings: Settings, redis: Redis, breaker: CircuitBreaker) -> ConsoleState:
        """From the API's Redis client and breaker; the live feed gets its own connection
        (a subscription blocks a connection and must not time out like a look-up)."""
        sessions = ConsoleSessions(
            redis,
            prefix=settings.redis_key_prefix,
            idle_s=settings.console_idle_timeout_s,
            max_s=settings.console_session_max_s,
            breaker=breaker,
        )
        listener = Redis.from_url(settings.redis_url, socket_connect_timeout=2.0)
        live = LiveFeed(listener, updates_channel(settings.redis_key_prefix))
        return cls(sessions, live, ConsoleReader(settings))

    async def close(self) -> None:
        """Stop the live feed and close its connection."""
        await self.live.close()
        await self.live.redis.aclose()
