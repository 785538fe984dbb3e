"""A trained model packaged for scoring, and the handle the stream scorer holds.

:class:`PackagedModel` is what the registry stores (pickled inside an MLflow pyfunc model):
the fitted :class:`training.models.Model` plus everything needed to use it on the stream —
the ordered feature names, the feature-set version, the horizon and ``return_scale`` (mean
absolute forward log return of the training rows, which turns P(up) into an expected
return). Its :meth:`PackagedModel.predict_proba` takes a plain 2-D float array in feature
order and scores it in ONE call on the library's fast path: XGBoost
``Booster.inplace_predict`` and LightGBM ``Booster.predict`` on the whole matrix (no
DataFrame, no per-row work); any other model goes through its own ``predict_proba``.
:meth:`PackagedModel.prepare` (called when the registry loads a model) may swap LightGBM's
path for the forest compiled by ``lleaves`` (:mod:`training.compiled_trees`), 6x faster, and
turns a random forest into an XGBoost booster (:mod:`training.forest_xgboost`), checked
equal to scikit-learn on probe rows. :meth:`PackagedModel.contributions` gives each row's
TreeSHAP contributions from the library itself (XGBoost ``pred_contribs``, LightGBM
``pred_contrib``; the forest through its booster), for the champion's explanations.

:class:`ScoringModel` is a registered version of such a model (name, version, role, and the
training reference distributions for the drift check), as :mod:`agents.scoring` consumes it.
"""

from __future__ import annotations

import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import structlog

from tickcast.errors import ModelError
from training import compiled_trees, forest_xgboost
from training.reference import ReferenceDistributions

log = structlog.get_logger(__name__)


class Predictor(Protocol):
    """Anything with a batch ``predict_proba(X) -> P(up)`` over a 2-D float array."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) for each row of ``X``."""
        ...


def _fast_path(model: Any) -> tuple[str, Any]:
    """(``"xgboost"`` | ``"lightgbm"`` | ``"constant"`` | ``"generic"``, native object).

    LightGBM's ``Booster.predict`` keeps its defaults (the ``num_threads`` of training, 2;
    float64 C-order input, which it reads without a copy): no predict parameter changed
    its cost per CPU-second, see :mod:`training.compiled_trees` for the measurements.
    """
    constant = getattr(model, "_constant", None)
    if constant is not None:
        return "constant", float(constant)
    if callable(getattr(model, "predict_matrix", None)):
        # training.neural: one ONNX Runtime call; training.stacking: the bases, then the meta
        return str(getattr(model, "matrix_path", "onnx")), model
    estimator: Any = getattr(model, "estimator", None)
    kind = type(estimator).__name__
    if kind == "XGBClassifier":
        return "xgboost", estimator.get_booster()
    if kind == "LGBMClassifier":
        return "lightgbm", estimator.booster_
    return "generic", model


def _is_forest(model: Any) -> bool:
    """A fitted random forest (``training.models.random_forest_model``)."""
    steps: Any = getattr(getattr(model, "estimator", None), "steps", None)
    return bool(steps) and type(steps[-1][1]).__name__ == "RandomForestClassifier"


def _forest_booster(model: Any, n_features: int) -> tuple[str, Any] | None:
    """(``"forest"``, the forest as an XGBoost booster), or ``None`` (logged) on any doubt."""
    began = time.perf_counter()
    try:
        booster = forest_xgboost.to_booster(model.estimator, n_features)
        deviation = forest_xgboost.max_deviation(booster, model.estimator, n_features)
    except Exception as exc:  # any conversion failure must leave scoring on scikit-learn
        log.warning("forest_convert_failed", error=repr(exc)[:500], fallback="predict_proba")
        return None
    if not deviation <= forest_xgboost.TOLERANCE:
        log.warning(
            "forest_convert_mismatch",
            max_deviation=deviation,
            tolerance=forest_xgboost.TOLERANCE,
            fallback="predict_proba",
        )
        return None
    log.info(
        "forest_converted", seconds=round(time.perf_counter() - began, 3), max_deviation=deviation
    )
    return "forest", booster


