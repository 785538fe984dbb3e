"""RedisTable.write_many on a real Redis: the same keys, values and TTL as the separate
writes it replaces (which serve as the reference).

The comparison runs on the session stack's Redis under the test's key prefix; the script
cache flush, which would touch every user of a shared server, runs on a private one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from sinks.redis_table import RedisTable
from tests.support.redis_fault import PrivateRedis
from tickcast.config import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis").start()
    yield server
    server.stop()


async def _dump(url: str, prefix: str) -> dict[str, tuple[object, int]]:
    client = Redis.from_url(url, decode_responses=True)
    try:
        keys = sorted(await client.keys(f"{prefix}*"))
        return {str(k)[len(prefix) :]: (await client.get(k), await client.ttl(k)) for k in keys}
    finally:
        await client.aclose()


def test_write_many_equals_the_separate_writes(settings: Settings) -> None:
    url, prefix = settings.redis_url, settings.redis_key_prefix
    blobs = {"AAA": b"blob-a", "BBB": b"blob-b"}
    champion = {"AAA": {"value": 0.6, "model": "m"}, "CCC": {"value": 0.4, "model": "m"}}
    challenger = {"AAA": {"value": 0.55, "model": "c"}}

    async def write() -> None:
        one = RedisTable.from_url(url, f"{prefix}one:", 600)
        many = RedisTable.from_url(url, f"{prefix}many:", 600)
        await one.write_features(blobs)
        await one.write_predictions(champion)
        await one.write_predictions(challenger, suffix=":challenger")
        await many.write_many(blobs, {"": champion, ":challenger": challenger})
        await many.write_many({}, {"": {}, ":challenger": {}})  # nothing to write: no-op
        await one.close()
        await many.close()

    asyncio.run(write())
    reference = asyncio.run(_dump(url, f"{prefix}one:"))
    written = asyncio.run(_dump(url, f"{prefix}many:"))
    assert len(reference) == 5  # 2 feature, 2 champion, 1 challenger keys
    assert {k: v for k, (v, _) in written.items()} == {k: v for k, (v, _) in reference.items()}
    assert all(590 <= ttl <= 600 for _, ttl in written.values())


def test_write_many_survives_a_script_cache_flush(private_redis: PrivateRedis) -> None:
    """A restarted (or flushed) Redis no longer knows the script: the write still lands."""

    async def write() -> dict[str, tuple[object, int]]:
        table = RedisTable.from_url(private_redis.url, "flushed:", 60)
        admin = Redis.from_url(private_redis.url)
        try:
            await table.write_many({"AAA": b"first"}, {})
            await admin.script_flush()
            await table.write_many({"AAA": b"second", "BBB": b"b"}, {"": {"BBB": {"v": 1}}})
        finally:
            await table.close()
            await admin.aclose()
        return await _dump(private_redis.url, "flushed:")

    written = asyncio.run(write())
    assert {k: v for k, (v, _) in written.items()} == {
        "features:AAA": "second",
        "features:BBB": "b",
        "prediction:BBB": '{"v":1}',
    }
    assert all(50 <= ttl <= 60 for _, ttl in written.values())
