"""Synthetic bars and a stand-in feature set for the training tests (no indicators needed)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

T0 = 1_700_000_000_000
STEP = 60_000


def make_bars(
    n_bars: int = 300,
    symbols: tuple[str, ...] = ("A", "B", "C", "D", "E"),
    signal: float = 0.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Random-walk bars; with ``signal`` > 0 the log volume at t predicts the return t→t+1.

    ``r[t+1] = 1 % · (signal · z[t] + sqrt(1 - signal²) · e[t+1])`` and ``volume[t] = 1000 ·
    exp(z[t])``: the volume is known at t, so the signal is point-in-time and learnable.
    """
    rng = np.random.default_rng(seed)
    frames = []
    for sym in symbols:
        z = rng.standard_normal(n_bars)
        e = rng.standard_normal(n_bars)
        r = np.zeros(n_bars)
        r[1:] = 0.01 * (signal * z[:-1] + np.sqrt(1.0 - signal**2) * e[1:])
        close = 100.0 * np.cumprod(1.0 + r)
        open_ = np.concatenate(([close[0]], close[:-1]))
        wiggle = 1.0 + 0.002 * rng.random(n_bars)
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "ts_ms": T0 + STEP * np.arange(n_bars, dtype="int64"),
                    "open": open_,
                    "high": np.maximum(open_, close) * wiggle,
                    "low": np.minimum(open_, close) / wiggle,
                    "close": close,
                    "volume": 1000.0 * np.exp(z),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class StandInFeatureSet:
    """Quacks like ``indicators.FeatureSet``: ``names`` and ``version``."""

    names: tuple[str, ...] = ("ret_1", "ret_5", "log_volume", "zscore_10")
    version: str = "standin-1"


def _per_symbol(g: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    close = g["close"]
    cols = {
        "ret_1": close.pct_change(),
        "ret_5": close.pct_change(5),
        "log_volume": np.log(g["volume"]),
        "zscore_10": (close - close.rolling(10).mean()) / close.rolling(10).std(),
        # look-ahead features, for the guard's tests
        "peek_next_return": close.shift(-1) / close - 1.0,
        "peek_centered_mean": close.rolling(3, center=True).mean() / close - 1.0,
    }
    out = pd.DataFrame({"symbol": g["symbol"], "ts_ms": g["ts_ms"]})
    for name in names:
        out[name] = cols[name]
    return out


def standin_compute(bars: pd.DataFrame, feature_set: StandInFeatureSet) -> pd.DataFrame:
    """Point-in-time features (except the ``peek_*`` ones) per (symbol, ts_ms)."""
    b = bars.sort_values(["symbol", "ts_ms"])
    parts = [_per_symbol(g, feature_set.names) for _, g in b.groupby("symbol", sort=True)]
    return pd.concat(parts, ignore_index=True)
