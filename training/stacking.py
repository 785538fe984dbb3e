"""A stacking ensemble whose meta-learner sees out-of-fold base predictions only.

:class:`StackModel` (``tickcast train --model stack``) is fitted on the rows of ONE
walk-forward training window:

1. an inner time-ordered split (:func:`training.inner.inner_blocks`, purged like the outer
   one) cuts the window into ``inner_splits`` test blocks; for each block every base model
   is fitted on the rows before it and predicts the block. Those are the out-of-fold (OOF)
   predictions: no base prediction of a row comes from a model that saw that row (or a
   later one);
2. the meta-learner, a logistic regression on the logits of the base probabilities, is
   fitted on the OOF rows only;
3. every base model is refitted on the whole window.

The outer fold's test period is not among the rows, so neither the bases nor the
meta-learner ever see it (``tests/unit/training/test_leakage.py``). Bases are stateless
models (XGBoost, LightGBM, random forest, logistic regression by default; the MLP and the
tuned variants are accepted); the LSTM and ARIMA are refused, because their per-symbol
recurrent state would have to be advanced inside the stack as well (say ``--models
stack,lstm`` to compare them side by side instead).

In the stream the stack is scored per micro-batch: each base through its own fast path
(:class:`training.champion.PackagedModel`: XGBoost ``inplace_predict``, LightGBM, the
forest's XGBoost booster, ONNX), then the meta-learner on their logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.champion import PackagedModel
from training.errors import TrainingError
from training.inner import WindowModel, inner_blocks
from training.models import Model, logistic_model, make_model

DEFAULT_BASES = ("xgboost", "lightgbm", "random_forest", "logistic")
STATEFUL = ("lstm", "arima")
EPS = 1e-6


def logits(p: np.ndarray) -> np.ndarray:
    """log(p / (1 - p)) of probabilities clipped to [EPS, 1 - EPS].

    >>> logits(np.array([0.5, 0.75])).round(4).tolist()
    [0.0, 1.0986]
    """
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(q / (1.0 - q))


def base_frame(model: Model, X: pd.DataFrame, keys: pd.DataFrame | None) -> pd.DataFrame:
    """The columns ``model`` is fitted on: its ``sequence_keys`` (from ``keys``) and features."""
    wanted = tuple(getattr(model, "sequence_keys", ()))
    if not wanted:
        return X
    if keys is None:
        raise TrainingError("missing_keys", f"{model.name} needs {wanted}")
    return pd.concat([keys[list(wanted)], X], axis=1)


def fit_base(
    name: str, seed: int, params: dict[str, Any], fit: tuple[pd.DataFrame, np.ndarray],
    keys: pd.DataFrame | None,
) -> Model:  # fmt: skip
    """A fresh base model ``name`` fitted on ``fit`` (the one place a base model is fitted)."""
    model = make_model(name, seed, params)
    X, y = fit
    return model.fit(base_frame(model, X, keys), y)


def fit_meta(P: pd.DataFrame, y: np.ndarray, seed: int, C: float) -> Model:
    """The meta-learner: standard-scaled logistic regression on base logits ``P``."""
    return logistic_model(seed, C=C).fit(P, y)


def oof_predictions(
    bases: tuple[str, ...],
    params: dict[str, dict[str, Any]],
    seed: int,
    X: pd.DataFrame,
    y: np.ndarray,
    keys: pd.DataFrame,
    inner_splits: int,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Base logits of the inner test blocks, each from bases fitted on earlier rows only.

    Returns the logits (indexed like ``X``, only the rows of the inner test blocks, one
    column per base) and those rows' positions in ``X``.
    """
    ts = keys["ts_ms"].to_numpy(dtype="int64")
    label_end = keys["label_end_ts"].to_numpy(dtype="int64")
    parts, positions = [], []
    for fit_rows, test_rows in inner_blocks(ts, label_end, inner_splits):
        block = pd.DataFrame(index=X.index[test_rows])
        for name in bases:
            fit = (X.iloc[fit_rows], y[fit_rows])
            model = fit_base(name, seed, params.get(name, {}), fit, keys.iloc[fit_rows])
            test_X = base_frame(model, X.iloc[test_rows], keys.iloc[test_rows])
            block[name] = logits(model.predict_proba(test_X))
        parts.append(block)
        positions.append(test_rows)
    if not parts:
        raise TrainingError("window_too_short", "no inner block for out-of-fold predictions")
    return pd.concat(parts), np.concatenate(positions)


