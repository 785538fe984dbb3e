"""Online (River) challengers in the shape the scorer uses, frozen for fast shadow scoring.

The worker never trains the online challengers (the learner process does, and checkpoints
them to MLflow); it restores the newest checkpoint and lets them shadow-score with role
``CHALLENGER`` and version ``online-<n_learned>`` — the same version string the learner
puts in its model events and :mod:`online_learning.promotion` recognises.

Because a restored challenger never changes inside the worker, a
``StandardScaler | LogisticRegression`` pipeline is frozen into numpy
(:class:`LinearPredictor`): River's own batch path costs ~5 ms per call whatever the batch
size (dataframe conversions), which would dominate small micro-batches; the frozen form is a
matrix product and gives the same probabilities (tested against River). Other River models
score through their own ``predict_proba`` (row by row for trees: ~40 µs per row each), which
is why :func:`select` shadow-scores only the challengers named in
``Settings.online_shadow_models``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from online_learning.challengers import OnlineChallenger
from training.champion import Predictor, ScoringModel


@dataclass(frozen=True)
class OnlineModel:
    """An online challenger as a :class:`~training.champion.ScoringModel` look-alike.

    ``version`` is a string (``online-<n_learned>``), unlike a registered version; the
    scorer only ever formats it with ``str``.
    """

    name: str
    version: str
    role: str
    predictor: Predictor
    feature_names: tuple[str, ...]
    feature_set_version: str
    horizon: int
    return_scale: float
    reference: None = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) for each row of ``X``."""
        return np.asarray(self.predictor.predict_proba(X), dtype=np.float64)

    def as_scoring_model(self) -> ScoringModel:
        """This model typed as what :class:`agents.scoring.ModelSet` holds (duck-typed)."""
        return cast(ScoringModel, self)


class LinearPredictor:
    """``StandardScaler | LogisticRegression`` frozen into arrays (River's batch semantics).

    River's ``transform_many`` divides by the standard deviation only where it is positive,
    and the challenger fills non-finite scaled values with 0 before the dot product; both are
    reproduced here.
    """

    def __init__(
        self, means: np.ndarray, stds: np.ndarray, weights: np.ndarray, intercept: float
    ) -> None:
        self.means = means
        self.stds = stds
        self.weights = weights
        self.intercept = float(intercept)

    @classmethod
    def compile(cls, challenger: OnlineChallenger, names: Sequence[str]) -> LinearPredictor | None:
        """The frozen form of ``challenger``'s model, or ``None`` when it is another kind."""
        from river import compose, linear_model, optim, preprocessing

        model = challenger.model
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

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """P(up) for each row of ``X`` (columns in the learned order)."""
        Z = np.asarray(X, dtype=np.float64) - self.means
        np.divide(Z, self.stds, out=Z, where=self.stds > 0)
        Z[~np.isfinite(Z)] = 0.0
        logits = np.clip(Z @ self.weights + self.intercept, -700.0, 700.0)
        return np.asarray(1.0 / (1.0 + np.exp(-logits)), dtype=np.float64)


def select(challengers: Iterable[OnlineChallenger], wanted: str) -> list[OnlineChallenger]:
    """The challengers named in ``wanted`` (comma-separated; ``*`` = all, ``''`` = none)."""
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    return [c for c in challengers if "*" in names or c.name in names]


def to_models(
    challengers: Iterable[OnlineChallenger],
    feature_names: Sequence[str],
    feature_set_version: str,
    return_scales: dict[int, float] | None = None,
) -> tuple[list[OnlineModel], list[str]]:
    """Online models ready to shadow-score, and the reasons the others were refused.

    A challenger that never learned has no feature names yet: it takes the stream's. One
    whose feature-set version is unknown is assumed to be the stream's when its width fits.
    ``return_scales`` (horizon → scale, from the registered champion) turns P(up) into an
    expected return; without one the expected return is 0.
    """
    models: list[OnlineModel] = []
    refused: list[str] = []
    for c in challengers:
        names = tuple(c.feature_names) if c.feature_names is not None else tuple(feature_names)
        if len(names) != len(feature_names):
            refused.append(f"{c.name} {c.version}: {len(names)} features, stream has "
                           f"{len(feature_names)}")  # fmt: skip
            continue
        fsv = c.feature_set_version or feature_set_version
        fast = LinearPredictor.compile(c, names)
        predictor: Any = fast if fast is not None else _RiverPredictor(c, names)
        scale = (return_scales or {}).get(c.horizon, 0.0)
        models.append(
            OnlineModel(
                name=c.name,
                version=c.version,
                role="challenger",
                predictor=predictor,
                feature_names=names,
                feature_set_version=fsv,
                horizon=int(c.horizon),
                return_scale=float(scale) if math.isfinite(scale) else 0.0,
            )
        )
    return models, refused


class _RiverPredictor:
    """A challenger scored through River itself (trees: row by row)."""

    def __init__(self, challenger: OnlineChallenger, names: Sequence[str]) -> None:
        self.challenger = challenger
        self.names = tuple(names)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.challenger.predict_proba_many(X, self.names)
