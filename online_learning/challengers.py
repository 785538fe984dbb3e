"""River online challengers that learn from outcomes only, once the label is known.

An :class:`OnlineChallenger` wraps one River binary classifier (``True`` = up over the
horizon). Its learning API takes **outcome records** — a prediction joined with its
realized return, which exists only once the bar ``t + h`` has arrived — so a challenger
cannot learn a label before it is known: :meth:`OnlineChallenger.learn_from_outcomes`
refuses outcomes whose label bar is later than the caller's event-time watermark
(``as_of``) or not after the prediction.

Learner input: the pipeline attaches the **prediction-time feature vector** to every
pending prediction (``prediction["features"]``, floats in the feature-set order), so each
outcome carries ``features``; without it, ``features_lookup(symbol, ts)`` is asked, and an
outcome with neither is skipped (counted as ``no_features``).

Each example is learned once: per symbol, only outcomes of the challenger's ``horizon``
with ``ts`` after the last learned ``ts`` of that symbol are used (outcomes of several
models for the same bar carry the same label; a replay after a restart skips what the
checkpoint already learned). Label: ``realized_return > 0`` (flat = down, as in
``training/labels.py``).

Feature set: a challenger learns one feature-set version. Without one given, it takes the
version of the first outcome it reads; outcomes of any other version are skipped
(``feature_set_mismatch``), so its frozen copy can be registered against the stream's version
(:mod:`online_learning.frozen`).

Missing values: rows with a non-finite feature are **not learned** (``nan`` counter); at
prediction time non-finite features are treated as missing — dropped from the River dict
(trees route missing values, the linear model gets no contribution), i.e. imputed at the
running mean after standard scaling in the vectorised linear path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from river import compose, forest, linear_model, optim, preprocessing, tree

from tickcast.errors import ModelError

FeatureLookup = Callable[[str, int], Sequence[float] | None]


class OnlineChallenger:
    """A named River classifier with counters, a version and batch predict/learn.

    ``minibatch > 1`` (models with ``learn_many`` only) learns in fixed chunks of that many
    rows, buffering the remainder, so the result does not depend on how the stream was cut
    into micro-batches; the default (0) learns row by row with ``learn_one``.
    """

    def __init__(
        self,
        name: str,
        model: Any,
        *,
        feature_names: Sequence[str] | None = None,
        feature_set_version: str | None = None,
        horizon: int = 1,
        minibatch: int = 0,
    ) -> None:
        self.name = name
        self.model = model
        self.feature_names: tuple[str, ...] | None = (
            tuple(feature_names) if feature_names is not None else None
        )
        self.feature_set_version = feature_set_version
        self.horizon = horizon
        self.minibatch = minibatch if hasattr(model, "learn_many") else 0
        self.n_learned = 0
        self.last_event_ts: int | None = None
        self.skipped: dict[str, int] = {}
        self.watermarks: dict[str, int] = {}  # symbol -> last learned prediction ts
        self._buffer: list[tuple[dict[str, float], bool]] = []

    def __repr__(self) -> str:
        return f"OnlineChallenger({self.name!r}, version={self.version!r})"

    @property
    def version(self) -> str:
        """``online-<n_learned>``: changes whenever the model has learned more."""
        return f"online-{self.n_learned}"

    def _names(self, width: int, names: Sequence[str] | None) -> tuple[str, ...]:
        if names is not None:
            cols = tuple(names)
        elif self.feature_names is not None:
            cols = self.feature_names
        else:
            cols = tuple(f"f{i}" for i in range(width))
        if len(cols) != width:
            raise ModelError(f"{self.name}: {width} features given, {len(cols)} names")
        if self.feature_names is None:
            self.feature_names = cols
        elif cols != self.feature_names:
            raise ModelError(f"{self.name}: feature names differ from the ones it learned")
        return cols

    def _skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    # --- predict ------------------------------------------------------------------------------
    def predict_proba_many(self, X: np.ndarray, names: Sequence[str] | None = None) -> np.ndarray:
        """``P(up)`` for every row of ``X`` (n × k); a model that knows nothing gives 0.5."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        return river_proba_many(self.model, X, self._names(X.shape[1], names))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``P(up)`` per row in the learned feature order (the scorer's ``Predictor`` call)."""
        return self.predict_proba_many(X, self.feature_names)

    # --- learn --------------------------------------------------------------------------------
    def learn(
        self,
        X: np.ndarray,
        y: Sequence[bool] | np.ndarray,
        names: Sequence[str] | None = None,
        event_ts: int | None = None,
    ) -> int:
        """Learn rows of ``X`` with labels ``y``; rows with non-finite values are skipped.

        Returns the rows accepted (with ``minibatch`` some may still sit in the buffer).
        Call it with labelled data only — the stream uses :meth:`learn_from_outcomes`.
        """
        X = np.atleast_2d(np.asarray(X, dtype=float))
        labels = np.asarray(y, dtype=bool).ravel()
        if X.shape[0] != labels.size:
            raise ModelError(f"{self.name}: {X.shape[0]} rows but {labels.size} labels")
        if X.shape[0] == 0:
            return 0
        cols = self._names(X.shape[1], names)
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            self._skip("nan", int((~finite).sum()))
        rows = [
            (dict(zip(cols, row, strict=True)), bool(label))
            for row, label in zip(X[finite].tolist(), labels[finite].tolist(), strict=True)
        ]
        try:
            if self.minibatch > 1:
                self._buffer.extend(rows)
                while len(self._buffer) >= self.minibatch:
                    chunk = self._buffer[: self.minibatch]
                    frame = pd.DataFrame([x for x, _ in chunk], columns=list(cols))
                    self.model.learn_many(frame, pd.Series([lab for _, lab in chunk]))
                    self._buffer = self._buffer[self.minibatch :]
                    self.n_learned += len(chunk)
            else:
                learn_one = self.model.learn_one
                for x, label in rows:
                    learn_one(x, label)
                    self.n_learned += 1
        except Exception as exc:  # a River bug must not take the learner process down
            self._skip("error")
            raise ModelError(f"{self.name}: River failed to learn: {exc!r}") from exc
        if event_ts is not None:
            self.last_event_ts = max(self.last_event_ts or event_ts, event_ts)
        return len(rows)

    def learn_from_outcomes(
        self,
        outcomes: Iterable[Mapping[str, Any]],
        features_lookup: FeatureLookup | None = None,
        as_of: int | None = None,
    ) -> int:
        """Learn from resolved outcomes (see the module doc); returns rows accepted.

        ``as_of`` is the event-time watermark of the caller (the latest bar it has seen):
        an outcome realized after it is a label from the future and is refused
        (``future_label``), as is one whose ``realized_ts`` is not after its ``ts``.
        """
        xs: list[Sequence[float]] = []
        ys: list[bool] = []
        last_ts: int | None = None
        for outcome in outcomes:
            if int(outcome.get("horizon", -1)) != self.horizon:
                continue
            ts, realized_ts = int(outcome["ts"]), int(outcome["realized_ts"])
            if realized_ts <= ts or (as_of is not None and realized_ts > as_of):
                self._skip("future_label")
                continue
            fsv = outcome.get("feature_set_version")
            if self.feature_set_version and fsv and fsv != self.feature_set_version:
                self._skip("feature_set_mismatch")
                continue
            if fsv and not self.feature_set_version:
                self.feature_set_version = str(fsv)  # pinned: one learner, one feature set
            symbol = str(outcome["symbol"])
            if ts <= self.watermarks.get(symbol, -1):
                continue  # already learned (another model's outcome, or a replay)
            features = outcome.get("features")
            if features is None and features_lookup is not None:
                features = features_lookup(symbol, ts)
            if features is None:
                self._skip("no_features")
                continue
            self.watermarks[symbol] = ts
            xs.append(features)
            ys.append(float(outcome["realized_return"]) > 0.0)
            last_ts = realized_ts if last_ts is None else max(last_ts, realized_ts)
        if not xs:
            return 0
        try:
            X = np.asarray(xs, dtype=float)
        except ValueError:
            self._skip("ragged_features", len(xs))
            return 0
        return self.learn(X, ys, event_ts=last_ts)

    # --- introspection ------------------------------------------------------------------------
    def memory_bytes(self) -> int:
        """Deep size of the River model in bytes (River's own estimate)."""
        return int(self.model._raw_memory_usage)

    def info(self) -> dict[str, Any]:
        """Name, version, counters (for tags, the API and logs)."""
        return {
            "name": self.name,
            "version": self.version,
            "n_learned": self.n_learned,
            "last_event_ts": self.last_event_ts,
            "buffered": len(self._buffer),
            "skipped": dict(self.skipped),
            "model": type(self.model).__name__,
        }


