"""An LSTM promoted to champion is scored in-stream by a real worker on the real broker.

Per-test MLflow store and namespace: an XGBoost v1 (champion), then an LSTM v2 (registered
as a challenger, promoted to champion before the worker starts). Replayed ticks go through a
``tickcast worker`` process; each champion prediction (topic) and each symbol's latest
(Redis) equals the offline sequence evaluation of the LSTM (each symbol's rows in time order
from a zero state), and carries the top-k integrated-gradients explanation of its tick,
equal to the one computed offline from the symbol's state before that tick.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
import redis

from indicators import compute_frame
from indicators.feature_set import FeatureSet
from streams.replay import publish
from tests.integration.pipeline import WorkerProcess, read_topic
from tests.integration.test_scoring_pipeline import NAME, _model
from tests.integration.test_scoring_pipeline import scoring as scoring  # fixture
from tests.support.bars import make_bars
from tickcast.config import Settings
from training.champion import PackagedModel
from training.explain import explanations
from training.models import make_model
from training.registry import promote, register

pytestmark = pytest.mark.integration

FS = FeatureSet.default()
TOP_K = 3
COLUMNS = ["symbol", "ts_ms", *FS.names]


def _lstm() -> PackagedModel:
    """A small LSTM fitted on other bars (each symbol one sequence)."""
    bars = make_bars(6, 250, seed=5)
    frame = compute_frame(bars, FS).sort_values(["ts_ms", "symbol"], kind="stable")
    frame = frame.reset_index(drop=True)
    nxt = frame.groupby("symbol")["ret_1"].shift(-1)
    keep = nxt.notna().to_numpy()
    model = make_model("lstm", 0, {"hidden": 8, "epochs": 2})
    model.fit(frame.loc[keep, COLUMNS], (nxt[keep] > 0).astype(int).to_numpy())
    return PackagedModel("lstm", model, tuple(FS.names), FS.version, 1, 0.005, (0, 1))


def test_a_promoted_lstm_champion_scores_and_explains_in_stream(
    scoring: Settings, tmp_path: Path
) -> None:
    settings = scoring.model_copy(update={"explain_top_k": TOP_K, "explain_budget": 0.0})
    lstm = _lstm()
    assert lstm.explainable
    register(_model(3), name=NAME, settings=settings)  # v1: the XGBoost champion
    register(lstm, name=NAME, settings=settings)  # v2: a challenger ...
    promote(settings, NAME, 2, "integration test: the LSTM champion")  # ... promoted
    frame = make_bars(5, 80, seed=21)
    publish(settings, frame, "test")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        preds = read_topic(settings, "predictions", "Prediction",
                           lambda r: len(r) >= 2 * len(frame), alive=worker.alive)  # fmt: skip
    finally:
        worker.stop()

    champion = {(p["symbol"], p["ts"]): p for p in preds if p["role"] == "CHAMPION"}
    assert set(champion) == set(zip(frame.symbol, frame.ts_ms, strict=True))
    assert {p["model_version"] for p in champion.values()} == {"2"}
    challenger = [p for p in preds if p["role"] == "CHALLENGER"]
    assert {p["model_version"] for p in challenger} == {"1"}
    assert all(p["explanation_features"] is None for p in challenger)

    features = compute_frame(frame, FS)
    offline = lstm.model.predict_proba(features[COLUMNS])
    keys = list(zip(features.symbol, features.ts_ms, strict=True))
    live = np.array([champion[k]["prob_up"] for k in keys])
    np.testing.assert_allclose(live, offline, rtol=0, atol=1e-6)
    assert np.unique(np.round(live, 6)).size > 10  # the recurrent state moves the output

    # the explanation of each tick, offline: one step at a time from the symbol's state
    states: dict[str, object] = {}
    order = features.sort_values(["ts_ms", "symbol"], kind="stable")
    X = order[list(FS.names)].to_numpy(dtype=np.float64)
    for (symbol, ts), x in zip(zip(order.symbol, order.ts_ms, strict=True), X, strict=True):
        lstm.model.step(x[None, :], [symbol], states)
        rows = lstm.model.contributions(x[None, :])
        ((names, values),) = explanations(rows, FS.names, TOP_K)
        got = champion[(symbol, ts)]
        assert got["explanation_features"] == names, (symbol, ts)
        np.testing.assert_allclose(got["explanation_contributions"], values, atol=1e-6)

    client = redis.Redis.from_url(settings.redis_url)
    try:
        for symbol, group in features.groupby("symbol"):
            raw = client.get(f"{settings.redis_key_prefix}prediction:{symbol}")
            assert raw is not None, symbol
            latest = orjson.loads(raw)
            last = int(group.ts_ms.max())
            assert (latest["event_time"], latest["version"]) == (last, "2")
            assert latest["value"] == pytest.approx(champion[(symbol, last)]["prob_up"], abs=1e-12)
            assert latest["value"] == pytest.approx(
                offline[
                    (features.symbol == symbol).to_numpy() & (features.ts_ms == last).to_numpy()
                ][0],
                abs=1e-6,
            )
            assert (
                latest["explanation_features"] == champion[(symbol, last)]["explanation_features"]
            )
    finally:
        client.close()
