"""What ``tickcast replay`` publishes: a data set, a user file, or the synthetic market,
optionally turned from trades into time bars first. Pure frame building; no I/O to Kafka.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from devtools import datasets
from devtools.synthetic.market import SyntheticConfig, SyntheticMarket, to_frame
from streams.bars import TimeBarBuilder, bars_from_trades, bars_to_frame
from streams.files import load_user_file
from tickcast.errors import ConfigError

BAR_COLUMNS = ["symbol", "ts_ms", "open", "high", "low", "close", "volume"]


def synthetic_trades(n: int, symbols: int = 500, seed: int = 0) -> pd.DataFrame:
    """``n`` synthetic trades over ``symbols`` symbols (SYM0, SYM1, ...), in event-time order."""
    market = SyntheticMarket(SyntheticConfig(n_symbols=symbols, seed=seed))
    frame = to_frame(next(market.ticks(n, batch_size=n)))
    frame["symbol"] = np.char.add("SYM", frame["symbol_id"].astype(str))
    return frame[["symbol", "ts_ms", "price", "volume"]].reset_index(drop=True)


def time_bars(trades: pd.DataFrame, seconds: float) -> pd.DataFrame:
    """Time bars of ``seconds`` built from a trades frame, stamped at each bar's end."""
    if seconds <= 0:
        raise ConfigError("--bars must be a positive number of seconds")
    bars = bars_to_frame(bars_from_trades(TimeBarBuilder(int(seconds * 1000)), trades))
    bars["interval_ms"] = int(seconds * 1000)
    ordered = bars.sort_values(["ts_ms", "symbol"], kind="stable").reset_index(drop=True)
    return ordered[[*BAR_COLUMNS, "interval_ms"]]


def load_feed(
    source: str,
    *,
    symbols: int | None = None,
    limit: int | None = None,
    bar_seconds: float | None = None,
    kind: str = "bars",
) -> pd.DataFrame:
    """The frame to publish for ``source``: a data set name, ``synthetic``, or a file path."""
    if source == "synthetic":
        frame = synthetic_trades(limit or 100_000, symbols or 500)
    elif source in datasets.DATASETS:
        frame = datasets.load(source)
    else:
        frame = load_user_file(source, kind=kind)  # type: ignore[arg-type]
    if symbols and source != "synthetic":
        keep = sorted(frame["symbol"].unique())[:symbols]
        frame = frame[frame["symbol"].isin(keep)].reset_index(drop=True)
    if bar_seconds:
        if "price" not in frame.columns:
            raise ConfigError(f"--bars needs trades; {source} already holds bars")
        frame = time_bars(frame, bar_seconds)
    if limit and source != "synthetic":
        frame = frame.iloc[:limit]
    return frame
