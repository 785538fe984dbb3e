"""Synthetic OHLCV bars for stream tests and the chaos benchmark (one generator, seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def make_bars(n_symbols: int, n_bars: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_symbols):
        close = 50.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n_bars)))
        open_ = close * np.exp(rng.normal(0, 0.003, n_bars))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n_bars))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n_bars))
        volume = rng.uniform(1e4, 1e5, n_bars).round()
        for i in range(n_bars):
            rows.append(
                (
                    f"S{s:03d}",
                    1_600_000_000_000 + i * 60_000,
                    open_[i],
                    high[i],
                    low[i],
                    close[i],
                    volume[i],
                )
            )
    frame = pd.DataFrame(
        rows, columns=["symbol", "ts_ms", "open", "high", "low", "close", "volume"]
    )
    return frame.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)
