"""Financial and forecast-quality metrics: pure functions on per-period returns and predictions.

Conventions, decided once for every function here:

* ``returns`` are simple (not log) per-period strategy returns, e.g. ``0.01`` for +1 %.
  Non-finite entries (NaN, ±inf) are dropped before computing anything.
* ``periods_per_year`` annualises; the default, :data:`PERIODS_PER_YEAR` = 252, is trading
  days. Pass e.g. ``252 * 390`` for one-minute bars of a US session.
* Losses are reported as **positive numbers**: :func:`max_drawdown` of a 10 % fall is
  ``0.10``, and :func:`var_historical` at 95 % is the loss that returns exceed, as a positive
  fraction, only 5 % of the time (negative when even the 5 % quantile is a gain).
* Degenerate input never raises: an empty series, a zero denominator (zero volatility, no
  downside, no losses, no drawdown) or too few observations give ``nan``.

>>> r = [0.01, -0.02, 0.03]
>>> round(total_return(r), 6)
0.019494
>>> round(max_drawdown(r), 6)
0.02
>>> import math; math.isnan(sharpe_ratio([0.01, 0.01]))
True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
import pandas as pd
from scipy import stats

PERIODS_PER_YEAR = 252
NAN = float("nan")

ArrayLike: TypeAlias = np.ndarray | pd.Series | Sequence[float]


def _clean(values: ArrayLike) -> np.ndarray:
    """1-D float array with non-finite entries removed."""
    arr = np.asarray(values, dtype=float).ravel()
    return arr[np.isfinite(arr)]


def _ratio(num: float, den: float) -> float:
    if not math.isfinite(num) or not math.isfinite(den) or den == 0.0:
        return NAN
    return float(num / den)


# --------------------------------------------------------------------------- returns


def total_return(returns: ArrayLike) -> float:
    """Compounded return over the whole series: ``prod(1 + r) - 1`` (nan when empty)."""
    r = _clean(returns)
    if r.size == 0:
        return NAN
    return float(np.prod(1.0 + r) - 1.0)


def annualized_return(returns: ArrayLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Geometric annual return ``(1 + total) ** (periods_per_year / n) - 1``.

    A series that loses everything (``total <= -1``) gives ``-1.0``.
    """
    r = _clean(returns)
    if r.size == 0:
        return NAN
    growth = float(np.prod(1.0 + r))
    if growth <= 0.0:
        return -1.0
    return float(growth ** (periods_per_year / r.size) - 1.0)


