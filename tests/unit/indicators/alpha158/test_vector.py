"""The vectorised engine against the per-symbol indicator: the same bits at every step.

Real S&P 500 symbols of unequal lengths and the edge-case series run together, one round
per bar index, so rows join and leave rounds and refreshes of different rows fall due in
different rounds. Equality is exact (``==``, NaN where NaN), not a tolerance: the engine
repeats the per-symbol operations in the same order.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from indicators.alpha158 import Alpha158
from indicators.alpha158.vector import Alpha158Batch, load_state, to_state
from tests.unit.indicators.alpha158.conftest import SYMBOLS, run_incremental, with_vwap

FIELDS = ["open", "high", "low", "close", "volume", "vwap"]


@pytest.fixture(scope="module")
def series(sp500_symbols: dict[str, pd.DataFrame], edge_bars: pd.DataFrame) -> list[np.ndarray]:
    frames = [with_vwap(sp500_symbols[s]) for s in SYMBOLS] + [with_vwap(edge_bars)]
    return [f[FIELDS].to_numpy(np.float64) for f in frames]


@pytest.fixture(scope="module")
def expected(series: list[np.ndarray]) -> list[np.ndarray]:
    """The per-symbol path's values of every series, computed once."""
    return [per_symbol(bars) for bars in series]


def run_rounds(batch: Alpha158Batch, series: list[np.ndarray], start: int = 0) -> list[list]:
    """Feed bar ``k`` of every series still running as round ``k``; rows = series index."""
    outs: list[list] = [[] for _ in series]
    for k in range(start, max(len(s) for s in series)):
        rows = np.array([i for i, s in enumerate(series) if k < len(s)])
        out = batch.update(rows, *np.stack([series[i][k] for i in rows]).T)
        for r, values in zip(rows.tolist(), out, strict=True):
            outs[r].append(values)
    return outs


def same(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(got, want, equal_nan=True))


def per_symbol(bars: np.ndarray, state: Alpha158 | None = None) -> np.ndarray:
    ind = state if state is not None else Alpha158()
    rows = []
    for o, h, lo, c, v, vwap in bars.tolist():
        ind.update(o, h, lo, c, v, vwap)
        rows.append(ind.out)
    return np.array(rows)


def test_every_value_at_every_step_equals_the_per_symbol_path(
    series: list[np.ndarray], expected: list[np.ndarray]
) -> None:
    outs = run_rounds(Alpha158Batch(len(series)), series)
    for i, bars in enumerate(series):
        want = expected[i]
        got = np.array(outs[i])
        assert got.shape == want.shape == (len(bars), 158)
        bad = np.argwhere(~((got == want) | (np.isnan(got) & np.isnan(want))))
        assert bad.size == 0, (i, [(int(r), int(c), got[r, c], want[r, c]) for r, c in bad[:5]])


def test_conftest_harness_agrees(sp500_symbols: dict[str, pd.DataFrame]) -> None:
    """The batch of one symbol is the reference tests' incremental path, value for value."""
    bars = with_vwap(sp500_symbols["AAPL"])
    want = run_incremental(bars).to_numpy()
    got = run_rounds(Alpha158Batch(1), [bars[FIELDS].to_numpy(np.float64)])[0]
    assert same(np.array(got), want)


def test_rows_are_independent_and_rounds_may_skip_rows(series: list[np.ndarray]) -> None:
    """A row fed in every other round (others in between) gives the values of a lone run."""
    a, b = series[0], series[-1]
    batch = Alpha158Batch(3)
    got_a, got_b = [], []
    for k in range(max(len(a), len(b))):
        if k < len(a):
            got_a.append(batch.update(np.array([2]), *a[k][:, None])[0])
        if k < len(b):
            got_b.append(batch.update(np.array([0]), *b[k][:, None])[0])
    assert same(np.array(got_a), per_symbol(a))
    assert same(np.array(got_b), per_symbol(b))
    assert batch.t.tolist() == [len(b), 0, len(a)]


@pytest.mark.parametrize("cut", [0, 1, 4, 5, 59, 61, 105, 130, 203])
def test_state_round_trips_through_the_per_symbol_value(
    series: list[np.ndarray], expected: list[np.ndarray], cut: int
) -> None:
    """Snapshot a row as a pickled :class:`Alpha158` and back, mid-series: futures identical."""
    batch = Alpha158Batch(len(series))
    run_rounds_until(batch, series, cut)
    for i, bars in enumerate(series):
        if cut >= len(bars):
            continue
        restored: Alpha158 = pickle.loads(pickle.dumps(to_state(batch, i)))
        want = expected[i][cut:]
        # batch -> per-symbol: the restored indicator continues with the same bits
        assert same(per_symbol(bars[cut:], restored), want), i
        # per-symbol -> batch: a per-symbol state run to ``cut`` loads into a fresh batch row
        lone = Alpha158()
        per_symbol(bars[:cut], lone)
        fresh = Alpha158Batch(2)
        load_state(fresh, 1, pickle.loads(pickle.dumps(lone)))
        got = [fresh.update(np.array([1]), *bars[k][:, None])[0] for k in range(cut, len(bars))]
        assert same(np.array(got), want), i
    # the batch itself continues unchanged after the snapshots
    rest = run_rounds(batch, series, start=cut)
    for i, bars in enumerate(series):
        if cut < len(bars):
            assert same(np.array(rest[i]), expected[i][cut:]), i


def run_rounds_until(batch: Alpha158Batch, series: list[np.ndarray], stop: int) -> None:
    for k in range(stop):
        rows = np.array([i for i, s in enumerate(series) if k < len(s)])
        batch.update(rows, *np.stack([series[i][k] for i in rows]).T)


def test_a_snapshot_of_a_row_is_compact(series: list[np.ndarray]) -> None:
    batch = Alpha158Batch(len(series))
    run_rounds_until(batch, series, 200)
    assert len(pickle.dumps(to_state(batch, 0))) < 64_000
