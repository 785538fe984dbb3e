"""Online-learner checkpoints on a real MLflow store (sqlite + local artifacts in tmp)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from devtools.synthetic.outcomes import paired_outcomes
from online_learning.challengers import default_challengers
from online_learning.checkpoint import (
    latest_checkpoint_id,
    restore,
    restore_checkpoint,
    save_checkpoint,
)
from online_learning.learner_process import LearnerStage
from online_learning.promotion import PromotionPolicy
from streams.codec import get_codec
from streams.raw_record import RawRecord
from tickcast.config import Settings
from tickcast.metrics import Metrics

pytestmark = pytest.mark.integration
NAMES = ["a", "b", "c", "d"]


@pytest.fixture
def mlflow_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return Settings(
        data_dir=tmp_path,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}",
        mlflow_artifact_root=str(tmp_path / "artifacts"),
    )


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, X[:, 0] + 0.3 * rng.normal(size=n) > 0


def test_checkpoint_restore_resumes_learning(mlflow_settings: Settings) -> None:
    assert restore(mlflow_settings) == []
    assert latest_checkpoint_id(mlflow_settings) is None
    X, y = _data(1500, 0)
    first = default_challengers(seed=3, feature_names=NAMES)
    for c in first:
        c.learn(X[:500], y[:500], event_ts=500)
    run_1 = save_checkpoint(mlflow_settings, first, state={"watermark": 500})
    for c in first:
        c.learn(X[500:1000], y[500:1000], event_ts=1000)
    run_2 = save_checkpoint(mlflow_settings, first, state={"watermark": 1000})
    assert run_1 != run_2
    assert latest_checkpoint_id(mlflow_settings) == run_2

    checkpoint = restore_checkpoint(mlflow_settings)
    assert checkpoint is not None
    assert checkpoint.run_id == run_2
    assert checkpoint.state == {"watermark": 1000}
    assert checkpoint.tags["n_learned.river-hat"] == "1000"
    assert checkpoint.tags["last_event_ts"] == "1000"
    restored = checkpoint.challengers
    assert [(c.name, c.n_learned, c.version) for c in restored] == [
        (c.name, 1000, "online-1000") for c in first
    ]
    for a, b in zip(first, restored, strict=True):
        np.testing.assert_array_equal(
            a.predict_proba_many(X[1000:]), b.predict_proba_many(X[1000:])
        )
        a.learn(X[1000:], y[1000:])
        b.learn(X[1000:], y[1000:])  # learning resumes identically
        np.testing.assert_array_equal(a.predict_proba_many(X[:100]), b.predict_proba_many(X[:100]))


def test_learner_stage_round_trip_through_mlflow(mlflow_settings: Settings) -> None:
    def lookup(symbol: str, ts: int) -> list[float]:
        return np.random.default_rng([ts, *symbol.encode()]).normal(size=4).tolist()

    def stage() -> LearnerStage:
        return LearnerStage(mlflow_settings, Metrics(process=False),
                            policy=PromotionPolicy(min_samples=10_000),
                            challengers=default_challengers(feature_names=NAMES),
                            feature_lookup=lookup)  # fmt: skip

    codec = get_codec("Outcome")
    records = [
        RawRecord("outcomes", 1, i, o["symbol"].encode(), codec.encode(o))
        for i, o in enumerate(paired_outcomes(5, 300, 0.5, 0.5))
    ]
    first = stage()
    assert first.restore() is False
    first.handle(records[:400])
    run_id = first.checkpoint_now()
    second = stage()
    assert second.restore() is True
    assert second.run_id == run_id
    assert [c.n_learned for c in second.challengers] == [c.n_learned for c in first.challengers]
    assert second.offsets == {("outcomes", 1): 399}
    assert second.handle(records)["skipped"] == 400
    assert second.evaluator.snapshot().keys() == first.evaluator.snapshot().keys()


def test_a_namespace_reset_forgets_its_checkpoints_only(mlflow_settings: Settings) -> None:
    from online_learning.checkpoint import forget_checkpoints

    demo = mlflow_settings.model_copy(update={"topic_prefix": "demo.",
                                              "redis_key_prefix": "demo:"})  # fmt: skip
    learners = default_challengers(seed=1, feature_names=NAMES)
    X, y = _data(200, 1)
    for c in learners:
        c.learn(X, y, event_ts=200)
    production = save_checkpoint(mlflow_settings, learners)
    save_checkpoint(demo, learners)
    save_checkpoint(demo, learners)
    assert forget_checkpoints(demo) == 2
    assert latest_checkpoint_id(demo) is None
    assert restore(demo) == []
    assert latest_checkpoint_id(mlflow_settings) == production  # another namespace's stay
    assert forget_checkpoints(demo) == 0
