"""Diebold–Mariano against statsmodels' HAC OLS, Welch against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from online_learning.stats import default_lag, diebold_mariano, welch_test


def _ar1_losses(seed: int, n: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n)
    d = np.empty(n)
    d[0] = e[0]
    for t in range(1, n):  # autocorrelated differentials: the HAC lags matter
        d[t] = 0.6 * d[t - 1] + e[t]
    champ = 1.0 + rng.exponential(size=n)
    return champ, champ - (d + shift)


@pytest.mark.parametrize(("seed", "lag"), [(0, 0), (1, 3), (2, 7), (3, 12)])
def test_dm_equals_ols_on_a_constant_with_hac(seed: int, lag: int) -> None:
    champ, chall = _ar1_losses(seed, 400, 0.1)
    d = champ - chall
    ols = sm.OLS(d, np.ones_like(d)).fit(
        cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False}
    )
    got = diebold_mariano(champ, chall, lag=lag, hln=False)
    assert got.statistic == pytest.approx(float(ols.tvalues[0]), rel=1e-10)
    assert got.p_value == pytest.approx(float(ols.pvalues[0]), rel=1e-8)
    one_sided = diebold_mariano(champ, chall, lag=lag, hln=False, alternative="greater")
    assert one_sided.p_value == pytest.approx(stats.norm.sf(got.statistic), rel=1e-10)
    assert got.mean_diff == pytest.approx(d.mean())
    assert got.effect == pytest.approx(d.mean() / d.std(ddof=1))


def test_hln_correction() -> None:
    champ, chall = _ar1_losses(4, 60, 0.3)
    h = 3
    raw = diebold_mariano(champ, chall, horizon=h, hln=False)
    adj = diebold_mariano(champ, chall, horizon=h, hln=True)
    n = 60
    assert raw.lag == adj.lag == default_lag(n, h) == 3
    factor = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    assert adj.statistic == pytest.approx(raw.statistic * factor)
    assert adj.p_value == pytest.approx(2 * stats.t.sf(abs(adj.statistic), df=n - 1))
    assert adj.p_value > raw.p_value  # the correction is conservative


def test_default_lag() -> None:
    assert default_lag(1000) == 10
    assert default_lag(999) == 9
    assert default_lag(27, horizon=1) == 3
    assert default_lag(100, horizon=10) == 9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_welch_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    champ = rng.normal(0.0, 1.0, 120)
    chall = rng.normal(0.2, 2.5, 90)
    ref = stats.ttest_ind(chall, champ, equal_var=False)
    got = welch_test(champ, chall)
    assert got.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert got.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    assert got.df == pytest.approx(ref.df, rel=1e-10)
    ref_g = stats.ttest_ind(chall, champ, equal_var=False, alternative="greater")
    assert welch_test(champ, chall, alternative="greater").p_value == pytest.approx(ref_g.pvalue)
    cohen = (chall.mean() - champ.mean()) / math.sqrt((chall.var(ddof=1) + champ.var(ddof=1)) / 2)
    assert got.effect == pytest.approx(cohen)


def test_degenerate_inputs_do_not_raise() -> None:
    assert diebold_mariano([1.0, 2.0], [1.0, 2.0]).p_value == 1.0
    assert diebold_mariano([1.0] * 10, [1.0] * 10).p_value == 1.0  # zero variance
    assert math.isnan(welch_test([1.0], [2.0, 3.0]).statistic)
    assert welch_test([1.0, 1.0], [1.0, 1.0]).p_value == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        diebold_mariano([1.0, 2.0], [1.0])
    nan_pair = diebold_mariano([1.0, math.nan, 3.0, 4.0, 5.0], [0.0, 0.0, 1.0, 1.0, 2.0])
    assert nan_pair.n == 4
