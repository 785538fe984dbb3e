"""The API names the features of whatever named set the worker computes, side columns included
(#22): by the version each blob carries, on a real redis-server."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from serving.redis_store import RedisLatestStore
from sidestreams.feature_sets import named
from sinks.feature_blob import encode
from sinks.redis_table import RedisTable
from tickcast.config import Settings

pytestmark = pytest.mark.integration


async def test_blobs_of_side_and_other_named_sets_are_named(
    redis_url: str, settings: Settings
) -> None:
    settings = settings.model_copy(update={"side_macro_series": "realgdp", "redis_url": redis_url})
    raw = Redis.from_url(redis_url, decode_responses=False)
    table = RedisTable(raw, settings.redis_key_prefix, ttl_s=60)
    now = int(time.time() * 1000)
    side, alpha = named("classic+side", settings), named("alpha158", settings)
    other_side = named("classic+side", settings.model_copy(update={"side_macro_series": "unemp"}))
    blobs = {
        "SIDE": encode(now - 1000, now - 900, side.version, [float(i) for i in range(len(side))]),
        "ALPHA": encode(now - 1000, now - 900, alpha.version, [1.0] * len(alpha)),
        "OTHER": encode(now - 1000, now - 900, other_side.version, [2.0] * len(other_side)),
    }
    await table.write_features(blobs)
    store = RedisLatestStore.from_settings(settings)  # the API's store
    try:
        got = await store.get_features(list(blobs))
    finally:
        await store.close()
        await raw.aclose()
    side_row, alpha_row, other = got["SIDE"], got["ALPHA"], got["OTHER"]
    assert side_row is not None
    assert alpha_row is not None
    assert other is not None
    assert list(side_row["features"]) == list(side.names)
    assert side_row["features"]["macro_realgdp"] == float(side.names.index("macro_realgdp"))
    assert "sector_ret" in side_row["features"]
    assert "rsi_14" in side_row["features"]
    assert list(alpha_row["features"]) == list(alpha.names)
    # side columns of other TICKCAST_SIDE_* settings: not this deployment's set, values only
    assert other["features"] == {}
    assert len(other["values"]) == len(other_side)
