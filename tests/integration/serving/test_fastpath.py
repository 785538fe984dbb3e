"""The raw-ASGI fast path answers exactly as the FastAPI route does.

Two applications share one Redis, one store and one clock; one has the fast path
(``api_fast_path``, the default), the other not. The same requests go to both, and status,
the headers that carry meaning and the JSON bodies (but the correlation id) must agree. The
route's answer function is wrapped with a counter, so the test also proves that the fast path
answered without the FastAPI route.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from serving.clients import Clients
from serving.fastpath import bearer_token
from serving.main import create_app
from serving.routes import predictions
from serving.store import InMemoryLatestStore
from tests.integration.serving.test_routes import NOW
from tests.integration.serving.test_routes import prediction as base_prediction
from tests.support.serving_app import PASSWORD, make_settings
from tickcast.metrics import Metrics

pytestmark = pytest.mark.integration

MEANINGFUL_HEADERS = ("content-type", "www-authenticate", "retry-after")


def prediction(age_s: float, **extra: Any) -> dict[str, Any]:
    """test_routes' record, with every optional field the answer carries."""
    optional = {
        "expected_return": 1e-05,
        "horizon": 1,
        "feature_event_time": int((NOW - age_s - 1) * 1000),
        "correlation_id": "c-1",
    }
    return base_prediction(age_s, **{**optional, **extra})


class Twin:
    """One application, its client and its metrics."""

    def __init__(self, client: httpx.AsyncClient, app: Any, metrics: Metrics) -> None:
        self.client = client
        self.app = app
        self.metrics = metrics


@asynccontextmanager
async def twin(
    redis_url: str, redis: Redis, store: InMemoryLatestStore, fast: bool, **overrides: Any
) -> AsyncIterator[Twin]:
    settings = make_settings(redis_url, api_fast_path=fast, **overrides)
    metrics = Metrics(process=False)
    clients = Clients(redis=redis, store=store, clock=lambda: NOW, metrics=metrics)
    app = create_app(settings, clients=clients)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Twin(client, app, metrics)


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {name: response.headers.get(name, "") for name in MEANINGFUL_HEADERS}
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict) and "error" in body:
        body.pop("correlation_id", None)  # an error's correlation id is the request's own
    return response.status_code, headers, body


async def tokens(client: httpx.AsyncClient, redis: Redis, prefix: str) -> dict[str, str]:
    """A viewer's token and one narrowed to ``features:read`` (no ``predictions:read``)."""
    from serving.circuit import CircuitBreaker
    from serving.security.users import UserStore

    name = f"viewer-{uuid.uuid4().hex[:8]}"
    await UserStore(redis, prefix=prefix, breaker=CircuitBreaker("t")).create(
        name, PASSWORD, "viewer"
    )
    out: dict[str, str] = {}
    for label, scope in (("viewer", None), ("narrow", "features:read")):
        form = {"grant_type": "password", "username": name, "password": PASSWORD}
        if scope:
            form["scope"] = scope
        response = await client.post("/v1/auth/token", data=form)
        assert response.status_code == 200, response.text
        out[label] = response.json()["access_token"]
    return out


@pytest.fixture
def store() -> InMemoryLatestStore:
    shared = InMemoryLatestStore()
    shared.put_prediction("AAPL", prediction(12.5, updated_at=int((NOW - 12) * 1000)))
    shared.put_prediction("MSFT", prediction(61.0, symbol="MSFT"))
    shared.put_prediction("BRK.B", prediction(1.0, symbol="BRK.B"))
    shared.put_prediction("BAD", prediction(1.0, event_time="yesterday"))
    shared.put_prediction("AAPL", prediction(3.0, model="river-logreg"), role="challenger")
    return shared


