"""A trained model packaged for scoring, and the handle the stream scorer holds.

:class:`PackagedModel` is what the registry stores (pickled inside an MLflow pyfunc model):
the fitted :class:`training.models.Model` plus everything needed to use it on the stream —
the ordered feature names, the feature-set version, the horizon and ``return_scale`` (mean
absolute forward log return of the training rows, which turns P(up) into an expected
return). Its :meth:`PackagedModel.predict_proba` takes a plain 2-D float array in feature
order and scores it in ONE call on the library's fast path: XGBoost
``Booster.inplace_predict`` and LightGBM ``Booster.predict`` on the whole matrix (no
DataFrame, no per-row work); any other model goes through its own ``predict_proba``.

:class:`ScoringModel` is a registered version of such a model (name, version, role, and the
training reference distributions for the drift check), as :mod:`agents.scoring` consumes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from tickcast.errors import ModelError
from training.reference import ReferenceDistributions


class Predictor(Protocol):
    """Anything with a batch ``predict_proba(X) -> P(up)`` over a 2-D float array."""

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) for each row of ``X``."""
        ...


def _fast_path(model: Any) -> tuple[str, Any]:
    """(``"xgboost"`` | ``"lightgbm"`` | ``"constant"`` | ``"generic"``, native object)."""
    constant = getattr(model, "_constant", None)
    if constant is not None:
        return "constant", float(constant)
    estimator: Any = getattr(model, "estimator", None)
    kind = type(estimator).__name__
    if kind == "XGBClassifier":
        return "xgboost", estimator.get_booster()
    if kind == "LGBMClassifier":
        return "lightgbm", estimator.booster_
    return "generic", model


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
        if path == "xgboost":
            proba = native.inplace_predict(matrix)
        elif path == "lightgbm":
            proba = native.predict(matrix)
        else:
            frame = pd.DataFrame(matrix, columns=list(self.feature_names))
            proba = self.model.predict_proba(frame)
        return np.clip(np.asarray(proba, dtype=np.float64).ravel(), 0.0, 1.0)


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
