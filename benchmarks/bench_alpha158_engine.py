"""Alpha158 bars per second: the vectorised engine across symbols vs the per-symbol indicator.

In-process, no services: synthetic random-walk bars of ``--symbols`` symbols, applied in
rounds (bar *k* of every symbol) to one :class:`~indicators.alpha158.vector.Alpha158Batch`,
and the same bars (``--single-bars`` of them, to keep it short) one call at a time to the
per-symbol :class:`~indicators.alpha158.Alpha158`. Also times ``compute_frame`` with the
``alpha158`` set (bar checks + the engine). CPU time, median of ``--repeats``; the last line
is one JSON object.

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
from indicators.alpha158.vector import Alpha158Batch
from indicators.feature_sets import feature_set
from indicators.frame import compute_frame

FIELDS = ["open", "high", "low", "close", "volume"]


def _engine(cube: np.ndarray) -> float:
    """Seconds (CPU) to apply ``cube`` ``[rounds, fields, symbols]`` round by round."""
    n = cube.shape[2]
    batch = Alpha158Batch(n)
    rows = np.arange(n)
    start = time.process_time()
    for o, h, lo, c, v in cube:
        batch.update(rows, o, h, lo, c, v, (h + lo + c) / 3.0)
    return time.process_time() - start


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
    ap.add_argument("--single-bars", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    names = [f"S{i:04d}" for i in range(args.symbols)]
    panel = random_walk_panel(names, n=args.bars, seed=5)
    total = len(panel)
    cube = (
        panel.sort_values(["ts_ms", "symbol"])[FIELDS]
        .to_numpy(np.float64)
        .reshape(args.bars, args.symbols, len(FIELDS))
        .transpose(0, 2, 1)
        .copy()
    )
    engine = [total / _engine(cube) for _ in range(args.repeats)]
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
        "engine_bars_per_s": round(statistics.median(engine)),
        "engine_bars_per_s_best": round(max(engine)),
        "per_symbol_bars_per_s": round(statistics.median(single)),
        "compute_frame_bars_per_s": round(statistics.median(frame)),
        "speedup_engine_vs_per_symbol": round(statistics.median(engine) / single[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