@pytest.mark.parametrize("ab_enabled", [False, True])
async def test_fast_path_answers_as_the_fastapi_route(
    redis_url: str,
    redis: Redis,
    store: InMemoryLatestStore,
    ab_enabled: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route_answers = 0
    answer = predictions.latest_answer

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal route_answers
        route_answers += 1
        return await answer(*args, **kwargs)

    monkeypatch.setattr(predictions, "latest_answer", counted)  # the route's, not the fast path's
    overrides = {"ab_enabled": ab_enabled, "ab_split": 0.5}
    async with (
        twin(redis_url, redis, store, True, **overrides) as fast,
        twin(redis_url, redis, store, False, **overrides) as slow,
    ):
        prefix = fast.app.state.runtime.settings.redis_key_prefix
        token = await tokens(fast.client, redis, prefix)
        viewer = {"Authorization": f"Bearer {token['viewer']}"}
        cases: list[tuple[str, str, dict[str, str]]] = [
            ("GET", "/v1/predictions/AAPL/latest", viewer),
            ("GET", "/v1/predictions/MSFT/latest", viewer),  # stale
            ("GET", "/v1/predictions/BRK.B/latest", viewer),
            ("GET", "/v1/predictions/NVDA/latest", viewer),  # 404
            ("GET", "/v1/predictions/BAD/latest", viewer),  # malformed record: 503
            ("GET", "/v1/predictions/AAPL/latest", {}),  # 401, no challenge details
            ("GET", "/v1/predictions/AAPL/latest", {"Authorization": "Basic dTpw"}),
            ("GET", "/v1/predictions/AAPL/latest", {"Authorization": "Bearer "}),
            ("GET", "/v1/predictions/AAPL/latest", {"Authorization": "Bearer not.a.jwt"}),
            ("GET", "/v1/predictions/AAPL/latest", {"Authorization": "bearer " + token["viewer"]}),
            ("GET", "/v1/predictions/AAPL/latest", {"Authorization": f"Bearer {token['narrow']}"}),
        ]
        fall_through: list[tuple[str, str, dict[str, str]]] = [
            ("GET", "/v1/predictions/aapl/latest", viewer),  # 422 from the route's pattern
            ("GET", "/v1/predictions/TOOLONGSYMBOL1/latest", viewer),
            ("HEAD", "/v1/predictions/AAPL/latest", viewer),  # 405
        ]
        for method, path, headers in cases + fall_through:
            before = route_answers
            on_fast = await fast.client.request(method, path, headers=headers)
            assert route_answers == before, "the FastAPI route answered on the fast-path app"
            on_slow = await slow.client.request(method, path, headers=headers)
            assert comparable(on_fast) == comparable(on_slow), (method, path)
            assert on_fast.headers.get("x-correlation-id"), (method, path)
        # a query string is FastAPI's to parse (``?explain=true``): the route answers it there
        before = route_answers
        on_fast = await fast.client.get("/v1/predictions/AAPL/latest?extra=1", headers=viewer)
        assert route_answers == before + 1
        on_slow = await slow.client.get("/v1/predictions/AAPL/latest?extra=1", headers=viewer)
        assert comparable(on_fast) == comparable(on_slow)
        assert route_answers >= 5  # the reference app really ran its route

        ok = await fast.client.get("/v1/predictions/AAPL/latest", headers=viewer)
        body = ok.json()
        assert ok.status_code == 200
        assert body["age_s"] in (3.0, 12.5)
        assert (body["arm"] is not None) is ab_enabled
        route = "/v1/predictions/{symbol}/latest"
        for twin_ in (fast, slow):
            assert twin_.metrics.value(
                "tickcast_http_request_ms_count", route=route, method="GET", status="200"
            ) == (6 if twin_ is fast else 5)


async def test_rate_limits_and_revocation_hold_on_the_fast_path(
    redis_url: str, redis: Redis, store: InMemoryLatestStore
) -> None:
    async with twin(redis_url, redis, store, True, rate_limit_per_subject=3) as fast:
        prefix = fast.app.state.runtime.settings.redis_key_prefix
        token = (await tokens(fast.client, redis, prefix))["viewer"]
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            (await fast.client.get("/v1/predictions/AAPL/latest", headers=headers)).status_code
            for _ in range(4)
        ]
        assert statuses == [200, 200, 200, 429]
        limited = await fast.client.get("/v1/predictions/AAPL/latest", headers=headers)
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.json()["error"] == "rate_limited"
    async with twin(redis_url, redis, store, True) as fast:
        prefix = fast.app.state.runtime.settings.redis_key_prefix
        token = (await tokens(fast.client, redis, prefix))["viewer"]
        headers = {"Authorization": f"Bearer {token}"}
        assert (await fast.client.get("/v1/predictions/AAPL/latest", headers=headers)).is_success
        revoked = await fast.client.post("/v1/auth/revoke", data={"token": token})
        assert revoked.status_code == 200
        after = await fast.client.get("/v1/predictions/AAPL/latest", headers=headers)
        assert after.status_code == 401
        assert "revoked" in after.json()["error_description"]


def test_bearer_token_reads_the_header_like_oauth2_password_bearer() -> None:
    def scope(*headers: tuple[bytes, bytes]) -> dict[str, Any]:
        return {"headers": list(headers)}

    assert bearer_token(scope((b"authorization", b"Bearer abc"))) == "abc"
    assert bearer_token(scope((b"authorization", b"bEaReR  abc "))) == "abc"
    assert bearer_token(scope((b"authorization", b"Basic abc"))) is None
    assert bearer_token(scope((b"authorization", b""))) is None
    assert bearer_token(scope((b"x-other", b"Bearer abc"))) is None
    assert bearer_token(scope((b"authorization", b"Bearer"))) == ""
