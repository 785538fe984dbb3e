"""Chaos benchmark: the real stack through each fault, checked against an uninterrupted run.

Scenarios (each in a throw-away namespace, ticks of synthetic bars paced through the real
broker into real ``tickcast worker`` processes with an XGBoost champion registered in a
private MLflow store):

- ``redis_outage``: a private redis-server killed mid-stream for ``--outage-s`` seconds,
  then started again *empty* (the worker must pause, resume and rebuild Redis);
- ``broker_restart``: the local Kafka broker stopped mid-stream and started again;
- ``sigkill_one_of_two`` / ``sigterm_one_of_two``: two workers in one group, one killed
  (or stopped) mid-stream; ``takeover_s`` is the time from the fault until every partition
  produced a feature record again (the survivor's own resume at once; the victim's wait for
  the session time-out, the rebalance and the state restore);
- ``bad_input``: a 2100-stamped tick, a keyless record, a 10 kB symbol, a wrong key and
  garbage bytes among good ticks.

Per scenario the features topic (deduplicated by symbol and event time) is compared with the
features computed in-process from the same bars; champion predictions with one per (symbol,
event time). One JSON line per scenario, then the summary on the last line::

    {"scenarios": N, "lost_ticks": 0, "wrong_symbols": 0, "wrong_records": 0,
     "lost_champion_predictions": 0, "max_takeover_s": ...}
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, TopicPartition

from devtools.stack import kafka_broker
from indicators.bar import Bar
from indicators.feature_set import FeatureSet
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import tick_records
from streams.topics import apply_topics
from tickcast.config import Settings
from tickcast.processes import ServiceProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.bars import make_bars as bars  # the tests' seeded bar generator
from tests.support.redis_fault import PrivateRedis  # a private redis-server to take away

FS = FeatureSet.default()


def expected(frame: pd.DataFrame) -> dict[tuple[str, int], tuple[float, ...]]:
    out = {}
    for symbol, group in frame.groupby("symbol"):
        state = FS.new_state()
        for r in group.itertuples():
            bar = Bar(r.ts_ms, r.open, r.high, r.low, r.close, r.volume)
            out[(str(symbol), int(r.ts_ms))] = tuple(state.update(bar))
    return out


def same(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


def read_all(settings: Settings, logical: str, codec_name: str, idle_s: float = 8.0) -> list[Any]:
    """Every record of a topic, with its partition and broker timestamp (ms)."""
    codec, topic = get_codec(codec_name), settings.topic(logical)
    group = f"bench-read-{uuid.uuid4().hex}"
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": group,
         "enable.auto.commit": False}
    )  # fmt: skip
    meta = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
    out: list[Any] = []
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        for m in consumer.consume(5000, timeout=0.5):
            if m.error() is None:
                out.append((m.partition(), m.timestamp()[1], codec.decode(m.value())))
                last = time.monotonic()
    consumer.close()
    return out


def paced(settings: Settings, frame: pd.DataFrame, step_s: float, gate: Callable[[], None]) -> None:
    codec, producer, topic = get_codec("Tick"), BatchProducer(settings), settings.topic("ticks")
    for _, step in frame.groupby("ts_ms", sort=True):
        gate()
        for record in tick_records(step, "bench"):
            producer.produce(topic, record["symbol"].encode(), codec.encode(record))
        while True:
            try:
                producer.flush(10)
                break
            except Exception:  # the broker-restart scenario: wait for it
                time.sleep(0.5)
        time.sleep(step_s)


def worker(settings: Settings, log: Path, runner: str) -> ServiceProcess:
    return ServiceProcess(settings, ["worker", "--metrics-port", "0", "--runner", runner], log,
                          TICKCAST_LOG_LEVEL="INFO").start()  # fmt: skip


def register_champion(settings: Settings) -> None:
    from training.champion import PackagedModel
    from training.models import make_model
    from training.registry import default_name, register

    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, len(FS.names)))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", 1, {"n_estimators": 10, "max_depth": 3})
    model.fit(pd.DataFrame(X, columns=list(FS.names)), y)
    packaged = PackagedModel("xgboost", model, tuple(FS.names), FS.version, 1, 0.005, (0, 1))
    register(packaged, name=default_name(1), settings=settings)


def namespace(base: Settings, work: Path, name: str, partitions: int) -> Settings:
    ns = f"chaos{name[:6]}{uuid.uuid4().hex[:6]}"
    return Settings(**{
        **base.model_dump(), "topic_prefix": f"{ns}.", "redis_key_prefix": f"{ns}:",
        "consumer_group": f"{ns}-group", "partitions": partitions,
        "mlflow_tracking_uri": f"sqlite:///{work / ns / 'mlflow.db'}",
        "mlflow_artifact_root": str(work / ns / "artifacts"), "online_shadow_models": "",
        "checkpoint_interval_s": 0.5, "model_poll_interval_s": 1.0,
    })  # fmt: skip


def score(frame: pd.DataFrame, settings: Settings, fault_at: float | None) -> dict[str, Any]:
    want = expected(frame)
    features = read_all(settings, "features", "FeatureVector")
    got: dict[tuple[str, int], tuple[float, ...]] = {}
    wrong_replays = 0
    resumed: dict[int, float] = {}
    for partition, ts_ms, r in features:
        key = (r["symbol"], r["ts"])
        values = tuple(r["values"])
        if key in got and not same(got[key], values):
            wrong_replays += 1
        got.setdefault(key, values)
        if fault_at is not None and ts_ms / 1000 > fault_at:
            resumed[partition] = min(resumed.get(partition, math.inf), ts_ms / 1000 - fault_at)
    lost = [k for k in want if k not in got]
    wrong = [k for k in want if k in got and not same(got[k], want[k])] + [
        k for k in got if k not in want
    ]
    predictions = read_all(settings, "predictions", "Prediction")
    champion = {(p["symbol"], p["ts"]) for _, _, p in predictions if p["role"] == "CHAMPION"}
    takeover = max(resumed.values()) if resumed else None
    return {
        "ticks": len(want), "lost_ticks": len(lost), "wrong_records": len(wrong) + wrong_replays,
        "wrong_symbols": len({k[0] for k in lost + wrong}),
        "lost_champion_predictions": len([k for k in want if k not in champion]),
        "takeover_s": None if takeover is None else round(takeover, 2),
    }  # fmt: skip


def run_scenario(name: str, base: Settings, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    two = name.endswith("of_two")
    settings = namespace(base, work, name, 4)
    private = None
    if name == "redis_outage":
        private = PrivateRedis(work / f"redis-{name}").start()
        settings = settings.model_copy(update={"redis_url": private.url})
    apply_topics(settings)
    register_champion(settings)
    frame = bars(args.symbols, args.bars, seed=sum(map(ord, name)))
    logs = work / name
    workers = [worker(settings, logs / f"w{i}.log", args.runner) for i in range(2 if two else 1)]
    open_gate = threading.Event()
    open_gate.set()
    publisher = threading.Thread(target=paced, args=(settings, frame, args.step_s, open_gate.wait))
    fault_at: float | None = None
    time.sleep(6)
    publisher.start()
    time.sleep(args.step_s * args.bars * 0.4)
    if name == "redis_outage" and private is not None:
        private.stop()
        time.sleep(args.outage_s)
        private.start()
    elif name == "broker_restart":
        open_gate.clear()
        kafka_broker.stop(base)
        time.sleep(args.outage_s)
        kafka_broker.start(base)
        open_gate.set()
    elif two:
        victim = workers[1]
        fault_at = time.time()
        if name.startswith("sigkill"):
            victim.kill()
        else:
            victim.stop()
    elif name == "bad_input":
        _bad_input(settings)
    publisher.join()
    _wait_features(settings, len(frame), args.settle_s)
    for w in workers:
        w.stop(timeout=30)
    result = {"scenario": name, "runner": args.runner, **score(frame, settings, fault_at)}
    if name == "bad_input":
        reasons = sorted(r["reason"] for _, _, r in read_all(settings, "ticks.dlq", "DeadLetter"))
        result["dead_letters"] = reasons
        result["bad_input_refused"] = reasons == sorted(BAD_REASONS)
    if private is not None:
        private.stop()
    return result


def _wait_features(settings: Settings, n: int, timeout_s: float) -> None:
    """Until every tick has its feature record on the topic (or ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        records = read_all(settings, "features", "FeatureVector", idle_s=1.0)
        seen = {(r["symbol"], r["ts"]) for _, _, r in records}
        if len(seen) >= n:
            return
        time.sleep(2)


def _bad_input(settings: Settings) -> None:
    codec, producer, topic = get_codec("Tick"), BatchProducer(settings), settings.topic("ticks")
    good = {"symbol": "S000", "ts": 4_102_444_800_000, "kind": "BAR", "price": 10.0, "open": 10.0,
            "high": 10.0, "low": 10.0, "close": 10.0, "volume": 1.0, "source": "bench"}  # fmt: skip
    producer.produce(topic, b"S000", codec.encode(good))  # year 2100
    producer.produce(topic, None, codec.encode({**good, "symbol": "S001", "ts": 1_600_000_000_000}))
    producer.produce(topic, b"S002", codec.encode({**good, "symbol": "S003"}))  # wrong key
    producer.produce(topic, b"X" * 10_000, codec.encode({**good, "symbol": "X" * 10_000}))
    producer.produce(topic, b"S004", b"\x00garbage\xff")
    producer.flush()


BAD_REASONS = ("FUTURE_TIMESTAMP", "KEY_MISMATCH", "KEY_MISMATCH", "BAD_SYMBOL", "UNDECODABLE")

SCENARIOS = ("redis_outage", "broker_restart", "sigkill_one_of_two", "sigterm_one_of_two",
             "bad_input")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--runner", default="direct", choices=["direct", "faust"])
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--bars", type=int, default=200)
    parser.add_argument("--step-s", type=float, default=0.1)
    parser.add_argument("--outage-s", type=float, default=10.0)
    parser.add_argument("--settle-s", type=float, default=120.0, help="longest catch-up wait")
    args = parser.parse_args()
    base = Settings()
    results = []
    work = Path(tempfile.mkdtemp(prefix="tickcast-chaos-"))  # kept: the workers' logs
    for name in args.scenarios.split(","):
        result = run_scenario(name.strip(), base, work, args)
        results.append(result)
        print(json.dumps(result), flush=True)
    takeovers = [r["takeover_s"] for r in results if r["takeover_s"] is not None]
    summary = {
        "scenarios": len(results),
        **{k: sum(r[k] for r in results) for k in
           ("lost_ticks", "wrong_symbols", "wrong_records", "lost_champion_predictions")},
        "max_takeover_s": max(takeovers) if takeovers else None,
        "bad_input_refused": all(r.get("bad_input_refused", True) for r in results),
        "logs": str(work),
    }  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