def river_proba_many(model: Any, X: np.ndarray, cols: Sequence[str]) -> np.ndarray:
    """``P(up)`` of every row of ``X`` (n × len(cols)) by the River classifier ``model``.

    The one prediction rule of the online learners, shared by the shadow scorer and the
    frozen champion (:mod:`online_learning.frozen`), so a promoted learner scores exactly as
    it did while it won. A pipeline whose steps all have batch methods goes through River's
    ``transform_many``/``predict_proba_many`` (non-finite scaled values become 0, i.e. the
    running mean); anything else is asked row by row with ``predict_proba_one`` on the
    finite features only. A model that knows nothing gives 0.5.
    """
    if X.shape[0] == 0:
        return np.empty(0)
    if isinstance(model, compose.Pipeline) and _all_many(model):
        frame = pd.DataFrame(X, columns=list(cols))
        steps = list(model.steps.values())
        for step in steps[:-1]:
            frame = step.transform_many(frame)
        frame = frame.replace([np.inf, -np.inf], np.nan).fillna(0.0)
        proba = steps[-1].predict_proba_many(frame)
        return proba[True].to_numpy(dtype=float) if True in proba else np.full(len(X), 0.5)
    out = np.empty(X.shape[0])
    for i, row in enumerate(X):
        x = {c: v for c, v in zip(cols, row.tolist(), strict=True) if math.isfinite(v)}
        out[i] = float(model.predict_proba_one(x).get(True, 0.5))
    return out


