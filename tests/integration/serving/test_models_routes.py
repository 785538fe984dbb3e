"""Models: registry view with live metrics, test state, promote and rollback (admin, audited)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from serving.clients import Clients
from serving.main import create_app
from serving.store import InMemoryLatestStore
from tests.support.serving_app import Api, bearer
from tests.support.serving_fakes import FakeRegistry, RecordingPublisher
from tickcast.config import Settings

pytestmark = pytest.mark.integration

NAME = "tickcast-direction-h1"


@dataclass
class Env:
    api: Api
    registry: FakeRegistry
    publisher: RecordingPublisher

    async def audit(self, action: str) -> list[dict[str, str]]:
        entries = await self.api.redis.xrange(f"{self.api.settings.redis_key_prefix}audit")
        return [fields for _, fields in entries if fields["action"] == action]


@pytest.fixture
async def env(settings: Settings, redis: Redis) -> AsyncIterator[Env]:
    registry = FakeRegistry()
    registry.register(NAME, "1", "champion")
    registry.register(NAME, "2", "challenger")
    registry.register(NAME, "3", "challenger")
    publisher = RecordingPublisher()
    store = InMemoryLatestStore()
    clients = Clients(redis=redis, store=store, models=registry, publisher=publisher)
    app = create_app(settings, clients=clients)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield Env(Api(client, settings, redis, store, app), registry, publisher)


async def test_models_join_registry_and_live_metrics(env: Env) -> None:
    api = env.api
    now_ms = int(time.time() * 1000)
    snapshot = {
        "updated_at": now_ms - 5_000,
        "models": {
            f"{NAME}:1": {"model": NAME, "version": "1", "accuracy": 0.54, "n": 400},
            f"{NAME}:3": {"model": NAME, "version": "3", "accuracy": 0.57, "sharpe": None},
            "river-logreg:online-12": {"model": "river-logreg", "accuracy": 0.52},
        },
    }
    await api.redis.set(f"{api.settings.redis_key_prefix}model-metrics", orjson.dumps(snapshot))
    token = await api.token("quant")
    response = await api.client.get("/v1/models", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    (model,) = body["models"]
    assert model["name"] == NAME
    assert model["champion"]["version"] == "1"
    assert model["champion"]["metrics"]["accuracy"] == 0.54
    assert [c["version"] for c in model["challengers"]] == ["3", "2"]
    assert model["challengers"][0]["metrics"]["accuracy"] == 0.57
    assert model["challengers"][1]["metrics"] is None
    assert "river-logreg:online-12" in body["live_metrics"]
    assert body["live"]["age_s"] == pytest.approx(5, abs=1)
    assert body["live"]["stale"] is False
    assert body["registry_error"] is None
    viewer = await api.token("viewer")
    assert (await api.client.get("/v1/models", headers=bearer(viewer))).status_code == 403


async def test_models_degrade_when_the_registry_is_down(env: Env) -> None:
    env.registry.down = True
    token = await env.api.token("quant")
    body = (await env.api.client.get("/v1/models", headers=bearer(token))).json()
    assert body["models"] == []
    assert "mlflow" in body["registry_error"]
    assert body["live"] == {"updated_at": None, "age_s": None, "stale": True}


async def test_test_state_and_ab_split(env: Env) -> None:
    api = env.api
    state = {
        "updated_at": int(time.time() * 1000) - 120_000,
        "champion": f"{NAME}:1",
        "pairs": {f"{NAME}:3": 212},
        "last_decision": {"promote": False, "reason": "insufficient pairs (212 < 500)"},
    }
    await api.redis.set(f"{api.settings.redis_key_prefix}model-test", orjson.dumps(state))
    token = await api.token("quant")
    body = (await api.client.get("/v1/models/test", headers=bearer(token))).json()
    assert body["test"]["pairs"] == {f"{NAME}:3": 212}
    assert body["live"]["stale"] is True  # two minutes old, stale_after_s is 60
    assert body["ab"]["enabled"] is False
    assert body["ab"]["split"] == 0.9


async def test_promote_is_admin_only_and_audited(env: Env) -> None:
    api = env.api
    quant = await api.token("quant")
    refused = await api.client.post(
        "/v1/models/promote", json={"version": "3", "reason": "better"}, headers=bearer(quant)
    )
    assert refused.status_code == 403
    assert env.registry.champion(NAME).version == "1"  # type: ignore[union-attr]
    assert env.publisher.events == []
    denied = await env.audit("auth.forbidden")
    assert denied
    assert denied[-1]["missing"] == "models:write"

    admin_name = await api.user("admin")
    admin = (await api.login(admin_name)).json()["access_token"]
    response = await api.client.post(
        "/v1/models/promote",
        json={"version": "3", "reason": "DM test p=0.01"},
        headers={**bearer(admin), "X-Correlation-ID": "promo-1"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["published"] is True
    event = body["event"]
    assert (event["event_type"], event["model_name"], event["version"]) == ("PROMOTED", NAME, "3")
    assert (event["from_version"], event["role"]) == ("1", "CHAMPION")
    assert event["actor"] == f"user:{admin_name}"
    assert event["correlation_id"] == "promo-1"
    assert env.registry.champion(NAME).version == "3"  # type: ignore[union-attr]
    assert env.publisher.events[-1]["event_type"] == "PROMOTED"  # Avro round trip
    assert env.publisher.events[-1]["correlation_id"] == "promo-1"
    (entry,) = await env.audit("models.promote")
    assert (entry["outcome"], entry["subject"], entry["version"], entry["from_version"]) == (
        "ok",
        f"user:{admin_name}",
        "3",
        "1",
    )
    assert entry["correlation_id"] == "promo-1"

    again = await api.client.post(
        "/v1/models/promote", json={"version": "3", "reason": "again"}, headers=bearer(admin)
    )
    assert (again.status_code, again.json()["error"]) == (409, "already_champion")
    unknown = await api.client.post(
        "/v1/models/promote", json={"version": "77", "reason": "typo"}, headers=bearer(admin)
    )
    assert unknown.status_code == 404
    outcomes = [e["outcome"] for e in await env.audit("models.promote")]
    assert outcomes == ["ok", "refused", "refused"]


async def test_rollback_restores_the_replaced_champion(env: Env) -> None:
    api = env.api
    admin = await api.token("admin")
    nothing = await api.client.post(
        "/v1/models/rollback", json={"reason": "nothing yet"}, headers=bearer(admin)
    )
    assert (nothing.status_code, nothing.json()["error"]) == (409, "no_history")
    for version in ("2", "3"):
        ok = await api.client.post(
            "/v1/models/promote", json={"version": version, "reason": "test"}, headers=bearer(admin)
        )
        assert ok.status_code == 200
    response = await api.client.post(
        "/v1/models/rollback", json={"reason": "live loss worse"}, headers=bearer(admin)
    )
    assert response.status_code == 200, response.text
    event = response.json()["event"]
    assert (event["event_type"], event["version"], event["from_version"]) == (
        "ROLLED_BACK",
        "2",
        "3",
    )
    assert env.registry.champion(NAME).version == "2"  # type: ignore[union-attr]
    named = await api.client.post(
        "/v1/models/rollback", json={"reason": "back to v1", "version": "1"}, headers=bearer(admin)
    )
    assert named.json()["event"]["version"] == "1"
    assert [e["event_type"] for e in env.publisher.events] == [
        "PROMOTED",
        "PROMOTED",
        "ROLLED_BACK",
        "ROLLED_BACK",
    ]
    assert [e["outcome"] for e in await env.audit("models.rollback")] == ["refused", "ok", "ok"]
    trader = await api.token("trader")
    forbidden = await api.client.post(
        "/v1/models/rollback", json={"reason": "not mine"}, headers=bearer(trader)
    )
    assert forbidden.status_code == 403


async def test_unpublished_event_is_said_and_mlflow_down_is_503(env: Env) -> None:
    api = env.api
    admin = await api.token("admin")
    env.publisher.down = True
    response = await api.client.post(
        "/v1/models/promote", json={"version": "2", "reason": "kafka down"}, headers=bearer(admin)
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    assert body["published"] is False
    assert "broker unreachable" in body["publish_error"]
    assert env.registry.champion(NAME).version == "2"  # type: ignore[union-attr]
    env.registry.down = True
    down = await api.client.post(
        "/v1/models/promote", json={"version": "3", "reason": "mlflow down"}, headers=bearer(admin)
    )
    assert down.status_code == 503
    assert "Retry-After" in down.headers
    assert [e["outcome"] for e in await env.audit("models.promote")] == ["ok", "failed"]
