"""Per symbol-tick cost of the default feature set (and of RSI+MACD+BB+ATR alone).

Runs ``SymbolState.update`` over synthetic bars (after warm-up, the steady state) for a
few repeats and prints the median (and best) CPU µs per tick; the last line is one JSON object.

    .venv/bin/python benchmarks/bench_indicators.py [--bars 20000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time

from devtools.synthetic.bars import random_walk_bars
from indicators.bar import Bar
from indicators.feature_set import FeatureSet, spec
from indicators.frame import compute_frame

CORE4 = (
    spec("rsi", period=14),
    spec("macd", fast=12, slow=26, signal=9),
    spec("bb", period=20, k=2.0),
    spec("atr", period=14),
)


def _bars(n: int) -> list[Bar]:
    df = random_walk_bars(n, seed=3)
    cols = ["ts_ms", "open", "high", "low", "close", "volume", "bid", "ask", "bid_size", "ask_size"]
    return [Bar(int(r[0]), *r[1:]) for r in df[cols].itertuples(index=False, name=None)]


def _per_tick_us(fs: FeatureSet, bars: list[Bar], repeats: int) -> tuple[float, float]:
    """(median, best) µs per tick over ``repeats`` runs."""
    samples = []
    for _ in range(repeats):
        state = fs.new_state()
        for bar in bars[: fs.warmup]:
            state.update(bar)
        rest = bars[fs.warmup :]
        update = state.update
        t0 = time.process_time()  # CPU time: less skewed by other processes on a shared box
        for bar in rest:
            update(bar)
        samples.append((time.process_time() - t0) / len(rest) * 1e6)
    return statistics.median(samples), min(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    bars = _bars(args.bars)
    default = FeatureSet.default()
    core = FeatureSet(CORE4)
    us_default, best_default = _per_tick_us(default, bars, args.repeats)
    us_core, best_core = _per_tick_us(core, bars, args.repeats)
    state = default.new_state()
    for bar in bars:
        state.update(bar)
    df = random_walk_bars(min(args.bars, 5000), seed=3)
    t0 = time.process_time()
    compute_frame(df, default)
    us_frame = (time.process_time() - t0) / len(df) * 1e6
    result = {
        "benchmark": "indicators",
        "features": len(default.names),
        "feature_set_version": default.version,
        "bars": args.bars,
        "us_per_tick_default": round(us_default, 2),
        "us_per_feature_default": round(us_default / len(default.names), 3),
        "best_us_per_tick_default": round(best_default, 2),
        "us_per_tick_rsi_macd_bb_atr": round(us_core, 2),
        "best_us_per_tick_rsi_macd_bb_atr": round(best_core, 2),
        "us_per_row_compute_frame": round(us_frame, 2),
        "state_pickle_bytes": len(pickle.dumps(state, pickle.HIGHEST_PROTOCOL)),
    }
    print(f"default set: {us_default:.1f} µs/tick ({len(default.names)} features)")
    print(f"RSI+MACD+BB+ATR: {us_core:.2f} µs/tick")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
