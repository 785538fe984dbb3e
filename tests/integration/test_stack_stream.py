"""A registered stack is the champion of a real worker: every tick of a replay is scored by it
in-stream (the bases' fast paths, then the meta-learner), equal to the offline evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from indicators import compute_frame
from indicators.feature_set import FeatureSet
from streams.replay import publish
from tests.integration.pipeline import WorkerProcess, read_topic
from tests.integration.test_scoring_pipeline import NAME, scoring  # noqa: F401  (fixture)
from tests.support.bars import make_bars
from tickcast.config import Settings
from training.champion import PackagedModel
from training.dataset import build_dataset
from training.registry import register
from training.walk_forward import WalkForwardConfig, fit_model

pytestmark = pytest.mark.integration

FS = FeatureSet.default()


def _stack() -> PackagedModel:
    """A stack of the four default bases fitted (out of fold) on other bars."""
    bars = make_bars(6, 250, seed=5)
    dataset = build_dataset(
        bars, compute_frame(bars, FS), FS.names, 1, drop_incomplete=False, version=FS.version
    )
    config = WalkForwardConfig(model_params={"stack": {"n_estimators": 10}})
    model = fit_model(dataset, "stack", config)
    return PackagedModel("stack", model, tuple(FS.names), FS.version, 1, 0.005, (0, 1))


def test_a_worker_scores_a_registered_stack_in_stream(
    scoring: Settings,  # noqa: F811
    tmp_path: Path,
) -> None:
    settings = scoring
    stack = _stack()
    register(stack, name=NAME, settings=settings)  # v1: champion
    frame = make_bars(5, 80, seed=21)
    publish(settings, frame, "test")
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        preds = read_topic(settings, "predictions", "Prediction",
                           lambda r: len(r) >= len(frame), alive=worker.alive)  # fmt: skip
    finally:
        worker.stop()

    champion = {(p["symbol"], p["ts"]): p for p in preds if p["role"] == "CHAMPION"}
    assert set(champion) == set(zip(frame.symbol, frame.ts_ms, strict=True))
    assert {p["model_version"] for p in champion.values()} == {"1"}

    features = compute_frame(frame, FS)
    offline = stack.model.predict_proba(features[list(FS.names)])
    live = np.array(
        [champion[(s, t)]["prob_up"] for s, t in zip(features.symbol, features.ts_ms, strict=True)]
    )
    np.testing.assert_allclose(live, offline, atol=1e-5)
    assert np.unique(np.round(live, 6)).size > 10  # the meta-learner's output moves
