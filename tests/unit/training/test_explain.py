"""TreeSHAP explanations: contributions add up to the margin, top-k order, the forest booster.

* XGBoost and LightGBM: the library's contributions plus bias equal its own raw margin;
* the random forest as an XGBoost booster scores what scikit-learn scores, and its TreeSHAP
  values equal a brute-force Shapley computation on the scikit-learn trees (an independent
  reference: every feature subset, the path-dependent conditional expectation of the TreeSHAP
  paper's Algorithm 1, Shapley weights);
* top-k is the k largest |contributions| (a sort of the whole row as reference), bias left out;
* the training report's SHAP summary page has a plot per model with TreeSHAP.
"""

from __future__ import annotations

import itertools
import math
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tickcast.errors import ModelError
from training import forest_xgboost
from training.champion import PackagedModel
from training.explain import explanations, top_k
from training.models import make_model
from training.report import shap_summary_figure, write_shap_report

NAMES = ("a", "b", "c", "d")


def _data(n: int = 600, seed: int = 0, nan: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(NAMES)))
    if nan:
        X[rng.random(X.shape) < 0.1] = np.nan
    y = np.nan_to_num(X[:, 0]) - 0.5 * np.nan_to_num(X[:, 1]) + rng.standard_normal(n) > 0
    return X, y.astype(int)


def _packaged(kind: str, nan: bool = True, **params: object) -> PackagedModel:
    X, y = _data(nan=nan)
    trees = {} if kind == "logistic" else {"n_estimators": 25}
    model = make_model(kind, 0, {**trees, **params})
    model.fit(pd.DataFrame(X, columns=list(NAMES)), y)
    packaged = PackagedModel(kind, model, NAMES, "fs", 1, 0.01)
    packaged.prepare()
    return packaged


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_boosters_contributions_sum_to_the_raw_margin(kind: str) -> None:
    packaged = _packaged(kind)
    X, _ = _data(200, seed=3)
    contribs = packaged.contributions(X)
    assert contribs is not None
    assert contribs.shape == (200, len(NAMES) + 1)
    estimator = packaged.model.estimator
    if kind == "xgboost":
        margin = estimator.get_booster().inplace_predict(X, predict_type="margin")
    else:
        margin = estimator.booster_.predict(X, raw_score=True)
    np.testing.assert_allclose(contribs.sum(axis=1), margin, rtol=0, atol=1e-5)
    proba = 1.0 / (1.0 + np.exp(-contribs.sum(axis=1)))
    np.testing.assert_allclose(proba, packaged.predict_proba(X), atol=1e-6)


def test_the_forest_scores_on_an_xgboost_booster_equal_to_scikit_learn() -> None:
    packaged = _packaged("random_forest")
    assert packaged.scoring_path == "forest"
    X, _ = _data(500, seed=5)
    X[:3] = np.nan  # a row still warming up: the imputer's medians
    reference = packaged.model.predict_proba(pd.DataFrame(X, columns=list(NAMES)))
    np.testing.assert_allclose(packaged.predict_proba(X), reference, rtol=0, atol=1e-6)
    contribs = packaged.contributions(X)
    assert contribs is not None
    np.testing.assert_allclose(contribs.sum(axis=1), reference, rtol=0, atol=1e-6)
    # after a pickle round trip (the registry's) the booster is rebuilt by prepare()
    again: PackagedModel = pickle.loads(pickle.dumps(packaged))
    assert again.prepare() == "forest"
    np.testing.assert_allclose(again.predict_proba(X), reference, rtol=0, atol=1e-6)


def test_a_split_at_a_threshold_goes_the_same_way_as_scikit_learn() -> None:
    packaged = _packaged("random_forest")
    forest, _, _ = forest_xgboost.forest_parts(packaged.model.estimator)
    booster = packaged._native[1]  # type: ignore[index]
    probe = forest_xgboost.probe_rows(packaged.model.estimator, len(NAMES))
    assert forest_xgboost.max_deviation(booster, packaged.model.estimator, len(NAMES)) < 1e-6
    thresholds = forest.estimators_[0].tree_.threshold
    assert np.isin(thresholds[thresholds != -2][:3], probe).all()  # boundaries are probed


