"""The cost of exact sector columns on several partitions (#22 item 2): one worker with the
side features on 4 partitions, ``TICKCAST_SIDE_SECTOR_SYNC`` on and off in alternating rounds.

With the sync on the worker publishes its bars' returns and partition watermarks to
``sector-returns`` each batch (one synchronous flush), reads them back, and keeps the records
of a batch that are not final yet in memory for the next turns (agents.held_records); off,
each worker answers from its own symbols. Each round starts a worker on a fresh namespace,
waits until it holds its partitions, then publishes the same bars (random walks) and times
the drain: ticks/s from the start of the publish to the last feature record on
``features`` (the publish itself is included: ``publish_s``), and the worker's CPU per tick
over the same span (its start-up excluded). Needs the local stack (``tickcast up``).

    .venv/bin/python benchmarks/bench_side_sync.py [--symbols 16 --bars 1500 --rounds 4]

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

from confluent_kafka import Consumer, TopicPartition

from backtesting.namespace import reset_namespace
from devtools.synthetic.bars import random_walk_panel
from streams.replay import publish
from streams.topics import apply_topics
from tickcast.config import Settings, load_settings
from tickcast.processes import ServiceProcess


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _features_written(consumer: Consumer, topic: str, partitions: int) -> int:
    """Records on ``topic`` (the sum of its partitions' end offsets)."""
    ends = (consumer.get_watermark_offsets(TopicPartition(topic, p), 10) for p in range(partitions))
    return sum(high for _, high in ends)


def _wait_assigned(log: Path, worker: ServiceProcess, timeout_s: float = 120.0) -> None:
    """Until the worker's log says it holds its partitions."""
    deadline = time.monotonic() + timeout_s
    while "partitions assigned" not in (log.read_text() if log.exists() else ""):
        if time.monotonic() > deadline or not worker.running():
            raise RuntimeError(f"worker not assigned: {worker.log_tail()}")
        time.sleep(0.2)


def one_round(base: Settings, sync: bool, symbols: int, bars: int, log: Path) -> dict[str, float]:
    """Start a worker on a fresh 4-partition namespace, publish the bars, time the drain.

    The first bar of every symbol goes first, so that the worker's first turn (which opens
    the side consumers) is behind it; then CPU and time are the worker's from the moment
    it is idle again to the moment its last feature record is on ``features``.
    """
    ns = f"benchsync{uuid.uuid4().hex[:6]}"
    settings = base.model_copy(
        update={"topic_prefix": f"{ns}.", "redis_key_prefix": f"{ns}:", "consumer_group": ns,
                "partitions": 4, "side_features": True, "side_macro_series": "",
                "side_sector_sync": sync, "scoring_enabled": False}
    )  # fmt: skip
    apply_topics(settings)
    frame = random_walk_panel(tuple(f"S{i:02d}" for i in range(symbols)), bars)
    first = frame["ts_ms"] == frame["ts_ms"].min()
    warm, rest = frame[first], frame[~first]
    n, features = len(rest), settings.topic("features")
    env = {"TICKCAST_SIDE_SECTOR_SYNC": str(sync).lower(), "TICKCAST_LOG_LEVEL": "INFO"}
    worker = ServiceProcess(settings, ["worker", "--metrics-port", "0"], log, **env).start()
    assert worker.proc is not None
    reader = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"{ns}-bench"})
    try:
        _wait_assigned(log, worker)
        publish(settings, warm, "bench")  # the first turn opens the side consumers
        while _features_written(reader, features, 4) < len(warm):
            if not worker.running():
                raise RuntimeError(f"worker died: {worker.log_tail()}")
            time.sleep(0.05)
        time.sleep(1.0)
        cpu0, t0 = cpu_seconds(worker.proc.pid), time.monotonic()
        publish(settings, rest, "bench")
        published = time.monotonic() - t0
        deadline = t0 + 600
        while _features_written(reader, features, 4) < len(frame):
            if time.monotonic() > deadline or not worker.running():
                raise RuntimeError(f"not drained: {worker.log_tail()}")
            time.sleep(0.05)
        t1, cpu1 = time.monotonic(), cpu_seconds(worker.proc.pid)
    finally:
        reader.close()
        worker.stop()
        reset_namespace(settings)
    return {
        "ticks_per_s": round(n / (t1 - t0)),
        "cpu_us_per_tick": round((cpu1 - cpu0) / n * 1e6, 1),
        "publish_s": round(published, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=16)
    parser.add_argument("--bars", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=4)
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
    ratios = [  # within a pair of neighbouring runs: the machine's load is shared
        s["cpu_us_per_tick"] / o["cpu_us_per_tick"]
        for s, o in zip(results["sync"], results["own"], strict=True)
    ]
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
        "cpu_ratio_per_round": [round(r, 2) for r in ratios],
        "runs": results,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
