"""The API on the real stack: worker layout in Redis, history from chDB through the sink's read
endpoint, and ModelEvents on the real Kafka broker."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer

from indicators.feature_set import FeatureSet
from serving.clients import Clients
from serving.history import ClickHouseHistory
from serving.main import create_app
from serving.redis_pool import redis_client
from serving.redis_store import RedisLatestStore, blob_client
from serving.security.scopes import scopes_for
from serving.security.tokens import JwtCodec
from sinks.clickhouse import connect
from sinks.clickhouse_sink import ClickHouseConnector, ClickHouseSink, SinkBatch
from sinks.feature_blob import encode
from sinks.history import ReadEndpoint
from sinks.redis_table import RedisTable
from sinks.tables import PREDICTIONS, prepare_tables
from streams.codec import get_codec
from streams.topics import apply_topics
from tests.support.serving_fakes import FakeRegistry
from tickcast.config import Settings

pytestmark = pytest.mark.integration
T0 = 1_700_000_000_000
NAME = "tickcast-direction-h1"


def bearer(settings: Settings, role: str) -> dict[str, str]:
    codec = JwtCodec.from_settings(settings)
    token, _ = codec.issue(
        sub=f"user:{role}", role=role, scopes=scopes_for(role), sid=uuid.uuid4().hex
    )
    return {"Authorization": f"Bearer {token}"}


def prediction(i: int, model: str) -> dict[str, Any]:
    return {
        "symbol": "AAPL", "ts": T0 + i * 60_000, "horizon": 1, "prob_up": 0.5 + i / 1000,
        "expected_return": 0.001, "model_name": model, "model_version": "1",
        "role": "CHAMPION", "feature_set_version": "v1", "scoring_latency_ms": 1.0,
        "correlation_id": f"c{i}-{model}", "produced_at": T0 + i * 60_000 + 5,
    }  # fmt: skip


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The app on the real Redis, ClickHouse (chDB via the read endpoint) and Kafka."""
    prepare_tables(connect(settings), settings)
    rows = [PREDICTIONS.to_row(prediction(i, m)) for i in range(25) for m in ("lgbm", "xgb")]
    ClickHouseSink(settings, PREDICTIONS, ClickHouseConnector(settings)).write(SinkBatch(rows=rows))
    endpoint = ReadEndpoint(settings).start()  # this process owns chDB, like the sink does
    registry = FakeRegistry()  # MLflow versions need trained models; the registry is faked
    registry.register(NAME, "1", "champion")
    registry.register(NAME, "2", "challenger")
    redis = redis_client(settings)
    clients = Clients(
        redis=redis,
        store=RedisLatestStore(blob_client(settings), prefix=settings.redis_key_prefix, owned=True),
        history=ClickHouseHistory(settings, url=endpoint.url),
        models=registry,
    )
    app = create_app(settings, clients=clients)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client, app
    finally:
        await clients.store.close()  # type: ignore[attr-defined]
        await redis.aclose()
        endpoint.close()


async def test_latest_prediction_and_features_from_the_worker_writer(
    api: tuple[httpx.AsyncClient, Any], settings: Settings
) -> None:
    client, _ = api
    table = RedisTable.from_url(settings.redis_url, settings.redis_key_prefix, ttl_s=60)
    now = int(time.time() * 1000)
    fs = FeatureSet.default()
    try:
        await table.write_predictions({"AAPL": {
            "symbol": "AAPL", "event_time": now - 3000, "model": NAME, "version": "1",
            "role": "CHAMPION", "value": 0.58, "expected_return": 0.0016, "horizon": 1,
            "feature_event_time": now - 3000, "updated_at": now - 2900, "correlation_id": "x",
        }})  # fmt: skip
        await table.write_features(
            {"AAPL": encode(now - 3000, now - 2950, fs.version, [1.0] * len(fs.names))}
        )
    finally:
        await table.close()
    headers = bearer(settings, "viewer")
    latest = await client.get("/v1/predictions/AAPL/latest", headers=headers)
    assert latest.status_code == 200, latest.text
    body = latest.json()
    assert (body["value"], body["role"], body["version"]) == (0.58, "champion", "1")
    assert body["age_s"] == pytest.approx(3, abs=1.5)
    assert body["stale"] is False
    features = await client.get("/v1/features/AAPL/latest", headers=headers)
    assert features.status_code == 200
    assert set(features.json()["features"]) == set(fs.names)


async def test_history_pages_through_real_chdb(
    api: tuple[httpx.AsyncClient, Any], settings: Settings
) -> None:
    client, _ = api
    headers = bearer(settings, "trader")
    seen: list[tuple[int, str]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"start": T0 + 60_000, "end": T0 + 21 * 60_000, "limit": 6}
        if cursor:
            params["cursor"] = cursor
        page = await client.get("/v1/predictions/AAPL/history", params=params, headers=headers)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [(row["ts_ms"], row["model_name"]) for row in body["rows"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted((T0 + i * 60_000, m) for i in range(1, 21) for m in ("lgbm", "xgb"))
    bad = await client.get(
        "/v1/predictions/AAPL/history",
        params={"start": T0, "end": T0 + 1, "cursor": "bm9wZQ"},
        headers=headers,
    )
    assert (bad.status_code, bad.json()["error"]) == (400, "invalid_cursor")


async def test_promotion_publishes_a_model_event_on_kafka(
    api: tuple[httpx.AsyncClient, Any], settings: Settings
) -> None:
    client, _ = api
    apply_topics(settings)
    response = await client.post(
        "/v1/models/promote",
        json={"version": "2", "reason": "integration test"},
        headers=bearer(settings, "admin"),
    )
    assert response.status_code == 200, response.text
    assert response.json()["published"] is True
    consumer = Consumer({
        "bootstrap.servers": settings.kafka_bootstrap, "group.id": f"{settings.consumer_group}-t",
        "auto.offset.reset": "earliest",
    })  # fmt: skip
    consumer.subscribe([settings.topic("model-events")])
    try:
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is not None and message.error():
                message = None
        assert message is not None
        event = get_codec("ModelEvent").decode(message.value())
    finally:
        consumer.close()
    assert (event["event_type"], event["version"], event["from_version"]) == ("PROMOTED", "2", "1")
    assert event["actor"] == "user:admin"
    assert message.key() == NAME.encode()
