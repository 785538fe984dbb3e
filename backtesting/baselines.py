"""Naive baselines and the buy-and-hold benchmark, built from bars alone.

The naive baselines are *prediction frames* in the same long shape as a model's
(``symbol, ts, model_name, model_version, role, prob_up, expected_return, horizon``), so they
run through exactly the same strategies, costs and metrics as the models they are compared
with. Each uses only information available at its timestamp:

* ``always_up``: ``prob_up = 1`` and a constant small positive ``expected_return`` at every
  bar. Under ``sign`` and ``threshold`` it is long every name with equal weight. Its score is
  constant, so top/bottom-k ties break by column order, and its IC is undefined (nan).
* ``prev_return_sign``: momentum of the last bar. ``prob_up`` is 1, 0 or 0.5 as the
  previous close-to-close return ``close[t] / close[t-1] - 1`` is positive, negative or
  zero/unknown; ``expected_return`` is that return as a log return (it ranks names for
  top/bottom-k).

The benchmark, :func:`buy_and_hold_positions`, holds the universe with equal weight
``1 / n_t`` over the names that have a next-bar return at ``t`` (rebalanced every bar). Its
return at ``t`` is therefore the cross-sectional mean of next-bar returns.

>>> import pandas as pd
>>> bars = pd.DataFrame({"symbol": ["A"] * 3, "ts_ms": [1, 2, 3], "close": [10.0, 11.0, 10.0]})
>>> previous_return_sign(bars)["prob_up"].tolist()
[0.5, 1.0, 0.0]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

BASELINE_VERSION = "baseline"
BASELINE_ROLE = "BASELINE"
ALWAYS_UP = "always_up"
PREV_RETURN_SIGN = "prev_return_sign"
BUY_AND_HOLD = "buy_and_hold"
#: The constant ``expected_return`` of :func:`always_up` (1 bp per bar, log).
ALWAYS_UP_EXPECTED = 1e-4

_COLUMNS = [
    "symbol", "ts", "model_name", "model_version", "role", "prob_up", "expected_return", "horizon",
]  # fmt: skip


def _frame(bars: pd.DataFrame, name: str, prob: np.ndarray, expected: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "symbol": bars["symbol"].to_numpy(),
            "ts": bars["ts_ms"].to_numpy(dtype="int64"),
            "model_name": name,
            "model_version": BASELINE_VERSION,
            "role": BASELINE_ROLE,
            "prob_up": prob.astype(float),
            "expected_return": expected.astype(float),
            "horizon": 1,
        }
    )
    return out[_COLUMNS].reset_index(drop=True)


def always_up(bars: pd.DataFrame) -> pd.DataFrame:
    """One ``always_up`` prediction per bar row of ``bars`` (``symbol, ts_ms`` columns)."""
    n = len(bars)
    return _frame(bars, ALWAYS_UP, np.ones(n), np.full(n, ALWAYS_UP_EXPECTED))


def previous_return_sign(bars: pd.DataFrame) -> pd.DataFrame:
    """One ``prev_return_sign`` prediction per bar row (``symbol, ts_ms, close`` columns).

    The previous return is taken within each symbol in ``ts_ms`` order; a symbol's first bar
    has none (``prob_up = 0.5``, ``expected_return`` nan).
    """
    b = bars.sort_values(["symbol", "ts_ms"], kind="stable")
    close = b["close"].astype(float)
    prev = close / b.groupby("symbol", sort=False)["close"].shift(1).astype(float) - 1.0
    sign = np.sign(prev.to_numpy())
    prob = 0.5 + 0.5 * np.nan_to_num(sign, nan=0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.log1p(prev.to_numpy())
    return _frame(b, PREV_RETURN_SIGN, prob, expected)


def naive_predictions(bars: pd.DataFrame) -> pd.DataFrame:
    """Both naive baselines stacked, in prediction-frame shape."""
    return pd.concat([always_up(bars), previous_return_sign(bars)], ignore_index=True)


def buy_and_hold_positions(next_returns: pd.DataFrame) -> pd.DataFrame:
    """Equal weights ``1 / n_t`` on the names of each row that have a finite next-bar return.

    ``next_returns`` is wide (timestamps × symbols); a row without any return is flat.
    """
    has = np.isfinite(next_returns.to_numpy(dtype=float))
    n = has.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(has, 1.0 / np.where(n > 0, n, 1), 0.0)
    return pd.DataFrame(w, index=next_returns.index, columns=next_returns.columns)
