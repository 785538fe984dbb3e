"""Nested tuning and stacking never see the outer fold's test period (#19).

Two kinds of evidence per technique:

* instrumentation: the one function that fits during a trial (``tuning.trial_loss``) or a
  stack (``stacking.fit_base``, ``stacking.fit_meta``) records the rows it is handed; every
  one lies in the fold's training window, before the test period, with its label ending
  before it too (purged);
* canaries that fail when a leak exists: a feature that equals the label in the test
  period only (zero before it) lets a model that peeked score almost perfectly, so the
  honest fits stay at chance while the same code fed the test rows does not; and an
  overfitting base model whose in-sample predictions are nearly perfect, on which a
  meta-learner fitted in-sample leans heavily while the out-of-fold one does not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.unit.training.synthetic import StandInFeatureSet, make_bars, standin_compute
from training import stacking, tuning
from training.dataset import Dataset, build_dataset
from training.splits import Fold
from training.walk_forward import WalkForwardConfig, fit_model

BASE_PARAMS = {name: {"n_estimators": 30} for name in ("xgboost", "lightgbm", "random_forest")}


def noise_dataset(n_bars: int = 300, seed: int = 3) -> Dataset:
    bars = make_bars(n_bars, signal=0.0, seed=seed)
    fs = StandInFeatureSet()
    return build_dataset(bars, standin_compute(bars, fs), fs.names, 1, version=fs.version)


def folds(ds: Dataset, n_splits: int = 3) -> list[Fold]:
    splitter = WalkForwardConfig(n_splits=n_splits).splitter()
    return list(splitter.split(ds.frame["ts_ms"].to_numpy(), ds.frame["label_end_ts"]))


def with_canary(ds: Dataset, fold: Fold) -> Dataset:
    """``canary`` = label − ½ on the fold's test rows, 0 everywhere else."""
    frame = ds.frame.copy()
    frame["canary"] = 0.0
    test = frame.index[fold.test_idx]
    frame.loc[test, "canary"] = frame.loc[test, "label"] - 0.5
    return Dataset(frame, [*ds.feature_names, "canary"], ds.feature_set_version)


def accuracy(model: Any, ds: Dataset, rows: np.ndarray) -> float:
    frame = ds.frame.iloc[rows]
    columns = [*getattr(model, "sequence_keys", ()), *ds.feature_names]
    p = model.predict_proba(frame[columns])
    return float(((p > 0.5) == (frame["label"].to_numpy() == 1)).mean())


