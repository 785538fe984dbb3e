"""RedisTable.write_many on a real redis-server: the same keys, values and TTL as the
separate writes it replaces (which serve as the reference)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from sinks.redis_table import RedisTable
from tests.unit.serving.conftest import RedisServer, start_redis


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(Path(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


async def _dump(url: str, prefix: str) -> dict[str, tuple[object, int]]:
    client = Redis.from_url(url, decode_responses=True)
    try:
        keys = sorted(await client.keys(f"{prefix}*"))
        return {str(k)[len(prefix) :]: (await client.get(k), await client.ttl(k)) for k in keys}
    finally:
        await client.aclose()


def test_write_many_equals_the_separate_writes(redis_server: RedisServer) -> None:
    blobs = {"AAA": b"blob-a", "BBB": b"blob-b"}
    champion = {"AAA": {"value": 0.6, "model": "m"}, "CCC": {"value": 0.4, "model": "m"}}
    challenger = {"AAA": {"value": 0.55, "model": "c"}}

    async def write() -> None:
        one = RedisTable.from_url(redis_server.url, "one:", 600)
        many = RedisTable.from_url(redis_server.url, "many:", 600)
        await one.write_features(blobs)
        await one.write_predictions(champion)
        await one.write_predictions(challenger, suffix=":challenger")
        await many.write_many(blobs, {"": champion, ":challenger": challenger})
        await many.write_many({}, {"": {}, ":challenger": {}})  # nothing to write: no-op
        await one.close()
        await many.close()

    asyncio.run(write())
    reference = asyncio.run(_dump(redis_server.url, "one:"))
    written = asyncio.run(_dump(redis_server.url, "many:"))
    assert len(reference) == 5  # 2 feature, 2 champion, 1 challenger keys
    assert {k: v for k, (v, _) in written.items()} == {k: v for k, (v, _) in reference.items()}
    assert all(590 <= ttl <= 600 for _, ttl in written.values())


def test_write_many_survives_a_script_cache_flush(redis_server: RedisServer) -> None:
    """A restarted (or flushed) Redis no longer knows the script: the write still lands."""

    async def write() -> dict[str, tuple[object, int]]:
        table = RedisTable.from_url(redis_server.url, "flushed:", 60)
        admin = Redis.from_url(redis_server.url)
        try:
            await table.write_many({"AAA": b"first"}, {})
            await admin.script_flush()
            await table.write_many({"AAA": b"second", "BBB": b"b"}, {"": {"BBB": {"v": 1}}})
        finally:
            await table.close()
            await admin.aclose()
        return await _dump(redis_server.url, "flushed:")

    written = asyncio.run(write())
    assert {k: v for k, (v, _) in written.items()} == {
        "features:AAA": "second",
        "features:BBB": "b",
        "prediction:BBB": '{"v":1}',
    }
    assert all(50 <= ttl <= 60 for _, ttl in written.values())
