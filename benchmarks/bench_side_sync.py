"""The cost of exact sector columns on several partitions (#22 item 2): one worker with the
side features on 4 partitions, ``TICKCAST_SIDE_SECTOR_SYNC`` on and off in alternating rounds.

With the sync on the worker publishes its bars' returns and partition watermarks to
``sector-returns`` each batch (one synchronous flush), reads them back, and re-reads the
records of a batch that were not final yet; off, each worker answers from its own symbols.
Each round publishes the same bars (random walks) to a fresh namespace first, then measures
the worker draining them: ticks/s from its committed offsets (first to last commit) and its
CPU per tick. Needs the local stack (``tickcast up``).

    .venv/bin/python benchmarks/bench_side_sync.py [--symbols 16 --bars 1500 --rounds 2]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from backtesting.namespace import reset_namespace
from devtools.synthetic.bars import random_walk_panel
from monitoring.lag import collect_lag
from streams.replay import publish
from streams.topics import apply_topics
from tickcast.config import Settings, load_settings
from tickcast.processes import ServiceProcess


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_round(base: Settings, sync: bool, symbols: int, bars: int, log: Path) -> dict[str, float]:
    """Publish the bars to a fresh 4-partition namespace, then time a worker draining them."""
    ns = f"benchsync{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(
        update={"topic_prefix": f"{ns}.", "redis_key_prefix": f"{ns}:", "consumer_group": ns,
                "partitions": 4, "side_features": True, "side_macro_series": "",
                "side_sector_sync": sync, "scoring_enabled": False}
    )  # fmt: skip
    apply_topics(settings)
    frame = random_walk_panel(tuple(f"S{i:02d}" for i in range(symbols)), bars)
    publish(settings, frame, "bench")
    n, topic = len(frame), settings.topic("ticks")
    env = {"TICKCAST_SIDE_SECTOR_SYNC": str(sync).lower()}
    worker = ServiceProcess(settings, ["worker", "--metrics-port", "0"], log, **env).start()
    assert worker.proc is not None
    samples: list[tuple[float, int, float]] = []
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = [r for r in collect_lag(settings.kafka_bootstrap, [ns]) if r.topic == topic]
            done = sum(max(r.committed, 0) for r in rows)
            samples.append((time.monotonic(), done, cpu_seconds(worker.proc.pid)))
            if rows and done >= n:
                break
            time.sleep(0.5)
    finally:
        worker.stop()
        reset_namespace(settings)
    start = next(s for s in samples if s[1] > 0)
    end = samples[-1]
    ticks = max(end[1] - start[1], 1)
    return {
        "ticks_per_s": round(ticks / max(end[0] - start[0], 1e-9)),
        "cpu_us_per_tick": round((end[2] - start[2]) / ticks * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=16)
    parser.add_argument("--bars", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    base = load_settings()
    results: dict[str, list[dict[str, float]]] = {"sync": [], "own": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):  # alternating, so drift in the machine's load is shared
            for mode in ("sync", "own") if i % 2 == 0 else ("own", "sync"):
                log = Path(tmp) / f"{mode}{i}.log"
                got = one_round(base, mode == "sync", args.symbols, args.bars, log)
                results[mode].append(got)
                print(mode, json.dumps(got))
    median = {
        mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for mode, runs in results.items()
    }
    out = {
        "benchmark": "side_sector_sync",
        "ticks": args.symbols * args.bars,
        "symbols": args.symbols,
        "partitions": 4,
        "rounds": args.rounds,
        "median": median,
        "cpu_per_tick_sync_over_own": round(
            median["sync"]["cpu_us_per_tick"] / median["own"]["cpu_us_per_tick"], 2
        ),
        "runs": results,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
