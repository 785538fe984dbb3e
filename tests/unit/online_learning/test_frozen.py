"""The frozen champion scores like River: numpy for scaler + logistic pipelines, River otherwise.

The reference is River's own ``predict_proba_one`` row by row, a non-finite feature left out
of the dict (the learners' missing-value rule), and the learners' batch rule
:func:`~online_learning.challengers.river_proba_many` (the path used before the numpy form).
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from river import compose, linear_model, optim, preprocessing

from online_learning.challengers import OnlineChallenger, default_challengers, river_proba_many
from online_learning.frozen import FrozenRiverModel, freeze
from online_learning.linear import LinearPredictor

NAMES = ("rsi_14", "ret_1", "vol_20", "spread", "session")
FSV = "fs1"
SCALE = np.array([3.0, 0.5, 2.0, 1.0, 0.0])  # the last feature is constant: std 0
SHIFT = np.array([10.0, -2.0, 0.5, 0.0, 7.0])


def _rows(n: int, seed: int, nan_share: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES))) * SCALE + SHIFT
    X[rng.random(X.shape) < nan_share] = np.nan  # warm-up gaps
    return X


def _trained(index: int, names: tuple[str, ...] = NAMES) -> OnlineChallenger:
    learner = default_challengers(seed=0, feature_names=names)[index]
    X = _rows(3000, 0)
    z = (X[:, 0] - 10.0) / 3.0 + 2.0 * (X[:, 1] + 2.0) + 1.0  # + 1: a real intercept
    learner.learn(X, z > 0)
    return learner


def _river_one(model: Any, names: tuple[str, ...], X: np.ndarray) -> np.ndarray:
    """P(up) row by row through River's predict_proba_one, non-finite features left out."""
    rows = [{n: v for n, v in zip(names, row.tolist(), strict=True) if math.isfinite(v)}
            for row in X]  # fmt: skip
    return np.array([model.predict_proba_one(x).get(True, 0.5) for x in rows])


def _test_rows() -> np.ndarray:
    X = _rows(200, 7, nan_share=0.15)
    X[0] = np.nan  # a row that is all warm-up
    X[1, 0] = np.inf
    X[2, 1] = -np.inf
    return X


@pytest.mark.parametrize("learned_as", [NAMES, tuple(f"f{i}" for i in range(len(NAMES)))])
def test_a_frozen_logistic_pipeline_scores_with_numpy_like_river(
    learned_as: tuple[str, ...],
) -> None:
    learner = _trained(0, learned_as)  # river-logreg: StandardScaler | LogisticRegression
    frozen = freeze(learner, NAMES, FSV, 1)
    assert frozen.vectorised
    X = _test_rows()
    frame = pd.DataFrame(X[:, ::-1], columns=list(NAMES[::-1]))  # read by name, not position
    expected = _river_one(learner.model, learned_as, X)
    assert expected.std() > 0.1  # it learned the signal: not a constant
    got = frozen.predict_proba(frame)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got, river_proba_many(learner.model, X, learned_as),
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    assert frozen.predict_proba(frame.iloc[:0]).shape == (0,)


def test_the_comparison_catches_a_wrong_numpy_form() -> None:
    """Dropping the scaler, the intercept or the missing-value rule breaks the equality above."""
    learner = _trained(0)
    right = LinearPredictor.from_model(learner.model, NAMES)
    assert right is not None
    X = _test_rows()
    expected = _river_one(learner.model, NAMES, X)
    ones = np.ones(len(NAMES))
    wrong = {
        "no scaler": LinearPredictor(0 * ones, ones, right.weights, right.intercept),
        "no intercept": LinearPredictor(right.means, right.stds, right.weights, 0.0),
        "no std": LinearPredictor(right.means, ones, right.weights, right.intercept),
    }
    np.testing.assert_allclose(right.predict_proba(X), expected, rtol=1e-9, atol=1e-12)
    for why, broken in wrong.items():
        assert not np.allclose(broken.predict_proba(X), expected, rtol=1e-9, atol=1e-12), why
    missing_as_zero = np.nan_to_num(X, nan=0.0, posinf=0.0, neginf=0.0)  # not at the mean
    assert not np.allclose(right.predict_proba(missing_as_zero), expected, rtol=1e-9, atol=1e-12)


def test_a_frozen_tree_keeps_rivers_path() -> None:
    learner = _trained(1)  # river-hat: Hoeffding adaptive tree
    frozen = freeze(learner, NAMES, FSV, 1)
    assert not frozen.vectorised
    X = _test_rows()
    expected = _river_one(learner.model, NAMES, X)
    assert len(set(expected.round(6))) > 1
    got = frozen.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize(
    ("model", "vectorised"),
    [
        (preprocessing.StandardScaler() | linear_model.LogisticRegression(), True),
        (linear_model.LogisticRegression(), False),  # no scaler: River's row path
        (preprocessing.StandardScaler(window_size=50) | linear_model.LogisticRegression(), False),
        (preprocessing.StandardScaler()
         | linear_model.LogisticRegression(loss=optim.losses.Hinge()), False),
        (compose.Pipeline(preprocessing.StandardScaler(), preprocessing.StandardScaler(),
                          linear_model.LogisticRegression()), False),
    ],
    ids=["exact", "bare", "windowed", "hinge", "three-steps"],
)  # fmt: skip
def test_only_exact_pipelines_are_vectorised(model: Any, vectorised: bool) -> None:
    learner = OnlineChallenger("other", model, feature_names=NAMES)
    X = _rows(500, 3)
    learner.learn(X, X[:, 0] > 10.0)
    frozen = freeze(learner, NAMES, FSV, 1)
    assert frozen.vectorised is vectorised
    X = _test_rows()
    got = frozen.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose(got, river_proba_many(learner.model, X, NAMES), rtol=1e-9,
                               atol=1e-12)  # fmt: skip


def test_the_numpy_form_is_rebuilt_on_unpickling_not_stored() -> None:
    frozen = freeze(_trained(0), NAMES, FSV, 1)
    assert "_linear" not in frozen.__getstate__()
    restored = pickle.loads(pickle.dumps(frozen, protocol=pickle.HIGHEST_PROTOCOL))
    assert restored.vectorised
    frame = pd.DataFrame(_test_rows(), columns=list(NAMES))
    np.testing.assert_array_equal(restored.predict_proba(frame), frozen.predict_proba(frame))


def test_a_pickle_from_before_the_numpy_form_loads_and_scores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    learner = _trained(0)
    old = FrozenRiverModel.__new__(FrozenRiverModel)  # the attributes of the old class only
    old.__dict__.update(model=learner.model, river_names=NAMES, columns=NAMES, name="river-logreg")
    monkeypatch.delattr(FrozenRiverModel, "__getstate__")  # the old class pickled its __dict__
    blob = pickle.dumps(old, protocol=pickle.HIGHEST_PROTOCOL)
    monkeypatch.undo()
    restored = pickle.loads(blob)
    assert restored.vectorised
    X = _test_rows()
    got = restored.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose(got, _river_one(learner.model, NAMES, X), rtol=1e-9, atol=1e-12)
