"""Shared data of the indicator tests: deterministic synthetic bars (no services needed)."""

from __future__ import annotations

import pandas as pd
import pytest

from devtools.synthetic.bars import random_walk_bars
from indicators.bar import Bar

_COLS = ["ts_ms", "open", "high", "low", "close", "volume", "bid", "ask", "bid_size", "ask_size"]


def to_bars(df: pd.DataFrame) -> list[Bar]:
    """Rows of a bar frame as :class:`Bar` values (quotes ``None`` when absent)."""
    cols = [c for c in _COLS if c in df.columns]
    return [Bar(int(r[0]), *r[1:]) for r in df[cols].itertuples(index=False, name=None)]


@pytest.fixture(scope="session")
def daily() -> pd.DataFrame:
    """2,000 daily bars of a geometric random walk, with quotes."""
    return random_walk_bars(2000, seed=7)


@pytest.fixture(scope="session")
def daily_bars(daily: pd.DataFrame) -> list[Bar]:
    return to_bars(daily)


@pytest.fixture(scope="session")
def long_bars() -> list[Bar]:
    """10,000 one-minute bars, with quotes (bounded-memory and pickling checks)."""
    return to_bars(random_walk_bars(10_000, seed=5, step_ms=60_000, sigma=0.002))