def volatility(returns: ArrayLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Annualised sample standard deviation (ddof=1); nan with fewer than 2 periods."""
    r = _clean(returns)
    if r.size < 2:
        return NAN
    return float(np.std(r, ddof=1) * math.sqrt(periods_per_year))


def sharpe_ratio(
    returns: ArrayLike, periods_per_year: float = PERIODS_PER_YEAR, risk_free: float = 0.0
) -> float:
    """Annualised Sharpe ratio ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ppy)``.

    ``risk_free`` is per period. Zero volatility gives nan.
    """
    r = _clean(returns) - risk_free
    if r.size < 2:
        return NAN
    sd = float(np.std(r, ddof=1))
    if sd <= 1e-15:
        return NAN
    return float(np.mean(r) / sd * math.sqrt(periods_per_year))


def sortino_ratio(
    returns: ArrayLike, periods_per_year: float = PERIODS_PER_YEAR, target: float = 0.0
) -> float:
    """Annualised Sortino ratio ``mean(r - target) / DD * sqrt(ppy)``.

    ``DD = sqrt(mean(min(r - target, 0) ** 2))`` over *all* periods (the target downside
    deviation). Nan when no period falls below ``target`` (e.g. all-positive returns).
    """
    r = _clean(returns) - target
    if r.size < 2:
        return NAN
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if downside <= 1e-15:
        return NAN
    return float(np.mean(r) / downside * math.sqrt(periods_per_year))


def drawdown_series(returns: ArrayLike) -> np.ndarray:
    """Drawdown after each period as a positive fraction below the running peak.

    The peak starts at the initial capital (1.0), so a first-period loss is a drawdown.
    """
    r = _clean(returns)
    equity = np.cumprod(1.0 + r)
    peak = np.maximum.accumulate(np.concatenate(([1.0], equity)))[1:]
    return np.asarray(1.0 - equity / peak, dtype=float)


def max_drawdown(returns: ArrayLike) -> float:
    """Largest peak-to-trough fall of the compounded equity curve, positive (0.1 = 10 %)."""
    dd = drawdown_series(returns)
    if dd.size == 0:
        return NAN
    return float(max(dd.max(), 0.0))


def max_drawdown_duration(returns: ArrayLike) -> float:
    """Longest run of consecutive periods spent below a previous equity peak.

    A drawdown not yet recovered at the end counts up to the last period. 0 without any
    drawdown, nan when empty.
    """
    dd = drawdown_series(returns)
    if dd.size == 0:
        return NAN
    longest = run = 0
    for under in dd > 1e-15:
        run = run + 1 if under else 0
        longest = max(longest, run)
    return float(longest)


def calmar_ratio(returns: ArrayLike, periods_per_year: float = PERIODS_PER_YEAR) -> float:
    """Annualised return divided by maximum drawdown; nan without a drawdown."""
    return _ratio(annualized_return(returns, periods_per_year), max_drawdown(returns))


def rolling_sharpe(
    returns: pd.Series, window: int, periods_per_year: float = PERIODS_PER_YEAR
) -> pd.Series:
    """:func:`sharpe_ratio` over each trailing ``window`` of periods (nan until it is full).

    Non-finite returns count as missing; a window needs ``window`` finite values.
    """
    r = pd.Series(returns, dtype=float)
    r = r.where(np.isfinite(r))
    roll = r.rolling(window, min_periods=window)
    sd = roll.std(ddof=1)
    out = roll.mean() / sd.where(sd > 1e-15) * math.sqrt(periods_per_year)
    return out.rename("rolling_sharpe")


# --------------------------------------------------------------------------- tail risk


def var_historical(returns: ArrayLike, level: float = 0.95) -> float:
    """Historical Value-at-Risk: ``-quantile(r, 1 - level)`` (numpy's linear interpolation)."""
    r = _clean(returns)
    if r.size == 0:
        return NAN
    return float(0.0 - np.quantile(r, 1.0 - level))


def cvar_historical(returns: ArrayLike, level: float = 0.95) -> float:
    """Historical expected shortfall: minus the mean of returns at or below the VaR quantile."""
    r = _clean(returns)
    if r.size == 0:
        return NAN
    cutoff = np.quantile(r, 1.0 - level)
    return float(0.0 - np.mean(r[r <= cutoff]))


def var_gaussian(returns: ArrayLike, level: float = 0.95) -> float:
    """Parametric (normal) VaR: ``-(mu + sigma * Phi^-1(1 - level))`` with sample mu, sigma."""
    r = _clean(returns)
    if r.size < 2:
        return NAN
    mu, sigma = float(np.mean(r)), float(np.std(r, ddof=1))
    return float(0.0 - (mu + sigma * stats.norm.ppf(1.0 - level)))


def cvar_gaussian(returns: ArrayLike, level: float = 0.95) -> float:
    """Parametric (normal) expected shortfall: ``-(mu - sigma * phi(z) / (1 - level))``."""
    r = _clean(returns)
    if r.size < 2:
        return NAN
    mu, sigma = float(np.mean(r)), float(np.std(r, ddof=1))
    z = stats.norm.ppf(1.0 - level)
    return float(0.0 - (mu - sigma * stats.norm.pdf(z) / (1.0 - level)))


# --------------------------------------------------------------------------- trading


def profit_factor(returns: ArrayLike) -> float:
    """Sum of gains over the absolute sum of losses; nan when there is no loss."""
    r = _clean(returns)
    return _ratio(float(r[r > 0].sum()), float(-r[r < 0].sum()))


def hit_rate(returns: ArrayLike) -> float:
    """Share of *active* periods (``r != 0``) with a positive return; nan when none is active."""
    r = _clean(returns)
    active = r[r != 0.0]
    if active.size == 0:
        return NAN
    return float(np.mean(active > 0.0))


def _positions_2d(positions: ArrayLike | pd.DataFrame) -> np.ndarray:
    arr = np.asarray(positions, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    return np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)


def turnover(positions: ArrayLike | pd.DataFrame) -> float:
    """Mean per-period turnover ``sum_j |w[t, j] - w[t-1, j]|``, starting from flat.

    ``positions`` is 1-D (one asset) or periods × assets; NaN counts as flat.
    """
    w = _positions_2d(positions)
    if w.shape[0] == 0:
        return NAN
    prev = np.vstack([np.zeros((1, w.shape[1])), w[:-1]])
    return float(np.abs(w - prev).sum(axis=1).mean())


def exposure(positions: ArrayLike | pd.DataFrame) -> float:
    """Mean gross exposure ``sum_j |w[t, j]|`` per period (1.0 = fully invested)."""
    w = _positions_2d(positions)
    if w.shape[0] == 0:
        return NAN
    return float(np.abs(w).sum(axis=1).mean())


def time_in_market(positions: ArrayLike | pd.DataFrame) -> float:
    """Share of periods holding any position."""
    w = _positions_2d(positions)
    if w.shape[0] == 0:
        return NAN
    return float(np.mean(np.abs(w).sum(axis=1) > 0.0))


# --------------------------------------------------------------------------- forecasts


@dataclass(frozen=True)
class ICResult:
    """Per-period information coefficients and their t-test against zero."""

    mean: float
    std: float
    t_stat: float
    p_value: float
    n_periods: int
    per_period: pd.Series


def information_coefficient(
    predictions: ArrayLike,
    realized: ArrayLike,
    period: ArrayLike | None = None,
    method: str = "pearson",
    min_names: int = 3,
) -> ICResult:
    """Correlation of predictions with realised returns within each period, then a t-test.

    ``method`` is ``"pearson"`` (IC) or ``"spearman"`` (rank IC: Pearson of average ranks).
    Periods with fewer than ``min_names`` valid pairs or a constant side are skipped. With
    ``period=None`` all pairs form one period (a pooled IC; its t-statistic is nan).
    ``t = mean / (std(ddof=1) / sqrt(n))``, two-sided p-value from Student's t, n-1 df.
    """
    pred = np.asarray(predictions, dtype=float).ravel()
    real = np.asarray(realized, dtype=float).ravel()
    keys = np.zeros(pred.size) if period is None else np.asarray(period).ravel()
    empty = ICResult(NAN, NAN, NAN, NAN, 0, pd.Series(dtype=float))
    if pred.size == 0 or pred.size != real.size or keys.size != pred.size:
        return empty
    frame = pd.DataFrame({"p": pred, "r": real, "k": keys})
    frame = frame[np.isfinite(frame["p"]) & np.isfinite(frame["r"])]
    if method == "spearman":
        frame[["p", "r"]] = frame.groupby("k")[["p", "r"]].rank()
    grouped = frame.groupby("k", sort=True)
    size = grouped["p"].size()
    spread = grouped[["p", "r"]].max() - grouped[["p", "r"]].min()
    centred = frame[["p", "r"]] - grouped[["p", "r"]].transform("mean")
    moments = (
        pd.DataFrame(
            {
                "xy": centred["p"] * centred["r"],
                "xx": centred["p"] ** 2,
                "yy": centred["r"] ** 2,
                "k": frame["k"],
            }
        )
        .groupby("k", sort=True)
        .sum()
    )
    usable = (size >= min_names) & (spread["p"] > 0) & (spread["r"] > 0)
    moments = moments[usable]
    per = (moments["xy"] / np.sqrt(moments["xx"] * moments["yy"])).astype(float)
    n = int(per.size)
    if n == 0:
        return empty
    mean = float(per.mean())
    if n < 2:
        return ICResult(mean, NAN, NAN, NAN, n, per)
    sd = float(per.std(ddof=1))
    if sd <= 1e-15:
        return ICResult(mean, sd, NAN, NAN, n, per)
    t = mean / (sd / math.sqrt(n))
    p = float(2.0 * stats.t.sf(abs(t), df=n - 1))
    return ICResult(mean, sd, float(t), p, n, per)


def wilson_interval(hits: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; ``(nan, nan)`` when ``n == 0``."""
    if n <= 0:
        return NAN, NAN
    z = float(stats.norm.ppf(0.5 + confidence / 2.0))
    p = hits / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class AccuracyResult:
    """Directional accuracy with its Wilson confidence interval."""

    accuracy: float
    lower: float
    upper: float
    hits: int
    n: int


def directional_accuracy(
    y_true: ArrayLike, y_pred: ArrayLike, confidence: float = 0.95
) -> AccuracyResult:
    """Share of predictions whose direction (``>0`` or 1 means up) matches the outcome.

    Both inputs are binary labels or signed values; pairs with a NaN are dropped.
    """
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_pred, dtype=float).ravel()
    if t.size != p.size:
        return AccuracyResult(NAN, NAN, NAN, 0, 0)
    ok = np.isfinite(t) & np.isfinite(p)
    n = int(ok.sum())
    if n == 0:
        return AccuracyResult(NAN, NAN, NAN, 0, 0)
    hits = int(((t[ok] > 0) == (p[ok] > 0)).sum())
    lo, hi = wilson_interval(hits, n, confidence)
    return AccuracyResult(hits / n, lo, hi, hits, n)


def _binary_pairs(y_true: ArrayLike, y_prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=float).ravel()
    p = np.asarray(y_prob, dtype=float).ravel()
    if t.size != p.size:
        return np.empty(0), np.empty(0)
    ok = np.isfinite(t) & np.isfinite(p)
    return (t[ok] > 0).astype(float), np.clip(p[ok], 0.0, 1.0)


def auc(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """ROC AUC of P(up); nan when only one class is present."""
    from sklearn.metrics import roc_auc_score

    t, p = _binary_pairs(y_true, y_prob)
    if t.size == 0 or t.min() == t.max():
        return NAN
    return float(roc_auc_score(t, p))


def log_loss(y_true: ArrayLike, y_prob: ArrayLike, eps: float = 1e-15) -> float:
    """Mean binary cross-entropy in nats, probabilities clipped to ``[eps, 1 - eps]``."""
    t, p = _binary_pairs(y_true, y_prob)
    if t.size == 0:
        return NAN
    p = np.clip(p, eps, 1.0 - eps)
    return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))


def brier_score(y_true: ArrayLike, y_prob: ArrayLike) -> float:
    """Mean squared error of P(up) against the 0/1 outcome."""
    t, p = _binary_pairs(y_true, y_prob)
    if t.size == 0:
        return NAN
    return float(np.mean((p - t) ** 2))


# --------------------------------------------------------------------------- summary


def summary(
    returns: ArrayLike,
    *,
    positions: ArrayLike | pd.DataFrame | None = None,
    y_true: ArrayLike | None = None,
    y_prob: ArrayLike | None = None,
    realized: ArrayLike | None = None,
    period: ArrayLike | None = None,
    periods_per_year: float = PERIODS_PER_YEAR,
    confidence: float = 0.95,
) -> dict[str, float]:
    """Every metric of this module in one flat ``{name: float}`` with a fixed set of keys.

    ``returns``/``positions`` describe the strategy; ``y_true`` (0/1 or signed outcomes) and
    ``y_prob`` (P(up)) the classifier; ``realized`` (forward returns) with ``period`` keys the
    ICs of ``y_prob``. Missing inputs give nan for the metrics that need them.
    """
    r = _clean(returns)
    out: dict[str, float] = {
        "n_periods": float(r.size),
        "total_return": total_return(r),
        "annualized_return": annualized_return(r, periods_per_year),
        "volatility": volatility(r, periods_per_year),
        "sharpe": sharpe_ratio(r, periods_per_year),
        "sortino": sortino_ratio(r, periods_per_year),
        "calmar": calmar_ratio(r, periods_per_year),
        "max_drawdown": max_drawdown(r),
        "max_drawdown_duration": max_drawdown_duration(r),
        "profit_factor": profit_factor(r),
        "hit_rate": hit_rate(r),
    }
    for level in (0.95, 0.99):
        tag = round(level * 100)
        out[f"var_hist_{tag}"] = var_historical(r, level)
        out[f"cvar_hist_{tag}"] = cvar_historical(r, level)
        out[f"var_gauss_{tag}"] = var_gaussian(r, level)
        out[f"cvar_gauss_{tag}"] = cvar_gaussian(r, level)
    out["turnover"] = out["exposure"] = out["time_in_market"] = NAN
    if positions is not None:
        out["turnover"] = turnover(positions)
        out["exposure"] = exposure(positions)
        out["time_in_market"] = time_in_market(positions)

    acc = AccuracyResult(NAN, NAN, NAN, 0, 0)
    out["auc"] = out["log_loss"] = out["brier"] = NAN
    if y_true is not None and y_prob is not None:
        acc = directional_accuracy(y_true, np.asarray(y_prob, dtype=float) - 0.5, confidence)
        out["auc"] = auc(y_true, y_prob)
        out["log_loss"] = log_loss(y_true, y_prob)
        out["brier"] = brier_score(y_true, y_prob)
    out["accuracy"] = acc.accuracy
    out["accuracy_lower"] = acc.lower
    out["accuracy_upper"] = acc.upper
    out["n_predictions"] = float(acc.n)

    for prefix, method in (("ic", "pearson"), ("rank_ic", "spearman")):
        if y_prob is not None and realized is not None:
            ic = information_coefficient(y_prob, realized, period, method=method)
        else:
            ic = ICResult(NAN, NAN, NAN, NAN, 0, pd.Series(dtype=float))
        out[f"{prefix}_mean"] = ic.mean
        out[f"{prefix}_std"] = ic.std
        out[f"{prefix}_t"] = ic.t_stat
        out[f"{prefix}_p"] = ic.p_value
        out[f"{prefix}_n"] = float(ic.n_periods)
    return out
