"""Strategies against small cases computed by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finance.metrics import total_return, turnover
from finance.strategies import (
    BacktestError,
    apply_limits,
    backtest,
    sign_positions,
    threshold_positions,
    to_wide,
    top_bottom_k_positions,
)

IDX = pd.Index([10, 20, 30], name="ts_ms")


def test_sign_strategy_with_costs_by_hand() -> None:
    prob = pd.DataFrame({"A": [0.7, 0.4, 0.6], "B": [0.3, 0.5, np.nan]}, index=IDX)
    rets = pd.DataFrame({"A": [0.01, 0.02, -0.01], "B": [-0.02, 0.03, 0.05]}, index=IDX)
    pos = sign_positions(prob, center=0.5)
    expected_pos = pd.DataFrame({"A": [0.5, -0.5, 1.0], "B": [-0.5, 0.0, 0.0]}, index=IDX)
    pd.testing.assert_frame_equal(pos, expected_pos)

    res = backtest(pos, rets, cost_bps=10, slippage_bps=5)
    np.testing.assert_allclose(res.gross_returns, [0.015, -0.01, -0.01])
    np.testing.assert_allclose(res.turnover, [1.0, 1.5, 1.5])
    np.testing.assert_allclose(res.costs, [0.0015, 0.00225, 0.00225])
    np.testing.assert_allclose(res.returns, [0.0135, -0.01225, -0.01225])
    np.testing.assert_allclose(res.exposure, [1.0, 0.5, 1.0])
    np.testing.assert_allclose(res.net_exposure, [0.0, -0.5, 1.0])
    assert turnover(res.positions) == pytest.approx(res.turnover.mean())


def test_unnormalised_long_only_sign() -> None:
    scores = pd.DataFrame({"A": [1.0, -2.0, 0.0]}, index=IDX)
    pos = sign_positions(scores, long_only=True, normalize=False)
    assert pos["A"].tolist() == [1.0, 0.0, 0.0]


def test_threshold_positions() -> None:
    prob = pd.DataFrame({"A": [0.6, 0.5, 0.4], "B": [0.56, 0.44, np.nan]}, index=IDX)
    raw = threshold_positions(prob, normalize=False)
    assert raw["A"].tolist() == [1.0, 0.0, -1.0]
    assert raw["B"].tolist() == [1.0, -1.0, 0.0]
    norm = threshold_positions(prob)
    assert norm.loc[30].tolist() == [-1.0, 0.0]  # one scored name: full weight
    assert norm.loc[10].tolist() == [0.5, 0.5]
    with pytest.raises(BacktestError):
        threshold_positions(prob, upper=0.4, lower=0.6)


def test_top_bottom_k() -> None:
    scores = pd.DataFrame(
        [[5, 1, 3, 4, 2], [np.nan, 1, np.nan, 3, 2], [1, 1, 1, 1, 1]],
        columns=list("ABCDE"),
        dtype=float,
    )
    ls = top_bottom_k_positions(scores, 2)
    assert ls.iloc[0].tolist() == [0.25, -0.25, 0.0, 0.25, -0.25]
    assert ls.iloc[1].tolist() == [0.0, -0.5, 0.0, 0.5, 0.0]  # k shrinks to 1
    assert ls.iloc[2].tolist() == [0.25, 0.25, 0.0, -0.25, -0.25]  # ties: column order
    np.testing.assert_allclose(ls.abs().sum(axis=1), 1.0)
    np.testing.assert_allclose(ls.sum(axis=1), 0.0)
    lo = top_bottom_k_positions(scores, 2, long_only=True)
    assert lo.iloc[0].tolist() == [0.5, 0.0, 0.0, 0.5, 0.0]
    with pytest.raises(BacktestError):
        top_bottom_k_positions(scores, 0)


def test_limits() -> None:
    w = pd.DataFrame([[0.8, -0.6, 0.1], [0.1, 0.1, 0.1]])
    clipped = apply_limits(w, max_position=0.5)
    assert clipped.iloc[0].tolist() == [0.5, -0.5, 0.1]
    both = apply_limits(w, max_position=0.5, max_gross=0.55)
    np.testing.assert_allclose(both.iloc[0], [0.25, -0.25, 0.05])
    np.testing.assert_allclose(both.iloc[1], [0.1, 0.1, 0.1])  # under the cap: untouched


def test_backtest_applies_limits_and_aligns_missing_returns() -> None:
    pos = pd.DataFrame({"A": [2.0, 2.0]}, index=[1, 2])
    rets = pd.DataFrame({"A": [0.1]}, index=[1])  # no return for ts 2: earns 0
    res = backtest(pos, rets, max_position=1.0)
    assert res.returns.tolist() == pytest.approx([0.1, 0.0])
    assert total_return(res.returns) == pytest.approx(0.1)


def test_zero_cost_flat_positions_earn_nothing() -> None:
    pos = pd.DataFrame({"A": [0.0, 0.0]}, index=[1, 2])
    rets = pd.DataFrame({"A": [0.5, -0.5]}, index=[1, 2])
    res = backtest(pos, rets, cost_bps=100)
    assert res.returns.tolist() == [0.0, 0.0]


def test_bad_input_is_a_typed_error() -> None:
    pos = pd.DataFrame({"A": [1.0, 1.0]}, index=[2, 1])
    with pytest.raises(BacktestError) as exc:
        backtest(pos, pos)
    assert exc.value.reason == "unsorted"
    with pytest.raises(BacktestError):
        backtest(pos.sort_index(), pos, cost_bps=-1)
    long = pd.DataFrame({"symbol": ["A", "A"], "ts_ms": [1, 1], "p": [0.1, 0.2]})
    with pytest.raises(BacktestError):
        to_wide(long, "p")
    with pytest.raises(BacktestError):
        to_wide(long, "missing")


def test_to_wide_sorts() -> None:
    long = pd.DataFrame({"symbol": ["B", "A", "A"], "ts_ms": [2, 2, 1], "p": [1.0, 2.0, 3.0]})
    wide = to_wide(long, "p")
    assert wide.index.tolist() == [1, 2]
    assert wide.loc[2, "A"] == 2.0
    assert np.isnan(wide.loc[1, "B"])
