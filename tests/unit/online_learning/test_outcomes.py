"""OutcomeJoiner: labels at exactly bar t + h, values against a pandas shift computation."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

from online_learning.outcomes import OutcomeJoiner, log_loss_one
from tests.unit.online_learning.helpers import prediction
from training.labels import make_labels

COST_BPS = 2.0


def _bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    close[7] = close[6]  # a flat bar: a tie must count as "down"
    return pd.DataFrame({"symbol": "AAA", "ts_ms": 1_000 + 60_000 * np.arange(n), "close": close})


def _run(bars: pd.DataFrame, probs: np.ndarray, horizons: tuple[int, ...] = (1, 5)) -> list[dict]:
    joiner = OutcomeJoiner(horizons=horizons, cost_bps=COST_BPS)
    out: list[dict] = []
    for i, (ts, close) in enumerate(zip(bars["ts_ms"], bars["close"], strict=True)):
        out += joiner.on_bar(int(ts), float(close))
        preds = [prediction(int(ts), float(probs[i]), horizon=h) for h in horizons]
        out += joiner.add_predictions(preds)
    return out


def test_no_outcome_before_the_label_bar() -> None:
    joiner = OutcomeJoiner(horizons=(1, 5))
    joiner.on_bar(0, 100.0)
    assert joiner.add_predictions([prediction(0, 0.6, horizon=h) for h in (1, 5)]) == []
    got = {i: joiner.on_bar(i, 100.0 + i) for i in range(1, 7)}
    assert [o["horizon"] for o in got[1]] == [1]
    assert all(got[i] == [] for i in (2, 3, 4, 6))
    assert [(o["horizon"], o["realized_ts"]) for o in got[5]] == [(5, 5)]
    assert len(joiner) == 0


def test_bars_are_counted_not_clock_time() -> None:
    joiner = OutcomeJoiner(horizons=(2,))
    joiner.on_bar(0, 10.0)
    joiner.add_predictions([prediction(0, 0.9, horizon=2)])
    assert joiner.on_bar(10_000_000, 11.0) == []  # a long gap is still one bar
    (outcome,) = joiner.on_bar(10_000_001, 12.0)
    assert outcome["realized_return"] == pytest.approx(math.log(1.2))


@pytest.mark.parametrize("seed", [0, 1])
def test_values_match_pandas_shift(seed: int) -> None:
    bars = _bars(300, seed)
    probs = np.random.default_rng(seed + 10).uniform(0, 1, len(bars))
    probs[3] = 0.5  # no position, no cost
    outcomes = pd.DataFrame(_run(bars, probs))
    for h in (1, 5):
        ref = bars.assign(prob=probs)
        ref["realized"] = np.log(ref["close"].shift(-h) / ref["close"])
        ref["realized_ts"] = ref["ts_ms"].shift(-h)
        ref = ref.dropna()
        up = ref["realized"] > 0
        p = ref["prob"].clip(1e-6, 1 - 1e-6)
        position = np.sign(ref["prob"] - 0.5)
        got = outcomes[outcomes["horizon"] == h].set_index("ts").loc[ref["ts_ms"]]
        assert len(got) == len(ref) == len(bars) - h
        np.testing.assert_allclose(got["realized_return"], ref["realized"], rtol=1e-12)
        np.testing.assert_array_equal(got["realized_ts"], ref["realized_ts"].astype(int))
        np.testing.assert_array_equal(got["hit"], (ref["prob"] > 0.5) == up)
        loss = -(up * np.log(p) + (~up) * np.log(1 - p))
        np.testing.assert_allclose(got["loss"], loss, rtol=1e-12)
        strat = position * ref["realized"] - (position != 0) * COST_BPS / 1e4
        np.testing.assert_allclose(got["strategy_return"], strat, rtol=1e-12, atol=1e-15)
        # the direction label is the one training uses (simple return > 0, ties down)
        labels = make_labels(bars, horizon=h).set_index("ts_ms").loc[ref["ts_ms"], "label"]
        np.testing.assert_array_equal((got["realized_return"] > 0).astype(int), labels)


def test_tie_counts_as_down_and_half_does_not_trade() -> None:
    joiner = OutcomeJoiner(horizons=(1,), cost_bps=5.0)
    joiner.on_bar(0, 50.0)
    joiner.add_predictions([prediction(0, 0.5), prediction(0, 0.7, model="b")])
    flat, up_call = joiner.on_bar(1, 50.0)
    assert flat["hit"] is True
    assert flat["strategy_return"] == 0.0
    assert up_call["hit"] is False
    assert up_call["strategy_return"] == pytest.approx(-5e-4)
    assert flat["loss"] == pytest.approx(log_loss_one(0.5, False))


def test_features_and_metadata_travel_with_the_outcome() -> None:
    joiner = OutcomeJoiner(horizons=(1,))
    joiner.on_bar(0, 10.0)
    pred = prediction(0, 0.6, features=[1.0, 2.0]) | {"correlation_id": "c1"}
    joiner.add_predictions([pred])
    (o,) = joiner.on_bar(1, 11.0)
    assert o["features"] == [1.0, 2.0]
    assert (o["correlation_id"], o["feature_set_version"], o["role"]) == ("c1", "fs1", "CHAMPION")


def test_pickle_round_trip_mid_stream() -> None:
    bars = _bars(120)
    probs = np.random.default_rng(5).uniform(size=len(bars))
    a = OutcomeJoiner(horizons=(1, 5), cost_bps=COST_BPS)
    out_a: list[dict] = []
    out_b: list[dict] = []
    b = None
    for i, (ts, close) in enumerate(zip(bars["ts_ms"], bars["close"], strict=True)):
        if i == 60:
            b = pickle.loads(pickle.dumps(a))
            assert len(b) == len(a)
            assert b.n_bars == a.n_bars
        for joiner, out in ((a, out_a), (b, out_b)):
            if joiner is None:
                continue
            out += joiner.on_bar(int(ts), float(close))
            out += joiner.add_predictions(
                [prediction(int(ts), probs[i], horizon=h) for h in (1, 5)]
            )
    tail = [o for o in out_a if o["realized_ts"] >= bars["ts_ms"][60]]
    assert out_b == tail
    assert len(tail) > 100


def test_state_is_bounded_by_the_horizon() -> None:
    joiner = OutcomeJoiner(horizons=(1, 5))
    sizes = []
    for i in range(5_000):
        joiner.on_bar(i, 100.0 + (i % 7))
        joiner.add_predictions(
            [prediction(i, 0.6, horizon=h, model=m) for h in (1, 5) for m in ("a", "b")]
        )
        if i in (100, 4_999):
            sizes.append(len(pickle.dumps(joiner)))
    assert len(joiner) <= 2 * (1 + 5)  # models × pending bars of each horizon
    assert len(joiner._bars) == 6
    assert sizes[1] <= sizes[0] * 1.05


def test_bad_input_is_counted_not_raised() -> None:
    joiner = OutcomeJoiner(horizons=(1,), max_pending=2)
    assert joiner.on_bar(0, float("nan")) == []
    joiner.on_bar(1, 10.0)
    assert joiner.on_bar(1, 11.0) == []  # duplicate bar
    joiner.add_predictions([prediction(99, 0.6), prediction(1, 1.5), prediction(1, 0.6, horizon=3)])
    joiner.add_predictions([prediction(1, 0.6, model=m) for m in "abc"])
    assert len(joiner) == 2
    assert joiner.dropped == {"bad_close": 1, "stale_bar": 1, "unknown_bar": 1, "bad_prob": 1,
                              "bad_horizon": 1, "overflow": 1}  # fmt: skip


def test_duplicate_prediction_is_idempotent_and_late_one_resolves_now() -> None:
    joiner = OutcomeJoiner(horizons=(1, 2))
    joiner.on_bar(0, 10.0)
    joiner.add_predictions([prediction(0, 0.6)] * 3)
    assert len(joiner) == 1
    assert len(joiner.on_bar(1, 11.0)) == 1
    joiner.on_bar(2, 12.0)
    (late,) = joiner.add_predictions([prediction(0, 0.6, horizon=2)])
    assert late["realized_ts"] == 2
    assert late["realized_return"] == pytest.approx(math.log(1.2))
