"""Turn predictions into positions and positions into per-period portfolio returns.

Everything is *wide*: one row per timestamp (sorted ascending), one column per symbol.
Use :func:`to_wide` to pivot a long ``(symbol, ts_ms, value)`` frame.

Timing convention (no look-ahead): the position chosen at row ``t`` — after the bar at ``t``
closed, from information up to ``t`` — earns ``asset_returns`` of row ``t``, which must be the
return *from t to the next bar* (``close[t+1] / close[t] - 1``). Trading from ``w[t-1]`` to
``w[t]`` costs ``(cost_bps + slippage_bps) / 1e4`` per unit of turnover
``sum_j |w[t, j] - w[t-1, j]|``, starting flat; a position still open at the end is not charged
for closing.

>>> import pandas as pd
>>> pos = pd.DataFrame({"A": [1.0, 1.0, -1.0]})
>>> ret = pd.DataFrame({"A": [0.01, 0.02, -0.01]})
>>> res = backtest(pos, ret, cost_bps=10)
>>> [round(x, 6) for x in res.returns]
[0.009, 0.02, 0.008]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickcast.errors import TickcastError


class BacktestError(TickcastError):
    """A backtest cannot run on the given input; ``reason`` is a short machine tag."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def to_wide(
    frame: pd.DataFrame, value: str, index: str = "ts_ms", columns: str = "symbol"
) -> pd.DataFrame:
    """Pivot a long frame to timestamps × symbols (index sorted ascending)."""
    missing = {value, index, columns} - set(frame.columns)
    if missing:
        raise BacktestError("missing_columns", f"frame lacks columns {sorted(missing)}")
    if frame.duplicated([index, columns]).any():
        raise BacktestError("duplicate_rows", f"duplicate ({index}, {columns}) rows")
    wide = frame.pivot(index=index, columns=columns, values=value)
    return wide.sort_index().astype(float)


def _normalise(raw: pd.DataFrame, scores: pd.DataFrame) -> pd.DataFrame:
    """Divide each row by the number of names that have a score in it (gross ≤ 1)."""
    names = scores.notna().sum(axis=1).replace(0, np.nan)
    return raw.div(names, axis=0).fillna(0.0)


def sign_positions(
    scores: pd.DataFrame,
    *,
    center: float = 0.0,
    long_only: bool = False,
    normalize: bool = True,
) -> pd.DataFrame:
    """Long when ``score > center``, short when below, flat when equal or missing.

    With ``normalize`` each name gets ``±1 / n_t`` where ``n_t`` is the number of names with
    a score at ``t`` (gross exposure ≤ 1); otherwise ``±1`` per name.
    """
    raw = np.sign(scores - center).fillna(0.0)
    if long_only:
        raw = raw.clip(lower=0.0)
    return _normalise(raw, scores) if normalize else raw.astype(float)


def threshold_positions(
    prob_up: pd.DataFrame,
    *,
    upper: float = 0.55,
    lower: float = 0.45,
    normalize: bool = True,
) -> pd.DataFrame:
    """Long when ``P(up) > upper``, short when ``P(up) < lower``, flat in between."""
    if lower > upper:
        raise BacktestError("bad_threshold", f"lower {lower} > upper {upper}")
    raw = pd.DataFrame(0.0, index=prob_up.index, columns=prob_up.columns)
    raw = raw.mask(prob_up > upper, 1.0).mask(prob_up < lower, -1.0)
    return _normalise(raw, prob_up) if normalize else raw


def top_bottom_k_positions(
    scores: pd.DataFrame, k: int, *, long_only: bool = False
) -> pd.DataFrame:
    """Cross-sectional portfolio per timestamp: long the top ``k`` scores, short the bottom ``k``.

    Long/short: each leg weighs ``0.5 / k`` per name (gross 1, dollar neutral). Long only:
    ``1 / k`` per name. When a row has fewer than ``2k`` (long/short) or ``k`` (long only)
    scored names, ``k`` shrinks to what fits. Ties break by column order.
    """
    if k < 1:
        raise BacktestError("bad_k", f"k must be >= 1, got {k}")
    out = np.zeros(scores.shape)
    values = scores.to_numpy(dtype=float)
    for i, row in enumerate(values):
        valid = np.flatnonzero(np.isfinite(row))
        order = valid[np.argsort(-row[valid], kind="stable")]
        if long_only:
            kk = min(k, order.size)
            if kk:
                out[i, order[:kk]] = 1.0 / kk
            continue
        kk = min(k, order.size // 2)
        if kk:
            out[i, order[:kk]] = 0.5 / kk
            out[i, order[::-1][:kk]] = -0.5 / kk
    return pd.DataFrame(out, index=scores.index, columns=scores.columns)


def apply_limits(
    positions: pd.DataFrame,
    *,
    max_position: float | None = None,
    max_gross: float | None = None,
) -> pd.DataFrame:
    """Clip each weight to ``±max_position``, then scale rows whose gross exceeds ``max_gross``."""
    w = positions.fillna(0.0).astype(float)
    if max_position is not None:
        w = w.clip(lower=-max_position, upper=max_position)
    if max_gross is not None:
        gross = w.abs().sum(axis=1)
        scale = (max_gross / gross.where(gross > max_gross)).fillna(1.0)
        w = w.mul(scale, axis=0)
    return w


@dataclass(frozen=True)
class BacktestResult:
    """Per-period outcome of a backtest (all Series share the positions' index)."""

    returns: pd.Series
    gross_returns: pd.Series
    costs: pd.Series
    turnover: pd.Series
    exposure: pd.Series
    net_exposure: pd.Series
    positions: pd.DataFrame


def backtest(
    positions: pd.DataFrame,
    asset_returns: pd.DataFrame,
    *,
    cost_bps: float = 0.0,
    slippage_bps: float = 0.0,
    max_position: float | None = None,
    max_gross: float | None = None,
) -> BacktestResult:
    """Portfolio returns of target weights ``positions`` against next-bar ``asset_returns``.

    ``asset_returns`` is aligned to the positions' index and columns; a missing return earns
    0. Returns are net of costs: ``r[t] = sum_j w[t,j] ret[t,j] - c * turnover[t]``.
    """
    if cost_bps < 0 or slippage_bps < 0:
        raise BacktestError("bad_cost", "costs must be non-negative")
    if not positions.index.is_monotonic_increasing:
        raise BacktestError("unsorted", "positions index must be sorted ascending")
    w = apply_limits(positions, max_position=max_position, max_gross=max_gross)
    ret = asset_returns.reindex(index=w.index, columns=w.columns).astype(float)
    ret = ret.where(np.isfinite(ret), 0.0).fillna(0.0)
    gross_ret = (w * ret).sum(axis=1)
    turn = w.diff().abs().sum(axis=1)
    if len(w):
        turn.iloc[0] = float(w.iloc[0].abs().sum())
    costs = turn * (cost_bps + slippage_bps) / 1e4
    return BacktestResult(
        returns=(gross_ret - costs).rename("net_return"),
        gross_returns=gross_ret.rename("gross_return"),
        costs=costs.rename("cost"),
        turnover=turn.rename("turnover"),
        exposure=w.abs().sum(axis=1).rename("exposure"),
        net_exposure=w.sum(axis=1).rename("net_exposure"),
        positions=w,
    )
