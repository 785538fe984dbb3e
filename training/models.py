"""Candidate direction models behind one small interface.

Every model has ``name``, ``columns`` (the columns of ``X`` it reads; ``None`` = all feature
columns), ``fit(X, y) -> self`` with ``y`` in {0, 1} (1 = up), and ``predict_proba(X)``
returning a 1-D array of P(up). Champions: XGBoost and LightGBM. Baselines: a random forest,
a scaled logistic regression, and three naive rules (always up, previous-return sign, zero
return). All are seeded and use at most ``n_jobs=2`` threads, so a fit is reproducible.

A training set with a single class (possible in short folds) is handled once, in
:class:`Model`: the model predicts that class's training frequency instead of failing.

>>> import numpy as np, pandas as pd
>>> X = pd.DataFrame({"r": [0.1, -0.2, 0.0]})
>>> PreviousReturnSign("r").fit(X, np.array([1, 0, 1])).predict_proba(X).tolist()
[0.6, 0.4, 0.5]
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pandas as pd

from training.errors import TrainingError
from training.labels import PREV_RETURN


class Model:
    """Base: validation and the single-class fallback; subclasses implement ``_fit/_proba``."""

    name = "model"
    columns: tuple[str, ...] | None = None

    def __init__(self) -> None:
        self._constant: float | None = None

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Model:
        """Fit on features ``X`` and 0/1 labels ``y``; returns ``self``."""
        labels = np.asarray(y, dtype=float).ravel()
        if len(X) != labels.size or labels.size == 0:
            raise TrainingError("bad_training_set", f"{len(X)} rows of X, {labels.size} labels")
        if not np.isin(labels, (0.0, 1.0)).all():
            raise TrainingError("bad_labels", "labels must be 0 or 1")
        self._constant = None
        if labels.min() == labels.max():
            self._constant = float(labels[0])
            return self
        self._fit(self._select(X), labels.astype(int))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """P(up) for each row of ``X``."""
        if self._constant is not None:
            return np.full(len(X), self._constant)
        return np.clip(np.asarray(self._proba(self._select(X)), dtype=float).ravel(), 0.0, 1.0)

    def _select(self, X: pd.DataFrame) -> pd.DataFrame:
        if self.columns is None:
            return X
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise TrainingError("missing_features", f"{self.name} needs columns {missing}")
        return X[list(self.columns)]

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> None:
        raise NotImplementedError

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError


class SklearnModel(Model):
    """Adapter for any estimator with ``fit`` and a two-column ``predict_proba``.

    ``builder(params)`` must be a module-level function so that the model pickles.
    """

    def __init__(
        self, name: str, builder: Callable[[dict[str, Any]], Any], params: dict[str, Any]
    ) -> None:
        super().__init__()
        self.name = name
        self.params = dict(params)
        self._builder = builder
        self.estimator: Any = None

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> None:
        self.estimator = self._builder(self.params)
        self.estimator.fit(X.to_numpy(dtype=float), y)

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = self.estimator.predict_proba(X.to_numpy(dtype=float))
        return np.asarray(proba)[:, 1]


def _passive_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the caller chose otherwise).

    XGBoost and LightGBM threads otherwise busy-wait between parallel regions; on a small
    shared machine that made a walk-forward run 10-20x slower. libgomp reads the variable
    when the library loads, so this runs before the first import of either.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _build_xgboost(params: dict[str, Any]) -> Any:
    _passive_openmp()
    from xgboost import XGBClassifier

    return XGBClassifier(**params)


def _build_lightgbm(params: dict[str, Any]) -> Any:
    _passive_openmp()
    from lightgbm import LGBMClassifier

    return LGBMClassifier(**params)


def _build_random_forest(params: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline

    return make_pipeline(SimpleImputer(strategy="median"), RandomForestClassifier(**params))


def _build_logistic(params: dict[str, Any]) -> Any:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression(**params)
    )


def xgboost_model(seed: int = 0, **params: Any) -> SklearnModel:
    """XGBoost classifier: 100 shallow trees, hist method, 2 threads, seeded."""
    defaults: dict[str, Any] = {
        "n_estimators": 100, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8,
        "colsample_bytree": 0.8, "min_child_weight": 5.0, "reg_lambda": 1.0,
        "tree_method": "hist", "n_jobs": 2, "random_state": seed, "verbosity": 0,
    }  # fmt: skip
    return SklearnModel("xgboost", _build_xgboost, {**defaults, **params})


def lightgbm_model(seed: int = 0, **params: Any) -> SklearnModel:
    """LightGBM classifier: 100 small trees, deterministic row-wise histograms, 2 threads."""
    defaults: dict[str, Any] = {
        "n_estimators": 100, "num_leaves": 15, "max_depth": 4, "learning_rate": 0.05,
        "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8,
        "min_child_samples": 20, "n_jobs": 2, "random_state": seed, "deterministic": True,
        "force_row_wise": True, "verbose": -1,
    }  # fmt: skip
    return SklearnModel("lightgbm", _build_lightgbm, {**defaults, **params})


def random_forest_model(seed: int = 0, **params: Any) -> SklearnModel:
    """Random forest baseline (median imputation for warm-up gaps)."""
    defaults: dict[str, Any] = {
        "n_estimators": 100, "max_depth": 5, "min_samples_leaf": 20, "n_jobs": 2,
        "random_state": seed,
    }  # fmt: skip
    return SklearnModel("random_forest", _build_random_forest, {**defaults, **params})


def logistic_model(seed: int = 0, **params: Any) -> SklearnModel:
    """Standard-scaled L2 logistic regression baseline (median imputation)."""
    defaults: dict[str, Any] = {"C": 1.0, "max_iter": 1000, "random_state": seed}
    return SklearnModel("logistic", _build_logistic, {**defaults, **params})


class AlwaysUp(Model):
    """Always calls up, with P(up) = max(training up-rate, 0.501)."""

    name = "always_up"
    columns: tuple[str, ...] | None = ()

    def __init__(self) -> None:
        super().__init__()
        self._p = 0.501

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Model:
        """Remember the training up-rate (never a single-class fallback: always up)."""
        labels = np.asarray(y, dtype=float).ravel()
        rate = float(labels.mean()) if labels.size else 0.5
        self._p = min(max(rate, 0.501), 0.999)
        self._constant = None
        return self

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), self._p)


class PreviousReturnSign(Model):
    """Momentum rule: P(up) = 0.5 + 0.1 · sign(previous one-bar return); NaN gives 0.5."""

    name = "prev_return_sign"

    def __init__(self, column: str = PREV_RETURN) -> None:
        super().__init__()
        self.columns = (column,)

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Model:
        """Nothing to learn; checks the column exists."""
        self._select(X)
        self._constant = None
        return self

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        prev = X.iloc[:, 0].to_numpy(dtype=float)
        return 0.5 + 0.1 * np.nan_to_num(np.sign(prev), nan=0.0)


class ZeroReturn(Model):
    """No-information rule: P(up) = 0.5 (expected return 0, so the strategy stays flat)."""

    name = "zero_return"
    columns: tuple[str, ...] | None = ()

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Model:
        """Nothing to learn."""
        self._constant = None
        return self

    def _proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.full(len(X), 0.5)


CHAMPIONS = ("xgboost", "lightgbm")
BASELINES = ("random_forest", "logistic", "always_up", "prev_return_sign", "zero_return")
NAIVE = ("always_up", "prev_return_sign", "zero_return")
ALL_MODELS = CHAMPIONS + BASELINES
TORCH_AND_TIME_SERIES = ("mlp", "lstm", "arima")
"""Registrable too: training/neural.py (PyTorch -> ONNX) and training/arima.py."""
ENSEMBLES = ("stack",)
"""Registrable: training/stacking.py. ``<model>_tuned`` (training/tuning.py) is too."""


def _factory(module: str, function: str) -> Callable[..., Model]:
    """A factory of a module that imports this one (by name: no import cycle)."""
    import importlib

    return cast(Callable[..., Model], getattr(importlib.import_module(module), function))


def make_model(name: str, seed: int = 0, params: dict[str, Any] | None = None) -> Model:
    """Build a fresh model by name (see :data:`ALL_MODELS`)."""
    extra = params or {}
    factories: dict[str, Callable[[], Model]] = {
        "xgboost": lambda: xgboost_model(seed, **extra),
        "lightgbm": lambda: lightgbm_model(seed, **extra),
        "random_forest": lambda: random_forest_model(seed, **extra),
        "logistic": lambda: logistic_model(seed, **extra),
        "always_up": AlwaysUp,
        "prev_return_sign": PreviousReturnSign,
        "zero_return": ZeroReturn,
        "mlp": lambda: _factory("training.neural", "mlp_model")(seed, **extra),
        "lstm": lambda: _factory("training.neural", "lstm_model")(seed, **extra),
        "arima": lambda: _factory("training.arima", "arima_model")(seed, **extra),
    }
    if name.endswith("_tuned"):  # training.tuning: Optuna inside the training window
        return _factory("training.tuning", "tuned_model")(name[: -len("_tuned")], seed, **extra)
    factories["stack"] = lambda: _factory("training.stacking", "stack_model")(seed, **extra)
    if name not in factories:
        raise TrainingError("unknown_model", f"unknown model {name!r}; known: {sorted(factories)}")
    return factories[name]()