def _all_many(pipeline: compose.Pipeline) -> bool:
    steps = list(pipeline.steps.values())
    return all(hasattr(s, "transform_many") for s in steps[:-1]) and hasattr(
        steps[-1], "predict_proba_many"
    )


def default_challengers(
    seed: int = 42,
    feature_names: Sequence[str] | None = None,
    feature_set_version: str | None = None,
    horizon: int = 1,
) -> list[OnlineChallenger]:
    """The three stock challengers, with memory bounded by depth and size limits.

    * ``river-logreg``: ``StandardScaler | LogisticRegression`` (SGD, lr 0.01, l2 1e-4);
    * ``river-hat``: Hoeffding adaptive tree (grace 200, depth ≤ 8);
    * ``river-arf``: adaptive random forest of 3 trees (grace 100, depth ≤ 8).

    Memory is bounded by structure (``max_depth``: at most 2^8 leaves per tree, with the
    adaptive trees' alternates bounded the same way). River's own size manager
    (``max_size`` with ``memory_estimate_period``) is switched off: in river 0.26 it raises
    ``ZeroDivisionError`` in ``_estimate_model_size`` once it has deactivated the leaves of a
    Hoeffding adaptive tree (seen at 10k rows in ``benchmarks/bench_online.py``).
    """
    common: dict[str, Any] = {
        "feature_names": feature_names,
        "feature_set_version": feature_set_version,
        "horizon": horizon,
    }
    logreg = preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.01), l2=1e-4
    )
    never = 1 << 62  # memory_estimate_period: River's size manager is off (see above)
    hat = tree.HoeffdingAdaptiveTreeClassifier(
        grace_period=200, max_depth=8, memory_estimate_period=never, seed=seed
    )
    arf = forest.ARFClassifier(
        n_models=3, grace_period=100, max_depth=8, memory_estimate_period=never, seed=seed
    )
    return [
        OnlineChallenger("river-logreg", logreg, **common),
        OnlineChallenger("river-hat", hat, **common),
        OnlineChallenger("river-arf", arf, **common),
    ]


def by_name(challengers: Iterable[OnlineChallenger]) -> dict[str, OnlineChallenger]:
    """Index challengers by name."""
    return {c.name: c for c in challengers}
