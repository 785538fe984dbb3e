"""The frames ``tickcast replay`` publishes."""

from __future__ import annotations

import pandas as pd
import pytest

from devtools.feeds import load_feed, synthetic_trades, time_bars
from streams.replay import tick_records
from tickcast.errors import ConfigError


def test_synthetic_trades_are_in_event_time_order_over_the_symbols() -> None:
    frame = load_feed("synthetic", symbols=20, limit=5_000)
    assert len(frame) == 5_000
    assert frame["symbol"].nunique() == 20
    assert frame["ts_ms"].is_monotonic_increasing
    assert {r["kind"] for r in tick_records(frame.iloc[:10], "t")} == {"TRADE"}


def test_time_bars_match_a_pandas_resample() -> None:
    trades = synthetic_trades(20_000, symbols=3, seed=4)
    bars = time_bars(trades, 60)
    one = trades[trades["symbol"] == "SYM1"].copy()
    bucket = (one["ts_ms"] // 60_000 + 1) * 60_000
    expected = one.groupby(bucket).agg(
        open=("price", "first"), high=("price", "max"), low=("price", "min"),
        close=("price", "last"), volume=("volume", "sum"),
    )  # fmt: skip
    got = bars[bars["symbol"] == "SYM1"].set_index("ts_ms")[expected.columns]
    pd.testing.assert_frame_equal(got, expected, check_names=False, check_dtype=False)
    assert {r["kind"] for r in tick_records(bars.iloc[:5], "t")} == {"BAR"}
    assert bars["interval_ms"].eq(60_000).all()


def test_bars_of_bars_are_refused() -> None:
    with pytest.raises(ConfigError, match="needs trades"):
        load_feed("sp500-daily", symbols=2, bar_seconds=60)
