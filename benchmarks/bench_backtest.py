"""Benchmark: a replay backtest of the FULL sp500-daily data set, end to end.

``--source dataset`` (default): load the 122,574 real daily bars (524 symbols), publish them
into a fresh run namespace, run the real worker until lag 0, read predictions, evaluate,
write the report, delete the namespace. ``--source topic``: first publish the data set to a
throw-away "production" namespace, then backtest its whole time range from the topic (the
binary-search offset mapping and raw copy included).

Prints a JSON object on its last line: ``ticks``, ``ticks_per_s`` (ticks over the
worker phase: worker start → lag 0, which includes the load), ``wall_s`` (the whole
``run_backtest`` call), and the phase timings.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from backtesting.namespace import reset_namespace
from backtesting.runner import BacktestRequest, run_backtest
from devtools import datasets
from streams.replay import publish
from streams.topics import apply_topics
from tickcast.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", choices=["dataset", "topic"], default="dataset")
    parser.add_argument("--symbols", type=int, default=None, help="first N symbols only")
    args = parser.parse_args()
    base = Settings()
    tag = uuid.uuid4().hex[:6]
    source_ns = None
    if args.source == "topic":
        source_ns = base.model_copy(
            update={
                "topic_prefix": f"benchsrc{tag}.",
                "consumer_group": f"benchsrc{tag}",
                "redis_key_prefix": f"benchsrc{tag}:",
            }
        )
        apply_topics(source_ns)
        frame = datasets.load("sp500-daily")
        if args.symbols:
            frame = frame[frame["symbol"].isin(sorted(frame["symbol"].unique())[: args.symbols])]
        publish(source_ns, frame, "feed:sp500-daily")
    request = BacktestRequest(
        source="topic" if source_ns is not None else "sp500-daily",
        symbols=None if source_ns is not None else args.symbols,
        run_id=f"bt-bench-{tag}",
        log_mlflow=False,
        timeout_s=3600,
    )
    began = time.monotonic()
    try:
        outcome = run_backtest(source_ns or base, request)
    finally:
        if source_ns is not None:
            reset_namespace(source_ns)
    wall = time.monotonic() - began
    result = {
        "benchmark": "backtest",
        "source": args.source,
        "ticks": outcome.ticks,
        "symbols": int(outcome.report.meta["n_symbols"]) if outcome.report else 0,
        "predictions": len(outcome.predictions),
        "ticks_per_s": round(outcome.ticks_per_s, 1),
        "wall_s": round(wall, 2),
        "phases_s": {k: round(v, 2) for k, v in outcome.timings.items()},
        "probes": outcome.copy.probes if outcome.copy else None,
        "features_only": bool(outcome.note),
        "target_wall_s": 60,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
