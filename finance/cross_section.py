"""Cross-sectional quality of a score, in Qlib's layout: IC, Rank IC, ICIR, a top-k portfolio.

Everything here is a pure function of a *long* frame of scores and realised returns (one row
per date and symbol) or of the wide date × symbol tables :func:`finance.strategies.to_wide`
makes. The definitions are Qlib's (``qlib.contrib.eva.alpha.calc_ic`` and
``qlib.contrib.evaluate.risk_analysis``), so a table of ours sits beside theirs:

* **IC** — per date, the Pearson correlation of the score with the realised forward return
  across the symbols of that date; the table reports the mean over dates. **Rank IC** — the
  same with Spearman's correlation (Pearson of average ranks). Dates with fewer than
  ``min_names`` valid pairs or a constant side are skipped.
* **ICIR** — ``mean(IC) / std(IC, ddof=1)`` over the dates, **not annualised** (Qlib's
  ``ICIR``; multiply by ``sqrt(252)`` for an annual figure). Rank ICIR likewise.
* **Portfolio** — :func:`topk_dropout` holds the top ``k`` names of each date's score and
  swaps at most ``n_drop`` of them per date (Qlib's ``TopkDropoutStrategy``); the short leg is
  the same rule on the negated score. Each leg weighs ``1 / k`` per held name (long 1, short
  1: gross 2, dollar neutral), positions taken at date ``t`` earn the next-bar return, and
  costs are ``cost_bps`` per unit of turnover (:func:`finance.strategies.backtest`).
* **Risk** (:func:`risk_analysis`, Qlib's ``mode="sum"``): annualised return
  ``mean(r) * 252`` (arithmetic, not compounded), information ratio
  ``mean(r) / std(r, ddof=1) * sqrt(252)``, max drawdown ``min(cumsum(r) - cummax(cumsum(r)))``
  — **negative**, as Qlib prints it (``-0.104`` = −10.4 %).

>>> import pandas as pd
>>> long = pd.DataFrame({"ts_ms": [1, 1, 1, 2, 2, 2], "symbol": list("ABCABC"),
...                      "score": [0.1, 0.2, 0.3, 0.3, 0.2, 0.1],
...                      "fwd_return": [0.01, 0.02, 0.04, 0.0, 0.01, 0.02]})
>>> q = signal_quality(long["score"], long["fwd_return"], long["ts_ms"])
>>> round(q.rank_ic, 6), q.n_dates
(0.0, 2)
>>> round(risk_analysis([0.01, -0.02, 0.01])["max_drawdown"], 6)
-0.02
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from finance.metrics import ArrayLike, information_coefficient
from finance.strategies import BacktestError, BacktestResult, backtest

PERIODS_PER_YEAR = 252
NAN = float("nan")


@dataclass(frozen=True)
class SignalQuality:
    """Qlib's signal-analysis figures of one score (means over dates, ICIR not annualised)."""

    ic: float
    icir: float
    rank_ic: float
    rank_icir: float
    n_dates: int

    def to_dict(self) -> dict[str, float]:
        """Flat ``{name: value}``."""
        return {k: float(v) for k, v in asdict(self).items()}


def ir_of(per_date: pd.Series) -> float:
    """``mean / std(ddof=1)`` of per-date values; nan with fewer than 2 dates or no spread."""
    values = per_date.to_numpy(dtype=float)
    values = values[np.isfinite(values)]
    if values.size < 2:
        return NAN
    sd = float(np.std(values, ddof=1))
    return NAN if sd <= 1e-15 else float(np.mean(values) / sd)


def daily_ic(
    score: ArrayLike,
    realized: ArrayLike,
    date: ArrayLike,
    method: str = "pearson",
    min_names: int = 3,
) -> pd.Series:
    """Per-date IC (``method="pearson"``) or Rank IC (``"spearman"``), indexed by date."""
    return information_coefficient(score, realized, date, method, min_names).per_period


def signal_quality(
    score: ArrayLike, realized: ArrayLike, date: ArrayLike, min_names: int = 3
) -> SignalQuality:
    """IC, ICIR, Rank IC and Rank ICIR of ``score`` against ``realized`` per ``date``."""
    ic = daily_ic(score, realized, date, "pearson", min_names)
    rank = daily_ic(score, realized, date, "spearman", min_names)
    return SignalQuality(
        ic=float(ic.mean()) if len(ic) else NAN,
        icir=ir_of(ic),
        rank_ic=float(rank.mean()) if len(rank) else NAN,
        rank_icir=ir_of(rank),
        n_dates=len(rank),
    )


