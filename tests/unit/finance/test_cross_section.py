"""Qlib-layout cross-sectional metrics against independent references (scipy, pandas)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from finance.cross_section import (
    daily_ic,
    ir_of,
    long_short_topk,
    risk_analysis,
    signal_quality,
    topk_dropout,
)
from finance.strategies import BacktestError


def panel(seed: int, dates: int = 40, names: int = 30, signal: float = 0.3) -> pd.DataFrame:
    """A long frame with a partly predictive score, ties, NaNs and a thin date."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(dates):
        score = rng.standard_normal(names)
        ret = signal * score * 0.01 + rng.standard_normal(names) * 0.01
        score = np.round(score, 1)  # ties for the ranks
        score[rng.integers(0, names, 2)] = np.nan
        ret[rng.integers(0, names, 2)] = np.nan
        for j in range(names):
            rows.append((d * 1000, f"S{j:02d}", score[j], ret[j]))
    frame = pd.DataFrame(rows, columns=["ts_ms", "symbol", "score", "fwd_return"])
    # a date with two usable names only: skipped (min_names = 3)
    thin = pd.DataFrame({"ts_ms": [99_000] * 2, "symbol": ["S00", "S01"],
                         "score": [0.1, 0.2], "fwd_return": [0.01, 0.02]})  # fmt: skip
    return pd.concat([frame, thin], ignore_index=True)


def scipy_daily(frame: pd.DataFrame, method: str) -> pd.Series:
    out = {}
    for date, g in frame.groupby("ts_ms"):
        g = g.dropna(subset=["score", "fwd_return"])
        if len(g) < 3:
            continue
        corr = stats.pearsonr if method == "pearson" else stats.spearmanr
        out[date] = float(corr(g["score"], g["fwd_return"])[0])
    return pd.Series(out, dtype=float)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_daily_ic_equals_scipy_per_date(seed: int, method: str) -> None:
    frame = panel(seed)
    ours = daily_ic(frame["score"], frame["fwd_return"], frame["ts_ms"], method)
    ref = scipy_daily(frame, method)
    assert list(ours.index) == list(ref.index)
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", [4, 5])
def test_signal_quality_is_mean_over_std_not_annualised(seed: int) -> None:
    frame = panel(seed)
    q = signal_quality(frame["score"], frame["fwd_return"], frame["ts_ms"])
    ic, rank = scipy_daily(frame, "pearson"), scipy_daily(frame, "spearman")
    assert q.ic == pytest.approx(ic.mean(), rel=1e-10)
    assert q.icir == pytest.approx(ic.mean() / ic.std(), rel=1e-10)  # pandas std: ddof=1
    assert q.rank_ic == pytest.approx(rank.mean(), rel=1e-10)
    assert q.rank_icir == pytest.approx(rank.mean() / rank.std(), rel=1e-10)
    assert q.n_dates == 40
    assert q.ic > 0.1  # the planted signal is seen


def test_ir_of_degenerate_input_is_nan() -> None:
    assert math.isnan(ir_of(pd.Series([0.1])))
    assert math.isnan(ir_of(pd.Series([0.1, 0.1, 0.1])))


def qlib_topk_dropout(scores: pd.DataFrame, k: int, n_drop: int) -> pd.DataFrame:
    """A transcription of TopkDropoutStrategy's pandas selection (all names scored)."""
    held: pd.Index = pd.Index([])
    out = pd.DataFrame(0.0, index=scores.index, columns=scores.columns)
    for date, pred in scores.iterrows():
        last = pred.reindex(held).sort_values(ascending=False, kind="stable").index
        rest = pred[~pred.index.isin(last)].sort_values(ascending=False, kind="stable")
        today = rest.index[: n_drop + k - len(last)]
        comb = pred.reindex(last.union(today)).sort_values(ascending=False, kind="stable").index
        sell = last[last.isin(comb[-n_drop:])] if len(comb) else last[:0]
        left = last[~last.isin(sell)]
        buy = today[: len(sell) + k - len(last)]
        held = left.append(buy)
        out.loc[date, held] = 1.0
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_topk_dropout_follows_qlibs_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = pd.DataFrame(rng.standard_normal((30, 25)), columns=[f"S{j}" for j in range(25)])
    ours = topk_dropout(scores, k=6, n_drop=2)
    pd.testing.assert_frame_equal(ours, qlib_topk_dropout(scores, 6, 2))
    assert (ours.sum(axis=1) == 6).all()
    swaps = ours.diff().abs().sum(axis=1).iloc[1:] / 2
    assert swaps.max() <= 2
    assert swaps.sum() > 0


def test_topk_without_dropout_is_the_daily_top_k() -> None:
    rng = np.random.default_rng(7)
    scores = pd.DataFrame(rng.standard_normal((10, 12)))
    scores.iloc[3, 4] = np.nan
    held = topk_dropout(scores, k=3)
    for i in range(10):
        top = scores.iloc[i].dropna().nlargest(3).index
        assert set(held.columns[held.iloc[i] == 1.0]) == set(top)


def test_a_held_name_without_a_score_is_sold() -> None:
    scores = pd.DataFrame({"A": [3.0, np.nan], "B": [2.0, 2.0], "C": [1.0, 1.0]})
    held = topk_dropout(scores, k=1, n_drop=1)
    assert held.to_numpy().tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]


def test_long_short_returns_and_costs_by_hand() -> None:
    rng = np.random.default_rng(3)
    dates, names, k, cost = 20, 16, 3, 10.0
    scores = pd.DataFrame(rng.standard_normal((dates, names)))
    nxt = pd.DataFrame(rng.standard_normal((dates, names)) * 0.01)
    book = long_short_topk(scores, nxt, k, None, cost)
    expected, prev = [], np.zeros(names)
    for i in range(dates):
        row = scores.iloc[i].to_numpy()
        order = np.argsort(-row, kind="stable")
        w = np.zeros(names)
        w[order[:k]] += 1.0 / k
        w[order[::-1][:k]] -= 1.0 / k
        turn = np.abs(w - prev).sum()
        expected.append(float(w @ nxt.iloc[i].to_numpy()) - turn * cost / 1e4)
        prev = w
    np.testing.assert_allclose(book.returns.to_numpy(), expected, rtol=1e-12, atol=1e-15)
    assert book.net_exposure.abs().max() < 1e-12  # dollar neutral
    assert book.exposure.iloc[0] == pytest.approx(2.0)
    with pytest.raises(BacktestError):
        long_short_topk(scores, nxt, 9)


@pytest.mark.parametrize("seed", [0, 1])
def test_risk_analysis_equals_pandas(seed: int) -> None:
    r = pd.Series(np.random.default_rng(seed).standard_normal(300) * 0.01 + 0.0003)
    ours = risk_analysis(r.to_numpy())
    wealth = r.cumsum()
    assert ours["annualized_return"] == pytest.approx(r.mean() * 252, rel=1e-12)
    assert ours["information_ratio"] == pytest.approx(r.mean() / r.std() * math.sqrt(252))
    assert ours["max_drawdown"] == pytest.approx((wealth - wealth.cummax()).min(), rel=1e-12)
    assert ours["max_drawdown"] < 0


def test_risk_analysis_of_nothing_is_nan() -> None:
    assert all(math.isnan(v) for v in risk_analysis([]).values())
