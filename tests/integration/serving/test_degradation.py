"""Redis or the store down: 503 with Retry-After in bounded time, then no more hammering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.clients import Clients, UnconfiguredStore
from serving.main import create_app
from serving.redis_pool import redis_client
from serving.store import InMemoryLatestStore, Record
from tests.support.redis_fault import PrivateRedis
from tests.support.serving_app import Api, bearer, make_settings, running_api

pytestmark = pytest.mark.integration


class BrokenStore(InMemoryLatestStore):
    """A store whose backend refuses connections or hangs."""

    def __init__(self, hang: bool = False) -> None:
        super().__init__()
        self.hang = hang

    async def get_prediction(self, symbol: str, role: str = "champion") -> Record | None:
        self.calls += 1
        if self.hang:
            await asyncio.sleep(30)
        raise ConnectionError("store refused")

    async def get_features(self, symbols: Sequence[str]) -> dict[str, Record | None]:
        return {symbol: await self.get_prediction(symbol) for symbol in symbols}


async def test_503_when_redis_is_killed(tmp_path: Path) -> None:
    server = PrivateRedis(tmp_path).start()
    settings = make_settings(server.url, circuit_failures=2, circuit_reset_s=30)
    redis = redis_client(settings)
    store = InMemoryLatestStore()
    app = create_app(settings, clients=Clients(redis=redis, store=store))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                api = Api(client, settings, redis, store, app)
                token = await api.token("viewer")
                ok = await client.get("/v1/features/AAPL/latest", headers=bearer(token))
                assert ok.status_code == 404
                server.stop()
                responses = [
                    await client.get("/v1/features/AAPL/latest", headers=bearer(token))
                    for _ in range(5)
                ]
                assert [r.status_code for r in responses] == [503] * 5
                for response in responses:
                    assert int(response.headers["Retry-After"]) >= 1
                    assert response.json()["error"] == "unavailable"
                runtime = app.state.runtime
                assert runtime.redis_breaker.state == "open"
                assert int(responses[-1].headers["Retry-After"]) <= 30
                # logins and token endpoints degrade the same way, never 500
                login = await api.login("someone")
                assert login.status_code == 503
                ready = await client.get("/readyz")
                assert ready.status_code == 503
                body = ready.json()
                assert body["checks"]["redis"]["ok"] is False
                assert body["circuits"]["redis"] == "open"
                assert (await client.get("/healthz")).status_code == 200
    finally:
        server.stop()
        await redis.aclose()


async def test_store_failures_open_the_circuit(redis_url: str, redis: Any) -> None:
    settings = make_settings(redis_url, circuit_failures=3, circuit_reset_s=60)
    store = BrokenStore()
    async for api in running_api(settings, redis, store, time.time):
        token = await api.token("viewer")
        codes = [
            (await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token))).status_code
            for _ in range(8)
        ]
        assert codes == [503] * 8
        assert store.calls == 3  # the circuit opened after 3 failures: no more calls
        batch = await api.client.post(
            "/v1/features:batch", json={"symbols": ["AAPL"]}, headers=bearer(token)
        )
        assert batch.status_code == 503
        assert store.calls == 3


async def test_hanging_store_times_out(redis_url: str, redis: Any) -> None:
    settings = make_settings(redis_url, dependency_timeout_s=0.05)
    store = BrokenStore(hang=True)
    async for api in running_api(settings, redis, store, time.time):
        token = await api.token("viewer")
        response = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(token))
        assert response.status_code == 503
        assert "Retry-After" in response.headers
        assert store.calls == 1


async def test_unconfigured_store_is_503(redis_url: str, redis: Any) -> None:
    settings = make_settings(redis_url)
    app = create_app(settings, clients=Clients(redis=redis, store=UnconfiguredStore()))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            api = Api(client, settings, redis, InMemoryLatestStore(), app)
            token = await api.token("viewer")
            response = await client.get("/v1/features/AAPL/latest", headers=bearer(token))
            assert response.status_code == 503
