"""Alpha158 bars per second: the batch engine on micro-batches vs the per-symbol indicator.

In-process, no services: synthetic random-walk bars of ``--symbols`` symbols, shuffled
across symbols (each symbol's bars in order, a skewed feed: symbol ``i`` is drawn with
weight ``1/(i+1)``) and cut into micro-batches of ``--batch`` bars, each applied with one
:func:`~indicators.alpha158.vector.advance` (what the worker's feature stage calls per
micro-batch); the same bars (``--single-bars`` of them, to keep it short) one call at a
time to the per-symbol :class:`~indicators.alpha158.Alpha158`. Also times
``compute_frame`` with the ``alpha158`` set (bar checks + the engine). CPU time, median of
``--repeats``; the last line is one JSON object.

    .venv/bin/python benchmarks/bench_alpha158_engine.py [--symbols 500] [--bars 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import pandas as pd

from devtools.synthetic.bars import random_walk_panel
from indicators.alpha158 import Alpha158
from indicators.alpha158.state import empty_history
from indicators.alpha158.vector import advance
from indicators.feature_sets import feature_set
from indicators.frame import compute_frame

FIELDS = ["open", "high", "low", "close", "volume"]


def _engine(group: np.ndarray, bars: np.ndarray, n_symbols: int, batch: int) -> float:
    """Seconds (CPU) to apply ``bars`` (symbol ``group``) in micro-batches of ``batch``."""
    hist = np.repeat(empty_history()[None], n_symbols, axis=0)
    start = time.process_time()
    for lo in range(0, len(group), batch):
        at = slice(lo, lo + batch)
        present, local = np.unique(group[at], return_inverse=True)
        _, new = advance(hist[present], local, bars[at])
        hist[present] = new
    return time.process_time() - start


def _feed(panel: pd.DataFrame, n_symbols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The panel's bars as one skewed stream: each symbol's bars in order, symbols drawn
    with weight ``1/(i+1)`` while they last (then the rest, shuffled)."""
    rng = np.random.default_rng(seed)
    by_symbol = [g[FIELDS].to_numpy(np.float64) for _, g in panel.groupby("symbol", sort=True)]
    weights = 1.0 / np.arange(1, n_symbols + 1)
    draws = rng.choice(n_symbols, size=len(panel), p=weights / weights.sum())
    left = np.array([len(b) for b in by_symbol])
    order = []
    for s in draws.tolist():
        if left[s]:
            order.append(s)
            left[s] -= 1
    rest = np.repeat(np.arange(n_symbols), left)
    rng.shuffle(rest)
    group = np.concatenate([np.array(order, dtype=np.int64), rest])
    taken = np.zeros(n_symbols, dtype=np.int64)
    bars = np.empty((len(group), 6))
    for k, s in enumerate(group.tolist()):
        bars[k, :5] = by_symbol[s][taken[s]]
        taken[s] += 1
    bars[:, 5] = (bars[:, 1] + bars[:, 2] + bars[:, 3]) / 3.0
    return group, bars


def _single(bars: list[tuple[float, ...]]) -> float:
    ind = Alpha158()
    start = time.process_time()
    for o, h, lo, c, v in bars:
        ind.update(o, h, lo, c, v, (h + lo + c) / 3.0)
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--bars", type=int, default=300, help="bars per symbol")
    ap.add_argument("--batch", type=int, default=2000, help="bars per micro-batch")
    ap.add_argument("--single-bars", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    names = [f"S{i:04d}" for i in range(args.symbols)]
    panel = random_walk_panel(names, n=args.bars, seed=5)
    total = len(panel)
    group, bars = _feed(panel, args.symbols, seed=7)
    engine = [total / _engine(group, bars, args.symbols, args.batch) for _ in range(args.repeats)]
    one = random_walk_panel(["ONE"], n=args.single_bars, seed=6)[FIELDS]
    single = [args.single_bars / _single(list(one.itertuples(False, None)))]
    fs = feature_set("alpha158")
    frame = []
    for _ in range(args.repeats):
        start = time.process_time()
        out: pd.DataFrame = compute_frame(panel, fs)
        frame.append(total / (time.process_time() - start))
    assert len(out) == total
    result = {
        "symbols": args.symbols,
        "bars_per_symbol": args.bars,
        "batch": args.batch,
        "engine_cpu_us_per_bar": round(1e6 / statistics.median(engine), 2),
        "engine_bars_per_s": round(statistics.median(engine)),
        "engine_bars_per_s_best": round(max(engine)),
        "per_symbol_bars_per_s": round(statistics.median(single)),
        "compute_frame_bars_per_s": round(statistics.median(frame)),
        "speedup_engine_vs_per_symbol": round(statistics.median(engine) / single[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
