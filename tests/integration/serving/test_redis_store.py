"""RedisLatestStore on a real redis-server: the worker's layout, the cache, the default app."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from indicators.feature_set import FeatureSet
from online_learning.ab import assign
from serving.main import create_app
from serving.redis_store import RedisLatestStore, TtlCache
from sinks.feature_blob import encode
from sinks.redis_table import RedisTable
from tests.support.serving_app import Api, bearer, make_settings
from tickcast.config import Settings

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000)


@pytest.fixture(autouse=True)
def _fresh_now() -> None:
    """Ages are measured against the wall clock: 'now' is each test's start, not import time
    (a long suite would otherwise make these records stale)."""
    global NOW_MS
    NOW_MS = int(time.time() * 1000)


def worker_prediction(symbol: str, **extra: Any) -> dict[str, Any]:
    """The JSON the stream worker writes under ``<prefix>prediction:<SYMBOL>``."""
    return {
        "symbol": symbol, "event_time": NOW_MS - 2_000, "model": "tickcast-direction-h1",
        "version": "4", "role": "CHAMPION", "value": 0.61, "expected_return": 0.0022,
        "horizon": 1, "feature_event_time": NOW_MS - 2_500, "updated_at": NOW_MS - 1_900,
        "correlation_id": "tick-123", **extra,
    }  # fmt: skip


class CountingRedis:
    """Forwards to a real client, counting GET and MGET calls."""

    def __init__(self, inner: Redis) -> None:
        self.inner = inner
        self.gets = 0
        self.mgets: list[list[str]] = []

    async def get(self, key: str) -> Any:
        self.gets += 1
        await asyncio.sleep(0.01)  # let concurrent callers pile up on the same miss
        return await self.inner.get(key)

    async def mget(self, keys: list[str]) -> Any:
        self.mgets.append(list(keys))
        return await self.inner.mget(keys)


@pytest.fixture
async def raw(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=False)
    yield client
    await client.aclose()


@pytest.fixture
def table(raw: Redis, settings: Settings) -> RedisTable:
    """The worker's writer (sinks.redis_table) on the test's namespace."""
    return RedisTable(raw, settings.redis_key_prefix, ttl_s=60)


async def test_reads_the_worker_prediction_json(raw: Redis, table: RedisTable) -> None:
    await table.write_predictions({"AAPL": worker_prediction("AAPL")})
    store = RedisLatestStore(raw, prefix=table.prefix, ttl_s=0)
    record = await store.get_prediction("AAPL")
    assert record is not None
    assert record["role"] == "champion"  # the worker's enum, lower-cased
    assert (record["value"], record["expected_return"], record["horizon"]) == (0.61, 0.0022, 1)
    assert record["read_at"] >= NOW_MS
    assert await store.get_prediction("MSFT") is None
    assert await store.get_prediction("AAPL", "challenger") is None
    await raw.set(f"{table.prefix}prediction:AAPL:challenger", orjson.dumps(
        worker_prediction("AAPL", role="CHALLENGER", version="5")
    ))  # fmt: skip
    challenger = await store.get_prediction("AAPL", "challenger")
    assert challenger is not None
    assert (challenger["role"], challenger["version"]) == ("challenger", "5")
    await raw.set(f"{table.prefix}prediction:BAD", b"not json")
    assert await store.get_prediction("BAD") == {}


async def test_feature_blobs_are_named_by_the_default_feature_set(
    raw: Redis, table: RedisTable
) -> None:
    fs = FeatureSet.default()
    values = [float(i) for i in range(len(fs.names))]
    values[0] = math.nan  # warming up
    await table.write_features({
        "AAPL": encode(NOW_MS - 1000, NOW_MS - 900, fs.version, values),
        "OLD": encode(NOW_MS - 1000, NOW_MS - 900, "0123456789ab", [1.0, 2.0]),
    })  # fmt: skip
    store = RedisLatestStore(raw, prefix=table.prefix, ttl_s=0)
    got = await store.get_features(["AAPL", "OLD", "NONE"])
    aapl = got["AAPL"]
    assert aapl is not None
    assert list(aapl["features"]) == list(fs.names)
    assert aapl["features"][fs.names[0]] is None
    assert aapl["features"][fs.names[3]] == 3.0
    assert (aapl["event_time"], aapl["updated_at"]) == (NOW_MS - 1000, NOW_MS - 900)
    old = got["OLD"]
    assert old is not None
    assert (old["features"], old["values"], old["feature_set_version"]) == (
        {},
        [1.0, 2.0],
        "0123456789ab",
    )
    assert got["NONE"] is None


async def test_cache_serves_within_ttl_and_shares_one_miss(raw: Redis, table: RedisTable) -> None:
    await table.write_predictions({"AAPL": worker_prediction("AAPL")})
    counting = CountingRedis(raw)
    store = RedisLatestStore(counting, prefix=table.prefix, ttl_s=0.25)  # type: ignore[arg-type]
    now = [100.0]
    store.cache = TtlCache(0.25, clock=lambda: now[0])
    results = await asyncio.gather(*(store.get_prediction("AAPL") for _ in range(20)))
    assert counting.gets == 1  # twenty concurrent misses, one Redis call
    assert all(r == results[0] for r in results)
    await table.write_predictions({"AAPL": worker_prediction("AAPL", value=0.7)})
    cached = await store.get_prediction("AAPL")
    assert cached is not None
    assert cached["value"] == 0.61
    now[0] += 0.3  # expired, but young enough to serve while one background read refreshes
    stale = await store.get_prediction("AAPL")
    assert stale is not None
    assert stale["value"] == 0.61
    await asyncio.sleep(0.05)
    fresh = await store.get_prediction("AAPL")
    assert fresh is not None
    assert fresh["value"] == 0.7
    assert counting.gets == 2
    await table.write_predictions({"AAPL": worker_prediction("AAPL", value=0.8)})
    now[0] += 5  # too old to serve stale: the caller waits for Redis
    newest = await store.get_prediction("AAPL")
    assert newest is not None
    assert newest["value"] == 0.8
    assert counting.gets == 3
    # a batch reads only its misses, in one MGET
    await store.get_features(["AAPL", "MSFT"])
    await store.get_features(["AAPL", "MSFT", "NVDA"])
    assert counting.mgets == [
        [f"{table.prefix}features:AAPL", f"{table.prefix}features:MSFT"],
        [f"{table.prefix}features:NVDA"],
    ]


async def test_loader_failures_reach_every_waiter_and_are_not_cached() -> None:
    cache = TtlCache(10.0)
    calls = 0

    async def failing() -> Any:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        raise ConnectionError("down")

    results = await asyncio.gather(
        *(cache.single_flight("k", failing) for _ in range(5)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, ConnectionError) for r in results)

    async def ok() -> int:
        return 7

    assert await cache.single_flight("k", ok) == 7


@pytest.fixture
async def default_api(redis_url: str, redis: Redis) -> AsyncIterator[Api]:
    """The app as ``tickcast serve`` builds it (default store), A/B on."""
    settings = make_settings(redis_url, ab_enabled=True, ab_split=0.5, api_cache_ttl_s=0)
    app = create_app(settings, customize=lambda clients: clients.health_checks.clear())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Api(client, settings, redis, None, app)  # type: ignore[arg-type]


async def test_default_app_serves_the_worker_layout_with_ab_arms(
    default_api: Api, raw: Redis
) -> None:
    prefix = default_api.settings.redis_key_prefix
    writer = RedisTable(raw, prefix, ttl_s=60)
    await writer.write_predictions(
        {"AAPL": worker_prediction("AAPL"), "MSFT": worker_prediction("MSFT")}
    )
    await raw.set(f"{prefix}prediction:AAPL:challenger", orjson.dumps(
        worker_prediction("AAPL", role="CHALLENGER", version="9", value=0.2)
    ))  # fmt: skip
    arms: dict[str, str] = {}
    while set(arms.values()) != {"champion", "challenger"}:  # find a caller of each arm
        name = await default_api.user("viewer")
        arms[name] = assign(f"user:{name}", 0.5)
    for name, arm in arms.items():
        response = await default_api.login(name)
        token = response.json()["access_token"]
        answers = [
            (
                await default_api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token))
            ).json()
            for _ in range(3)
        ]
        assert {a["arm"] for a in answers} == {arm}  # stable per caller
        body = answers[0]
        assert body["age_s"] == pytest.approx(time.time() - (NOW_MS - 2000) / 1000, abs=1)
        assert body["feature_age_s"] > body["age_s"]
        assert body["stale"] is False
        if arm == "challenger":
            assert (body["version"], body["value"], body["role"]) == ("9", 0.2, "challenger")
            assert body["note"] is None
            other = await default_api.client.get(
                "/v1/predictions/MSFT/latest", headers=bearer(token)
            )
            assert other.json()["version"] == "4"  # no challenger prediction: the champion's
            assert "champion" in other.json()["note"]
        else:
            assert (body["version"], body["value"], body["role"]) == ("4", 0.61, "champion")
            assert body["correlation_id"] == "tick-123"
    runtime = default_api.app.state.runtime
    assert runtime.ab_counter.counts["champion"] >= 3
    assert runtime.ab_counter.counts["challenger"] >= 3


async def test_feature_cache_hit_rate_is_reported(redis_url: str) -> None:
    from serving.redis_store import blob_client

    seen: list[tuple[int, int]] = []
    settings = make_settings(redis_url)
    store = RedisLatestStore(
        blob_client(settings), prefix="hitrate:", ttl_s=60, owned=True,
        on_feature_lookups=lambda hits, total: seen.append((hits, total)),
    )  # fmt: skip
    await store.get_features(["AAPL", "MSFT"])  # both from Redis
    await store.get_features(["AAPL", "IBM"])  # AAPL cached
    await store.close()
    assert seen == [(0, 2), (1, 4)]
