"""Walk-forward: no signal → chance; planted signal → found; costs and structure honest."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finance.metrics import total_return
from tests.unit.training.synthetic import StandInFeatureSet, make_bars, standin_compute
from training.dataset import Dataset, build_dataset
from training.errors import TrainingError
from training.walk_forward import (
    WalkForwardConfig,
    WalkForwardResult,
    directional_summary,
    evaluate,
    fit_model,
    run_walk_forward,
)

FAST = {name: {"n_estimators": 30} for name in ("xgboost", "lightgbm", "random_forest")}
LEARNERS = ("xgboost", "lightgbm", "logistic")


def config(**kw) -> WalkForwardConfig:  # type: ignore[no-untyped-def]
    base = {"n_splits": 4, "model_params": FAST, "cost_bps": 1.0}
    return WalkForwardConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def signal_result() -> WalkForwardResult:
    bars = make_bars(260, signal=0.6, seed=1)
    return run_walk_forward(bars, StandInFeatureSet(), config(), compute=standin_compute)


def dataset(signal: float, seed: int, horizon: int = 1) -> Dataset:
    bars = make_bars(260, signal=signal, seed=seed)
    fs = StandInFeatureSet()
    return build_dataset(bars, standin_compute(bars, fs), fs.names, horizon, version=fs.version)


def test_planted_signal_is_found(signal_result: WalkForwardResult) -> None:
    table = signal_result.table()
    for name in ("xgboost", "lightgbm"):
        assert table.loc[name, "accuracy_lower"] > 0.6  # well above chance, CI included
        assert table.loc[name, "accuracy_vs_best_naive"] > 0.1
        assert table.loc[name, "auc"] > 0.65
        assert table.loc[name, "ic_mean"] > 0.2
        assert table.loc[name, "ic_t"] > 5
        assert table.loc[name, "sharpe"] > 2
    for name in ("always_up", "zero_return", "prev_return_sign"):
        lo, hi = table.loc[name, "accuracy_lower"], table.loc[name, "accuracy_upper"]
        assert lo < 0.55
        assert hi > 0.45
    acc, lo, hi = directional_summary(signal_result, "xgboost")
    assert acc == pytest.approx(table.loc["xgboost", "accuracy"])
    assert lo < acc < hi


@pytest.mark.parametrize("seed", [2, 3])
def test_shuffled_labels_fall_to_chance(seed: int) -> None:
    ds = dataset(0.6, seed)
    frame = ds.frame.copy()
    perm = np.random.default_rng(seed).permutation(len(frame))
    frame[["fwd_return", "label"]] = frame[["fwd_return", "label"]].to_numpy()[perm]
    shuffled = Dataset(frame, ds.feature_names, ds.feature_set_version)
    table = evaluate(shuffled, config(models=LEARNERS)).table()
    for name in LEARNERS:
        assert table.loc[name, "accuracy_lower"] <= 0.5 <= table.loc[name, "accuracy_upper"]
    # the same data with labels in place is learnable: the shuffle is what killed it
    honest = evaluate(ds, config(models=("logistic",))).table()
    assert honest.loc["logistic", "accuracy_lower"] > 0.6


def test_no_signal_data_stays_at_chance() -> None:
    bars = make_bars(260, signal=0.0, seed=4)
    result = run_walk_forward(
        bars, StandInFeatureSet(), config(models=LEARNERS), compute=standin_compute
    )
    for name in LEARNERS:
        row = result.table().loc[name]
        assert row["accuracy_lower"] <= 0.5 <= row["accuracy_upper"]


def test_structure_and_out_of_sample_discipline(signal_result: WalkForwardResult) -> None:
    cfg = signal_result.config
    assert len(signal_result.folds) == cfg.n_splits
    assert len(signal_result.fold_metrics) == cfg.n_splits * len(cfg.models)
    preds = signal_result.predictions
    for name in cfg.models:
        p = preds[preds["model"] == name]
        assert not p.duplicated(["symbol", "ts_ms"]).any()  # each row predicted once
    for info in signal_result.folds:
        assert info.train_end_ts < info.test_start_ts
        fold_preds = preds[(preds["fold"] == info.fold) & (preds["model"] == "xgboost")]
        assert fold_preds["ts_ms"].between(info.test_start_ts, info.test_end_ts).all()
    assert signal_result.point_in_time is not None
    assert signal_result.feature_set_version == "standin-1"


def test_costs_are_charged(signal_result: WalkForwardResult) -> None:
    agg = signal_result.aggregate["xgboost"]
    assert agg["total_cost"] > 0
    assert agg["gross_total_return"] > agg["total_return"]
    expensive = evaluate(dataset(0.6, 1), config(models=("xgboost",), cost_bps=50.0))
    cheap = evaluate(dataset(0.6, 1), config(models=("xgboost",), cost_bps=0.0))
    r_exp, r_cheap = expensive.strategy_returns["xgboost"], cheap.strategy_returns["xgboost"]
    # independent turnover: weights sign(p - 0.5) / 5 names, traded from flat
    p_wide = expensive.predictions.pivot(index="ts_ms", columns="symbol", values="p_up")
    weights = np.sign(p_wide.to_numpy() - 0.5) / 5
    turn = np.abs(np.diff(weights, axis=0, prepend=0.0)).sum(axis=1)
    np.testing.assert_allclose(r_cheap - r_exp, turn * 50 / 1e4, atol=1e-12)
    assert total_return(r_exp) < total_return(r_cheap)


def test_deterministic() -> None:
    ds = dataset(0.6, 5)
    a = evaluate(ds, config(models=("xgboost", "lightgbm")))
    b = evaluate(ds, config(models=("xgboost", "lightgbm")))
    np.testing.assert_array_equal(a.predictions["p_up"], b.predictions["p_up"])


def test_longer_horizon_runs_and_purges() -> None:
    result = evaluate(dataset(0.6, 6, horizon=5), config(models=("logistic", "zero_return")))
    assert all(info.n_purged >= 5 * 5 for info in result.folds)  # 5 symbols × h rows
    preds = result.predictions
    assert (preds.groupby("fold")["ts_ms"].min().diff().dropna() > 0).all()


def test_to_dict_is_strict_json_and_fit_model(signal_result: WalkForwardResult) -> None:
    text = json.dumps(signal_result.to_dict(), allow_nan=False)
    assert "aggregate" in json.loads(text)
    assert signal_result.best_model("accuracy", among=("xgboost", "lightgbm")) in {
        "xgboost", "lightgbm",
    }  # fmt: skip
    assert signal_result.best_model("log_loss") != "zero_return"
    ds = dataset(0.6, 1)
    model = fit_model(ds, "xgboost", config())
    assert model.predict_proba(ds.X).shape == (len(ds.frame),)


def test_bad_input_is_typed() -> None:
    bars = make_bars(30, symbols=("A",))
    with pytest.raises(TrainingError):
        run_walk_forward(bars, StandInFeatureSet(), config(n_splits=20), compute=standin_compute)
    with pytest.raises(TrainingError):
        run_walk_forward(
            bars.drop(columns="close"), StandInFeatureSet(), config(), compute=standin_compute
        )
