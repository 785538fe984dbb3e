"""History routes through the HistoryReader seam: pagination, range and cursor errors, 503."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from serving.clients import Clients
from serving.history import HistoryQuery, HistoryQueryError
from serving.main import create_app
from serving.store import InMemoryLatestStore
from sinks.history import Page
from tests.support.serving_app import Api, bearer
from tests.support.serving_fakes import FakeHistory, history_row
from tickcast.config import Settings

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000


@pytest.fixture
def history() -> FakeHistory:
    rows = [
        history_row("AAPL", T0 + i * 60_000, model) for i in range(23) for model in ("lgbm", "xgb")
    ]
    rows += [history_row("MSFT", T0, "xgb")]
    return FakeHistory(rows)


@pytest.fixture
async def api(settings: Settings, redis: Redis, history: FakeHistory) -> AsyncIterator[Api]:
    store = InMemoryLatestStore()
    app = create_app(settings, clients=Clients(redis=redis, store=store, history=history))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Api(client, settings, redis, store, app)


async def test_pages_cover_the_range_once_in_order(api: Api, history: FakeHistory) -> None:
    token = await api.token("trader")
    start, end = T0 + 60_000, T0 + 20 * 60_000  # rows 1..19 of each model
    seen: list[tuple[int, str]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"start": start, "end": end, "limit": 7}
        if cursor:
            params["cursor"] = cursor
        response = await api.client.get(
            "/v1/predictions/AAPL/history", params=params, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["symbol"], body["kind"], body["start"], body["end"]) == (
            "AAPL",
            "predictions",
            start,
            end,
        )
        seen += [(row["ts_ms"], row["model_name"]) for row in body["rows"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    expected = sorted((T0 + i * 60_000, m) for i in range(1, 20) for m in ("lgbm", "xgb"))
    assert seen == expected
    assert pages == -(-len(expected) // 7)
    assert history.queries[0].kind == "predictions"


async def test_outcomes_and_filters_are_passed_through(api: Api, history: FakeHistory) -> None:
    token = await api.token("trader")
    response = await api.client.get(
        "/v1/outcomes/AAPL/history",
        params={"start": T0, "end": T0 + 3 * 60_000, "model": "xgb"},
        headers=bearer(token),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "outcomes"
    assert [r["model_name"] for r in body["rows"]] == ["xgb"] * 3
    query = history.queries[-1]
    assert (query.kind, query.model, query.limit) == ("outcomes", "xgb", 500)
    joined = await api.client.get(
        "/v1/predictions/AAPL/history",
        params={"start": T0, "end": T0 + 1, "with_outcomes": "true"},
        headers=bearer(token),
    )
    assert joined.status_code == 200
    assert history.queries[-1].with_outcomes is True


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"start": T0, "end": T0}, 400, "invalid_range"),
        ({"start": T0 + 5, "end": T0}, 400, "invalid_range"),
        ({"start": T0, "end": T0 + 1, "cursor": "bm90LWEtY3Vyc29y"}, 400, "invalid_cursor"),
        ({"start": T0, "end": T0 + 1, "cursor": "bad cursor!"}, 422, "invalid_request"),
        ({"start": T0, "end": T0 + 1, "limit": 0}, 422, "invalid_request"),
        ({"start": -1, "end": T0}, 422, "invalid_request"),
        ({"end": T0}, 422, "invalid_request"),
    ],
)
async def test_bad_ranges_and_cursors_say_why(
    api: Api, params: dict[str, Any], status: int, code: str
) -> None:
    token = await api.token("trader")
    response = await api.client.get(
        "/v1/predictions/AAPL/history", params=params, headers=bearer(token)
    )
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code
    assert body["error_description"]


async def test_history_needs_its_scope(api: Api) -> None:
    viewer = await api.token("viewer")
    response = await api.client.get(
        "/v1/predictions/AAPL/history", params={"start": T0, "end": T0 + 1}, headers=bearer(viewer)
    )
    assert response.status_code == 403
    assert 'scope="history:read"' in response.headers["WWW-Authenticate"]


async def test_clickhouse_down_is_503_with_retry_after(api: Api, history: FakeHistory) -> None:
    token = await api.token("trader")
    history.down = True
    for _ in range(api.settings.circuit_failures + 2):
        response = await api.client.get(
            "/v1/predictions/AAPL/history",
            params={"start": T0, "end": T0 + 60_000},
            headers=bearer(token),
        )
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert "clickhouse" in response.json()["error_description"]
    calls = len(history.queries)
    assert calls == api.settings.circuit_failures  # the circuit opened: no more calls
    assert api.app.state.runtime.history.breaker.state == "open"


def probe_cursor() -> str:
    """The outside probe's cursor: base64url of ``[1e30, 'x', '1', 1]``, unsigned."""
    raw = json.dumps([1e30, "x", "1", 1]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_the_probes_cursor_is_400_and_cannot_open_the_circuit(
    api: Api, history: FakeHistory
) -> None:
    token = await api.token("trader")
    params = {"start": T0, "end": T0 + 60_000, "cursor": probe_cursor()}
    for _ in range(api.settings.circuit_failures * 2):
        response = await api.client.get(
            "/v1/predictions/AAPL/history", params=params, headers=bearer(token)
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_cursor"
    assert api.app.state.runtime.history.breaker.state == "closed"
    ok = await api.client.get(
        "/v1/predictions/AAPL/history",
        params={"start": T0, "end": T0 + 60_000},
        headers=bearer(token),
    )
    assert ok.status_code == 200


async def test_a_cursor_only_pages_the_query_it_came_from(api: Api) -> None:
    token = await api.token("trader")
    params: dict[str, Any] = {"start": T0, "end": T0 + 20 * 60_000, "limit": 3}
    first = await api.client.get(
        "/v1/predictions/AAPL/history", params=params, headers=bearer(token)
    )
    cursor = first.json()["next_cursor"]
    assert cursor
    same = await api.client.get(
        "/v1/predictions/AAPL/history", params={**params, "cursor": cursor}, headers=bearer(token)
    )
    assert same.status_code == 200
    for path, changes in [
        ("/v1/predictions/MSFT/history", {}),
        ("/v1/outcomes/AAPL/history", {}),
        ("/v1/predictions/AAPL/history", {"limit": 4}),
        ("/v1/predictions/AAPL/history", {"model": "xgb"}),
        ("/v1/predictions/AAPL/history", {"end": T0 + 21 * 60_000}),
    ]:
        response = await api.client.get(
            path, params={**params, **changes, "cursor": cursor}, headers=bearer(token)
        )
        assert response.status_code == 400, (path, changes)
        assert response.json()["error"] == "invalid_cursor"


async def test_a_query_refused_for_its_input_is_400_and_not_counted(
    api: Api, history: FakeHistory, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = await api.token("trader")

    def refuse(query: HistoryQuery) -> Page:
        raise HistoryQueryError(43)

    monkeypatch.setattr(history, "page", refuse)
    for _ in range(api.settings.circuit_failures * 2):
        response = await api.client.get(
            "/v1/predictions/AAPL/history",
            params={"start": T0, "end": T0 + 60_000},
            headers=bearer(token),
        )
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_query"
    assert api.app.state.runtime.history.breaker.state == "closed"