class StackModel(WindowModel):
    """Base models plus a logistic meta-learner on their out-of-fold logits."""

    name = "stack"
    matrix_path = "stack"
    """The scoring path :class:`training.champion.PackagedModel` reports for a stack."""

    def __init__(
        self,
        bases: tuple[str, ...] = DEFAULT_BASES,
        seed: int = 0,
        inner_splits: int = 3,
        meta_C: float = 1.0,
        base_params: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        bases = tuple(dict.fromkeys(bases))
        refused = [b for b in bases if b in STATEFUL or b == "stack"]
        if refused or not bases:
            raise TrainingError(
                "bad_stack", f"stack bases must be stateless models, not {refused or 'none'}"
            )
        if inner_splits < 1:
            raise TrainingError("bad_params", f"inner_splits must be >= 1, got {inner_splits}")
        self.bases = bases
        self.seed = int(seed)
        self.inner_splits = int(inner_splits)
        self.meta_C = float(meta_C)
        self.base_params = {k: dict(v) for k, v in (base_params or {}).items()}
        self.params: dict[str, Any] = {
            "bases": ",".join(bases), "inner_splits": inner_splits, "meta_C": meta_C,
        }  # fmt: skip
        self.fitted: dict[str, Model] = {}
        self.meta: Model | None = None
        self.feature_names: tuple[str, ...] = ()
        self.summary: dict[str, Any] = {}
        self._packaged: dict[str, PackagedModel] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_packaged"] = None  # the bases' scoring paths are rebuilt on first use
        return state

    def _fit_window(
        self, X: pd.DataFrame, y: np.ndarray, ts: np.ndarray, label_end_ts: np.ndarray
    ) -> None:
        keys = pd.DataFrame({"ts_ms": ts, "label_end_ts": label_end_ts}, index=X.index)
        oof, rows = oof_predictions(
            self.bases, self.base_params, self.seed, X, y, keys, self.inner_splits
        )
        self.meta = fit_meta(oof, y[rows], self.seed, self.meta_C)
        self.fitted = {
            name: fit_base(name, self.seed, self.base_params.get(name, {}), (X, y), keys)
            for name in self.bases
        }
        self.feature_names = tuple(str(c) for c in X.columns)
        self._packaged = None
        oof_ts = ts[rows]
        self.summary = {
            "bases": list(self.bases),
            "inner_splits": self.inner_splits,
            "oof_rows": len(oof),
            "oof_start_ts": int(oof_ts.min()),
            "oof_end_ts": int(oof_ts.max()),
            "window_rows": len(X),
            "meta_weights": self.meta_weights(),
        }

    def meta_weights(self) -> dict[str, float]:
        """The meta-learner's coefficient of each base (on standardised logits)."""
        estimator: Any = getattr(self.meta, "estimator", None)
        if estimator is None:
            return {}
        coef = np.asarray(estimator[-1].coef_, dtype=np.float64).ravel()
        return {name: float(c) for name, c in zip(self.bases, coef, strict=True)}

    def base_logits(self, X: pd.DataFrame) -> pd.DataFrame:
        """Each fitted base's logit for the rows of ``X`` (feature columns)."""
        return pd.DataFrame(
            {name: logits(m.predict_proba(X)) for name, m in self.fitted.items()}, index=X.index
        )

    def _proba_features(self, X: pd.DataFrame) -> np.ndarray:
        if self.meta is None:
            raise TrainingError("not_fitted", "stack is not fitted")
        return self.meta.predict_proba(self.base_logits(X[list(self.feature_names)]))

    # -- the stream's path (training.champion.PackagedModel, path "stack") -------------------

    def prepare(self, compiled_dir: Path | None = None) -> dict[str, str]:
        """Choose every base's scoring path now; ``{base: path}``."""
        self._packaged = {
            name: PackagedModel(name, model, self.feature_names, "", 1, 0.0)
            for name, model in self.fitted.items()
        }
        return {name: p.prepare(compiled_dir) for name, p in self._packaged.items()}

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """P(up) of each row of a feature matrix (feature order): the bases, then the meta."""
        if self.meta is None:
            raise TrainingError("not_fitted", "stack is not fitted")
        if self._packaged is None:
            self.prepare()
        assert self._packaged is not None
        P = pd.DataFrame({name: logits(p.predict_proba(X)) for name, p in self._packaged.items()})
        return self.meta.predict_proba(P)

    def fit_summary(self) -> dict[str, Any]:
        """What the last fit did (OOF rows and span, the meta weights), JSON-ready."""
        return dict(self.summary)


def stack_model(seed: int = 0, **params: Any) -> StackModel:
    """``StackModel``: ``bases`` (names or a comma-separated string), ``inner_splits``,
    ``meta_C``; ``n_estimators`` is passed to the tree bases."""
    bases = params.pop("bases", DEFAULT_BASES)
    if isinstance(bases, str):
        bases = tuple(b.strip() for b in bases.split(",") if b.strip())
    trees = params.pop("n_estimators", None)
    base_params = dict(params.pop("base_params", {}) or {})
    if trees:
        for name in ("xgboost", "lightgbm", "random_forest"):
            base_params.setdefault(name, {})["n_estimators"] = int(trees)
    return StackModel(
        tuple(bases),
        seed,
        int(params.pop("inner_splits", 3)),
        float(params.pop("meta_C", 1.0)),
        base_params,
    )
