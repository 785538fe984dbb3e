"""The batch engine against the per-symbol indicator: the same bits, whatever the batching.

Real S&P 500 symbols of unequal lengths and the edge-case series are cut into micro-batches
at random (several bars of a symbol in one batch, symbols joining and leaving, batches
larger than a gathered block), and every value must equal the per-symbol indicator's fed
one bar at a time (``==``, NaN where NaN): a tick's values may not depend on its batch.
Snapshots round-trip, stay small, and the earlier engines' snapshots migrate.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from indicators.alpha158 import Alpha158
from indicators.alpha158.state import empty_history
from indicators.alpha158.vector import CHUNK, advance
from tests.unit.indicators.alpha158.conftest import make_edge_bars, with_vwap

FIELDS = ["open", "high", "low", "close", "volume", "vwap"]
LEGACY = Path(__file__).with_name("data") / "legacy_states.pkl"


@pytest.fixture(scope="module")
def series(sp500_symbols: dict[str, pd.DataFrame], edge_bars: pd.DataFrame) -> list[np.ndarray]:
    frames = [with_vwap(f) for f in sp500_symbols.values()] + [with_vwap(edge_bars)]
    return [f[FIELDS].to_numpy(np.float64) for f in frames]


@pytest.fixture(scope="module")
def expected(series: list[np.ndarray]) -> list[np.ndarray]:
    """The per-symbol path's values of every series, computed once."""
    return [per_symbol(bars) for bars in series]


def per_symbol(bars: np.ndarray, state: Alpha158 | None = None) -> np.ndarray:
    ind = state if state is not None else Alpha158()
    rows = []
    for o, h, lo, c, v, vwap in bars.tolist():
        ind.update(o, h, lo, c, v, vwap)
        rows.append(ind.out)
    return np.array(rows)


def same(got: np.ndarray, want: np.ndarray) -> bool:
    return bool(np.array_equal(got, want, equal_nan=True))


def interleaved(series: list[np.ndarray], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every series' bars as one stream: a random interleaving keeping each series' order."""
    rng = np.random.default_rng(seed)
    group = np.concatenate([np.full(len(s), i) for i, s in enumerate(series)])
    rng.shuffle(group)
    nxt = [0] * len(series)
    bars = np.empty((len(group), 6))
    for k, g in enumerate(group.tolist()):
        bars[k] = series[g][nxt[g]]
        nxt[g] += 1
    return group, bars


@pytest.mark.parametrize(("seed", "sizes"), [(1, (1, 2, 7)), (2, (50, 333)), (3, (CHUNK + 77,))])
def test_any_batching_gives_the_per_symbol_values(
    series: list[np.ndarray], expected: list[np.ndarray], seed: int, sizes: tuple[int, ...]
) -> None:
    group, bars = interleaved(series, seed)
    rng = np.random.default_rng(seed)
    hist = np.stack([empty_history()] * len(series))
    got: list[list[np.ndarray]] = [[] for _ in series]
    at = 0
    while at < len(group):
        stop = at + int(rng.choice(sizes))
        out, hist = advance(hist, group[at:stop], bars[at:stop])
        for g, row in zip(group[at:stop].tolist(), out, strict=True):
            got[g].append(row)
        at = stop
    for i, want in enumerate(expected):
        values = np.array(got[i])
        assert values.shape == want.shape == (len(series[i]), 158)
        bad = np.argwhere(~((values == want) | (np.isnan(values) & np.isnan(want))))
        assert bad.size == 0, (i, [(int(r), int(c), values[r, c], want[r, c]) for r, c in bad[:5]])


def test_a_symbol_alone_in_a_batch_of_others_is_unaffected(series: list[np.ndarray]) -> None:
    """Rows of other symbols (one starting afresh each batch, NaN-padded) never leak in."""
    a, b = series[0], series[-1]
    hist = np.stack([empty_history()] * 3)
    got = []
    for k in range(len(a)):
        hist[2] = empty_history()
        out, hist = advance(hist, np.array([1, 2, 0, 1]), np.array([b[k], b[k], a[k], b[k]]))
        got.append(out[2])
    assert same(np.array(got), per_symbol(a))


@pytest.mark.parametrize("cut", [0, 1, 4, 5, 59, 60, 61, 105, 130, 203])
def test_a_snapshot_round_trips_mid_series(
    series: list[np.ndarray], expected: list[np.ndarray], cut: int
) -> None:
    for i, bars in enumerate(series):
        ind = Alpha158()
        per_symbol(bars[:cut], ind)
        blob = pickle.dumps(ind, pickle.HIGHEST_PROTOCOL)
        assert len(blob) < 5_000
        restored = pickle.loads(blob)
        assert restored.queue is None
        assert same(np.array(restored.out), np.array(ind.out))
        assert same(per_symbol(bars[cut:], restored), expected[i][cut:]), i


@pytest.mark.parametrize("cut", [30, 130])
@pytest.mark.parametrize("kind", ["plain", "row"])
def test_snapshots_of_the_earlier_engines_migrate_without_a_reset(cut: int, kind: str) -> None:
    """Pickles written by the incremental operators (``plain``) and by the row engine
    (``row``), generated with the code before the history engine at bar ``cut`` of the edge
    series (a window still filling, and a full one), continue exactly as an uninterrupted
    history does."""
    legacy = pickle.loads(LEGACY.read_bytes())[cut]
    bars = with_vwap(make_edge_bars())[FIELDS].to_numpy(np.float64)
    want = per_symbol(bars)
    ind = pickle.loads(legacy[kind])
    assert type(ind) is Alpha158
    # the values stored with it are the old engine's (equal to ours within rounding)
    np.testing.assert_allclose(ind.out, want[cut - 1], rtol=1e-9, atol=1e-12)
    assert same(per_symbol(bars[cut:], ind), want[cut:])
