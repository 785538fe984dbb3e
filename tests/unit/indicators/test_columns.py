"""The classic columns compute what the per-symbol indicators compute, bit for bit.

:class:`indicators.columns.ClassicColumns` is the worker's batch path; the per-symbol
:class:`~indicators.feature_set.SymbolState` is the reference (itself checked against TA-Lib
in test_reference.py). Streams of many symbols, interleaved with a skewed weight (busy
symbols take the per-symbol branch of a batch, quiet ones the rounds), in batches of random
size, with states pickled and restored along the way, must give the same bytes.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Sequence

import numpy as np
import pytest

from devtools.synthetic.bars import random_walk_bars
from indicators.bar import Bar
from indicators.columns import ClassicColumns, covers
from indicators.columns.base import Rings
from indicators.feature_set import FeatureSet, SymbolState, spec
from indicators.feature_sets import feature_set
from indicators.rolling import RollingMax, RollingMin
from tests.unit.indicators.conftest import to_bars

N_BARS = 300


def streams(n_symbols: int, seed: int) -> dict[str, list[Bar]]:
    """Per symbol, bars of its own random walk; some without quotes, some with half-quotes,
    some with trades in the same millisecond, spanning several UTC days."""
    out: dict[str, list[Bar]] = {}
    for i in range(n_symbols):
        step = 3_600_000 if i % 3 else 60_000  # hourly ones cross sessions
        bars = to_bars(random_walk_bars(N_BARS, seed=seed + i, step_ms=step, sigma=0.01))
        if i % 4 == 1:
            bars = [b._replace(bid=None, ask=None, bid_size=None, ask_size=None) for b in bars]
        elif i % 4 == 2:
            bars = [b._replace(ask=None) if j % 5 == 0 else b for j, b in enumerate(bars)]
        elif i % 4 == 3:  # flat prices: ties in every max/min window, zero ranges
            bars = [
                b._replace(ts_ms=bars[j - 1].ts_ms) if j % 7 == 0 and j else b
                for j, b in enumerate(bars)
            ]
            bars = [
                b._replace(open=10.0, high=10.0, low=10.0, close=10.0) if j % 11 < 6 else b
                for j, b in enumerate(bars)
            ]
        out[f"S{i}"] = bars
    return out


def interleave(bars: dict[str, list[Bar]], rng: np.random.Generator) -> list[list[tuple[str, Bar]]]:
    """The bars of every symbol in order, interleaved with skewed weights, cut in batches."""
    symbols = sorted(bars)
    weights = np.array([30.0 if i < 2 else 1.0 + i % 3 for i in range(len(symbols))])
    left = {s: list(reversed(b)) for s, b in bars.items()}
    flat: list[tuple[str, Bar]] = []
    while any(left.values()):
        live = [i for i, s in enumerate(symbols) if left[symbols[i]]]
        p = weights[live] / weights[live].sum()
        s = symbols[live[int(rng.choice(len(live), p=p))]]
        flat.append((s, left[s].pop()))
    out, start = [], 0
    while start < len(flat):
        size = int(rng.choice([1, 3, 17, 64, 400]))
        out.append(flat[start : start + size])
        start += size
    return out


def same_bytes(a: Sequence[float], b: Sequence[float]) -> bool:
    return np.asarray(a, np.float64).tobytes() == np.asarray(b, np.float64).tobytes()


@pytest.mark.parametrize("min_round", [1, 8, 10**6], ids=["all-rounds", "default", "all-busy"])
def test_columns_equal_the_per_symbol_indicators_bit_for_bit(min_round: int) -> None:
    fs = FeatureSet.default()
    rng = np.random.default_rng(min_round)
    bars = streams(16, seed=3)
    columns = ClassicColumns(fs, capacity=2, min_round=min_round)  # grows as rows come
    plain = {s: fs.new_state() for s in bars}
    held = {s: fs.new_state() for s in bars}
    checked = 0
    for batch in interleave(bars, rng):
        got = []
        for symbol, bar in batch:
            values = held[symbol].update(bar, same_ts_ok=True)
            columns.after(symbol, held[symbol], values)
            got.append((symbol, bar, values))
        columns.flush()
        for symbol, bar, values in got:
            want = plain[symbol].update(bar, same_ts_ok=True)
            assert same_bytes(values, want), (symbol, bar.ts_ms)
            checked += 1
        if rng.random() < 0.2:  # a snapshot restored: a plain state, attached again later
            symbol = str(rng.choice(sorted(held)))
            held[symbol] = pickle.loads(pickle.dumps(held[symbol]))
    assert checked == 16 * N_BARS
    assert len(columns.row_of) == 16
    assert columns.capacity >= 16
    for symbol, state in held.items():  # a snapshot is the per-symbol state's, byte for byte
        assert pickle.dumps(state) == pickle.dumps(plain[symbol]), symbol


def test_a_state_joins_the_columns_when_ready_and_detaches_as_it_was() -> None:
    fs = FeatureSet.default()
    columns = ClassicColumns(fs)
    state, plain = fs.new_state(), fs.new_state()
    bars = streams(1, seed=11)["S0"]
    for i, bar in enumerate(bars[:100]):
        values = state.update(bar)
        columns.after("X", state, values)
        columns.flush()
        assert (state.columns is columns) == (i + 1 >= fs.warmup)  # attached once ready
        assert same_bytes(values, plain.update(bar))
    state.detach_columns()
    assert state.columns is None
    assert columns.owners[columns.row_of["X"]] is None
    assert pickle.dumps(state) == pickle.dumps(plain)
    assert same_bytes(state.update(bars[100]), plain.update(bars[100]))


def test_a_refused_bar_is_not_queued_and_changes_nothing() -> None:
    fs = FeatureSet.default()
    columns = ClassicColumns(fs)
    state, plain = fs.new_state(), fs.new_state()
    bars = streams(1, seed=5)["S0"]
    for bar in bars[:80]:
        columns.after("X", state, state.update(bar))
        columns.flush()
        plain.update(bar)
    with pytest.raises(Exception, match=r"out_of_order|duplicate"):
        state.update(bars[10])
    with pytest.raises(Exception, match="high_below_low"):
        state.update(bars[80]._replace(high=1.0, low=2.0))
    assert columns.flush() == 0
    assert pickle.dumps(state) == pickle.dumps(plain)


def test_a_flush_refuses_bars_without_their_lists() -> None:
    fs = FeatureSet.default()
    columns = ClassicColumns(fs)
    state = fs.new_state()
    for bar in streams(1, seed=2)["S0"][:70]:
        columns.after("X", state, state.update(bar))
        columns.flush()
    state.update(streams(1, seed=2)["S0"][70])  # queued, never bound
    with pytest.raises(RuntimeError, match="1 bars queued but 0 lists bound"):
        columns.flush()


def test_only_sets_of_classic_kinds_are_columns() -> None:
    assert covers(feature_set("classic"))
    assert not covers(feature_set("alpha158"))
    assert not covers(feature_set("classic+alpha158"))
    with pytest.raises(ValueError, match="classic indicator kinds only"):
        ClassicColumns(feature_set("alpha158"))
    odd = FeatureSet([spec("sma", period=3), spec("ema", period=4), spec("sma", period=7)])
    columns = ClassicColumns(odd)  # a bank is a run of one kind: sma, ema, sma
    assert [c[1] for c in columns.columns] == [slice(0, 1), slice(1, 2), slice(2, 3)]


@pytest.mark.parametrize("largest", [True, False])
def test_ring_extremes_are_rolling_max_and_min(largest: bool) -> None:
    rng = np.random.default_rng(4)
    sizes = [3, 7]
    rings = Rings(sizes, capacity=5, fill=-math.inf if largest else math.inf)
    kind = RollingMax if largest else RollingMin
    refs = [[kind(s) for s in sizes] for _ in range(5)]
    value = np.zeros((5, 2))
    for r in range(5):  # warm: full rings, as the columns hold them
        for k, s in enumerate(sizes):
            for _ in range(s):
                x = float(rng.integers(0, 4))
                refs[r][k].push(x)
            rings.put(r, k, refs[r][k]._buf, refs[r][k]._pos)
            value[r, k] = refs[r][k].value
    for _ in range(200):
        rows = np.sort(rng.choice(5, size=int(rng.integers(1, 6)), replace=False))
        pushed = rng.integers(0, 4, size=(len(rows), 2)).astype(float)  # many ties
        got = rings.extreme(rows, pushed, value, largest=largest)
        for j, r in enumerate(rows.tolist()):
            for k in range(2):
                assert got[j, k] == refs[r][k].push(float(pushed[j, k]))
                assert rings.get(r, k) == (refs[r][k]._buf, refs[r][k]._pos)


def test_a_plain_state_never_attached_pickles_as_before() -> None:
    state = FeatureSet.default().new_state()
    restored = pickle.loads(pickle.dumps(state))
    assert isinstance(restored, SymbolState)
    assert restored.columns is None
