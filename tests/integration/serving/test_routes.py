"""Read endpoints, health, metrics, correlation ids and input validation (never a 5xx)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from serving.clients import Clients
from tests.support.serving_app import Api, bearer, make_settings, running_api

pytestmark = pytest.mark.integration

NOW = 1_700_000_000.0


@pytest.fixture
async def viewer(api: Api, clock: list[float]) -> str:
    clock[0] = NOW
    return await api.token("viewer")


def prediction(age_s: float, **extra: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL",
        "event_time": int((NOW - age_s) * 1000),
        "model": "xgb-1m",
        "version": "7",
        "role": "champion",
        "value": 0.0123,
        **extra,
    }


async def test_latest_prediction_with_age_and_staleness(api: Api, viewer: str) -> None:
    api.store.put_prediction(
        "AAPL",
        prediction(
            12.5, updated_at=int((NOW - 12) * 1000), feature_event_time=int((NOW - 13) * 1000)
        ),
    )
    api.store.put_prediction("MSFT", prediction(61.0))
    fresh = await api.client.get("/v1/predictions/AAPL/latest", headers=bearer(viewer))
    assert fresh.status_code == 200
    body = fresh.json()
    assert body["age_s"] == pytest.approx(12.5)
    assert body["feature_age_s"] == pytest.approx(13.0)
    assert body["stale"] is False
    assert (body["model"], body["version"], body["role"], body["value"]) == (
        "xgb-1m",
        "7",
        "champion",
        0.0123,
    )
    stale = (await api.client.get("/v1/predictions/MSFT/latest", headers=bearer(viewer))).json()
    assert stale["age_s"] == pytest.approx(61.0)
    assert stale["stale"] is True  # stale_after_s is 60
    missing = await api.client.get("/v1/predictions/NVDA/latest", headers=bearer(viewer))
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


async def test_latest_features_and_batch(api: Api, viewer: str) -> None:
    api.store.put_features(
        "AAPL", {"event_time": int((NOW - 3) * 1000), "features": {"rsi_14": 55.5, "atr_14": None}}
    )
    api.store.put_features(
        "BRK.B", {"event_time": int((NOW - 90) * 1000), "features": {"rsi_14": 40.0}}
    )
    one = await api.client.get("/v1/features/AAPL/latest", headers=bearer(viewer))
    assert one.status_code == 200
    assert one.json()["features"] == {"rsi_14": 55.5, "atr_14": None}
    assert one.json()["age_s"] == pytest.approx(3.0)
    assert one.json()["stale"] is False
    calls = api.store.calls
    batch = await api.client.post(
        "/v1/features:batch",
        json={"symbols": ["AAPL", "BRK.B", "ZZZ", "AAPL"]},
        headers=bearer(viewer),
    )
    assert batch.status_code == 200
    body = batch.json()
    assert list(body["features"]) == ["AAPL", "BRK.B", "ZZZ"]  # duplicates answered once, in order
    assert body["features"]["BRK.B"]["stale"] is True
    assert body["features"]["ZZZ"] is None
    assert body["missing"] == ["ZZZ"]
    assert api.store.calls == calls + 1  # one store read for the whole batch


async def test_malformed_store_record_is_503_not_500(api: Api, viewer: str) -> None:
    api.store.put_prediction("AAPL", {"event_time": "yesterday", "model": "m"})
    api.store.put_features("AAPL", {"event_time": 1, "features": "not a dict"})
    for path in ("/v1/predictions/AAPL/latest", "/v1/features/AAPL/latest"):
        response = await api.client.get(path, headers=bearer(viewer))
        assert response.status_code == 503, path


@pytest.mark.parametrize(
    "symbol", ["aapl", "TOOLONGSYMBOL1", "AA PL", "AAPL$", "%00", "A%2FB", "Ä", "A;DROP"]
)
async def test_bad_symbols_are_422_with_reason(api: Api, viewer: str, symbol: str) -> None:
    for path in (f"/v1/predictions/{symbol}/latest", f"/v1/features/{symbol}/latest"):
        response = await api.client.get(path, headers=bearer(viewer))
        assert response.status_code in (404, 422), path
        if response.status_code == 422:
            assert "symbol" in response.json()["error_description"]
    batch = await api.client.post(
        "/v1/features:batch", json={"symbols": [symbol]}, headers=bearer(viewer)
    )
    assert batch.status_code == 422
    assert batch.json()["errors"][0]["loc"][:2] == ["body", "symbols"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 422),
        (b"[]", 422),
        (b'{"symbols": []}', 422),
        (b'{"symbols": "AAPL"}', 422),
        (b'{"symbols": [1, 2]}', 422),
        (b'{"symbols": null}', 422),
        (b"", 422),
    ],
)
async def test_malformed_batch_bodies(api: Api, viewer: str, body: bytes, status: int) -> None:
    headers = {**bearer(viewer), "Content-Type": "application/json"}
    response = await api.client.post("/v1/features:batch", content=body, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == "invalid_request"
    assert body.decode() not in response.json()["error_description"] or not body


async def test_batch_size_cap(api: Api, viewer: str) -> None:
    cap = api.settings.batch_max_symbols
    symbols = [f"S{i}" for i in range(cap + 1)]
    over = await api.client.post(
        "/v1/features:batch", json={"symbols": symbols}, headers=bearer(viewer)
    )
    assert over.status_code == 413
    assert over.json()["error"] == "too_many_symbols"
    at_cap = await api.client.post(
        "/v1/features:batch", json={"symbols": symbols[:cap]}, headers=bearer(viewer)
    )
    assert at_cap.status_code == 200
    hard = await api.client.post(
        "/v1/features:batch", json={"symbols": ["A"] * 10_001}, headers=bearer(viewer)
    )
    assert hard.status_code == 422


async def test_request_body_cap(api: Api, viewer: str) -> None:
    huge = b'{"symbols": ["' + b"A" * (2 << 20) + b'"]}'
    response = await api.client.post(
        "/v1/features:batch",
        content=huge,
        headers={**bearer(viewer), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_unknown_routes_and_methods(api: Api, viewer: str) -> None:
    assert (await api.client.get("/v1/nope", headers=bearer(viewer))).status_code == 404
    wrong = await api.client.delete("/v1/features/AAPL/latest", headers=bearer(viewer))
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


async def test_correlation_id_in_and_out(api: Api) -> None:
    given = await api.client.get("/healthz", headers={"X-Correlation-ID": "req-42.a:b"})
    assert given.headers["X-Correlation-ID"] == "req-42.a:b"
    generated = await api.client.get("/healthz")
    assert len(generated.headers["X-Correlation-ID"]) == 32
    injected = await api.client.get("/healthz", headers={"X-Correlation-ID": 'x\ty"<script>'})
    assert injected.headers["X-Correlation-ID"] != 'x\ty"<script>'
    error = await api.client.get("/v1/auth/me", headers={"X-Correlation-ID": "trace-1"})
    assert error.json()["correlation_id"] == "trace-1"
    entries = await api.redis.xrange(f"{api.settings.redis_key_prefix}audit")
    assert entries[-1][1]["correlation_id"] == "trace-1"


async def test_readyz_reports_each_dependency(redis_url: str, redis: Any) -> None:
    settings = make_settings(redis_url)

    async def kafka_ok() -> bool:
        return True

    async def mlflow_down() -> None:
        raise ConnectionError("mlflow refused")

    async def clickhouse_false() -> bool:
        return False

    app_clients = {"kafka": kafka_ok, "mlflow": mlflow_down, "clickhouse": clickhouse_false}
    async for api in running_api(settings, redis, None, time.time):  # type: ignore[arg-type]
        api.app.state.runtime.clients.health_checks.update(app_clients)
        response = await api.client.get("/readyz")
        # optional dependencies down: degraded, still serving (200)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded"
        checks = body["checks"]
        assert {name: check["ok"] for name, check in checks.items()} == {
            "redis": True,
            "kafka": True,
            "mlflow": False,
            "clickhouse": False,
        }
        assert {name for name, check in checks.items() if check["required"]} == {"redis"}
        assert "mlflow refused" in checks["mlflow"]["error"]
        assert set(body["circuits"]) == {"redis", "store", "clickhouse", "mlflow"}
        metrics = api.app.state.runtime.metrics
        assert metrics.value("tickcast_dependency_up", component="mlflow") == 0.0
        assert metrics.value("tickcast_dependency_up", component="kafka") == 1.0
        del api.app.state.runtime.clients.health_checks["mlflow"]
        del api.app.state.runtime.clients.health_checks["clickhouse"]
        ready = await api.client.get("/readyz")
        assert (ready.status_code, ready.json()["status"]) == (200, "ready")


async def test_metrics_exposes_the_given_registry(redis_url: str, redis: Any) -> None:
    import httpx

    from serving.main import create_app

    registry = CollectorRegistry()
    Counter("tickcast_test_events", "a test counter", registry=registry).inc(3)
    clients = Clients(redis=redis, store=None, registry=registry)  # type: ignore[arg-type]
    app = create_app(make_settings(redis_url), clients=clients)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "tickcast_test_events_total 3.0" in response.text


async def test_openapi_is_versioned_and_documents_security(api: Api) -> None:
    schema = (await api.client.get("/openapi.json")).json()
    paths = set(schema["paths"])
    assert {
        "/v1/auth/token",
        "/v1/auth/refresh",
        "/v1/auth/revoke",
        "/v1/features:batch",
        "/v1/predictions/{symbol}/latest",
        "/v1/features/{symbol}/latest",
        "/v1/keys",
        "/healthz",
        "/readyz",
    } <= paths
    assert all(p.startswith("/v1/") for p in paths - {"/healthz", "/readyz"})
    flows = schema["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert "keys:admin" in flows["password"]["scopes"]
    op = schema["paths"]["/v1/predictions/{symbol}/latest"]["get"]
    assert op["security"] == [{"OAuth2PasswordBearer": ["predictions:read"]}]
    assert {"401", "403", "404", "422", "429", "503"} <= set(op["responses"])


async def test_http_latency_per_route_template_on_metrics(redis_url: str, redis: Any) -> None:
    import httpx

    from serving.main import create_app
    from serving.store import InMemoryLatestStore
    from tests.support.serving_app import Api
    from tickcast.metrics import Metrics

    metrics = Metrics(process=False)
    settings = make_settings(redis_url)
    clients = Clients(redis=redis, store=InMemoryLatestStore(), metrics=metrics)
    app = create_app(settings, clients=clients)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            token = await Api(client, settings, redis, clients.store, app).token("viewer")  # type: ignore[arg-type]
            for symbol in ("AAPL", "MSFT", "NVDA"):
                await client.get(f"/v1/predictions/{symbol}/latest", headers=bearer(token))
            await client.get("/no/such/path")
            exposition = (await client.get("/metrics")).text
    route = "/v1/predictions/{symbol}/latest"
    assert (
        metrics.value("tickcast_http_request_ms_count", route=route, method="GET", status="404")
        == 3.0
    )
    assert (
        metrics.value(
            "tickcast_http_request_ms_count", route="unmatched", method="GET", status="404"
        )
        == 1.0
    )
    assert (
        f'tickcast_http_request_ms_count{{method="GET",route="{route}",status="404"}} 3.0'
        in exposition
    )


async def test_cached_check_runs_once_and_reports_the_failure() -> None:
    import asyncio

    from serving.readiness import CachedCheck, clickhouse_health
    from tickcast.errors import DependencyError
    from tickcast.health import Health

    calls = 0

    def slow() -> Health:
        nonlocal calls
        calls += 1
        time.sleep(0.05)
        return Health("kafka", False, "127.0.0.1:1 does not answer", "start it")

    check = CachedCheck(slow, failed_ttl_s=60)
    results = await asyncio.gather(*(check() for _ in range(5)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, DependencyError) and "does not answer" in str(r) for r in results)
    with pytest.raises(DependencyError):
        await check()
    assert calls == 1  # cached
    # the real ClickHouse check, pointed at a closed read endpoint, says so
    settings = make_settings("redis://127.0.0.1:1/0", clickhouse_read_port=1)
    health = clickhouse_health(settings)
    assert (health.component, health.ok) == ("clickhouse", False)
    assert "tickcast sink run" in health.hint


async def test_predictions_batch_answers_each_symbol_once_with_the_missing_listed(
    api: Api, viewer: str
) -> None:
    api.store.put_prediction("AAPL", prediction(5.0))
    api.store.put_prediction("MSFT", {**prediction(70.0), "symbol": "MSFT"})
    batch = await api.client.post(
        "/v1/predictions:batch",
        json={"symbols": ["AAPL", "MSFT", "ZZZ", "AAPL"]},
        headers=bearer(viewer),
    )
    assert batch.status_code == 200
    body = batch.json()
    assert list(body["predictions"]) == ["AAPL", "MSFT", "ZZZ"]
    assert body["predictions"]["AAPL"]["value"] == 0.0123
    assert body["predictions"]["AAPL"]["stale"] is False
    assert body["predictions"]["MSFT"]["stale"] is True
    assert body["predictions"]["ZZZ"] is None
    assert body["missing"] == ["ZZZ"]
    cap = api.settings.batch_max_symbols
    over = await api.client.post(
        "/v1/predictions:batch",
        json={"symbols": [f"S{i}" for i in range(cap + 1)]},
        headers=bearer(viewer),
    )
    assert over.status_code == 413
    assert over.json()["error"] == "too_many_symbols"
    bad = await api.client.post(
        "/v1/predictions:batch", json={"symbols": ["a;DROP"]}, headers=bearer(viewer)
    )
    assert bad.status_code == 422
    anonymous = await api.client.post("/v1/predictions:batch", json={"symbols": ["AAPL"]})
    assert anonymous.status_code == 401


async def test_predictions_batch_with_a_malformed_record_is_503(api: Api, viewer: str) -> None:
    api.store.put_prediction("AAPL", {"event_time": "yesterday", "model": "m"})
    batch = await api.client.post(
        "/v1/predictions:batch", json={"symbols": ["AAPL"]}, headers=bearer(viewer)
    )
    assert batch.status_code == 503