def _compiled_lightgbm(booster: Any, directory: Path) -> tuple[str, Any] | None:
    """(``"lleaves"``, compiled forest), or ``None`` (logged) when it cannot be used.

    A missing ``lleaves``, an LLVM error or a forest that disagrees with ``Booster.predict``
    on the probe rows all leave the model on ``Booster.predict``: slower, never wrong.
    """
    began = time.perf_counter()
    try:
        compiled = compiled_trees.compile_lightgbm(booster, directory)
        deviation = compiled_trees.max_deviation(compiled, booster)
    except Exception as exc:  # any compiler failure must leave scoring on the library path
        log.warning("lightgbm_compile_failed", error=repr(exc)[:500], fallback="Booster.predict")
        return None
    if not deviation <= compiled_trees.TOLERANCE:
        log.warning(
            "lightgbm_compiled_mismatch",
            max_deviation=deviation,
            tolerance=compiled_trees.TOLERANCE,
            fallback="Booster.predict",
        )
        return None
    log.info(
        "lightgbm_compiled",
        seconds=round(time.perf_counter() - began, 3),
        max_deviation=deviation,
        cache_dir=str(directory),
    )
    return "lleaves", compiled


@dataclass
class PackagedModel:
    """A fitted direction model with the metadata scoring needs.

    ``model`` is a fitted :class:`training.models.Model` (``predict_proba`` over a
    DataFrame); its columns must all be features of the set, in any order.
    """

    kind: str
    model: Any
    feature_names: tuple[str, ...]
    feature_set_version: str
    horizon: int
    return_scale: float
    train_window: tuple[int, int] | None = None
    _native: tuple[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.feature_names = tuple(self.feature_names)
        columns = getattr(self.model, "columns", None)
        if columns:
            missing = [c for c in columns if c not in self.feature_names]
            if missing:
                raise ModelError(f"{self.kind} reads columns {missing} that are not features")
        if not np.isfinite(self.return_scale) or self.return_scale < 0:
            raise ModelError(f"return_scale must be finite and >= 0, got {self.return_scale}")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_native"] = None  # rebuilt on first use; never pickle booster handles twice
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def prepare(self, compiled_dir: Path | None = None) -> str:
        """Choose the scoring path now (at model load, not on the first batch); its name.

        With ``compiled_dir`` (``<data_dir>/compiled-models``, see
        :func:`training.compiled_trees.cache_dir`) a LightGBM model is compiled there, or
        loaded from a previous compile of the same model, and scores through ``lleaves``;
        without it, or when compiling fails, it stays on ``Booster.predict``. Compiling is
        opt-in because it costs seconds: worth it for a model that scores a stream, not for
        a one-off prediction on a freshly fitted model.
        A random forest is always converted to an XGBoost booster (a fraction of a second;
        scikit-learn's ``predict_proba`` is 5-50x slower per batch and has no TreeSHAP).
        """
        native = _fast_path(self.model)
        if compiled_dir is not None and native[0] == "lightgbm":
            native = _compiled_lightgbm(native[1], Path(compiled_dir)) or native
        if native[0] == "generic" and _is_forest(self.model):
            native = _forest_booster(self.model, len(self.feature_names)) or native
        if native[0] == "stack":  # training.stacking: each base chooses its own path
            native[1].prepare(compiled_dir)
        self._native = native
        return native[0]

    @property
    def stateful(self) -> bool:
        """Whether rows must be scored in stream order with per-symbol state (:meth:`step`):
        the LSTM (``training.neural``) and ARIMA (``training.arima``)."""
        return callable(getattr(self.model, "step", None)) and (
            getattr(self.model, "_constant", None) is None
        )

    def step(
        self, X: np.ndarray, symbols: Sequence[str], states: MutableMapping[str, Any]
    ) -> np.ndarray:
        """P(up) of each row of ``X`` (stream order), advancing ``states[symbol]`` one tick.

        ``states`` maps a symbol to this model's state of it (absent: a fresh start); a
        stateless model ignores it and scores the matrix.
        """
        matrix = np.asarray(X, dtype=np.float64)
        if not self.stateful:
            return self.predict_proba(matrix)
        if matrix.ndim != 2 or matrix.shape != (len(symbols), len(self.feature_names)):
            raise ModelError(f"{self.kind}: {len(symbols)} symbols, matrix of {matrix.shape}")
        proba = self.model.step(matrix, symbols, states)
        return np.clip(np.asarray(proba, dtype=np.float64).ravel(), 0.0, 1.0)

    @property
    def scoring_path(self) -> str:
        """``xgboost`` | ``lightgbm`` | ``lleaves`` | ``forest`` | ``constant`` | ``generic``."""
        if self._native is None:
            self._native = _fast_path(self.model)
        return self._native[0]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) of every row of ``X`` (rows × features, feature order), one library call."""
        matrix = np.asarray(X)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ModelError(
                f"{self.kind}: expected (rows, {len(self.feature_names)}) features, "
                f"got shape {matrix.shape}"
            )
        if self._native is None:
            self._native = _fast_path(self.model)
        path, native = self._native
        if path == "constant":
            return np.full(matrix.shape[0], native)
        if matrix.shape[0] == 0:
            return np.empty(0)
        if path == "xgboost" or path == "forest":
            proba = native.inplace_predict(matrix)
        elif path == "lleaves":
            proba = compiled_trees.predict(native, matrix)
        elif path == "lightgbm":
            proba = native.predict(matrix)
        elif path in ("onnx", "stack"):
            proba = native.predict_matrix(matrix)
        else:
            frame = pd.DataFrame(matrix, columns=list(self.feature_names))
            proba = self.model.predict_proba(frame)
        return np.clip(np.asarray(proba, dtype=np.float64).ravel(), 0.0, 1.0)

    @property
    def explainable(self) -> bool:
        """Whether :meth:`contributions` can explain this model: a native TreeSHAP, or the
        integrated gradients of an MLP or LSTM whose weights were exported."""
        if self.scoring_path in ("xgboost", "forest", "lightgbm", "lleaves"):
            return True
        return bool(getattr(self.model, "explainable", False))

    def contributions(self, X: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray | None:
        """Contributions of every row: (rows, features + 1), bias last.

        Tree models: TreeSHAP; each row sums to the model's raw margin (log-odds for
        XGBoost and LightGBM, P(up) itself for the random forest). MLP and LSTM
        (:mod:`training.neural`): integrated gradients of the logit from the training-mean
        baseline, whose logit is the bias (:mod:`training.integrated_gradients`); for the
        LSTM, ``X`` are rows ``rows`` (``None``: all) of the last :meth:`step` call, each
        explained from its symbol's state before that step. ``None`` for a model without
        either (constant, linear, ARIMA, stack, a frozen River learner, a forest left on
        scikit-learn, a neural model registered before its weights were exported).
        """
        matrix = np.asarray(X, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(self.feature_names):
            raise ModelError(
                f"{self.kind}: expected (rows, {len(self.feature_names)}) features, "
                f"got shape {matrix.shape}"
            )
        path = self.scoring_path
        if path in ("xgboost", "forest"):
            from xgboost import DMatrix

            _, booster = self._native or _fast_path(self.model)
            return np.asarray(
                booster.predict(DMatrix(matrix, missing=np.nan), pred_contribs=True),
                dtype=np.float64,
            )
        if path in ("lightgbm", "lleaves"):
            booster = self.model.estimator.booster_
            return np.asarray(booster.predict(matrix, pred_contrib=True), dtype=np.float64)
        explain = getattr(self.model, "contributions", None)
        if not getattr(self.model, "explainable", False) or not callable(explain):
            return None
        found = explain(matrix, rows) if self.stateful else explain(matrix)
        return None if found is None else np.asarray(found, dtype=np.float64)


@dataclass(frozen=True)
class ScoringModel:
    """One registered model version ready to score (see :mod:`agents.scoring`)."""

    name: str
    version: int
    role: str
    predictor: Predictor
    feature_names: tuple[str, ...]
    feature_set_version: str
    horizon: int
    return_scale: float
    reference: ReferenceDistributions | None = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) for each row of the feature matrix ``X``."""
        return self.predictor.predict_proba(X)

    @property
    def stateful(self) -> bool:
        """Whether the predictor scores with per-symbol state (see :meth:`step`)."""
        return bool(getattr(self.predictor, "stateful", False))

    def step(
        self, X: np.ndarray, symbols: Sequence[str], states: MutableMapping[str, Any]
    ) -> np.ndarray:
        """P(up) of each row in stream order, advancing each symbol's state in ``states``."""
        step = getattr(self.predictor, "step", None)
        if not callable(step):
            return self.predict_proba(X)
        return np.asarray(step(X, symbols, states))

    @property
    def state_key(self) -> str:
        """Where this version keeps a symbol's state in ``SymbolStream.extra``."""
        return f"model:{self.name}:{self.version}"

    def contributions(self, X: np.ndarray, rows: Sequence[int] | None = None) -> np.ndarray | None:
        """The predictor's contributions (``None`` when it has none); ``rows`` (a stateful
        model's) index the last :meth:`step` call's rows that ``X`` holds."""
        explain = getattr(self.predictor, "contributions", None)
        if not callable(explain):
            return None
        return explain(X, rows) if self.stateful else explain(X)

    @classmethod
    def from_packaged(
        cls,
        packaged: PackagedModel,
        *,
        name: str,
        version: int,
        role: str,
        reference: ReferenceDistributions | None = None,
        predictor: Predictor | None = None,
    ) -> ScoringModel:
        """Wrap a :class:`PackagedModel` (``predictor`` overrides it, e.g. for a test spy)."""
        return cls(
            name=name,
            version=int(version),
            role=role,
            predictor=predictor or packaged,
            feature_names=tuple(packaged.feature_names),
            feature_set_version=packaged.feature_set_version,
            horizon=packaged.horizon,
            return_scale=packaged.return_scale,
            reference=reference,
        )


