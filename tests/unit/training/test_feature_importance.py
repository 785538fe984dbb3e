"""Gain shares of the champion candidates, against sums over the libraries' own tree dumps
(an independent path: per-split gains read from the trees, not the importance APIs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.champion import PackagedModel, feature_importance
from training.models import make_model

NAMES = ("rsi_14", "noise_a", "macd_12_26", "noise_b", "never_split")


def _frame(seed: int = 3, n: int = 3000) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.standard_normal((n, len(NAMES))), columns=list(NAMES))
    X["never_split"] = 1.0  # constant: no tree can split on it
    y = (X["rsi_14"] + 0.3 * X["macd_12_26"] + 0.5 * rng.standard_normal(n) > 0).astype(int)
    return X, y.to_numpy()


def _packaged(kind: str) -> PackagedModel:
    X, y = _frame()
    model = make_model(kind, 0, {"n_estimators": 40}).fit(X, y)
    return PackagedModel(kind, model, NAMES, "fsv", 1, 0.01)


def _dump_gains(packaged: PackagedModel) -> dict[str, float]:
    estimator = packaged.model.estimator
    if packaged.kind == "xgboost":
        trees = estimator.get_booster().trees_to_dataframe()
        splits = trees[trees["Feature"] != "Leaf"]
        by_index = splits.groupby("Feature")["Gain"].sum()
        gains = {NAMES[int(f[1:])]: float(g) for f, g in by_index.items()}
    else:
        trees = estimator.booster_.trees_to_dataframe()
        splits = trees[trees["split_feature"].notna()]
        by_index = splits.groupby("split_feature")["split_gain"].sum()
        gains = {NAMES[int(f.split("_")[1])]: float(g) for f, g in by_index.items()}
    total = sum(gains.values())
    return {name: gains.get(name, 0.0) / total for name in NAMES}


@pytest.mark.parametrize("kind", ["xgboost", "lightgbm"])
def test_gain_shares_match_the_tree_dumps(kind: str) -> None:
    packaged = _packaged(kind)
    shares = feature_importance(packaged)
    reference = _dump_gains(packaged)
    assert list(shares) == list(NAMES)
    assert shares == pytest.approx(reference, rel=1e-4, abs=1e-9)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["never_split"] == 0.0
    assert max(shares, key=lambda name: shares[name]) == "rsi_14"  # the planted signal


def test_models_without_gains_report_nothing() -> None:
    X, y = _frame()
    linear = make_model("logistic", 0).fit(X, y)
    assert feature_importance(PackagedModel("logistic", linear, NAMES, "fsv", 1, 0.01)) == {}
    constant = make_model("xgboost", 0, {"n_estimators": 5}).fit(X, np.ones(len(y)))
    assert feature_importance(PackagedModel("xgboost", constant, NAMES, "fsv", 1, 0.01)) == {}
