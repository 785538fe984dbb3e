"""Recovery time of the critical path: restore into an empty stack until the API serves.

The critical path is what the product needs to serve and score again: the worker's state
and offsets (Kafka), the Redis feature table and latest predictions, and the model registry
(MLflow). ClickHouse holds history, not the live path, and is not part of this figure.

1. Source: a namespace on the local stack (``tickcast up``), its own MLflow store with a
   champion, ``--symbols`` × ``--bars`` ticks through a worker, then
   ``tickcast backup --to DIR --components kafka,redis,mlflow``.
2. An empty stack: a private broker (own ports, freshly formatted) and a private
   redis-server. Starting them is timed (``stack_start_s``) but is not the restore.
3. The clock: ``tickcast restore --from DIR``; then a worker and ``tickcast serve`` start,
   and the API is asked for a symbol's latest prediction until it answers 200 from the
   restored Redis, then until a new tick (published after the restore) is scored by the
   restored champion and served (``scoring_s``). ``rto_s`` adds the empty stack's start.

Bounded in size and time; the last line printed is JSON.

    .venv/bin/python benchmarks/bench_restore.py --symbols 50 --bars 200
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 300.0  # docs/operations.md: the recovery time objective of the critical path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not happen within {timeout_s} s")


def tickcast(settings: Any, *args: str) -> dict[str, Any]:
    from tickcast.processes import child_env

    done = subprocess.run(
        [sys.executable, "-m", "tickcast.cli", *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(f"tickcast {args[0]} failed: {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def register_champion(settings: Any) -> None:
    from indicators.feature_set import FeatureSet
    from training.champion import PackagedModel
    from training.models import make_model
    from training.registry import default_name, register

    names = FeatureSet.default().names
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, len(names)))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", 1, {"n_estimators": 10, "max_depth": 3})
    model.fit(pd.DataFrame(X, columns=list(names)), y)
    version = FeatureSet.default().version
    packaged = PackagedModel("xgboost", model, tuple(names), version, 1, 0.005, (0, 1))
    register(packaged, name=default_name(1), settings=settings)


def committed_all(settings: Any) -> bool:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group}
    )
    try:
        topic = settings.topic("ticks")
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        committed = consumer.committed(parts, timeout=10)
        ends = [consumer.get_watermark_offsets(tp, 10)[1] for tp in parts]
        return all(c.offset == e for c, e in zip(committed, ends, strict=True))
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=200)
    args = parser.parse_args()

    import httpx

    from devtools.stack import kafka_broker, redis_server
    from serving.security.tokens import JwtCodec
    from streams.replay import publish
    from streams.topics import apply_topics
    from tickcast.config import Settings
    from tickcast.processes import ServiceProcess

    work = Path(tempfile.mkdtemp(prefix="tickcast-bench-restore-"))
    ns = f"rst{uuid.uuid4().hex[:8]}"
    base = Settings()
    src = Settings(**{
        **base.model_dump(), "topic_prefix": f"{ns}.", "redis_key_prefix": f"{ns}:",
        "consumer_group": f"{ns}-group", "clickhouse_database": ns,
        "clickhouse_dsn": f"chdb://{work / 'src' / 'clickhouse'}",
        "mlflow_tracking_uri": f"sqlite:///{work / 'src' / 'mlflow' / 'mlflow.db'}",
        "mlflow_artifact_root": str(work / "src" / "mlflow" / "artifacts"),
        "checkpoint_interval_s": 0.5, "model_poll_interval_s": 1.0, "online_shadow_models": "",
    })  # fmt: skip
    components = "kafka,redis,mlflow"
    frame = bars(args.symbols, args.bars)
    processes: list[ServiceProcess] = []
    result: dict[str, Any] = {"symbols": args.symbols, "bars": args.bars}
    dst: Settings | None = None
    try:
        # 1. the source and its backup
        apply_topics(src)
        register_champion(src)
        publish(src, frame, "bench")
        worker = ServiceProcess(src, ["worker", "--metrics-port", "0"], work / "w-src.log")
        worker.start()
        wait_until(lambda: committed_all(src), 300, "the source worker")
        began = time.perf_counter()
        made = tickcast(src, "backup", "--to", str(work / "backup"), "--components", components)
        result["backup_s"] = round(time.perf_counter() - began, 2)
        worker.stop()
        result["backup"] = made["components"]
        result["backup_bytes"] = sum(
            f.stat().st_size for f in (work / "backup").rglob("*") if f.is_file()
        )

        # 2. an empty stack: a private broker and redis-server
        os.environ["KAFKA_CONTROLLER_PORT"] = str(free_port())
        dst = Settings(**{
            **src.model_dump(), "kafka_bootstrap": f"127.0.0.1:{free_port()}",
            "data_dir": work / "dst", "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "clickhouse_dsn": f"chdb://{work / 'dst' / 'clickhouse'}",
            "mlflow_tracking_uri": f"sqlite:///{work / 'dst' / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(work / "dst" / "mlflow" / "artifacts"),
            "api_port": free_port(),
        })  # fmt: skip
        began = time.perf_counter()
        kafka_broker.start(dst)
        redis_server.start(dst)
        result["stack_start_s"] = round(time.perf_counter() - began, 2)

        # 3. the clock: restore, worker + API, a prediction served
        began = time.perf_counter()
        restored = tickcast(dst, "restore", "--from", str(work / "backup"))
        result["restore_s"] = round(time.perf_counter() - began, 2)
        result["restore"] = restored["components"]
        processes.append(
            ServiceProcess(dst, ["worker", "--metrics-port", "0"], work / "w-dst.log").start()
        )
        processes.append(
            ServiceProcess(dst, ["serve", "--port", str(dst.api_port)], work / "api.log").start()
        )
        token, _ = JwtCodec.from_settings(dst).issue(
            sub="user:bench", role="viewer", scopes=("predictions:read",), sid="bench"
        )
        symbol = str(frame.symbol.iloc[0])
        url = f"http://127.0.0.1:{dst.api_port}/v1/predictions/{symbol}/latest"
        headers = {"Authorization": f"Bearer {token}"}
        wait_until(lambda: httpx.get(url, headers=headers).status_code == 200, 300, "the API")
        result["serving_s"] = round(time.perf_counter() - began, 2)
        last_ts = int(frame.ts_ms.max())
        after = next_bar(frame, symbol)
        publish(dst, after, "bench")
        wait_until(
            lambda: httpx.get(url, headers=headers).json()["event_time"] > last_ts,
            300,
            "a new tick scored by the restored champion",
        )
        result["scoring_s"] = round(time.perf_counter() - began, 2)
        result["rto_s"] = round(result["stack_start_s"] + result["scoring_s"], 2)
        result["target_s"] = TARGET_S
        result["within_target"] = result["rto_s"] < TARGET_S
    finally:
        for process in processes:
            process.stop()
        if dst is not None:
            redis_server.stop(dst)
            kafka_broker.stop(dst)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


def bars(symbols: int, count: int) -> pd.DataFrame:
    sys.path.insert(0, str(ROOT))
    from tests.support.bars import make_bars  # the tests' seeded bar generator

    return make_bars(symbols, count, seed=3)


def next_bar(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """One more bar of ``symbol``, a minute after its last."""
    last = frame[frame.symbol == symbol].sort_values("ts_ms").tail(1).copy()
    last["ts_ms"] = last["ts_ms"] + 60_000
    return last


if __name__ == "__main__":
    main()