def test_the_split_condition_is_the_first_float32_above_the_threshold() -> None:
    t = np.array([0.5, 1.0000001, -2.3, 1e-30])
    c = forest_xgboost._split_condition(t)
    below = np.nextafter(c, np.float32(-np.inf))
    assert (below.astype(np.float64) <= t).all()  # the largest float32 below c goes left
    assert (c.astype(np.float64) > t).all()  # c itself goes right


def test_a_pipeline_that_is_no_forest_is_refused() -> None:
    with pytest.raises(ModelError):
        forest_xgboost.forest_parts(_packaged("logistic").model.estimator)


def _expected(tree: object, x: np.ndarray, subset: set[int]) -> float:
    """E[f(x) | x_S]: follow known features, weight unknown ones by the training cover."""
    t = tree.tree_  # type: ignore[attr-defined]

    def walk(node: int) -> float:
        if t.children_left[node] < 0:
            value = t.value[node, 0]
            return float(value[1] / value.sum())
        left, right = t.children_left[node], t.children_right[node]
        if t.feature[node] in subset:
            return walk(left if np.float32(x[t.feature[node]]) <= t.threshold[node] else right)
        w = t.weighted_n_node_samples
        return (w[left] * walk(left) + w[right] * walk(right)) / w[node]

    return walk(0)


def _brute_force_shap(forest: object, x: np.ndarray, n: int) -> np.ndarray:
    trees = forest.estimators_  # type: ignore[attr-defined]
    phi = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                s = set(subset)
                gain = np.mean([_expected(t, x, s | {i}) - _expected(t, x, s) for t in trees])
                phi[i] += weight * gain
    return phi


def test_forest_treeshap_equals_a_brute_force_shapley_reference() -> None:
    packaged = _packaged("random_forest", nan=False, n_estimators=4, max_depth=3)
    forest = packaged.model.estimator.steps[-1][1]
    X, _ = _data(6, seed=9, nan=False)
    contribs = packaged.contributions(X)
    assert contribs is not None
    for row, got in zip(X, contribs, strict=True):
        np.testing.assert_allclose(got[:-1], _brute_force_shap(forest, row, len(NAMES)), atol=1e-6)


def test_top_k_is_the_largest_absolute_contributions_first() -> None:
    rng = np.random.default_rng(1)
    contribs = rng.standard_normal((50, 8))
    contribs[0, 2] = np.nan  # never chosen over a real contribution
    order, values = top_k(contribs, 3)
    for row, idx, vals in zip(contribs, order, values, strict=True):
        features = np.nan_to_num(row[:-1])
        reference = sorted(range(7), key=lambda j: (-abs(features[j]), j))[:3]
        assert idx.tolist() == reference
        assert vals.tolist() == row[reference].tolist()
    assert top_k(contribs, 0)[0].shape == (50, 0)
    assert top_k(contribs, 99)[0].shape == (50, 7)  # the bias column is never a feature


def test_explanations_name_the_features() -> None:
    contribs = np.array([[0.1, -0.4, 0.3, 9.0], [0.0, 0.0, 0.2, 9.0]])
    assert explanations(contribs, ("x", "y", "z"), 2) == [
        (["y", "z"], [-0.4, 0.3]),
        (["z", "x"], [0.2, 0.0]),
    ]
    with pytest.raises(ValueError, match="names for"):
        explanations(contribs, ("x", "y"), 2)


def test_models_without_treeshap_have_no_contributions() -> None:
    assert _packaged("logistic").contributions(np.zeros((2, len(NAMES)))) is None


def test_the_shap_report_has_one_summary_plot_per_explainable_model(tmp_path: Path) -> None:
    models = {kind: _packaged(kind) for kind in ("xgboost", "random_forest", "logistic")}
    X, _ = _data(300, seed=4)
    path = write_shap_report(models, X, list(NAMES), tmp_path, "shap_h1")
    assert path is not None
    page = path.read_text()
    assert page.count("<img") == 2  # logistic has no TreeSHAP
    assert "SHAP summary of xgboost" in page
    assert "SHAP summary of random_forest" in page
    assert write_shap_report({"l": models["logistic"]}, X, list(NAMES), tmp_path, "x") is None


def test_the_summary_plot_orders_features_by_mean_absolute_contribution() -> None:
    contribs = np.array([[0.1, -2.0, 0.5, 0.0, 9.0], [0.1, 1.0, -0.5, 0.0, 9.0]])
    fig = shap_summary_figure(contribs, np.zeros((2, 4)), list(NAMES), "t")
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["d", "a", "c", "b"]  # bottom to top: the largest on top