def topk_dropout(scores: pd.DataFrame, k: int, n_drop: int | None = None) -> pd.DataFrame:
    """Holdings (0/1) of Qlib's top-k dropout rule on a date × symbol score table.

    Each date, in order: held names without a score that date are sold (they do not trade);
    then, as Qlib's ``TopkDropoutStrategy``, the best ``n_drop + k - held`` unheld names are
    candidates, the held names among the ``n_drop`` worst of held ∪ candidates are sold, and
    the best candidates fill the book back to ``k``. ``n_drop=None`` (or ``>= k``) rebuys the
    top ``k`` every date. Ties break by column order.

    >>> s = pd.DataFrame({"A": [3.0, 1.0], "B": [2.0, 3.0], "C": [1.0, 2.0]})
    >>> topk_dropout(s, k=2, n_drop=1).to_numpy().tolist()
    [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    """
    if k < 1:
        raise BacktestError("bad_k", f"k must be >= 1, got {k}")
    drop = k if n_drop is None else n_drop
    if drop < 1:
        raise BacktestError("bad_n_drop", f"n_drop must be >= 1, got {n_drop}")
    values = scores.to_numpy(dtype=float)
    out = np.zeros(values.shape)
    held: list[int] = []
    for i, row in enumerate(values):
        finite = np.isfinite(row)
        held = [j for j in held if finite[j]]
        is_held = np.zeros(row.size, dtype=bool)
        is_held[held] = True
        free = np.flatnonzero(finite & ~is_held)
        free = free[np.argsort(-row[free], kind="stable")]
        today = free[: max(drop + k - len(held), 0)]
        comb = np.concatenate([np.asarray(held, dtype=int), today])
        comb = comb[np.argsort(-row[comb], kind="stable")]
        worst = set(comb[len(comb) - drop :].tolist()) if len(comb) else set()
        sell = {j for j in held if j in worst}
        left = [j for j in held if j not in sell]
        buy = today[: len(sell) + k - len(held)].tolist()
        held = left + buy
        out[i, held] = 1.0
    return pd.DataFrame(out, index=scores.index, columns=scores.columns)


def long_short_topk(
    scores: pd.DataFrame,
    next_returns: pd.DataFrame,
    k: int,
    n_drop: int | None = None,
    cost_bps: float = 0.0,
) -> BacktestResult:
    """Long the top-k book, short the bottom-k book (:func:`topk_dropout` on ``-scores``).

    Each leg weighs ``1 / k`` per held name (a leg with fewer names keeps ``1 / k`` each, so
    a thin date is under-invested rather than concentrated); a name in both books nets out.
    ``next_returns[t]`` is the return from ``t`` to the next bar; a missing one earns 0.
    """
    if scores.shape[1] < 2 * k:
        raise BacktestError("thin_universe", f"{scores.shape[1]} names cannot hold 2 x {k}")
    weights = (topk_dropout(scores, k, n_drop) - topk_dropout(-scores, k, n_drop)) / k
    return backtest(weights, next_returns, cost_bps=cost_bps)


def risk_analysis(
    returns: ArrayLike, periods_per_year: float = PERIODS_PER_YEAR
) -> dict[str, float]:
    """Qlib's ``risk_analysis`` (``mode="sum"``) of per-period returns (non-finite dropped).

    ``annualized_return = mean * ppy``, ``information_ratio = mean / std(ddof=1) * sqrt(ppy)``,
    ``max_drawdown = min(cumsum - cummax(cumsum))`` (≤ 0; the running peak starts at the first
    period, as in Qlib).
    """
    r = np.asarray(returns, dtype=float).ravel()
    r = r[np.isfinite(r)]
    if r.size == 0:
        keys = ("mean", "std", "annualized_return", "information_ratio", "max_drawdown")
        return dict.fromkeys(keys, NAN)
    mean = float(np.mean(r))
    std = float(np.std(r, ddof=1)) if r.size > 1 else NAN
    wealth = np.cumsum(r)
    ir = mean / std * math.sqrt(periods_per_year) if std and std > 1e-15 else NAN
    return {
        "mean": mean,
        "std": std,
        "annualized_return": mean * periods_per_year,
        "information_ratio": float(ir),
        "max_drawdown": float(np.min(wealth - np.maximum.accumulate(wealth))),
    }
