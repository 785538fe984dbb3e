"""Online challengers: learn only from resolved labels, NaN policy, restart, batching."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
from river import base

from online_learning.challengers import OnlineChallenger, default_challengers
from online_learning.outcomes import OutcomeJoiner, resolve
from tests.unit.online_learning.helpers import prediction
from tickcast.errors import ModelError

NAMES = ["a", "b", "c", "d"]


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (X[:, 0] - 0.5 * X[:, 1] + 0.3 * rng.normal(size=n)) > 0
    return X, y


class Memorizer(base.Classifier):
    """A spy: predicts a label only for a feature vector it has learned, else 0.5."""

    def __init__(self) -> None:
        self.seen: dict[tuple[float, ...], bool] = {}

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        self.seen[tuple(x.values())] = bool(y)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:
        label = self.seen.get(tuple(x.values()))
        return (
            {True: 0.5, False: 0.5} if label is None else {True: float(label), False: 1.0 - label}
        )


@pytest.mark.parametrize("horizon", [1, 3])
def test_stream_never_learns_a_label_before_its_bar(horizon: int) -> None:
    """Prequential replay through the joiner: at prediction time the learner has never seen
    the label of that very example (a memorizer would answer it with certainty)."""
    rng = np.random.default_rng(horizon)
    n = 300
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    features = rng.normal(size=(n, 4))  # unique per bar
    spy = OnlineChallenger("spy", Memorizer(), feature_names=NAMES, horizon=horizon)
    joiner = OutcomeJoiner(horizons=(horizon,), cost_bps=0.0)
    for t in range(n):
        ts = 60_000 * t
        outcomes = joiner.on_bar(ts, closes[t])
        spy.learn_from_outcomes(outcomes, as_of=ts)
        assert spy.n_learned == max(0, t - horizon + 1)  # exactly the labels known by now
        p = float(spy.predict_proba_many(features[t : t + 1])[0])
        assert p == 0.5, f"bar {t}: the learner already knew this example's label"
        joiner.add_predictions([prediction(ts, p, horizon=horizon, features=features[t].tolist())])
    # and what it learned is right: it now recalls every resolved example's true direction
    up = np.log(closes[horizon:] / closes[:-horizon]) > 0
    recalled = spy.predict_proba_many(features[: n - horizon]) > 0.5
    np.testing.assert_array_equal(recalled, up)


def test_labels_from_the_future_are_refused() -> None:
    c = OnlineChallenger("m", Memorizer(), feature_names=NAMES)
    early = resolve(prediction(100, 0.6, features=[1.0, 2.0, 3.0, 4.0]), 10.0, 11.0, 160)
    assert c.learn_from_outcomes([early], as_of=159) == 0  # label bar not seen yet
    malformed = early | {"realized_ts": 100}
    assert c.learn_from_outcomes([malformed]) == 0
    assert c.skipped == {"future_label": 2}
    assert c.n_learned == 0
    assert c.learn_from_outcomes([early], as_of=160) == 1


def test_each_example_is_learned_once_across_models_and_replays() -> None:
    c = OnlineChallenger("m", Memorizer(), feature_names=NAMES)
    feats = [0.1, 0.2, 0.3, 0.4]
    outs = [
        resolve(prediction(100, 0.6, model=m, features=feats), 10.0, 11.0, 160)
        for m in ("champ", "chall", "shadow")
    ]
    outs.append(resolve(prediction(100, 0.6, horizon=5, features=feats), 10.0, 11.0, 400))
    assert c.learn_from_outcomes(outs) == 1
    assert c.learn_from_outcomes(outs) == 0  # replay after a restart
    assert c.n_learned == 1
    assert c.watermarks == {"AAA": 100}


def test_features_lookup_and_missing_features() -> None:
    c = OnlineChallenger("m", Memorizer(), feature_names=NAMES)
    bare = resolve(prediction(100, 0.6), 10.0, 11.0, 160)
    assert c.learn_from_outcomes([bare]) == 0
    assert c.skipped == {"no_features": 1}
    table = {("AAA", 200): [1.0, 1.0, 1.0, 1.0]}
    other = resolve(prediction(200, 0.6), 10.0, 11.0, 260)
    assert c.learn_from_outcomes([other], features_lookup=lambda s, ts: table.get((s, ts))) == 1


@pytest.mark.parametrize("index", [0, 1, 2])
def test_default_challengers_learn_a_signal(index: int) -> None:
    X, y = _data(2500)
    c = default_challengers(seed=1, feature_names=NAMES)[index]
    assert np.all(c.predict_proba_many(X[:5]) == 0.5)  # knows nothing yet
    c.learn(X[:2000], y[:2000], event_ts=123)
    p = c.predict_proba_many(X[2000:])
    assert ((p > 0.5) == y[2000:]).mean() > 0.75
    assert c.version == "online-2000"
    assert c.last_event_ts == 123
    assert c.memory_bytes() > 0


def test_vectorised_linear_path_matches_row_by_row() -> None:
    X, y = _data(600)
    c = default_challengers(feature_names=NAMES)[0]
    c.learn(X[:500], y[:500])
    rows = X[500:].copy()
    rows[0, 2] = np.nan
    fast = c.predict_proba_many(rows)
    slow = [
        c.model.predict_proba_one({k: v for k, v in zip(NAMES, r, strict=True) if np.isfinite(v)})[
            True
        ]
        for r in rows
    ]
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


def test_nan_rows_are_not_learned_but_predicted() -> None:
    X, y = _data(300)
    X[::10, 1] = np.nan
    for c in default_challengers(feature_names=NAMES):
        c.learn(X, y)
        assert c.n_learned == 270
        assert c.skipped == {"nan": 30}
        assert np.isfinite(c.predict_proba_many(X[:20])).all()


def test_shape_errors_are_typed() -> None:
    c = default_challengers(feature_names=NAMES)[0]
    with pytest.raises(ModelError):
        c.predict_proba_many(np.zeros((2, 3)))
    with pytest.raises(ModelError):
        c.learn(np.zeros((2, 4)), [True])
    with pytest.raises(ModelError):
        c.predict_proba_many(np.zeros((2, 4)), names=["w", "x", "y", "z"])


@pytest.mark.parametrize("index", [0, 1, 2])
def test_restart_resumes_learning(index: int) -> None:
    X, y = _data(1200, seed=3)
    a = default_challengers(seed=7, feature_names=NAMES)[index]
    a.learn(X[:600], y[:600], event_ts=600)
    b = pickle.loads(pickle.dumps(a))  # what a checkpoint stores and restores
    assert (b.n_learned, b.version, b.last_event_ts) == (600, "online-600", 600)
    np.testing.assert_array_equal(a.predict_proba_many(X[600:]), b.predict_proba_many(X[600:]))
    for c in (a, b):
        c.learn(X[600:], y[600:])
    np.testing.assert_array_equal(a.predict_proba_many(X[:50]), b.predict_proba_many(X[:50]))
    assert b.n_learned == 1200


def test_minibatch_does_not_depend_on_micro_batch_cuts() -> None:
    X, y = _data(1000, seed=4)
    one, cut = (default_challengers(feature_names=NAMES)[0] for _ in range(2))
    for c in (one, cut):
        c.minibatch = 64
    one.learn(X, y)
    start = 0
    for size in (7, 100, 3, 250, 640):
        cut.learn(X[start : start + size], y[start : start + size])
        start += size
    assert one.n_learned == cut.n_learned == 960
    assert len(cut._buffer) == 40
    np.testing.assert_allclose(one.predict_proba_many(X[:20]), cut.predict_proba_many(X[:20]))


def test_memory_bounds_are_configured() -> None:
    _, hat, arf = default_challengers()
    assert hat.model.max_depth == 8
    assert hat.model.memory_estimate_period > 10**12  # River's size manager is off
    assert arf.model.n_models == 3
    assert arf.model.max_depth == 8


class Broken(Memorizer):
    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        if len(self.seen) == 2:
            raise ZeroDivisionError("float division by zero")
        super().learn_one(x, y)


def test_a_river_failure_is_a_typed_error_with_exact_counters() -> None:
    c = OnlineChallenger("broken", Broken(), feature_names=NAMES)
    X, y = _data(5)
    with pytest.raises(ModelError, match="River failed to learn"):
        c.learn(X, y)
    assert c.n_learned == 2
    assert c.skipped == {"error": 1}
