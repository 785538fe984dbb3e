"""sidestreams.sector against a pandas reference built from the definition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sidestreams.sector import SECTOR_FEATURES, UNKNOWN, SectorBoard, load_sector_map

SECTORS = {"A": "tech", "B": "tech", "C": "energy", "D": "energy"}


def _bars(seed: int) -> pd.DataFrame:
    """Four symbols (and one unmapped) on shared and ragged timestamps."""
    rng = np.random.default_rng(seed)
    rows = []
    for sym in ["A", "B", "C", "D", "E"]:
        stamps = np.sort(rng.choice(np.arange(1, 60), size=35, replace=False)) * 1000
        close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, stamps.size)))
        rows += [(int(t), sym, float(c)) for t, c in zip(stamps, close, strict=True)]
    return pd.DataFrame(rows, columns=["ts_ms", "symbol", "close"])


def _reference(bars: pd.DataFrame) -> pd.DataFrame:
    """For each bar at t: every symbol's latest one-bar log return from a bar before t."""
    bars = bars.sort_values(["symbol", "ts_ms"])
    bars["ret"] = np.log(bars["close"]).groupby(bars["symbol"]).diff()
    wide = bars.pivot(index="ts_ms", columns="symbol", values="ret").ffill()
    # value known strictly before t: the forward-filled row of the previous timestamp
    prior = wide.shift(1)
    out = []
    for t, sym in zip(bars["ts_ms"], bars["symbol"], strict=True):
        row = prior.loc[t]
        sector = SECTORS.get(sym, UNKNOWN)
        members = [s for s in row.index if SECTORS.get(s, UNKNOWN) == sector]
        sector_ret = row[members].mean()  # skipna: members without a return yet
        market_ret = row.mean()
        own = row[sym]
        out.append((t, sym, sector_ret, market_ret, own - sector_ret, own - market_ret))
    return pd.DataFrame(out, columns=["ts_ms", "symbol", *SECTOR_FEATURES])


@pytest.mark.parametrize("seed", range(4))
def test_board_matches_the_pandas_reference(seed: int) -> None:
    bars = _bars(seed)
    board = SectorBoard(SECTORS)
    got = []
    # shuffle the processing order within each timestamp: the answer may not depend on it
    shuffled = bars.sample(frac=1.0, random_state=seed).sort_values("ts_ms", kind="stable")
    for t, sym, close in shuffled.itertuples(index=False):
        got.append((t, sym, *board.update(sym, t, close)))
    frame = pd.DataFrame(got, columns=["ts_ms", "symbol", *SECTOR_FEATURES])
    ref = _reference(bars)
    merged = frame.merge(ref, on=["ts_ms", "symbol"], suffixes=("", "_ref"))
    assert len(merged) == len(bars)
    for col in SECTOR_FEATURES:
        np.testing.assert_allclose(merged[col], merged[f"{col}_ref"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("seed", range(3))
def test_the_cached_means_equal_a_fresh_computation_in_any_processing_order(seed: int) -> None:
    """Symbols interleaved unevenly (each in its own time order): every answer equals a board
    that computes from scratch, so the cache is invalidated whenever it must be."""
    rng = np.random.default_rng(seed)
    bars = _bars(seed)
    queues = {s: list(g.itertuples(index=False)) for s, g in bars.groupby("symbol")}
    board = SectorBoard(SECTORS)
    while queues:
        sym = str(rng.choice(sorted(queues)))
        t, _, close = queues[sym].pop(0)
        if not queues[sym]:
            del queues[sym]
        fresh = SectorBoard(SECTORS, dict(board.symbols))
        want = fresh.features(sym, t)
        got = board.update(sym, t, close)
        np.testing.assert_array_equal(got, want)


def test_the_packaged_map_and_a_bad_one(tmp_path: Path) -> None:
    sectors = load_sector_map()
    assert sectors["AAPL"] == "Information Technology"
    assert sectors["XOM"] == "Energy"
    assert len(sectors) >= 40
    bad = tmp_path / "map.csv"
    bad.write_text("ticker,industry\nAAPL,tech\n")
    with pytest.raises(ValueError, match="symbol,sector"):
        load_sector_map(bad)
