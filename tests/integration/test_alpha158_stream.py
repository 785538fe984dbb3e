"""Alpha158 in the stream (#18 item 2) on the real broker, Redis and an MLflow store: a model
trained by ``tickcast train --feature-set alpha158`` makes the worker compute Alpha158, and
its features (topic and Redis) and predictions equal ``compute_frame``'s for the same bars."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis
from typer.testing import CliRunner

from agents.scoring import load_model_set
from indicators import compute_frame
from indicators.feature_sets import feature_set
from sinks.feature_blob import decode as decode_blob
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, dedupe_features, read_topic
from tests.support.bars import make_bars
from tickcast.config import Settings
from training import registry
from training.cli import TrainOptions, app, run_training
from training.registry import default_name

pytestmark = pytest.mark.integration

ALPHA = feature_set("alpha158")
NAME = default_name(1)


@pytest.fixture
def scoring(settings: Settings, tmp_path: Path) -> Settings:
    """The test's namespace plus its own MLflow store."""
    fresh = Settings(
        **{
            **settings.model_dump(),
            "data_dir": tmp_path / "data",
            "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(tmp_path / "mlflow" / "artifacts"),
            "feature_set": "",  # the worker picks the registered models' union
        }
    )
    apply_topics(fresh)
    return fresh


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_train_refuses_an_unknown_feature_set() -> None:
    result = CliRunner().invoke(app, ["--feature-set", "alpha360"])
    assert result.exit_code != 0
    assert "--feature-set takes classic, alpha158, classic+alpha158" in " ".join(
        result.output.split()
    )


def test_a_model_trained_on_alpha158_is_served_alpha158_value_for_value(
    scoring: Settings, tmp_path: Path
) -> None:
    settings = scoring
    history = make_bars(6, 300, seed=31)
    path = tmp_path / "bars.parquet"
    history.assign(ts_ms=pd.to_datetime(history.ts_ms, unit="ms", utc=True)).to_parquet(path)
    options = TrainOptions(dataset=str(path), symbols=0, splits=2, models=("xgboost",),
                           baselines=False, n_estimators=20, feature_set="alpha158")  # fmt: skip
    _outcomes, facts = run_training(options, settings)
    assert facts["feature_set"] == "alpha158"
    champ = registry.champion(settings, NAME)
    assert champ is not None
    assert (champ.tags["feature_set"], champ.tags["feature_set_version"]) == (
        "alpha158", ALPHA.version)  # fmt: skip

    stream = make_bars(6, 120, seed=32)
    stream["ts_ms"] += int(history.ts_ms.max() - stream.ts_ms.min()) + 60_000  # after training
    publish(settings, stream, "test")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        features = read_topic(settings, "features", "FeatureVector",
                              lambda r: len(r) >= len(stream), alive=worker.alive)  # fmt: skip
        preds = read_topic(
            settings, "predictions", "Prediction",
            lambda r: sum(p["role"] == "CHAMPION" for p in r) >= len(stream), alive=worker.alive,
        )  # fmt: skip
    finally:
        worker.stop()

    # the features: Alpha158's 158 columns, equal to the training frame's for the same bars
    want = compute_frame(stream, ALPHA).sort_values(["symbol", "ts_ms"]).reset_index(drop=True)
    got = dedupe_features(features)
    assert {r["feature_set_version"] for r in features} == {ALPHA.version}
    assert list(zip(got.symbol, got.ts, strict=True)) == list(
        zip(want.symbol, want.ts_ms, strict=True)
    )
    matrix = want[list(ALPHA.names)].to_numpy(dtype=np.float64)
    assert all(len(v) == 158 for v in got["values"])
    differ = [
        (i, j)
        for i, vec in enumerate(got["values"])
        for j, x in enumerate(vec)
        if not _same(float(x), float(matrix[i, j]))
    ]
    assert differ == [], f"{len(differ)} values differ, first {differ[:3]}"
    assert np.isfinite(matrix[-1]).sum() > 150  # warmed up: the comparison is not of NaNs

    client = redis.Redis.from_url(settings.redis_url)
    for symbol, group in want.groupby("symbol"):
        blob = decode_blob(client.get(f"{settings.redis_key_prefix}features:{symbol}"))
        assert blob.feature_set_version == ALPHA.version
        assert blob.event_ts_ms == group.ts_ms.iloc[-1]
        last = group[list(ALPHA.names)].iloc[-1].to_numpy(dtype=np.float64)
        assert all(_same(float(a), float(b)) for a, b in zip(blob.values, last, strict=True))

    # the predictions: the registered champion's own answer on compute_frame's rows
    model = load_model_set(settings, NAME).champion
    assert model is not None
    champion = {(p["symbol"], p["ts"]): p for p in preds if p["role"] == "CHAMPION"}
    assert set(champion) == set(zip(want.symbol, want.ts_ms, strict=True))
    expected = model.predict_proba(matrix)
    got_prob = np.array([champion[(s, t)]["prob_up"] for s, t in zip(want.symbol, want.ts_ms,
                                                                      strict=True)])  # fmt: skip
    np.testing.assert_array_equal(got_prob, expected)
    assert {p["feature_set_version"] for p in champion.values()} == {ALPHA.version}


@pytest.mark.parametrize("runner", ["direct", "faust"])
def test_sigkill_mid_replay_recovers_alpha158_value_for_value(
    settings: Settings, tmp_path: Path, runner: str
) -> None:
    """A worker computing Alpha158 is killed mid-replay; its successor restores the symbols'
    60-bar histories from the snapshots and every record (replays included) carries
    ``compute_frame``'s values."""
    settings = settings.model_copy(update={"feature_set": "alpha158"})
    apply_topics(settings)
    frame = make_bars(40, 200, seed=12)
    publish(settings, frame, "test")
    first = WorkerProcess(settings, tmp_path / "worker1.log", runner).start()
    seen = read_topic(settings, "features", "FeatureVector",
                      lambda r: len(r) >= len(frame) // 3, alive=first.alive)  # fmt: skip
    first.kill()
    assert len(seen) < len(frame), "the worker finished before it could be killed"
    second = WorkerProcess(settings, tmp_path / "worker2.log", runner).start()
    try:
        got = read_topic(
            settings, "features", "FeatureVector",
            lambda r: len(r) >= len(frame) and len(dedupe_features(r)) >= len(frame),
            alive=second.alive,
        )  # fmt: skip
    finally:
        second.stop()
    want = compute_frame(frame, ALPHA).sort_values(["symbol", "ts_ms"]).reset_index(drop=True)
    matrix = want[list(ALPHA.names)].to_numpy(dtype=np.float64)
    row = {(s, t): i for i, (s, t) in enumerate(zip(want.symbol, want.ts_ms, strict=True))}
    assert {(r["symbol"], r["ts"]) for r in got} == set(row)
    differ = [
        (r["symbol"], r["ts"], j)
        for r in got  # every record, a replayed tick's too
        for j, x in enumerate(r["values"])
        if not _same(float(x), float(matrix[row[(r["symbol"], r["ts"])], j]))
    ]
    assert differ == [], f"{len(differ)} values differ, first {differ[:3]}"
    assert np.isfinite(matrix[-1]).sum() > 150
