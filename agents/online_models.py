"""Online (River) challengers in the shape the scorer uses, frozen for fast shadow scoring.

The worker never trains the online challengers (the learner process does, and checkpoints
them to MLflow); it restores the newest checkpoint and lets them shadow-score with role
``CHALLENGER`` and version ``online-<n_learned>`` — the same version string the learner
puts in its model events and :mod:`online_learning.promotion` recognises.

Because a restored challenger never changes inside the worker, a
``StandardScaler | LogisticRegression`` pipeline is frozen into numpy
(:class:`online_learning.linear.LinearPredictor`, shared with the promoted
:class:`online_learning.frozen.FrozenRiverModel`): River's own batch path costs ~5 ms per
call whatever the batch size (dataframe conversions), which would dominate small
micro-batches; the frozen form is a matrix product and gives the same probabilities (tested
against River). Other River models score through their own ``predict_proba`` (row by row for
trees: ~40 µs per row each), which is why :func:`select` shadow-scores only the challengers
named in ``Settings.online_shadow_models``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from online_learning.challengers import OnlineChallenger
from online_learning.linear import LinearPredictor
from training.champion import Predictor, ScoringModel

__all__ = ["LinearPredictor", "OnlineModel", "select", "to_models"]


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
