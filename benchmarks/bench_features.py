"""Benchmark: ticks → validation → features (+ Redis) through a real worker process.

Two phases on the real broker and Redis, in a throw-away namespace:

1. saturation: N synthetic ticks (default 200,000 over 500 symbols) are published first,
   then a worker starts; the sustained rate is measured from its committed offsets once it
   is running (worker start-up excluded).
2. latency: a fresh worker; ticks are offered at a fixed rate (default 5,000/s); latency is
   tick produced → feature record created, which the worker does right after the Redis
   pipeline write of the same micro-batch.

Prints a JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer, TopicPartition

from backtesting.namespace import reset_namespace
from devtools.synthetic.market import SyntheticConfig, SyntheticMarket, to_frame
from monitoring.lag import collect_lag
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import tick_records
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.processes import ServiceProcess


def namespaced(base: Settings, tag: str) -> Settings:
    ns = f"bench{tag}{uuid.uuid4().hex[:6]}"
    return base.model_copy(
        update={"topic_prefix": f"{ns}.", "redis_key_prefix": f"{ns}:", "consumer_group": ns}
    )


def synthetic_frame(n: int, symbols: int):  # type: ignore[no-untyped-def]
    market = SyntheticMarket(SyntheticConfig(n_symbols=symbols, seed=1))
    frame = to_frame(next(market.ticks(n, batch_size=n)))
    frame["symbol"] = np.char.add("SYM", frame["symbol_id"].astype(str))
    return frame[["symbol", "ts_ms", "price", "volume"]]


def saturation(base: Settings, n: int, symbols: int, log: Path, runner: str) -> dict[str, float]:
    settings = namespaced(base, "sat")
    apply_topics(settings)
    codec, producer = get_codec("Tick"), BatchProducer(settings)
    topic = settings.topic("ticks")
    for record in tick_records(synthetic_frame(n, symbols), "bench"):
        producer.produce(topic, record["symbol"].encode(), codec.encode(record))
    producer.flush()
    args = ["worker", "--metrics-port", "0", "--runner", runner]
    worker = ServiceProcess(settings, args, log).start()
    try:
        samples: list[tuple[float, int]] = []
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            rows = [
                r
                for r in collect_lag(settings.kafka_bootstrap, [settings.consumer_group])
                if r.topic == topic
            ]
            done = sum(max(r.committed, 0) for r in rows)
            samples.append((time.monotonic(), done))
            if rows and done >= n:
                break
            time.sleep(0.5)
    finally:
        worker.stop()
        reset_namespace(settings)
    started = next((t, c) for t, c in samples if c > 0)
    ended = samples[-1]
    return {
        "ticks": n,
        "symbols": symbols,
        "ticks_per_s": round((ended[1] - started[1]) / max(ended[0] - started[0], 1e-9)),
    }


def latency(
    base: Settings, rate: float, seconds: float, symbols: int, log: Path, runner: str
) -> dict[str, float]:
    settings = namespaced(base, "lat")
    apply_topics(settings)
    args = ["worker", "--metrics-port", "0", "--runner", runner]
    worker = ServiceProcess(settings, args, log).start()
    codec, producer = get_codec("Tick"), BatchProducer(settings)
    topic = settings.topic("ticks")
    n = int(rate * seconds)
    records = list(tick_records(synthetic_frame(n + symbols, symbols), "bench"))
    # Warm-up: one tick per symbol, then wait until the worker has committed them.
    for record in records[:symbols]:
        producer.produce(topic, record["symbol"].encode(), codec.encode(record))
    producer.flush()
    while True:
        rows = [
            r
            for r in collect_lag(settings.kafka_bootstrap, [settings.consumer_group])
            if r.topic == topic
        ]
        if rows and sum(max(r.committed, 0) for r in rows) >= symbols:
            break
        time.sleep(0.2)
    sent: dict[str, float] = {}
    start = time.time()
    for i, record in enumerate(records[symbols:]):
        due = start + i / rate
        while (now := time.time()) < due:
            time.sleep(min(due - now, 0.001))
        sent[record["correlation_id"]] = time.time()
        producer.produce(topic, record["symbol"].encode(), codec.encode(record))
        producer.poll()
    producer.flush()
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "lat-reader",
            "enable.auto.commit": False,
        }
    )
    ftopic = settings.topic("features")
    parts = consumer.list_topics(ftopic, timeout=10).topics[ftopic].partitions
    consumer.assign([TopicPartition(ftopic, p, 0) for p in parts])
    fcodec = get_codec("FeatureVector")
    lat: list[float] = []
    deadline = time.monotonic() + 120
    while len(lat) < len(sent) and time.monotonic() < deadline:
        for message in consumer.consume(5000, timeout=0.5):
            if message.error() is None:
                cid = fcodec.decode(message.value())["correlation_id"]
                if cid in sent:
                    lat.append(message.timestamp()[1] - sent[cid] * 1000)
    consumer.close()
    worker.stop()
    reset_namespace(settings)
    arr = np.array(lat)
    return {
        "offered_per_s": rate,
        "measured": len(arr),
        "latency_ms_p50": round(float(np.percentile(arr, 50)), 2),
        "latency_ms_p99": round(float(np.percentile(arr, 99)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=200_000)
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runners", default="direct,faust", help="comma-separated")
    args = parser.parse_args()
    base = Settings()
    logs = Path(tempfile.mkdtemp(prefix="bench-features-"))
    result: dict[str, object] = {"worker_logs": str(logs)}
    for runner in args.runners.split(","):
        sat = saturation(base, args.ticks, args.symbols, logs / f"sat-{runner}.log", runner)
        lat = latency(
            base, args.rate, args.seconds, args.symbols, logs / f"lat-{runner}.log", runner
        )
        result[runner] = {**sat, **lat}
        print(json.dumps({runner: result[runner]}), flush=True)
    first = args.runners.split(",")[0]
    result.update(result[first])  # type: ignore[arg-type]
    result["runner"] = first
    print(json.dumps(result))


if __name__ == "__main__":
    main()
