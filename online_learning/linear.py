"""A River ``StandardScaler | LogisticRegression`` that no longer learns, as numpy arrays.

River's batch path (``transform_many`` + ``predict_proba_many``) converts to and from
DataFrames on every call (~2.5-5 ms whatever the batch size); a model that will not learn
again can be read once into four arrays and scored with one matrix product. Two users: the
worker's online shadow challengers (:mod:`agents.online_models`) and a promoted, frozen
champion (:class:`online_learning.frozen.FrozenRiverModel`). Both score with the learners'
batch rule (:func:`online_learning.challengers.river_proba_many`), reproduced here:

* ``(x - mean) / std``, divided only where ``std > 0`` (``transform_many``);
* a non-finite scaled value (a missing or infinite feature) becomes 0, i.e. the feature is
  imputed at its running mean and contributes nothing;
* ``sigmoid(z @ w + intercept)``.

>>> from river import linear_model, preprocessing
>>> model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
>>> for x, y in [({"a": 1.0}, True), ({"a": -1.0}, False)] * 20:
...     model.learn_one(x, y)
>>> fast = LinearPredictor.from_model(model, ["a"])
>>> river = [model.predict_proba_one(x)[True] for x in ({"a": 1.0}, {})]  # NaN = left out
>>> bool(np.allclose(fast.predict_proba(np.array([[1.0], [np.nan]])), river, rtol=1e-12))
True
>>> LinearPredictor.from_model(linear_model.LogisticRegression(), ["a"]) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from online_learning.challengers import OnlineChallenger


class LinearPredictor:
    """``StandardScaler | LogisticRegression`` frozen into arrays (River's batch semantics)."""

    def __init__(
        self, means: np.ndarray, stds: np.ndarray, weights: np.ndarray, intercept: float
    ) -> None:
        self.means = means
        self.stds = stds
        self.weights = weights
        self.intercept = float(intercept)

    @classmethod
    def from_model(cls, model: Any, names: Sequence[str]) -> LinearPredictor | None:
        """The arrays of River ``model`` read under ``names`` (in order), ``None`` if not exact.

        Only a two-step pipeline of a plain ``StandardScaler`` (no window, ``with_std``) and a
        ``LogisticRegression`` with the log loss is represented; anything else returns
        ``None`` and is scored by River itself. Nothing is written into ``model``.
        """
        from river import compose, linear_model, optim, preprocessing

        if not isinstance(model, compose.Pipeline) or len(model.steps) != 2:
            return None
        scaler, logreg = list(model.steps.values())
        if not isinstance(scaler, preprocessing.StandardScaler) or not isinstance(
            logreg, linear_model.LogisticRegression
        ):
            return None
        if scaler.window_size is not None or not scaler.with_std:
            return None
        if not isinstance(logreg.loss, optim.losses.Log):
            return None
        means = np.array([float(scaler.means.get(n, 0.0)) for n in names])
        stds = np.array([float(scaler.vars.get(n, 0.0)) ** 0.5 for n in names])
        weights = np.array([float(logreg.weights.get(n, 0.0)) for n in names])
        return cls(means, stds, weights, float(logreg.intercept))

    @classmethod
    def compile(cls, challenger: OnlineChallenger, names: Sequence[str]) -> LinearPredictor | None:
        """The frozen form of ``challenger``'s model, or ``None`` when it is another kind."""
        return cls.from_model(challenger.model, names)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) for each row of ``X`` (columns in the learned order)."""
        Z = np.asarray(X, dtype=np.float64) - self.means
        np.divide(Z, self.stds, out=Z, where=self.stds > 0)
        Z[~np.isfinite(Z)] = 0.0
        logits = np.clip(Z @ self.weights + self.intercept, -700.0, 700.0)
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)
