"""Every metric against an independent computation (other formula, scipy, sklearn, statsmodels)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss
from statsmodels.stats.proportion import proportion_confint

from finance import metrics as m

PPY = 252
KNOWN = [0.1, -0.05, 0.02, -0.1, 0.05]


def random_returns(seed: int, n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_t(4, size=n) * 0.01 + 0.0003


# ------------------------------------------------------------------ independent references


def ref_max_drawdown(r: list[float]) -> tuple[float, int]:
    equity, peak, worst, run, longest = 1.0, 1.0, 0.0, 0, 0
    for x in r:
        equity *= 1 + x
        peak = max(peak, equity)
        worst = max(worst, (peak - equity) / peak)
        run = run + 1 if equity < peak else 0
        longest = max(longest, run)
    return worst, longest


def ref_sortino(r: list[float], ppy: int) -> float:
    down = [min(x, 0.0) ** 2 for x in r]
    return statistics.fmean(r) / math.sqrt(statistics.fmean(down)) * math.sqrt(ppy)


# ------------------------------------------------------------------ known inputs


def test_known_case_by_hand() -> None:
    assert m.total_return(KNOWN) == pytest.approx(1.1 * 0.95 * 1.02 * 0.9 * 1.05 - 1)
    assert m.total_return(KNOWN) == pytest.approx(0.0072755)
    assert m.max_drawdown(KNOWN) == pytest.approx(1 - 0.95931 / 1.1)
    assert m.max_drawdown_duration(KNOWN) == 4
    assert m.hit_rate(KNOWN) == pytest.approx(0.6)
    assert m.profit_factor(KNOWN) == pytest.approx(0.17 / 0.15)
    # historical 95 % VaR by hand: sorted [-0.1, -0.05, ...], position 0.05 * 4 = 0.2
    assert m.var_historical(KNOWN, 0.95) == pytest.approx(-(-0.1 + 0.2 * 0.05))
    assert m.cvar_historical(KNOWN, 0.95) == pytest.approx(0.1)


def test_drawdown_starts_from_initial_capital() -> None:
    assert m.max_drawdown([-0.1, 0.05]) == pytest.approx(0.1)
    assert m.max_drawdown_duration([-0.1, 0.05, 0.06]) == 2


# ------------------------------------------------------------------ random inputs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_return_and_risk_metrics_match_references(seed: int) -> None:
    r = random_returns(seed)
    s = pd.Series(r)
    assert m.total_return(r) == pytest.approx(math.expm1(np.log1p(r).sum()), rel=1e-10)
    assert m.annualized_return(r) == pytest.approx(math.expm1(np.log1p(r).mean() * PPY), rel=1e-10)
    assert m.volatility(r) == pytest.approx(statistics.stdev(r) * math.sqrt(PPY), rel=1e-10)
    assert m.sharpe_ratio(r) == pytest.approx(
        statistics.fmean(r) / statistics.stdev(r) * math.sqrt(PPY), rel=1e-10
    )
    assert m.sharpe_ratio(r, risk_free=0.0001) == pytest.approx(
        (s - 0.0001).mean() / (s - 0.0001).std() * math.sqrt(PPY), rel=1e-10
    )
    assert m.sortino_ratio(r) == pytest.approx(ref_sortino(list(r), PPY), rel=1e-10)
    mdd, dur = ref_max_drawdown(list(r))
    assert m.max_drawdown(r) == pytest.approx(mdd, rel=1e-10)
    assert m.max_drawdown_duration(r) == dur
    assert m.calmar_ratio(r) == pytest.approx(m.annualized_return(r) / mdd, rel=1e-10)
    gains, losses = sum(x for x in r if x > 0), -sum(x for x in r if x < 0)
    assert m.profit_factor(r) == pytest.approx(gains / losses, rel=1e-10)
    assert m.hit_rate(r) == pytest.approx(sum(x > 0 for x in r) / sum(x != 0 for x in r))


@pytest.mark.parametrize("level", [0.95, 0.99])
@pytest.mark.parametrize("seed", [3, 4])
def test_var_cvar_match_references(level: float, seed: int) -> None:
    r = random_returns(seed, 1000)
    s = pd.Series(r)
    q = s.quantile(1 - level)
    assert m.var_historical(r, level) == pytest.approx(-q, rel=1e-10)
    assert m.cvar_historical(r, level) == pytest.approx(-s[s <= q].mean(), rel=1e-10)
    dist = stats.norm(loc=s.mean(), scale=s.std())
    assert m.var_gaussian(r, level) == pytest.approx(-dist.ppf(1 - level), rel=1e-9)
    tail_mean = dist.expect(lambda x: x, ub=dist.ppf(1 - level), conditional=True)
    assert m.cvar_gaussian(r, level) == pytest.approx(-tail_mean, rel=1e-6)
    assert m.cvar_historical(r, level) >= m.var_historical(r, level)


def test_turnover_and_exposure_match_pandas() -> None:
    rng = np.random.default_rng(7)
    w = pd.DataFrame(rng.normal(size=(50, 4))).where(rng.random((50, 4)) > 0.2)
    filled = w.fillna(0.0)
    ref_turn = filled.diff().fillna(filled).abs().sum(axis=1).mean()
    assert m.turnover(w) == pytest.approx(ref_turn, rel=1e-12)
    assert m.exposure(w) == pytest.approx(filled.abs().sum(axis=1).mean(), rel=1e-12)
    assert m.turnover([1, 1, -1, 0]) == pytest.approx((1 + 0 + 2 + 1) / 4)
    assert m.time_in_market([1, 0, 0, -1]) == pytest.approx(0.5)


@pytest.mark.parametrize("method", ["pearson", "spearman"])
def test_information_coefficient_matches_scipy(method: str) -> None:
    rng = np.random.default_rng(11)
    n_periods, n_names = 40, 8
    pred = rng.normal(size=n_periods * n_names)
    realized = 0.3 * pred + rng.normal(size=pred.size)
    period = np.repeat(np.arange(n_periods), n_names)
    res = m.information_coefficient(pred, realized, period, method=method)
    corr = stats.pearsonr if method == "pearson" else stats.spearmanr
    per = [corr(pred[period == k], realized[period == k])[0] for k in range(n_periods)]
    test = stats.ttest_1samp(per, 0.0)
    assert res.n_periods == n_periods
    np.testing.assert_allclose(res.per_period.to_numpy(), per, rtol=1e-10)
    assert res.mean == pytest.approx(np.mean(per), rel=1e-10)
    assert res.t_stat == pytest.approx(test.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(test.pvalue, rel=1e-6, abs=1e-300)


def test_ic_skips_thin_or_constant_periods() -> None:
    res = m.information_coefficient([1, 2, 3, 1, 1, 1], [1, 2, 4, 5, 6, 7], [0, 0, 0, 1, 1, 1])
    assert res.n_periods == 1
    assert res.mean == pytest.approx(stats.pearsonr([1, 2, 3], [1, 2, 4])[0])
    assert math.isnan(res.t_stat)


@pytest.mark.parametrize(("hits", "n"), [(0, 10), (7, 10), (10, 10), (530, 1000)])
def test_wilson_matches_statsmodels(hits: int, n: int) -> None:
    lo, hi = m.wilson_interval(hits, n, 0.95)
    ref_lo, ref_hi = proportion_confint(hits, n, alpha=0.05, method="wilson")
    assert lo == pytest.approx(ref_lo, abs=1e-12)
    assert hi == pytest.approx(ref_hi, abs=1e-12)


def test_directional_accuracy() -> None:
    acc = m.directional_accuracy([1, 0, 1, 1, 0], [0.3, -0.1, -0.2, 0.5, 0.1])
    assert (acc.hits, acc.n) == (3, 5)
    assert acc.accuracy == pytest.approx(0.6)
    ref = proportion_confint(3, 5, alpha=0.05, method="wilson")
    assert (acc.lower, acc.upper) == pytest.approx(ref)
    assert m.directional_accuracy([1, np.nan], [1, 1]).n == 1


def test_classification_metrics_match_references() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.5 + 0.2 * (y - 0.5) + rng.normal(0, 0.2, 400), 0.01, 0.99)
    u = stats.mannwhitneyu(p[y == 1], p[y == 0]).statistic
    assert m.auc(y, p) == pytest.approx(u / ((y == 1).sum() * (y == 0).sum()), rel=1e-12)
    assert m.log_loss(y, p) == pytest.approx(sk_log_loss(y, p, labels=[0, 1]), rel=1e-10)
    assert m.brier_score(y, p) == pytest.approx(brier_score_loss(y, p), rel=1e-12)
    assert math.isnan(m.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    assert m.log_loss([1], [1.0]) == pytest.approx(-math.log(1 - 1e-15), abs=1e-12)


# ------------------------------------------------------------------ edge cases


SCALARS = [
    m.total_return, m.annualized_return, m.volatility, m.sharpe_ratio, m.sortino_ratio,
    m.calmar_ratio, m.max_drawdown, m.max_drawdown_duration, m.var_historical,
    m.cvar_historical, m.var_gaussian, m.cvar_gaussian, m.profit_factor, m.hit_rate,
    m.turnover, m.exposure,
]  # fmt: skip


@pytest.mark.parametrize("fn", SCALARS)
def test_empty_and_nan_only_give_nan(fn) -> None:  # type: ignore[no-untyped-def]
    assert math.isnan(fn([]))
    if fn not in (m.turnover, m.exposure):
        assert math.isnan(fn([np.nan, np.inf]))


def test_zero_volatility_and_all_positive() -> None:
    flat = [0.01] * 20
    assert m.volatility(flat) == pytest.approx(0.0)
    assert math.isnan(m.sharpe_ratio(flat))
    assert math.isnan(m.sortino_ratio(flat))  # no downside
    assert m.max_drawdown(flat) == 0.0
    assert m.max_drawdown_duration(flat) == 0.0
    assert math.isnan(m.calmar_ratio(flat))
    assert math.isnan(m.profit_factor(flat))  # no loss
    assert m.hit_rate(flat) == 1.0
    assert math.isnan(m.hit_rate([0.0, 0.0]))
    assert m.annualized_return([-1.0, 0.5]) == -1.0


def test_non_finite_values_are_dropped() -> None:
    assert m.total_return([0.1, np.nan, 0.1]) == pytest.approx(0.21)


def test_summary_has_every_key_and_never_raises() -> None:
    r = random_returns(9, 300)
    y = (r > 0).astype(int)
    p = np.clip(0.5 + 10 * r, 0, 1)
    full = m.summary(
        r, positions=np.ones(300), y_true=y, y_prob=p, realized=r,
        period=np.repeat(np.arange(60), 5),
    )  # fmt: skip
    assert full["sharpe"] == pytest.approx(m.sharpe_ratio(r))
    assert full["var_hist_99"] == pytest.approx(m.var_historical(r, 0.99))
    assert full["cvar_gauss_95"] == pytest.approx(m.cvar_gaussian(r, 0.95))
    assert full["accuracy"] == pytest.approx(np.mean((p > 0.5) == (y == 1)))
    assert full["turnover"] == pytest.approx(1 / 300)
    assert full["ic_n"] == 60
    assert all(isinstance(v, float) for v in full.values())
    empty = m.summary([])
    assert set(empty) == set(full)
    counts = {"n_periods", "n_predictions", "ic_n", "rank_ic_n"}
    assert all(math.isnan(v) for k, v in empty.items() if k not in counts)
    assert all(empty[k] == 0.0 for k in counts)
