"""Benchmark: tick → prediction latency through a real worker with a registered champion.

On the real broker and Redis, in a throw-away namespace with its own MLflow store: an XGBoost
champion (default 300 trees, depth 6, the 41 stream features) or, with ``--model lstm``, a
small LSTM (hidden ``--hidden`` 16, 2 epochs on synthetic sequences; one ONNX cell step per
tick from the symbol's checkpointed state) is registered, a worker starts
(features + in-stream scoring + outcome join), one warm-up tick per symbol is processed, then
ticks are offered at a fixed rate (default 5,000/s): ``--warmup-seconds`` (10) unmeasured, then
``--seconds`` (20) measured. Latency = Kafka timestamp of the
champion's prediction record (set when the worker produced it) minus the wall time the tick
was produced, matched by correlation id. ``--explain-top-k`` k > 0 runs the worker with
``TICKCAST_EXPLAIN_TOP_K`` = k (``TICKCAST_EXPLAIN_BUDGET`` as configured, default 1).

Prints a JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bench_features import namespaced, synthetic_frame  # sibling script (run as a file)
from confluent_kafka import Consumer, TopicPartition

from backtesting.namespace import reset_namespace
from indicators.feature_set import FeatureSet
from monitoring.lag import collect_lag
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import tick_records
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.processes import ServiceProcess
from training.champion import PackagedModel
from training.models import make_model
from training.registry import default_name, register


def register_champion(settings: Settings, trees: int) -> str:
    """Train a synthetic XGBoost direction model on the stream's features and register it."""
    fs = FeatureSet.default()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, len(fs.names)))
    y = (X[:, 0] - X[:, 3] + rng.standard_normal(5000) > 0).astype(int)
    model = make_model("xgboost", 0, {"n_estimators": trees, "max_depth": 6})
    model.fit(pd.DataFrame(X, columns=list(fs.names)), y)
    packaged = PackagedModel("xgboost", model, tuple(fs.names), fs.version, 1, 0.001, (0, 1))
    entry = register(packaged, name=default_name(1), settings=settings, sample=X[:50])
    return f"{entry.name}:{entry.version}"


def register_lstm(settings: Settings, hidden: int) -> str:
    """Train a small synthetic LSTM (50 symbols × 100 steps, 2 epochs) and register it."""
    fs = FeatureSet.default()
    rng = np.random.default_rng(0)
    n_sym, n_steps = 50, 100
    X = rng.standard_normal((n_sym * n_steps, len(fs.names)))
    y = (X[:, 0] - X[:, 3] + rng.standard_normal(len(X)) > 0).astype(int)
    frame = pd.DataFrame(X, columns=list(fs.names))
    frame.insert(0, "symbol", np.repeat([f"T{i:03d}" for i in range(n_sym)], n_steps))
    frame.insert(1, "ts_ms", np.tile(np.arange(n_steps) * 60_000, n_sym))
    model = make_model("lstm", 0, {"hidden": hidden, "epochs": 2})
    model.fit(frame, y)
    packaged = PackagedModel("lstm", model, tuple(fs.names), fs.version, 1, 0.001, (0, 1))
    entry = register(packaged, name=default_name(1), settings=settings, sample=X[:50])
    return f"{entry.name}:{entry.version}"


def _committed(settings: Settings, topic: str) -> int:
    rows = [r for r in collect_lag(settings.kafka_bootstrap, [settings.consumer_group])
            if r.topic == topic]  # fmt: skip
    return sum(max(r.committed, 0) for r in rows) if rows else 0


