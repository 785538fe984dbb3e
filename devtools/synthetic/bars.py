"""Deterministic synthetic bars for tests, benchmarks and demos (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def random_walk_bars(
    n: int = 2000,
    *,
    seed: int = 7,
    symbol: str = "SYN",
    start_ts_ms: int = 1_600_000_000_000,
    step_ms: int = 86_400_000,
    start_price: float = 100.0,
    sigma: float = 0.015,
    with_quotes: bool = True,
) -> pd.DataFrame:
    """``n`` OHLCV bars of a geometric random walk with consistent high/low.

    Closes follow ``exp`` of Gaussian steps (sd ``sigma``), rounded to cents, and about 3%
    of bars repeat the previous close (to exercise the "unchanged" branches); opens gap a
    little from the previous close; high/low wrap open and close; volumes are log-normal.
    With ``with_quotes``, bid/ask straddle the close with a 1-10 bp spread and random sizes.

    >>> df = random_walk_bars(5, seed=1)
    >>> list(df.columns[:4]), bool((df.high >= df.low).all())
    (['ts_ms', 'symbol', 'open', 'high'], True)
    """
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, sigma, n)
    steps[rng.random(n) < 0.03] = 0.0
    close = np.round(start_price * np.exp(np.cumsum(steps)), 2)
    prev = np.concatenate([[start_price], close[:-1]])
    open_ = np.round(prev * np.exp(rng.normal(0.0, sigma / 4, n)), 2)
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = np.round(top * np.exp(np.abs(rng.normal(0.0, sigma / 2, n))), 2)
    low = np.round(bottom * np.exp(-np.abs(rng.normal(0.0, sigma / 2, n))), 2)
    high = np.maximum(high, top)
    low = np.minimum(low, bottom)
    volume = np.round(rng.lognormal(13.0, 0.5, n))
    df = pd.DataFrame(
        {
            "ts_ms": start_ts_ms + step_ms * np.arange(n, dtype=np.int64),
            "symbol": symbol,
            "open": open_,
            "high": high,
            "low": low,
            "close": close,
            "volume": volume,
        }
    )
    if with_quotes:
        half = close * rng.uniform(0.5e-4, 5e-4, n)
        df["bid"] = close - half
        df["ask"] = close + half
        df["bid_size"] = rng.integers(1, 50, n) * 100.0
        df["ask_size"] = rng.integers(1, 50, n) * 100.0
    return df


def random_walk_panel(
    symbols: Sequence[str] = ("AAA", "BBB", "CCC"),
    n: int = 500,
    *,
    seed: int = 11,
    **kwargs: object,
) -> pd.DataFrame:
    """Bars of several symbols on the same timestamps, interleaved in time order."""
    frames = [
        random_walk_bars(n, seed=seed + i, symbol=s, start_price=50.0 + 25.0 * i, **kwargs)  # type: ignore[arg-type]
        for i, s in enumerate(symbols)
    ]
    df = pd.concat(frames, ignore_index=True)
    return df.sort_values(["ts_ms", "symbol"], kind="stable", ignore_index=True)
