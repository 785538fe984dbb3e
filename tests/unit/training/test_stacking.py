"""The stack and the tuned models: packaged scoring equals the offline path, pickling,
refusals, the walk-forward's per-fold details and the report (leakage: test_leakage.py)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss

from tests.unit.training.synthetic import StandInFeatureSet, make_bars, standin_compute
from training.champion import PackagedModel
from training.dataset import Dataset, build_dataset
from training.errors import TrainingError
from training.models import make_model
from training.report import report_html, report_json
from training.stacking import logits
from training.tuning import log_loss
from training.walk_forward import WalkForwardConfig, evaluate, fit_model

TREES = {name: {"n_estimators": 30} for name in ("xgboost", "lightgbm", "random_forest")}
STACK = {"n_estimators": 30}


@pytest.fixture(scope="module")
def ds() -> Dataset:
    bars = make_bars(260, signal=0.5, seed=2)
    fs = StandInFeatureSet()
    return build_dataset(bars, standin_compute(bars, fs), fs.names, 1, version=fs.version)


def packaged(ds: Dataset, name: str, params: dict[str, object]) -> PackagedModel:
    model = fit_model(ds, name, WalkForwardConfig(model_params={name: params}))
    fs = StandInFeatureSet()
    return PackagedModel(name, model, fs.names, fs.version, 1, 0.01)


def test_stack_scores_in_stream_as_offline_and_survives_pickling(ds: Dataset) -> None:
    model = packaged(ds, "stack", STACK)
    assert model.prepare() == "stack"
    X = ds.frame[ds.feature_names].to_numpy()
    stream = model.predict_proba(X)
    offline = model.model.predict_proba(ds.frame[ds.feature_names])
    np.testing.assert_allclose(stream, offline, atol=1e-6)  # the forest's booster: float32
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict_proba(X), stream, atol=1e-12)
    assert again.scoring_path == "stack"
    assert not again.stateful
    assert again.contributions(X[:3]) is None  # no TreeSHAP for the stack (docs/models.md)
    # the planted signal is learnt: the stack's AUC-like ordering beats chance in sample
    up = ds.frame["label"].to_numpy() == 1
    assert stream[up].mean() > stream[~up].mean()


def test_stack_refuses_stateful_bases_and_unknown_models() -> None:
    with pytest.raises(TrainingError, match="stateless"):
        make_model("stack", params={"bases": "xgboost,lstm"})
    with pytest.raises(TrainingError, match="stateless"):
        make_model("stack", params={"bases": "arima"})
    with pytest.raises(TrainingError, match="cannot be tuned"):
        make_model("mlp_tuned")


def test_walk_forward_reports_tuning_and_stacking_per_fold(ds: Dataset) -> None:
    params = {"stack": {**STACK, "bases": "xgboost,logistic"}, "logistic_tuned": {"n_trials": 3}}
    config = WalkForwardConfig(
        n_splits=3, models=("stack", "logistic_tuned", "logistic", "zero_return"),
        model_params={**TREES, **params},
    )  # fmt: skip
    result = evaluate(ds, config)
    table = result.table()
    assert not table.loc["stack", "is_baseline"]
    assert not table.loc["logistic_tuned", "is_baseline"]
    assert table.loc["logistic", "is_baseline"]
    assert table.loc["stack", "auc"] > 0.55  # the planted signal survives stacking
    folds = {f.fold: f for f in result.folds}
    for row in result.model_details["logistic_tuned"]:
        assert row["validation_end_ts"] < folds[row["fold"]].test_start_ts
        assert set(row["best_params"]) == {"C"}
    for row in result.model_details["stack"]:
        assert row["oof_end_ts"] < folds[row["fold"]].test_start_ts
        assert set(row["meta_weights"]) == {"xgboost", "logistic"}
    assert len(result.model_details["stack"]) == 3
    assert json.loads(report_json(result))["model_details"]["stack"][0]["oof_rows"] > 0
    assert "Tuning (Optuna" in report_html(result)


def test_tuned_model_keeps_the_library_fast_path_and_explanations(ds: Dataset) -> None:
    model = packaged(ds, "xgboost_tuned", {"n_trials": 2, "n_estimators": 30})
    assert model.prepare() == "xgboost"
    X = ds.frame[ds.feature_names].to_numpy()[:50]
    offline = model.model.predict_proba(ds.frame[ds.feature_names].iloc[:50])
    np.testing.assert_allclose(model.predict_proba(X), offline, atol=1e-6)
    contributions = model.contributions(X)
    assert contributions is not None
    assert contributions.shape == (50, len(ds.feature_names) + 1)
    assert model.model.params["n_estimators"] == 30  # fixed by --n-estimators


def test_log_loss_and_logits_match_references() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = rng.uniform(0.01, 0.99, 200)
    assert log_loss(y, p) == pytest.approx(sklearn_log_loss(y, p), rel=1e-12)
    from scipy.special import logit

    np.testing.assert_allclose(logits(p), logit(p), rtol=1e-12)


@pytest.mark.parametrize("name", ["stack", "logistic_tuned"])
def test_a_window_too_short_to_split_is_a_typed_error(ds: Dataset, name: str) -> None:
    one_timestamp = np.flatnonzero(ds.frame["ts_ms"] == ds.frame["ts_ms"].iloc[-1])
    rows = ds.frame.iloc[one_timestamp]
    assert rows["label"].nunique() == 2  # not the single-class shortcut
    model = make_model(name, params={"n_trials": 2} if name.endswith("_tuned") else None)
    with pytest.raises(TrainingError) as caught:
        model.fit(rows[["ts_ms", "label_end_ts", *ds.feature_names]], rows["label"].to_numpy())
    assert caught.value.reason == "window_too_short"