def return_scale_of(fwd_returns: Sequence[float] | np.ndarray) -> float:
    """Mean absolute forward *log* return of the finite training values (0 when none).

    >>> round(return_scale_of([0.01, -0.01, float("nan")]), 6)
    0.01
    """
    values = np.asarray(fwd_returns, dtype=np.float64)
    values = values[np.isfinite(values) & (values > -1.0)]
    return float(np.mean(np.abs(np.log1p(values)))) if values.size else 0.0


def feature_importance(packaged: PackagedModel) -> dict[str, float]:
    """Each feature's share of the total split gain of a tree model (shares sum to 1).

    XGBoost ``total_gain`` and LightGBM ``gain`` per feature, mapped from the estimator's
    positional features to the names it was trained on; features never split on get 0.
    ``{}`` for a model without gains (linear, constant, a frozen River learner, or a model
    whose trees never split).
    """
    estimator: Any = getattr(packaged.model, "estimator", None)
    if estimator is None or getattr(packaged.model, "_constant", None) is not None:
        return {}
    names = tuple(getattr(packaged.model, "columns", None) or packaged.feature_names)
    kind = type(estimator).__name__
    if kind == "XGBClassifier":
        scores = estimator.get_booster().get_score(importance_type="total_gain")
        gains = np.array([float(scores.get(f"f{i}", 0.0)) for i in range(len(names))])
    elif kind == "LGBMClassifier":
        gains = np.asarray(estimator.booster_.feature_importance(importance_type="gain"), float)
    else:
        return {}
    total = float(gains.sum())
    if gains.shape != (len(names),) or not np.isfinite(total) or total <= 0:
        return {}
    return {name: float(g / total) for name, g in zip(names, gains, strict=True)}
