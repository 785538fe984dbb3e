"""``POST /v1/models/promote`` with an online learner's version (``online-N``).

The app runs on the real Redis (auth, audit) and Kafka (the ModelEvent), and a real MLflow
sqlite store in ``tmp_path`` holding a registered champion and a planted learner checkpoint.
The registered version is loaded back the way the scoring worker loads it and compared with
River's own ``predict_proba_one`` (the independent reference); the CLI
(``tickcast learner promote``) registers the same model from the same checkpoint.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest

from online_learning.challengers import OnlineChallenger, default_challengers
from online_learning.checkpoint import save_checkpoint
from serving.clients import Clients
from serving.main import create_app
from serving.redis_pool import redis_client
from serving.security.scopes import scopes_for
from serving.security.tokens import JwtCodec
from serving.store import InMemoryLatestStore
from streams.topics import apply_topics
from tests.integration.online_promotion import FSV, NAME, NAMES, feature_matrix, register_champion
from tickcast.config import Settings
from tickcast.processes import child_env
from training.registry import champion, load_scoring_model, watch_aliases

pytestmark = pytest.mark.integration


@pytest.fixture
def local(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The test's namespace, with its own MLflow sqlite store."""
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return settings.model_copy(
        update={
            "data_dir": tmp_path,
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(tmp_path / "artifacts"),
            "api_models": NAME,
        }
    )


