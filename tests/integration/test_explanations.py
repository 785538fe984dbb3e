"""A random-forest champion explains every prediction, from the stream to ClickHouse and the API.

On the real broker, Redis, chDB and a per-test MLflow store: a random forest registered as
champion (scored as an XGBoost booster, explained by XGBoost's TreeSHAP) and an XGBoost
challenger; replayed ticks go through the direct runner in this process, the ClickHouse sink
and the API. Checked: every champion prediction record carries its top-k contributions, equal
to the TreeSHAP of the features it was scored from (the outcome records carry them); no
challenger record does; ClickHouse stores the same arrays; ``?explain=true`` answers them and
a plain request does not.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
import redis.asyncio as aioredis

from agents.direct_runner import DirectRunner
from agents.worker import build_stage
from serving.circuit import CircuitBreaker
from serving.main import create_app
from serving.security.users import UserStore
from sinks.clickhouse import connect
from streams.replay import publish
from tests.integration.pipeline import read_topic
from tests.integration.test_scoring_pipeline import FS, NAME, _model
from tests.integration.test_scoring_pipeline import scoring as scoring  # fixture
from tests.support.bars import make_bars
from tests.support.sink import sink_until_written
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.champion import PackagedModel
from training.explain import explanations
from training.models import make_model
from training.registry import register

pytestmark = pytest.mark.integration
PASSWORD = "a-long-test-password-0"  # test fixture only
TOP_K = 4


def _forest() -> PackagedModel:
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, len(FS.names)))
    X[:40, 3:] = np.nan  # warm-up rows, as tickcast train keeps them
    y = (np.nan_to_num(X[:, 0]) + 0.5 * rng.standard_normal(400) > 0).astype(int)
    model = make_model("random_forest", 0, {"n_estimators": 15, "max_depth": 4})
    model.fit(pd.DataFrame(X, columns=list(FS.names)), y)
    return PackagedModel("random_forest", model, tuple(FS.names), FS.version, 1, 0.005, (0, 1))


async def _worker_until(settings: Settings, last: dict[str, int]) -> None:
    """The direct runner in this process until Redis holds each symbol's last prediction."""
    stage = build_stage(settings, Metrics())
    stage.open()
    runner = DirectRunner(settings, stage)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        deadline = time.monotonic() + 120
        pending = dict(last)
        while pending:
            assert not task.done(), "the worker stopped"
            assert time.monotonic() < deadline, f"no prediction in Redis for {sorted(pending)}"
            for symbol, ts in list(pending.items()):
                raw = await client.get(f"{settings.redis_key_prefix}prediction:{symbol}")
                if raw and orjson.loads(raw).get("event_time") == ts:
                    del pending[symbol]
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await task
        await stage.close()
        await client.aclose()


async def _answers(settings: Settings, symbol: str) -> tuple[httpx.Response, httpx.Response]:
    """GET the latest prediction with and without ``?explain=true``."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        users = UserStore(
            app.state.runtime.clients.redis,
            prefix=settings.redis_key_prefix,
            breaker=CircuitBreaker("t"),
            scrypt_n=settings.password_scrypt_n,
        )
        name = f"viewer-{uuid.uuid4().hex[:8]}"
        await users.create(name, PASSWORD, "viewer")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            form = {"grant_type": "password", "username": name, "password": PASSWORD}
            login = await http.post("/v1/auth/token", data=form)
            assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            url = f"/v1/predictions/{symbol}/latest"
            explained = await http.get(url, params={"explain": "true"}, headers=headers)
            plain = await http.get(url, headers=headers)
            return explained, plain


async def test_champion_predictions_carry_their_explanation_to_clickhouse_and_the_api(
    scoring: Settings,
) -> None:
    settings = scoring.model_copy(
        update={
            "explain_top_k": TOP_K,
            "explain_budget": 0.0,
            "sink_batch_interval_s": 0.2,
            "password_scrypt_n": 2**14,
        }
    )
    forest = _forest()
    register(forest, name=NAME, settings=settings)  # v1: the champion
    register(_model(2), name=NAME, settings=settings)  # v2: an XGBoost challenger
    frame = make_bars(3, 30, seed=11)
    last = {str(s): int(g.ts_ms.max()) for s, g in frame.groupby("symbol")}
    assert publish(settings, frame, "test") == len(frame)
    await _worker_until(settings, last)

    preds = read_topic(settings, "predictions", "Prediction", lambda r: len(r) >= 2 * len(frame))
    champion = [p for p in preds if p["role"] == "CHAMPION"]
    assert len(champion) == len(frame)
    assert all(p["model_version"] == "1" for p in champion)
    for p in champion:
        names, values = p["explanation_features"], p["explanation_contributions"]
        assert isinstance(names, list)
        assert isinstance(values, list)
        assert len(names) == len(values) == TOP_K
        assert set(names) <= set(FS.names)
        assert [abs(v) for v in values] == sorted((abs(v) for v in values), reverse=True)
    challengers = [p for p in preds if p["role"] == "CHALLENGER"]
    assert challengers
    assert all(p["explanation_features"] is None for p in challengers)

    # the explanation is the forest's TreeSHAP of the very features it scored
    outcomes = read_topic(
        settings, "outcomes", "Outcome",
        lambda r: sum(o["role"] == "CHAMPION" for o in r) >= len(frame) - len(last),
    )  # fmt: skip
    by_key = {(p["symbol"], p["ts"]): p for p in champion}
    forest.prepare()
    checked = 0
    for o in outcomes:
        if o["role"] != "CHAMPION":
            continue
        pred = by_key[(o["symbol"], o["ts"])]
        features = np.array([o["features"]], dtype=np.float64)
        contributions = forest.contributions(features)
        assert contributions is not None
        ((names, values),) = explanations(contributions, FS.names, TOP_K)
        assert pred["explanation_features"] == names
        np.testing.assert_allclose(pred["explanation_contributions"], values, atol=1e-6)
        checked += 1
    assert checked >= len(frame) - len(last)

    await asyncio.to_thread(sink_until_written, settings, len(preds))
    client = connect(settings)
    rows = client.query(
        f"SELECT symbol, toUnixTimestamp64Milli(ts), role, explanation_features, "
        f"explanation_contributions FROM {settings.clickhouse_database}.predictions FINAL"
    ).result_rows
    stored = {(r[0], int(r[1]), r[2]): (list(r[3]), list(r[4])) for r in rows}
    for p in champion:
        names, values = stored[(p["symbol"], p["ts"], "CHAMPION")]
        assert names == p["explanation_features"]
        np.testing.assert_allclose(values, p["explanation_contributions"], rtol=0, atol=0)
    assert all(stored[(p["symbol"], p["ts"], "CHALLENGER")] == ([], []) for p in challengers)

    symbol = sorted(last)[0]
    explained, plain = await _answers(settings, symbol)
    assert explained.status_code == 200, explained.text
    assert plain.status_code == 200, plain.text
    served = next(p for p in champion if (p["symbol"], p["ts"]) == (symbol, last[symbol]))
    body: dict[str, Any] = explained.json()
    assert body["event_time"] == last[symbol]
    assert body["explanation"] == [
        {"feature": n, "contribution": v}
        for n, v in zip(served["explanation_features"], served["explanation_contributions"],
                        strict=True)
    ]  # fmt: skip
    assert plain.json()["explanation"] is None
