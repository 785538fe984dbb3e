"""The broadcast sector board with its watermark gives the training frame's sector columns
exactly, whatever the partitions' progress and arrival order (duplicates included)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from sidestreams.features import SideSpec
from sidestreams.frame import side_frame
from sidestreams.sector import SECTOR_FEATURES
from sidestreams.sector_sync import BroadcastBoard, PartitionWatermark

SECTORS = {f"S{i}": ("tech", "energy", "banks")[i % 3] for i in range(9)}
PARTITIONS = 4


def _bars(seed: int) -> pd.DataFrame:
    """Nine symbols (one unmapped) on a shared grid with gaps, random walks."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(10):
        stamps = np.sort(rng.choice(np.arange(1, 80), size=50, replace=False)) * 60_000
        close = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, stamps.size)))
        rows += [(int(t), f"S{i}", float(c)) for t, c in zip(stamps, close, strict=True)]
    return pd.DataFrame(rows, columns=["ts_ms", "symbol", "close"])


def _streams(bars: pd.DataFrame) -> dict[int, list[tuple[str, int, float | None]]]:
    """Per partition, in event-time order: each bar with its return (None for a first bar)."""
    out: dict[int, list[tuple[str, int, float | None]]] = {p: [] for p in range(PARTITIONS)}
    ordered = bars.sort_values(["ts_ms", "symbol"])
    last: dict[str, float] = {}
    for t, sym, close in ordered.itertuples(index=False):
        prev = last.get(sym)
        last[sym] = close
        out[int(sym[1:]) % PARTITIONS].append(
            (sym, t, None if prev is None else math.log(close / prev))
        )
    return out


def _same(a: list[float], b: list[float]) -> bool:
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("seed", range(5))
def test_final_answers_equal_the_training_frame_in_any_interleaving(seed: int) -> None:
    bars = _bars(seed)
    frame = side_frame(bars, SideSpec(news=False, sectors=SECTORS))
    want = {
        (r.symbol, r.ts_ms): [getattr(r, c) for c in SECTOR_FEATURES] for r in frame.itertuples()
    }
    streams = _streams(bars)
    rng = np.random.default_rng(100 + seed)
    board, mark = BroadcastBoard(SECTORS), PartitionWatermark()
    pending: list[tuple[str, int]] = []
    got: dict[tuple[str, int], list[float]] = {}
    naive_differs = 0
    positions = dict.fromkeys(streams, 0)
    while any(positions[p] < len(streams[p]) for p in streams):
        p = int(rng.choice([q for q in streams if positions[q] < len(streams[q])]))
        chunk = streams[p][positions[p] : positions[p] + int(rng.integers(1, 40))]  # uneven
        positions[p] += len(chunk)
        if rng.random() < 0.2:  # a restarted worker publishes a stretch again
            chunk = chunk + chunk[: len(chunk) // 2]
        for sym, t, ret in chunk:
            if ret is not None:
                board.add(sym, t, ret)
            mark.observe(p, t)
            if (sym, t) not in got and (sym, t) not in pending:
                naive_differs += not _same(board.features(sym, t), want[(sym, t)])
                pending.append((sym, t))
        still = []
        for sym, t in pending:
            if mark.final(t, active=range(PARTITIONS)):
                got[(sym, t)] = board.features(sym, t)
            else:
                still.append((sym, t))
        pending = still
    answered_live = len(got)
    for sym, t in pending:  # the streams ended: what remains is final (the live wait's time-out)
        got[(sym, t)] = board.features(sym, t)
    assert len(got) == len(bars)
    assert answered_live > 0.9 * len(bars)
    assert naive_differs > 0  # answering on arrival would not equal training
    assert [k for k in got if not _same(got[k], want[k])] == []
