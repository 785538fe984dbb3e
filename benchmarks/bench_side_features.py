"""Models trained with and without the side features (issue #22), plus the side join's cost.

Walk-forward (expanding, 4 folds, horizon 1 bar) on the ``sp500-daily`` symbols of the
packaged sector map (2009-08..2010-08), once on the indicators alone and once with the side
columns: macro (statsmodels macrodata ``realgdp``, ``unemp``, ``infl``, ``tbilrate`` by the
30-day lag rule), news sentiment (the test fixture's headlines) and sector/market returns.
Also times ``side_frame`` (rows/s, on the 47 symbols and on all 524) and
``check_side_point_in_time``. No services needed;
the data set must be in the cache (``tickcast data fetch sp500-daily``).

    .venv/bin/python benchmarks/bench_side_features.py [--models lightgbm logistic]

Before the JSON it prints the report's table (``docs/side_streams.md``: models trained with
and without the side columns) in markdown, headed by the date and the command. The last line
is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from devtools.datasets import load
from indicators import compute_frame
from indicators.feature_set import FeatureSet
from sidestreams.features import SideFeatureSet, SideSpec
from sidestreams.frame import side_computer, side_frame
from sidestreams.sector import load_sector_map
from sidestreams.sources import MacroData, NewsFile
from training.point_in_time import check_side_point_in_time
from training.walk_forward import WalkForwardConfig, run_walk_forward

NEWS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "side" / "news_headlines.jsonl"
SHOWN = ("accuracy", "auc", "log_loss", "sharpe")


def _ticks_per_s(engine: Any, ticks: list[Any], now: int) -> float:
    states: dict[str, Any] = {}
    t0 = time.perf_counter()
    for i in range(0, len(ticks), 2000):
        result = engine.process(ticks[i : i + 2000], lambda s, p: states.get(s), now)
        states.update(result.touched)
    return len(ticks) / (time.perf_counter() - t0)


def _engine_ticks_per_s(
    bars: Any, spec: SideSpec, macro: list[Any], news: list[Any]
) -> dict[str, int]:
    """The worker's pure feature engine (decode, validate, indicators[, side columns]) on the
    bars as ticks, in batches of 2000, without and with the side columns (best of 3)."""
    from agents.feature_engine import FeatureEngine
    from agents.side_inputs import SideFeatureEngine, SideInputs
    from streams.codec import get_codec
    from streams.raw_record import RawRecord
    from streams.replay import tick_records
    from tickcast.config import Settings
    from tickcast.metrics import Metrics

    codec = get_codec("Tick")
    ordered = bars.sort_values(["ts_ms", "symbol"], kind="stable")
    ticks = [
        RawRecord("ticks", 0, i, t["symbol"].encode(), codec.encode(t))
        for i, t in enumerate(tick_records(ordered, "bench"))
    ]
    now = int(time.time() * 1000)
    out: dict[str, int] = {}
    for label in ("indicators", "indicators+side"):
        best = 0.0
        for _ in range(3):
            if label == "indicators":
                engine: FeatureEngine = FeatureEngine(FeatureSet.default())
            else:
                inputs = SideInputs(Settings(), spec, Metrics())
                inputs.macro = inputs.news = object()  # type: ignore[assignment]
                inputs.poll = lambda owned: None  # type: ignore[method-assign]
                for r in macro:
                    inputs.state.add_macro(r)
                for n in news:
                    for sym in n["symbols"]:
                        inputs.state.add_news(n, sym)
                engine = SideFeatureEngine(FeatureSet.default(), inputs)
            best = max(best, _ticks_per_s(engine, ticks, now))
        out[label] = round(best)
        print(f"engine {label}: {out[label]:,} ticks/s")
    return out


def report_table(runs: dict[str, Any], models: list[str], date: str, command: str) -> list[str]:
    """The markdown table of the report: each model with and without the side columns."""
    lines = [f"{date}, `{command}`:", "",
             "| features | model | " + " | ".join(SHOWN) + " |",
             "| --- | --- | " + " | ".join("---:" for _ in SHOWN) + " |"]  # fmt: skip
    for model in models:
        for label, run in runs.items():
            cells = [f"{run['models'][model].get(k, float('nan')):.3f}" for k in SHOWN]
            lines.append(f"| {label} ({run['features']}) | {model} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["lightgbm", "logistic"])
    parser.add_argument("--splits", type=int, default=4)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="Skipping features without any observed")
    sectors = load_sector_map()
    everything = load("sp500-daily")
    bars = everything[everything["symbol"].isin(list(sectors))].reset_index(drop=True)
    spec = SideSpec(macro_series=("realgdp", "unemp", "infl", "tbilrate"), sectors=sectors)
    macro = MacroData(series=spec.macro_series).load().records
    news = NewsFile(NEWS).load().records
    config = WalkForwardConfig(
        horizon=1, n_splits=args.splits, models=tuple(args.models), drop_incomplete=False,
        model_params={"lightgbm": {"n_estimators": 200}},
    )  # fmt: skip
    began = time.perf_counter()
    side_only = side_frame(bars, spec, macro, news)
    join_s = time.perf_counter() - began
    began = time.perf_counter()
    cutoffs = check_side_point_in_time(
        lambda recs: side_frame(
            bars, spec, [r for r in recs if "series_id" in r], [r for r in recs if "symbols" in r]
        ),
        [*macro, *news],
        spec.names,
    )
    canary_s = time.perf_counter() - began
    began = time.perf_counter()
    side_frame(everything, spec, macro, news)  # 524 symbols, unmapped ones in UNKNOWN
    all_s = time.perf_counter() - began
    engine = _engine_ticks_per_s(bars, spec, macro, news)
    runs: dict[str, Any] = {}
    for label, fs, compute in (
        ("indicators", FeatureSet.default(), compute_frame),
        (
            "indicators+side",
            SideFeatureSet(FeatureSet.default(), spec),
            side_computer(spec, macro, news),
        ),
    ):
        t0 = time.perf_counter()
        result = run_walk_forward(bars, fs, config, compute=compute)
        runs[label] = {
            "features": len(fs.names),
            "seconds": round(time.perf_counter() - t0, 1),
            "models": {
                m: {k: round(float(v), 4) for k, v in result.aggregate[m].items() if k in SHOWN}
                for m in args.models
            },
        }
        print(f"{label:16s} {len(fs.names):3d} features", json.dumps(runs[label]["models"]))
    command = shlex.join([".venv/bin/python", "benchmarks/bench_side_features.py", *sys.argv[1:]])
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    for line in report_table(runs, args.models, date, command):
        print(line)
    out = {
        "benchmark": "side_features",
        "date": date,
        "command": command,
        "data": f"sp500-daily, {bars['symbol'].nunique()} symbols, {len(bars)} bars",
        "walk_forward": {"horizon": 1, "splits": args.splits, "window": "expanding"},
        "side_columns": list(spec.names),
        "side_frame_rows_per_s": round(len(bars) / join_s),
        "side_frame_rows_per_s_524_symbols": round(len(everything) / all_s),
        "side_canary_s": round(canary_s, 2),
        "engine_ticks_per_s": engine,
        "side_canary_cutoffs": len(cutoffs),
        "side_nonnull_share": {
            c: round(float(np.isfinite(side_only[c]).mean()), 3) for c in spec.names
        },
        "runs": runs,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