def ts_of(ds: Dataset, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    rows = ds.frame.loc[index]
    return rows["ts_ms"].to_numpy(), rows["label_end_ts"].to_numpy()


# -- nested tuning -------------------------------------------------------------------------


def test_every_trial_touches_only_rows_before_the_test_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = noise_dataset()
    touched: list[tuple[pd.Index, pd.Index]] = []
    real = tuning.trial_loss

    def recording(name: str, params: dict[str, Any], seed: int, fit: Any, validate: Any) -> float:
        touched.append((fit[0].index, validate[0].index))
        return real(name, params, seed, fit, validate)

    monkeypatch.setattr(tuning, "trial_loss", recording)
    config = WalkForwardConfig(
        model_params={"xgboost_tuned": {"n_trials": 3, **BASE_PARAMS["xgboost"]}}
    )
    for fold in folds(ds):
        touched.clear()
        model = fit_model(ds, "xgboost_tuned", config, fold.train_idx)
        assert len(touched) == 3  # the trial budget
        start = fold.info.test_start_ts
        window = set(ds.frame.index[fold.train_idx])
        for fit_index, val_index in touched:
            assert set(fit_index) <= window
            assert set(val_index) <= window
            fit_end = ts_of(ds, fit_index)[1]
            val_ts, val_end = ts_of(ds, val_index)
            assert fit_end.max() < start  # labels known before the test period
            assert val_end.max() < start
            assert fit_end.max() < val_ts.min()  # inner split: purged, time-ordered
        summary = model.study_summary()  # type: ignore[attr-defined]
        assert summary["validation_end_ts"] < start
        assert len(summary["trials"]) == 3


def test_tuning_canary_stays_at_chance_unless_the_test_period_is_fed() -> None:
    ds = noise_dataset()
    fold = folds(ds)[-1]
    canary = with_canary(ds, fold)
    config = WalkForwardConfig(model_params={"logistic_tuned": {"n_trials": 4}})

    honest = fit_model(canary, "logistic_tuned", config, fold.train_idx)
    leaky = fit_model(
        canary, "logistic_tuned", config, np.concatenate([fold.train_idx, fold.test_idx])
    )

    assert accuracy(honest, canary, fold.test_idx) < 0.6
    assert honest.study_summary()["best_value"] > 0.65  # type: ignore[attr-defined]
    # the canary works: a study whose window reaches into the test period finds it
    assert accuracy(leaky, canary, fold.test_idx) > 0.95
    assert leaky.study_summary()["best_value"] < 0.5  # type: ignore[attr-defined]


def test_tuning_is_deterministic() -> None:
    ds = noise_dataset(200)
    config = WalkForwardConfig(model_params={"lightgbm_tuned": {"n_trials": 4, "n_estimators": 30}})
    rows = folds(ds)[0].train_idx
    a = fit_model(ds, "lightgbm_tuned", config, rows).study_summary()  # type: ignore[attr-defined]
    b = fit_model(ds, "lightgbm_tuned", config, rows).study_summary()  # type: ignore[attr-defined]
    assert a == b
    assert "n_estimators" not in a["trials"][0]["params"]  # fixed, not searched


# -- stacking ------------------------------------------------------------------------------


def test_stack_bases_and_meta_fit_on_out_of_fold_rows_before_the_test_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ds = noise_dataset()
    base_fits: list[pd.Index] = []
    predicted: list[tuple[pd.Index, pd.Index]] = []  # (rows a base was fitted on, rows scored)
    meta_fits: list[pd.Index] = []
    real_base, real_meta = stacking.fit_base, stacking.fit_meta

    def record_base(name: str, seed: int, params: Any, fit: Any, keys: Any) -> Any:
        fit_index = fit[0].index
        base_fits.append(fit_index)
        model = real_base(name, seed, params, fit, keys)
        score = model.predict_proba

        def spy(X: pd.DataFrame) -> np.ndarray:
            predicted.append((fit_index, X.index))
            return score(X)

        model.predict_proba = spy
        return model

    def record_meta(P: pd.DataFrame, y: np.ndarray, seed: int, C: float) -> Any:
        meta_fits.append(P.index)
        return real_meta(P, y, seed, C)

    monkeypatch.setattr(stacking, "fit_base", record_base)
    monkeypatch.setattr(stacking, "fit_meta", record_meta)
    params = {"bases": "xgboost,logistic", "inner_splits": 3, "base_params": BASE_PARAMS}
    config = WalkForwardConfig(model_params={"stack": params})
    for fold in folds(ds):
        base_fits.clear()
        predicted.clear()
        meta_fits.clear()
        fit_model(ds, "stack", config, fold.train_idx)
        start = fold.info.test_start_ts
        window = set(ds.frame.index[fold.train_idx])
        assert len(base_fits) == 2 * (3 + 1)  # two bases, three inner blocks, one refit each
        assert all(set(index) <= window for index in base_fits)
        assert all(ts_of(ds, index)[1].max() < start for index in base_fits)
        assert [set(i) for i in base_fits[-2:]] == [window, window]  # the refits
        (meta_index,) = meta_fits
        meta_end = ts_of(ds, meta_index)[1]
        assert meta_end.max() < start
        assert set(meta_index) <= window
        # every base prediction the meta-learner sees is out of fold: made by a base fitted
        # only on rows whose labels ended before the predicted rows begin
        assert len(predicted) == 2 * 3
        for fit_index, scored in predicted:
            assert not set(fit_index) & set(scored)
            assert ts_of(ds, fit_index)[1].max() < ts_of(ds, scored)[0].min()
        for base in range(2):
            rows = set().union(*(set(s) for _, s in predicted[base::2]))
            assert rows == set(meta_index)


def test_stack_canary_stays_at_chance_unless_the_test_period_is_fed() -> None:
    ds = noise_dataset()
    fold = folds(ds)[-1]
    canary = with_canary(ds, fold)
    # four inner blocks: the test period spans more than the last one, so a leaky window's
    # out-of-fold bases learn the canary too and the meta-learner trusts them
    params = {"bases": "xgboost,logistic", "inner_splits": 4, "base_params": BASE_PARAMS}
    config = WalkForwardConfig(model_params={"stack": params})

    honest = fit_model(canary, "stack", config, fold.train_idx)
    leaky = fit_model(canary, "stack", config, np.concatenate([fold.train_idx, fold.test_idx]))

    assert accuracy(honest, canary, fold.test_idx) < 0.6
    assert accuracy(leaky, canary, fold.test_idx) > 0.95  # the canary works


def test_meta_learner_on_in_sample_predictions_would_trust_an_overfitter() -> None:
    """A deep forest memorises noise: in-sample its predictions look perfect. The stack's
    meta-learner (out of fold) gives it little weight; one fitted in sample leans on it."""
    ds = noise_dataset()
    fold = folds(ds)[-1]
    deep = {"random_forest": {"n_estimators": 50, "max_depth": None, "min_samples_leaf": 1}}
    params = {"bases": "random_forest,logistic", "inner_splits": 3, "base_params": deep}
    config = WalkForwardConfig(model_params={"stack": params})
    stack = fit_model(ds, "stack", config, fold.train_idx)
    oof_weight = stack.meta_weights()["random_forest"]  # type: ignore[attr-defined]

    window = ds.frame.iloc[fold.train_idx]
    X, y = window[ds.feature_names], window["label"].to_numpy()
    in_sample = pd.DataFrame(
        {name: stacking.logits(model.predict_proba(X)) for name, model in stack.fitted.items()}  # type: ignore[attr-defined]
    )
    leaky_meta = stacking.fit_meta(in_sample, y, 0, 1.0)
    leaky_weight = float(leaky_meta.estimator[-1].coef_.ravel()[0])  # type: ignore[attr-defined]

    assert abs(oof_weight) < 0.5
    assert leaky_weight > 2.0
    assert accuracy(stack, ds, fold.test_idx) < 0.6