@pytest.fixture
async def client(local: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its real registry (MLflow) and publisher (Kafka)."""
    apply_topics(local)
    redis = redis_client(local)
    app = create_app(local, clients=Clients(redis=redis, store=InMemoryLatestStore()))
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
                yield http
    finally:
        await redis.aclose()


def _bearer(settings: Settings, role: str) -> dict[str, str]:
    token, _ = JwtCodec.from_settings(settings).issue(
        sub=f"user:{role}", role=role, scopes=scopes_for(role), sid=uuid.uuid4().hex
    )
    return {"Authorization": f"Bearer {token}"}


def _register_champion(settings: Settings) -> None:
    register_champion(settings, 0.01)


def _checkpointed_learner(settings: Settings) -> tuple[OnlineChallenger, str]:
    """A River logistic-regression learner trained on 300 rows and checkpointed."""
    learner = default_challengers(seed=4, feature_names=NAMES, feature_set_version=FSV)[0]
    X = feature_matrix(300, 5)
    learner.learn(X, np.nan_to_num(X[:, 0] - X[:, 2]) > 0, event_ts=1)
    return learner, save_checkpoint(settings, [learner])


def _river_reference(model: Any, X: np.ndarray) -> np.ndarray:
    """P(up) row by row through River's own predict_proba_one (missing = left out)."""
    rows = [{n: v for n, v in zip(NAMES, row, strict=True) if math.isfinite(v)} for row in X]
    return np.array([model.predict_proba_one(x)[True] for x in rows])


def _versions(settings: Settings) -> list[int]:
    from mlflow.tracking import MlflowClient

    mlflow = MlflowClient(tracking_uri=settings.mlflow_uri, registry_uri=settings.mlflow_uri)
    return sorted(int(v.version) for v in mlflow.search_model_versions(f"name='{NAME}'"))


async def _audit(settings: Settings) -> list[dict[str, str]]:
    redis = redis_client(settings)
    try:
        entries = cast(  # the client decodes responses to str
            list[tuple[str, dict[str, str]]],
            await redis.xrange(f"{settings.redis_key_prefix}audit"),
        )
    finally:
        await redis.aclose()
    return [fields for _, fields in entries if fields["action"] == "models.promote"]


async def test_an_online_learner_is_promoted_through_the_api(
    local: Settings, client: httpx.AsyncClient
) -> None:
    _register_champion(local)
    learner, run_id = _checkpointed_learner(local)

    response = await client.post(
        "/v1/models/promote",
        json={"version": learner.version, "learner": learner.name, "reason": "DM p=0.01"},
        headers={**_bearer(local, "admin"), "X-Correlation-ID": "online-promo-1"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["published"] is True, body["publish_error"]
    event = body["event"]
    assert (event["event_type"], event["model_name"], event["version"]) == ("PROMOTED", NAME, "2")
    assert (event["from_version"], event["role"]) == ("1", "CHAMPION")
    assert event["actor"] == "user:admin"
    assert event["correlation_id"] == "online-promo-1"
    inputs = event["inputs"]
    assert (inputs["online_name"], inputs["online_version"]) == (learner.name, learner.version)
    assert (inputs["registered_version"], inputs["frozen_version"]) == ("2", learner.version)
    assert inputs["checkpoint_run_id"] == run_id
    assert inputs["manual"] == "true"

    assert watch_aliases(local, NAME) == (2, (1,))
    entry = champion(local, NAME)
    assert entry is not None
    assert (entry.tags["source"], entry.tags["online_version"]) == ("online", learner.version)
    test = feature_matrix(40, 7)
    test[3] = np.nan  # a row that is all warm-up
    expected = _river_reference(learner.model, test)
    assert expected.std() > 0.01  # the learner learned something: not a constant
    got = load_scoring_model(local, NAME, 2).predict_proba(test)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)

    (audited,) = await _audit(local)
    assert (audited["outcome"], audited["version"], audited["from_version"]) == ("ok", "2", "1")
    assert (audited["learner"], audited["online_version"]) == (learner.name, learner.version)


async def test_online_promotions_that_cannot_be_done_are_refused(
    local: Settings, client: httpx.AsyncClient
) -> None:
    _register_champion(local)
    admin = _bearer(local, "admin")

    async def promote(version: str, learner: str | None) -> httpx.Response:
        payload = {"version": version, "learner": learner, "reason": "refusal test"}
        return await client.post("/v1/models/promote", json=payload, headers=admin)

    none_yet = await promote("online-300", "river-logreg")
    assert (none_yet.status_code, none_yet.json()["error"]) == (404, "no_checkpoint")

    good = default_challengers(seed=4, feature_names=NAMES, feature_set_version=FSV)[0]
    other = default_challengers(seed=4, feature_names=NAMES, feature_set_version="fs0")[1]
    X = feature_matrix(300, 5)
    for learner in (good, other):
        learner.learn(X, np.nan_to_num(X[:, 0]) > 0, event_ts=1)
    save_checkpoint(local, [good, other])

    ahead = await promote(f"online-{good.n_learned + 1}", good.name)
    assert (ahead.status_code, ahead.json()["error"]) == (404, "unknown_version")
    assert good.version in ahead.json()["error_description"]
    unknown = await promote(good.version, "river-nope")
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_challenger")
    mismatch = await promote(other.version, other.name)
    assert (mismatch.status_code, mismatch.json()["error"]) == (409, "feature_set_mismatch")
    assert "'fs0'" in mismatch.json()["error_description"]
    no_learner = await promote(good.version, None)
    assert no_learner.status_code == 422
    quant = await client.post(
        "/v1/models/promote",
        json={"version": good.version, "learner": good.name, "reason": "not mine"},
        headers=_bearer(local, "quant"),
    )
    assert quant.status_code == 403

    assert _versions(local) == [1]  # nothing registered
    assert watch_aliases(local, NAME) == (1, ())
    audited = await _audit(local)
    assert [a["outcome"] for a in audited] == ["refused"] * 4
    assert audited[-1]["learner"] == other.name


async def test_the_cli_and_the_api_register_the_same_model(
    local: Settings, client: httpx.AsyncClient
) -> None:
    _register_champion(local)
    learner, _ = _checkpointed_learner(local)
    cli = subprocess.run(
        [sys.executable, "-m", "tickcast.cli", "learner", "promote", learner.name,
         learner.version, "--reason", "by hand", "--actor", "alice", "--into", NAME],
        env=child_env(local), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert json.loads(cli.stdout.strip().splitlines()[-1])["version"] == "2"
    response = await client.post(
        "/v1/models/promote",
        json={"version": learner.version, "learner": learner.name, "reason": "again"},
        headers=_bearer(local, "admin"),
    )
    assert response.status_code == 200, response.text
    assert (response.json()["event"]["version"], watch_aliases(local, NAME)) == ("3", (3, (2, 1)))
    test = feature_matrix(40, 8)
    expected = _river_reference(learner.model, test)
    for version in (2, 3):
        got = load_scoring_model(local, NAME, version).predict_proba(test)
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
