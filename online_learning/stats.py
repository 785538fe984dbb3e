"""Tests of one forecaster against another: Diebold–Mariano and Welch, with effect sizes.

Sign convention, everywhere here: **positive means the challenger is better**.

* :func:`diebold_mariano` takes paired per-event losses of the champion and the challenger,
  forms ``d = loss_champion - loss_challenger`` and tests ``E[d] = 0`` with a
  Newey–West (Bartlett kernel) long-run variance, ``DM = mean(d) / sqrt(LRV / n)``; the
  Harvey–Leybourne–Newbold correction (``hln=True``) rescales it by
  ``sqrt((n + 1 - 2h + h(h-1)/n) / n)`` and reads p from Student's t with ``n - 1`` df.
  Autocovariances divide by ``n`` (as statsmodels' HAC does), so without HLN the statistic
  equals the t-value of an OLS of ``d`` on a constant with
  ``cov_type="HAC", cov_kwds={"maxlags": lag, "use_correction": False}``.
  Its effect size is the paired standardised mean ``mean(d) / std(d, ddof=1)``.
* :func:`welch_test` compares strategy returns with unequal variances (Welch–Satterthwaite
  df) — the same statistic as ``scipy.stats.ttest_ind(equal_var=False)``; its effect size
  is ``(mean_challenger - mean_champion) / sqrt((var_challenger + var_champion) / 2)``.

``alternative="greater"`` asks "is the challenger better?" (one-sided), ``"two-sided"`` asks
"is there any difference?". Degenerate input (too few values, zero variance) gives
``p_value = 1.0`` and a nan statistic, never an exception.

>>> r = diebold_mariano([1.0, 2.0, 3.0, 4.0, 5.0], [0.5, 1.0, 1.5, 2.0, 2.5], lag=0, hln=False)
>>> round(r.statistic, 4), round(r.mean_diff, 2)
(4.7434, 1.5)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import stats as sps

Alternative = Literal["two-sided", "greater", "less"]
NAN = float("nan")


@dataclass(frozen=True, slots=True)
class TestResult:
    """Outcome of one test: statistic, p-value, effect size and the inputs' size."""

    test: str
    statistic: float
    p_value: float
    effect: float
    n: int
    mean_diff: float
    df: float = NAN
    lag: int = 0

    __test__ = False  # not a pytest test class

    def as_dict(self) -> dict[str, float]:
        """The numbers, for a ModelEvent ``statistics`` map."""
        return {
            "statistic": self.statistic,
            "p_value": self.p_value,
            "effect": self.effect,
            "n": float(self.n),
            "mean_diff": self.mean_diff,
            "df": self.df,
            "lag": float(self.lag),
        }


def _p_value(stat: float, alternative: Alternative, df: float | None) -> float:
    dist = sps.norm if df is None else sps.t(df)
    if alternative == "greater":
        return float(dist.sf(stat))
    if alternative == "less":
        return float(dist.cdf(stat))
    return float(2.0 * dist.sf(abs(stat)))


def default_lag(n: int, horizon: int = 1) -> int:
    """Newey–West truncation lag: ``max(horizon - 1, floor(n ** (1/3)))``.

    >>> default_lag(1000), default_lag(1000, horizon=20)
    (10, 19)
    """
    return max(horizon - 1, math.floor(n ** (1.0 / 3.0) + 1e-9)) if n > 0 else 0


def newey_west_variance(d: np.ndarray, lag: int) -> float:
    """Long-run variance of ``d``: ``γ0 + 2 Σ_{k=1..lag} (1 - k/(lag+1)) γk``, γ over n."""
    n = d.size
    centred = d - d.mean()
    lrv = float(centred @ centred) / n
    for k in range(1, min(lag, n - 1) + 1):
        gamma = float(centred[k:] @ centred[:-k]) / n
        lrv += 2.0 * (1.0 - k / (lag + 1.0)) * gamma
    return lrv


def diebold_mariano(
    loss_champion: Sequence[float] | np.ndarray,
    loss_challenger: Sequence[float] | np.ndarray,
    *,
    horizon: int = 1,
    lag: int | None = None,
    hln: bool = True,
    alternative: Alternative = "two-sided",
) -> TestResult:
    """Diebold–Mariano test on paired losses (``d = champion - challenger``).

    Pairs with a non-finite side are dropped. ``lag`` defaults to :func:`default_lag`.
    """
    a = np.asarray(loss_champion, dtype=float).ravel()
    b = np.asarray(loss_challenger, dtype=float).ravel()
    if a.size != b.size:
        raise ValueError(f"paired losses differ in length: {a.size} != {b.size}")
    d = a - b
    d = d[np.isfinite(d)]
    n = int(d.size)
    use_lag = default_lag(n, horizon) if lag is None else int(lag)
    if n < 3:
        return TestResult("dm", NAN, 1.0, NAN, n, float(d.mean()) if n else NAN, NAN, use_lag)
    mean = float(d.mean())
    sd = float(d.std(ddof=1))
    lrv = newey_west_variance(d, use_lag)
    if lrv <= 1e-300 or sd <= 1e-300:
        return TestResult("dm", NAN, 1.0, NAN, n, mean, NAN, use_lag)
    stat = mean / math.sqrt(lrv / n)
    df: float | None = None
    if hln:
        h = horizon
        stat *= math.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 0.0) / n)
        df = float(n - 1)
    p = _p_value(stat, alternative, df)
    return TestResult("dm", stat, p, mean / sd, n, mean, NAN if df is None else df, use_lag)


def welch_test(
    returns_champion: Sequence[float] | np.ndarray,
    returns_challenger: Sequence[float] | np.ndarray,
    *,
    alternative: Alternative = "two-sided",
) -> TestResult:
    """Welch's t-test of ``mean(challenger) - mean(champion)`` with a Cohen's-d effect size."""
    a = np.asarray(returns_challenger, dtype=float).ravel()
    b = np.asarray(returns_champion, dtype=float).ravel()
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    n_a, n_b = int(a.size), int(b.size)
    n = min(n_a, n_b)
    if n_a < 2 or n_b < 2:
        return TestResult("welch", NAN, 1.0, NAN, n, NAN)
    mean_diff = float(a.mean() - b.mean())
    var_a, var_b = float(a.var(ddof=1)), float(b.var(ddof=1))
    se2_a, se2_b = var_a / n_a, var_b / n_b
    se2 = se2_a + se2_b
    if se2 <= 1e-300:
        return TestResult("welch", NAN, 1.0, NAN, n, mean_diff)
    stat = mean_diff / math.sqrt(se2)
    df = se2**2 / (se2_a**2 / (n_a - 1) + se2_b**2 / (n_b - 1))
    pooled = math.sqrt((var_a + var_b) / 2.0)
    effect = mean_diff / pooled if pooled > 0 else NAN
    return TestResult("welch", stat, _p_value(stat, alternative, df), effect, n, mean_diff, df)
