"""``tickcast demo``: the main job on the embedded defaults, end to end, in its own namespace.

Steps: reset the ``demo`` namespace; load the real S&P 500 daily bars; start a stream
worker; replay the bars through Kafka; wait until every symbol's latest features are in
Redis; show what happened (throughput, dead letters, features by name); stop the worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pandas as pd
import redis
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from indicators.feature_set import FeatureSet
from monitoring.lag import collect_lag
from sinks.feature_blob import decode as decode_blob
from streams import datasets
from streams.replay import publish
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.errors import DependencyError
from tickcast.stack.namespace import reset_namespace
from tickcast.stack.processes import ServiceProcess


def demo_settings(settings: Settings) -> Settings:
    """The demo's own namespace beside whatever else runs on the stack."""
    return settings.model_copy(
        update={
            "topic_prefix": "demo.",
            "redis_key_prefix": "demo:",
            "consumer_group": "tickcast-demo",
            "clickhouse_database": "demo",
        }
    )


def wait_for_lag_zero(settings: Settings, timeout_s: float, alive: Callable[[], bool]) -> float:
    """Wait until the worker's group has committed every tick (its state is durable then)."""
    ticks = settings.topic("ticks")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise DependencyError("worker", "the stream worker stopped", "see its log")
        rows = [
            r
            for r in collect_lag(settings.kafka_bootstrap, [settings.consumer_group])
            if r.topic == ticks
        ]
        if rows and all(r.lag == 0 for r in rows):
            return time.monotonic()
        time.sleep(0.25)
    raise DependencyError("worker", f"ticks not consumed after {timeout_s:.0f} s", "see its log")


def features_table(settings: Settings, symbols: list[str], names: list[str]) -> Table:
    """A few features of a few symbols, read back from Redis by name."""
    fs = FeatureSet.default()
    client = redis.Redis.from_url(settings.redis_url)
    table = Table(title="latest features in Redis (by name)")
    table.add_column("feature")
    for symbol in symbols:
        table.add_column(symbol, justify="right")
    raw = client.mget([f"{settings.redis_key_prefix}features:{s}" for s in symbols])
    blobs = [decode_blob(payload) for payload in raw if isinstance(payload, bytes)]
    index = {name: i for i, name in enumerate(fs.names)}
    table.add_row("event time", *[str(pd.Timestamp(b.event_ts_ms, unit="ms")) for b in blobs])
    for name in names:
        table.add_row(name, *[f"{b.values[index[name]]:.4g}" for b in blobs])
    return table


def run_demo(settings: Settings, console: Console, symbols: int | None = None) -> dict[str, Any]:
    """Run the demo; returns the figures it printed."""
    demo = demo_settings(settings)
    console.rule("[bold]tickcast demo")
    console.print(f"namespace: topics '{demo.topic_prefix}*', Redis '{demo.redis_key_prefix}*'")
    reset_namespace(demo)
    apply_topics(demo)
    frame = datasets.load("sp500-daily")
    if symbols:
        keep = sorted(frame["symbol"].unique())[:symbols]
        frame = frame[frame["symbol"].isin(keep)].reset_index(drop=True)
    info = datasets.describe("sp500-daily")
    console.print(
        f"data: {len(frame):,} real daily bars of {frame['symbol'].nunique()} S&P 500 symbols "
        f"({info.get('start')} → {info.get('end')})"
    )
    log = demo.data_dir / "logs" / "demo-worker.log"
    worker = ServiceProcess(demo, ["worker", "--metrics-port", "0"], log).start()
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("replay → Kafka ticks", total=len(frame))
            started = time.monotonic()
            publish(demo, frame, "replay:sp500-daily", None, lambda n: progress.advance(task, n))
            published = time.monotonic()
        last_ts = frame.groupby("symbol")["ts_ms"].max().astype(int).to_dict()
        finished = wait_for_lag_zero(demo, 900, worker.running)
    finally:
        worker.stop()
    figures = {
        "bars": len(frame),
        "symbols": len(last_ts),
        "publish_s": round(published - started, 2),
        "end_to_end_s": round(finished - started, 2),
        "ticks_per_s": round(len(frame) / (finished - started)),
    }
    console.print(
        f"worker: {figures['bars']:,} ticks → features for {figures['symbols']} symbols in "
        f"{figures['end_to_end_s']} s ({figures['ticks_per_s']:,} ticks/s end to end)"
    )
    sample = sorted(last_ts)[:4]
    console.print(
        features_table(demo, sample, ["rsi_14", "macd_12_26_9", "bb_pctb_20_2", "atr_14", "ret_5"])
    )
    console.print(f"read any symbol by name: tickcast features {sample[0]} --namespace demo")
    console.print(f"worker log: {log}")
    return figures
