"""The console's session store and live feed on the session stack's Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from serving.circuit import CircuitBreaker
from serving.console.live import QUEUE_SIZE, LiveFeed
from serving.console.sessions import ConsoleSessions
from sinks.redis_keys import updates_channel
from sinks.redis_table import RedisTable
from tests.support.redis_fault import PrivateRedis
from tickcast.config import Settings

pytestmark = pytest.mark.integration


def sessions(redis: Redis, prefix: str, clock: list[float]) -> ConsoleSessions:
    breaker = CircuitBreaker("redis", failure_threshold=5, reset_after_s=1, timeout_s=2)
    return ConsoleSessions(
        redis, prefix=prefix, idle_s=60, max_s=3600, breaker=breaker, clock=lambda: clock[0]
    )


async def test_a_session_renews_its_idle_time_out_ends_at_its_lifetime_and_on_logout(
    redis: Redis, settings: Settings
) -> None:
    clock = [1_000.0]
    store = sessions(redis, settings.redis_key_prefix, clock)
    cookie = await store.create(sub="user:ann", role="admin", scopes=frozenset({"a"}), sid="f1")
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_key_prefix}console:*")]
    assert len(keys) == 1
    assert cookie not in keys[0]  # only a digest of the cookie is stored
    await redis.expire(keys[0], 5)
    session = await store.load(cookie)
    assert session is not None
    assert (session.sub, session.role, session.sid) == ("user:ann", "admin", "f1")
    assert await redis.ttl(keys[0]) > 50  # the idle time-out was renewed
    assert session.csrf_ok(session.csrf)
    assert not session.csrf_ok("x" * len(session.csrf))
    assert not session.csrf_ok(None)
    assert await store.load("forged") is None
    assert await store.load("x" * 500) is None
    clock[0] += 3601
    assert await store.load(cookie) is None  # past its lifetime, whatever its use
    assert await redis.exists(keys[0]) == 0
    clock[0] = 1_000.0
    again = await store.create(sub="user:ann", role="admin", scopes=frozenset(), sid="f2")
    await store.end(again)
    assert await store.load(again) is None


async def test_the_live_feed_wakes_watchers_of_the_symbols_the_worker_wrote(
    redis_url: str, settings: Settings
) -> None:
    listener = Redis.from_url(redis_url)
    feed = LiveFeed(listener, updates_channel(settings.redis_key_prefix))
    aapl, msft = feed.watch("AAPL"), feed.watch("MSFT")
    await asyncio.wait_for(feed.connected.wait(), 10)
    table = RedisTable.from_url(redis_url, settings.redis_key_prefix, 60)
    try:
        await table.write_many({"AAPL": b"blob"}, {"": {"AAPL": {"value": 0.5}}})
        assert await asyncio.wait_for(aapl.get(), 5) == "AAPL"
        assert msft.empty()  # not named in that batch
        await table.write_many({}, {"": {"MSFT": {"value": 0.4}}, ":challenger": {}})
        assert await asyncio.wait_for(msft.get(), 5) == "MSFT"
    finally:
        await table.close()
        await feed.close()
        await listener.aclose()


def test_a_slow_watcher_keeps_only_the_latest_notices() -> None:
    feed = LiveFeed(Redis(), "unused")
    queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_SIZE)
    feed.watchers["AAPL"] = {queue}
    for _ in range(QUEUE_SIZE * 3):
        assert feed.deliver(json.dumps({"symbols": ["AAPL", "ZZZ"]})) == 1
    assert queue.qsize() == QUEUE_SIZE  # bounded: a stalled browser costs nothing more
    assert feed.deliver(b"not json") == 0
    assert feed.deliver(json.dumps({"symbols": "AAPL"})) == 0
    feed.unwatch("AAPL", queue)
    assert feed.watchers == {}


async def test_the_live_feed_subscribes_again_after_redis_restarts_empty(
    tmp_path: Path, settings: Settings
) -> None:
    server = PrivateRedis(tmp_path).start()
    listener = Redis.from_url(server.url)
    feed = LiveFeed(listener, updates_channel(settings.redis_key_prefix))
    queue = feed.watch("AAPL")
    table = RedisTable.from_url(server.url, settings.redis_key_prefix, 60)
    try:
        await asyncio.wait_for(feed.connected.wait(), 10)
        server.stop()  # the subscription is lost with the server
        await asyncio.sleep(0.5)
        assert not feed.connected.is_set()
        server.start()  # back, empty: no subscriber until the feed subscribes again
        await asyncio.wait_for(feed.connected.wait(), 15)
        await table.write_many({"AAPL": b"blob"}, {})
        assert await asyncio.wait_for(queue.get(), 5) == "AAPL"
    finally:
        await table.close()
        await feed.close()
        await listener.aclose()
        server.stop()
