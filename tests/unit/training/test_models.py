"""The model interface: every candidate fits, predicts P(up), is seeded and survives one class."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from training.errors import TrainingError
from training.labels import PREV_RETURN
from training.models import ALL_MODELS, make_model

FAST = {"n_estimators": 20}


def data(n: int = 300, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 3)), columns=["f1", "f2", "f3"])
    X[PREV_RETURN] = rng.normal(size=n)
    y = (X["f1"] + 0.5 * rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


def build(name: str):  # type: ignore[no-untyped-def]
    params = FAST if name in ("xgboost", "lightgbm", "random_forest") else None
    return make_model(name, seed=3, params=params)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fit_predict_contract(name: str) -> None:
    X, y = data()
    model = build(name)
    cols = list(X.columns) if model.columns is None else list(model.columns)
    p = model.fit(X[cols], y).predict_proba(X[cols])
    assert p.shape == (len(X),)
    assert np.all((p >= 0) & (p <= 1))
    again = build(name).fit(X[cols], y).predict_proba(X[cols])
    # seeded: reproducible (random forest threads may reorder a float sum: 1 ulp)
    np.testing.assert_allclose(p, again, rtol=1e-12, atol=1e-15)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(restored.predict_proba(X[cols]), p, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "random_forest", "logistic"])
def test_learners_learn(name: str) -> None:
    X, y = data(600)
    Xt, yt = data(400, seed=1)
    cols = ["f1", "f2", "f3"]
    p = build(name).fit(X[cols], y).predict_proba(Xt[cols])
    assert np.mean((p > 0.5) == yt) > 0.75


@pytest.mark.parametrize("name", ["xgboost", "lightgbm", "random_forest", "logistic"])
def test_single_class_training_set_predicts_its_frequency(name: str) -> None:
    X, _ = data(50)
    p = build(name).fit(X, np.ones(50)).predict_proba(X)
    assert np.all(p == 1.0)


def test_naive_baselines() -> None:
    X = pd.DataFrame({PREV_RETURN: [0.2, -0.1, 0.0, np.nan]})
    y = np.array([1, 1, 1, 0])
    assert make_model("always_up").fit(X, y).predict_proba(X).tolist() == [0.75] * 4
    assert make_model("always_up").fit(X, 1 - y).predict_proba(X).tolist() == [0.501] * 4
    prev = make_model("prev_return_sign").fit(X, y).predict_proba(X)
    assert prev.tolist() == pytest.approx([0.6, 0.4, 0.5, 0.5])
    assert make_model("zero_return").fit(X, y).predict_proba(X).tolist() == [0.5] * 4


def test_bad_inputs_are_typed_errors() -> None:
    X, y = data(20)
    with pytest.raises(TrainingError):
        make_model("nope")
    with pytest.raises(TrainingError):
        make_model("logistic").fit(X, y[:-1])
    with pytest.raises(TrainingError):
        make_model("logistic").fit(X, y * 2)
    with pytest.raises(TrainingError):
        make_model("prev_return_sign").fit(X[["f1"]], y)
