"""ARIMA per symbol: the numpy Kalman step against statsmodels' own one-step forecasts."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from statsmodels.tsa.arima.model import ARIMA

from training.arima import ARIMAModel, advance, initial, prob_up, state_space_of

TOL = 1e-9


def arma_series(n: int, seed: int, missing: tuple[int, ...] = ()) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.normal(scale=0.01, size=n)
    y = np.empty(n)
    y[0] = e[0]
    for t in range(1, n):
        y[t] = 0.0004 + 0.35 * y[t - 1] + e[t] + 0.25 * e[t - 1]
    y[list(missing)] = np.nan
    return y


@pytest.mark.parametrize(("order", "seed"), [((1, 1), 0), ((2, 1), 1), ((1, 0), 2), ((0, 2), 3)])
def test_filter_equals_statsmodels_one_step_predictions(order: tuple[int, int], seed: int) -> None:
    y = arma_series(400, seed, missing=(0, 7, 250))
    fitted = ARIMA(y[:300], order=(order[0], 0, order[1]), trend="c").fit()
    ss = state_space_of(fitted)
    state, means, variances = initial(ss), [], []
    for value in y:
        state, mean, var = advance(ss, state, float(value))
        means.append(mean)
        variances.append(var)
    # statsmodels: the same parameters over the whole series (missing values included)
    prediction = fitted.apply(y).get_prediction(start=1, end=len(y))
    np.testing.assert_allclose(means, prediction.predicted_mean, rtol=0, atol=TOL)
    np.testing.assert_allclose(variances, prediction.var_pred_mean, rtol=0, atol=TOL)
    # and the forecast after extending the fitted result by the stream's next 50 returns
    extended = fitted.extend(y[300:350])
    assert abs(extended.forecast(1)[0] - means[349]) <= TOL


def test_prob_up_is_the_gaussian_tail() -> None:
    for mean, var in [(0.001, 1e-4), (-0.02, 4e-4), (0.0, 1.0)]:
        assert prob_up(mean, var) == pytest.approx(norm.sf(0.0, mean, np.sqrt(var)), abs=1e-12)
    assert prob_up(float("nan"), 1.0) == 0.5
    assert prob_up(0.1, 0.0) == 0.5


def frame(n: int = 240) -> pd.DataFrame:
    parts = [
        pd.DataFrame({"symbol": s, "ts_ms": np.arange(n) * 60_000, "ret_1": arma_series(n, i),
                      "other": np.random.default_rng(i).normal(size=n)})
        for i, s in enumerate(["AAA", "BBB", "CCC"])
    ]  # fmt: skip
    return pd.concat(parts).sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def test_stream_steps_equal_the_offline_sequence_in_any_batching() -> None:
    data = frame()
    model = ARIMAModel(p=1, q=1).fit(data, (data["ret_1"] > 0).astype(int).to_numpy())
    assert set(model.symbols) == {"AAA", "BBB", "CCC"}
    offline = model.predict_proba(data)
    matrix = data[["ret_1", "other"]].to_numpy()
    symbols = data["symbol"].tolist()
    states: dict[str, object] = {}
    live = []
    for lo, hi in [(0, 1), (1, 50), (50, 51), (51, 400), (400, len(data))]:
        live.extend(model.step(matrix[lo:hi], symbols[lo:hi], states))
        states = pickle.loads(pickle.dumps(states))  # checkpoint and restore between batches
    np.testing.assert_array_equal(live, offline)
    assert 0.2 < float(np.mean(offline)) < 0.8
    assert model.step(matrix[:1], ["UNSEEN"], {}).tolist() == [0.5]


def test_a_bad_state_restarts_the_symbol_and_never_crashes() -> None:
    data = frame(120)
    model = ARIMAModel().fit(data, (data["ret_1"] > 0).astype(int).to_numpy())
    matrix = data[["ret_1", "other"]].to_numpy()[:1]
    fresh = model.step(matrix, ["AAA"], {})
    assert model.step(matrix, ["AAA"], {"AAA": "garbage"}).tolist() == fresh.tolist()
