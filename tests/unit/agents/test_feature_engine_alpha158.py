"""The stream's Alpha158: one batch call per micro-batch, per-symbol values and snapshots.

The feature engine applies each micro-batch's Alpha158 updates in one call of
:func:`~indicators.alpha158.vector.advance`; every record must carry the values the
per-symbol :class:`~indicators.feature_set.SymbolState` gives (bit for bit), whatever the
batch cut (several ticks of a symbol in one batch), with refused ticks in between, and when
states go through their snapshot bytes between batches (a restart) or stay in memory.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

from agents.feature_engine import FeatureEngine, SymbolStream
from indicators.alpha158 import Alpha158
from indicators.feature_set import FeatureSet
from indicators.feature_sets import feature_set
from tests.unit.agents.test_predictions import NOW_MS, _bars, _raw
from tests.unit.indicators.conftest import to_bars


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    frame = _bars(4, 130, seed=9)
    rng = np.random.default_rng(3)
    frame["volume"] = rng.choice([0.0, 500.0, 1e4, 2.5e4], size=len(frame))
    frame.loc[37, "close"] = -1.0  # refused (BAD_PRICE): no state change, no record
    return frame


def vectorised(fs: FeatureSet) -> FeatureEngine:
    engine = FeatureEngine(fs)
    assert engine.alpha158 is None  # per-symbol indicators until switched on
    assert engine.vectorise_alpha158()  # TICKCAST_ALPHA158_ENGINE=vector
    return engine


def per_symbol(bars: pd.DataFrame, name: str) -> dict[tuple[str, int], list[float]]:
    fs = feature_set(name)
    want: dict[tuple[str, int], list[float]] = {}
    for symbol, rows in bars.groupby("symbol"):
        state = fs.new_state()
        for bar in to_bars(rows):
            if bar.close > 0:
                want[(str(symbol), bar.ts_ms)] = state.update(bar)
    return want


@pytest.mark.parametrize("name", ["alpha158", "classic+alpha158"])
@pytest.mark.parametrize(("cut", "via_bytes"), [(1, False), (37, True), (200, False), (600, True)])
def test_records_equal_the_per_symbol_state_for_any_batch_cut(
    bars: pd.DataFrame, name: str, cut: int, via_bytes: bool
) -> None:
    fs = feature_set(name)
    records = _raw(bars)
    saved: dict[str, bytes | SymbolStream] = {}

    def load(symbol: str, _partition: int) -> SymbolStream | None:
        state = saved.get(symbol)
        return SymbolStream.loads(state) if isinstance(state, bytes) else state

    engine = vectorised(fs)
    got: dict[tuple[str, int], list[float]] = {}
    dead = 0
    for start in range(0, len(records), cut):
        if via_bytes and start:
            engine = vectorised(fs)  # a restart: only the snapshots survive
        out = engine.process(records[start : start + cut], load, NOW_MS)
        dead += len(out.dead_letters)
        for record in out.features:
            got[(record["symbol"], record["ts"])] = record["values"]
        for symbol, state in out.touched.items():
            assert state.last_values is out.touched[symbol].last_values
            saved[symbol] = state.dumps() if via_bytes else state
    want = per_symbol(bars, name)
    assert dead == 1
    assert got.keys() == want.keys()
    g = np.array([got[k] for k in want])
    w = np.array(list(want.values()))
    assert g.shape == (len(bars) - 1, len(fs.names))
    np.testing.assert_array_equal(g, w)


def test_snapshots_are_small_histories_that_restore_anywhere(bars: pd.DataFrame) -> None:
    fs = feature_set("alpha158")
    records = _raw(bars)
    engine = vectorised(fs)
    out = engine.process(records[:200], lambda s, p: None, NOW_MS)
    state = out.touched["S1"]
    (ind,) = state.features.indicators
    assert isinstance(ind, Alpha158)
    assert ind.queue is engine.alpha158  # live: its bars wait for the micro-batch
    blob = state.dumps()
    assert len(blob) < 8_000
    restored = SymbolStream.loads(blob)
    (twin,) = restored.features.indicators
    assert type(twin) is Alpha158
    assert twin.queue is None
    assert np.array_equal(twin.out, state.last_values, equal_nan=True)
    # outside a feature stage the restored state updates bar by bar, as the per-symbol one
    want = per_symbol(bars, "alpha158")
    rest = bars.iloc[200:][bars.iloc[200:]["symbol"] == "S1"]
    assert len(rest) > 50
    for bar in to_bars(rest):
        got = restored.features.update(bar)
        assert np.array_equal(got, want[("S1", bar.ts_ms)], equal_nan=True)
    assert len(pickle.dumps(twin)) < 5_000


class _FailingSide:
    """Side columns failing on the third tick: after its bar was queued, before its list
    was bound (the worst place for a batch to fail)."""

    def __init__(self) -> None:
        self.calls = 0

    def extend(self, symbol: str, ts: int, close: float, extra: dict[str, Any]) -> list[float]:
        self.calls += 1
        if self.calls == 3:
            raise ConnectionError("side input down")
        return []


def test_a_batch_that_failed_half_way_leaves_nothing_queued(bars: pd.DataFrame) -> None:
    """A batch failing between a tick's queued bar and its bound list raises; the engine's
    next batch starts clean: every record gets its 158 values (no RuntimeError for bars
    queued without a list, no values of the failed batch)."""
    fs = feature_set("alpha158")
    records = _raw(bars)
    engine = vectorised(fs)
    engine.side = _FailingSide()
    with pytest.raises(ConnectionError):
        engine.process(records[:40], lambda s, p: None, NOW_MS)
    engine.side = None
    out = engine.process(records[:40], lambda s, p: None, NOW_MS)  # fresh states: a retry
    want = per_symbol(bars.iloc[:40], "alpha158")
    got = {(r["symbol"], r["ts"]): r["values"] for r in out.features}
    assert got.keys() == want.keys()
    for key, values in got.items():
        assert np.array_equal(values, want[key], equal_nan=True), key
