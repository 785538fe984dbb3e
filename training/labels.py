"""Point-in-time labels: the forward close-to-close return over ``h`` bars, per symbol.

The label of the row at bar ``t`` is ``close[t+h] / close[t] - 1`` of the same symbol; it
becomes known when bar ``t+h`` arrives, whose timestamp is kept as ``label_end_ts`` (the
splitter purges on it). The last ``h`` bars of each symbol have no label and are dropped.

>>> import pandas as pd
>>> bars = pd.DataFrame({"symbol": ["A"] * 4, "ts_ms": [1, 2, 3, 4],
...                      "close": [10.0, 11.0, 9.9, 9.9]})
>>> make_labels(bars, horizon=1)[["ts_ms", "fwd_return", "label", "label_end_ts"]]
   ts_ms  fwd_return  label  label_end_ts
0      1         0.1      1             2
1      2        -0.1      0             3
2      3         0.0      0             4
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.errors import TrainingError

BAR_COLUMNS = ("symbol", "ts_ms", "open", "high", "low", "close", "volume")
PREV_RETURN = "_prev_ret_1"


def validate_bars(
    bars: pd.DataFrame, required: tuple[str, ...] = ("symbol", "ts_ms", "close")
) -> pd.DataFrame:
    """Check the bar frame and return it sorted by ``(symbol, ts_ms)`` with a fresh index.

    Raises :class:`TrainingError` for missing columns, duplicate ``(symbol, ts_ms)`` rows, or
    closes that are not finite and positive.
    """
    missing = [c for c in required if c not in bars.columns]
    if missing:
        raise TrainingError("missing_columns", f"bars lack columns {missing}")
    if bars.duplicated(["symbol", "ts_ms"]).any():
        raise TrainingError("duplicate_bars", "bars have duplicate (symbol, ts_ms) rows")
    close = bars["close"].to_numpy(dtype=float)
    if not (np.isfinite(close) & (close > 0)).all():
        raise TrainingError("bad_close", "every close must be finite and positive")
    return bars.sort_values(["symbol", "ts_ms"], kind="stable").reset_index(drop=True)


def make_labels(bars: pd.DataFrame, horizon: int = 1) -> pd.DataFrame:
    """Labels for every bar whose horizon is known.

    Returns columns ``symbol, ts_ms, label_end_ts, fwd_return, label, direction, ret_next``
    sorted by ``(ts_ms, symbol)``: ``label`` is 1 when ``fwd_return > 0`` else 0,
    ``direction`` its sign in {-1, 0, 1}, and ``ret_next`` the one-bar forward return that a
    position taken at ``t`` earns (what a backtest uses, whatever ``h`` is).
    """
    if horizon < 1:
        raise TrainingError("bad_horizon", f"horizon must be >= 1, got {horizon}")
    b = validate_bars(bars)
    grouped = b.groupby("symbol", sort=False)
    close = b["close"].astype(float)
    fwd_close = grouped["close"].shift(-horizon).astype(float)
    out = pd.DataFrame(
        {
            "symbol": b["symbol"],
            "ts_ms": b["ts_ms"].astype("int64"),
            "label_end_ts": grouped["ts_ms"].shift(-horizon),
            "fwd_return": fwd_close / close - 1.0,
            "ret_next": grouped["close"].shift(-1).astype(float) / close - 1.0,
        }
    )
    out = out[out["fwd_return"].notna()].copy()
    out["label_end_ts"] = out["label_end_ts"].astype("int64")
    out["label"] = (out["fwd_return"] > 0).astype("int64")
    out["direction"] = np.sign(out["fwd_return"]).astype("int64")
    cols = ["symbol", "ts_ms", "label_end_ts", "fwd_return", "label", "direction", "ret_next"]
    return out[cols].sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)


def previous_return(bars: pd.DataFrame) -> pd.DataFrame:
    """``symbol, ts_ms, _prev_ret_1``: ``close[t] / close[t-1] - 1``, known at t (baselines)."""
    b = validate_bars(bars)
    prev = b.groupby("symbol", sort=False)["close"].shift(1).astype(float)
    return pd.DataFrame(
        {"symbol": b["symbol"], "ts_ms": b["ts_ms"], PREV_RETURN: b["close"] / prev - 1.0}
    )