def run(
    base: Settings,
    rate: float,
    seconds: float,
    symbols: int,
    trees: int,
    runner: str,
    log: Path,
    warmup_s: float = 10.0,
    kind: str = "xgboost",
    hidden: int = 16,
    explain_top_k: int = 0,
) -> dict:
    ns = namespaced(base, "pipe")
    store = log.parent / "mlflow"
    settings = Settings(**{  # a fresh Settings: its MLflow URIs are not cached from ``base``
        **ns.model_dump(),
        "mlflow_tracking_uri": f"sqlite:///{store / 'mlflow.db'}",
        "mlflow_artifact_root": str(store / "artifacts"),
        "explain_top_k": explain_top_k,
    })  # fmt: skip
    apply_topics(settings)
    if kind == "lstm":
        model = register_lstm(settings, hidden)
    else:
        model = register_champion(settings, trees)
    args = ["worker", "--metrics-port", "0", "--runner", runner]
    worker = ServiceProcess(settings, args, log).start()
    codec, producer = get_codec("Tick"), BatchProducer(settings)
    topic = settings.topic("ticks")
    n = int(rate * seconds)
    warm = int(rate * warmup_s)
    records = list(tick_records(synthetic_frame(n + warm + symbols, symbols), "bench"))
    try:
        for record in records[:symbols]:  # warm-up: one tick per symbol, committed
            producer.produce(topic, record["symbol"].encode(), codec.encode(record))
        producer.flush()
        deadline = time.monotonic() + 180
        while _committed(settings, topic) < symbols:
            if not worker.running() or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{worker.log_tail()}")
            time.sleep(0.2)
        sent: dict[str, float] = {}
        start = measured_from = time.time()
        for i, record in enumerate(records[symbols:]):
            due = start + i / rate
            while (now := time.time()) < due:
                time.sleep(min(due - now, 0.001))
            if i == warm:
                measured_from = time.time()
            if i >= warm:  # the warm-up's ticks (JIT of a fresh broker, caches) are not measured
                sent[record["correlation_id"]] = time.time()
            producer.produce(topic, record["symbol"].encode(), codec.encode(record))
            producer.poll()
        producer.flush()
        achieved = len(sent) / max(time.time() - measured_from, 1e-9)
        lat, scoring = _read_latencies(settings, sent, log.parent / "latencies.csv")
    finally:
        worker.stop()
        reset_namespace(settings)
    arr = np.array(lat) if lat else np.array([np.nan])
    return {
        "model": model,
        "kind": kind,
        "runner": runner,
        "trees": trees if kind == "xgboost" else None,
        "hidden": hidden if kind == "lstm" else None,
        "explain_top_k": explain_top_k,
        "explain_budget": settings.explain_budget if explain_top_k else None,
        "symbols": symbols,
        "offered_per_s": rate,
        "warmup_s": warmup_s,
        "achieved_offer_per_s": round(achieved),
        "sent": len(sent),
        "measured": len(lat),
        "tick_to_prediction_ms_p50": round(float(np.percentile(arr, 50)), 2),
        "tick_to_prediction_ms_p99": round(float(np.percentile(arr, 99)), 2),
        "tick_to_prediction_ms_max": round(float(np.max(arr)), 2),
        "scoring_latency_ms_p50": round(float(np.median(scoring)), 3) if scoring else None,
    }


def _read_latencies(
    settings: Settings, sent: dict[str, float], csv: Path
) -> tuple[list[float], list[float]]:
    """Champion latencies (ms) and scoring latencies; ``csv`` gets ``sent_s,latency_ms`` per
    tick, to line a tail up with the worker's ``slow_turn`` log. Stops once every tick is
    matched or nothing new came for 10 s (the validator dead-letters a few outliers)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap,
                         "group.id": "pipe-lat-reader", "enable.auto.commit": False})  # fmt: skip
    ptopic = settings.topic("predictions")
    parts = consumer.list_topics(ptopic, timeout=10).topics[ptopic].partitions
    consumer.assign([TopicPartition(ptopic, p, 0) for p in parts])
    pcodec = get_codec("Prediction")
    lat: list[float] = []
    scoring: list[float] = []
    rows: list[str] = []
    deadline = time.monotonic() + 120
    progress = time.monotonic()
    try:
        while len(lat) < len(sent) and time.monotonic() < min(deadline, progress + 10):
            for message in consumer.consume(5000, timeout=0.5):
                if message.error() is not None:
                    continue
                pred: dict[str, Any] = pcodec.decode(message.value())
                cid = pred.get("correlation_id")
                if pred["role"] == "CHAMPION" and cid in sent:
                    lat.append(message.timestamp()[1] - sent[cid] * 1000)
                    scoring.append(pred["scoring_latency_ms"])
                    rows.append(f"{sent[cid]:.4f},{lat[-1]:.2f}")
                    progress = time.monotonic()
    finally:
        consumer.close()
    csv.write_text("sent_s,latency_ms\n" + "\n".join(sorted(rows)) + "\n")
    return lat, scoring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--runner", choices=["faust", "direct"], default="faust")
    parser.add_argument("--model", choices=["xgboost", "lstm"], default="xgboost")
    parser.add_argument("--hidden", type=int, default=16, help="the LSTM's hidden size")
    parser.add_argument("--explain-top-k", type=int, default=0)
    parser.add_argument(
        "--warmup-seconds", type=float, default=10.0,
        help="offer the rate this long before measuring (a fresh broker compiles its hot paths)",
    )  # fmt: skip
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    result = run(Settings(), args.rate, args.seconds, args.symbols, args.trees, args.runner,
                 logs / "worker.log", args.warmup_seconds, args.model, args.hidden,
                 args.explain_top_k)  # fmt: skip
    print(json.dumps({**result, "worker_log": str(logs / "worker.log")}))


if __name__ == "__main__":
    main()
