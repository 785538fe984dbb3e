"""Backups that restore: a running pipeline backed up, restored into an empty private stack
(its own broker, Redis, chDB and MLflow), resumes value for value with no duplicated rows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from indicators.feature_set import FeatureSet
from sinks.feature_blob import decode as decode_blob
from sinks.redis_keys import feature_key
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, read_topic
from tests.support.bars import make_bars
from tests.support.broker import private_broker
from tests.support.redis_fault import PrivateRedis
from tickcast.config import Settings
from tickcast.processes import ServiceProcess, child_env
from training.champion import PackagedModel
from training.models import make_model
from training.registry import default_name, register

pytestmark = pytest.mark.integration

FS = FeatureSet.default()
NAME = default_name(1)
TABLES = ("features", "predictions", "outcomes")

# chDB locks its folder for one process, and this test process may hold the shared one:
# ClickHouse is read in a child process.
CH_DUMP = """
import json, sys
from sinks.clickhouse import connect
from tickcast.config import Settings
settings = Settings()
client = connect(settings)
out = {}
for table in sys.argv[1:]:
    name = f"{settings.clickhouse_database}.{table}"
    rows = client.query(f"SELECT * FROM {name} ORDER BY ALL").result_rows
    final = client.query(f"SELECT count() FROM {name} FINAL").result_rows[0][0]
    out[table] = {"rows": [repr(r) for r in rows], "final": final}
champion = client.query(
    f"SELECT count(), uniqExact(symbol, ts) FROM {settings.clickhouse_database}.predictions "
    "WHERE role = 'CHAMPION'"
).result_rows[0]
out["champion"] = {"rows": champion[0], "keys": champion[1]}
print(json.dumps(out))
"""


def tickcast(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickcast.cli", *args],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def clickhouse_rows(settings: Settings) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", CH_DUMP, *TABLES],
        env=child_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def own_stores(settings: Settings, folder: Path) -> Settings:
    """``settings`` with a chDB folder and an MLflow store of their own (fresh Settings)."""
    return Settings(
        **{
            **settings.model_dump(),
            "clickhouse_dsn": f"chdb://{folder / 'clickhouse'}",
            "mlflow_tracking_uri": f"sqlite:///{folder / 'mlflow' / 'mlflow.db'}",
            "mlflow_artifact_root": str(folder / "mlflow" / "artifacts"),
            "model_poll_interval_s": 0.5,
            "checkpoint_interval_s": 0.5,
        }
    )


def champion() -> PackagedModel:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((300, len(FS.names)))
    y = (X[:, 0] + 0.5 * rng.standard_normal(300) > 0).astype(int)
    model = make_model("xgboost", 7, {"n_estimators": 10, "max_depth": 3})
    model.fit(pd.DataFrame(X, columns=list(FS.names)), y)
    return PackagedModel("xgboost", model, tuple(FS.names), FS.version, 1, 0.005, (0, 1))


def wait_caught_up(settings: Settings, group: str, logical: list[str], timeout_s: float) -> None:
    """Until ``group`` has committed the end of every partition of the topics."""
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": group})
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            parts = [
                TopicPartition(settings.topic(t), p)
                for t in logical
                for p in range(settings.partitions)
            ]
            committed = consumer.committed(parts, timeout=10)
            ends = [consumer.get_watermark_offsets(tp, 10)[1] for tp in parts]
            if all(c.offset == e for c, e in zip(committed, ends, strict=True)):
                return
            assert time.monotonic() < deadline, f"{group} did not catch up: {committed} {ends}"
            time.sleep(0.5)
    finally:
        consumer.close()


def features_by_key(records: list[dict[str, Any]]) -> dict[tuple[str, int], list[float]]:
    return {(str(r["symbol"]), int(r["ts"])): list(r["values"]) for r in records}  # type: ignore[call-overload]


def same(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and all(
        (x != x and y != y) or x == y for x, y in zip(a, b, strict=True)
    )


def feature_blobs(url: str, prefix: str, symbols: list[str]) -> dict[str, bytes]:
    client = redis.Redis.from_url(url)
    try:
        return {s: client.get(feature_key(prefix, s)) for s in symbols}  # type: ignore[misc]
    finally:
        client.close()


def served(blob: bytes) -> tuple[int, str, list[float]]:
    """What a reader is served from a feature blob, without its wall-clock write time."""
    decoded = decode_blob(blob)
    return decoded.event_ts_ms, decoded.feature_set_version, list(decoded.values)


@pytest.fixture
def empty_stack(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A private broker, Redis, chDB folder and MLflow store, all empty."""
    store = PrivateRedis(tmp_path / "dst-redis").start()
    try:
        with private_broker(settings, tmp_path / "dst-kafka") as broker:
            dst = own_stores(settings, tmp_path / "dst")
            yield Settings(
                **{
                    **dst.model_dump(),
                    "kafka_bootstrap": broker.kafka_bootstrap,
                    "data_dir": broker.data_dir,
                    "redis_url": store.url,
                }
            )
    finally:
        store.stop()


@pytest.mark.timeout(600)  # two stacks, four worker starts, a sink, backup and restore
def test_restore_into_an_empty_stack_resumes_value_for_value(
    settings: Settings, empty_stack: Settings, tmp_path: Path
) -> None:
    src, dst = own_stores(settings, tmp_path / "src"), empty_stack
    apply_topics(src)
    register(champion(), name=NAME, settings=src)
    frame = make_bars(6, 150, seed=5)
    stamps = sorted(frame.ts_ms.unique())
    part_a = frame[frame.ts_ms < stamps[80]]
    unread = frame[(frame.ts_ms >= stamps[80]) & (frame.ts_ms < stamps[100])]
    part_b = frame[frame.ts_ms >= stamps[100]]
    symbols = sorted(frame.symbol.unique())
    want_b = set(zip(unread.symbol, unread.ts_ms, strict=True)) | set(
        zip(part_b.symbol, part_b.ts_ms, strict=True)
    )

    # 1. the source runs: worker (features, scores) and the ClickHouse sink
    publish(src, part_a, "test")
    worker = WorkerProcess(src, tmp_path / "worker-src.log").start()
    sink = ServiceProcess(src, ["sink", "run"], tmp_path / "sink.log").start()
    try:
        read_topic(src, "predictions", "Prediction", lambda r: len(r) >= len(part_a),
                   alive=worker.alive)  # fmt: skip
        wait_caught_up(src, f"{src.consumer_group}-clickhouse-sink", ["predictions"], 120)
    finally:
        sink.stop()
    # 2. ticks arrive that the stopped worker has not read: the backup keeps them (the tail)
    worker.stop()
    publish(src, unread, "test")
    backup = tmp_path / "backup"
    made = tickcast(src, "backup", "--to", str(backup))
    assert made.returncode == 0, made.stderr[-3000:]
    manifest = json.loads((backup / "manifest.json").read_text())
    assert set(manifest["components"]) == {"kafka", "clickhouse", "redis", "mlflow"}
    layout = json.loads((backup / "kafka" / "layout.json").read_text())
    assert layout["topics"]["ticks"]["records"] == len(unread)
    assert layout["topics"]["feature-state"]["records"] >= len(symbols)
    source_rows = clickhouse_rows(src)
    backed_up_blobs = feature_blobs(src.redis_url, src.redis_key_prefix, symbols)
    assert source_rows["predictions"]["rows"], "the sink wrote nothing: the test proves nothing"

    # 3. the reference: the source itself goes on with the unread ticks and part B
    publish(src, part_b, "test")
    reference = WorkerProcess(src, tmp_path / "worker-src2.log").start()
    try:
        seen = read_topic(src, "features", "FeatureVector",
                          lambda r: want_b <= set(features_by_key(r)),
                          alive=reference.alive)  # fmt: skip
    finally:
        reference.stop()
    want = features_by_key(seen)
    want_blobs = feature_blobs(src.redis_url, src.redis_key_prefix, symbols)
    # the restored registry must not lean on the source's artifact folder
    shutil.move(tmp_path / "src" / "mlflow" / "artifacts", tmp_path / "src-artifacts-gone")

    # 4. restore into the empty stack; a second restore is refused (not empty any more)
    restored = tickcast(dst, "restore", "--from", str(backup))
    assert restored.returncode == 0, restored.stderr[-3000:]
    again = tickcast(dst, "restore", "--from", str(backup))
    assert again.returncode == 2
    assert "restore refused, nothing changed" in again.stderr
    assert feature_blobs(dst.redis_url, dst.redis_key_prefix, symbols) == backed_up_blobs

    dst_rows = clickhouse_rows(dst)
    for table in TABLES:
        assert dst_rows[table]["rows"] == source_rows[table]["rows"], table
        assert dst_rows[table]["final"] == len(dst_rows[table]["rows"]), f"duplicates in {table}"

    # 5. the restored worker goes on with the unread ticks and part B: the same features,
    # value for value, none twice
    publish(dst, part_b, "test")
    resumed = WorkerProcess(dst, tmp_path / "worker-dst.log").start()
    try:
        got_records = read_topic(dst, "features", "FeatureVector",
                                 lambda r: want_b <= set(features_by_key(r)),
                                 alive=resumed.alive)  # fmt: skip
        predictions = read_topic(dst, "predictions", "Prediction",
                                 lambda r: want_b <= {(p["symbol"], p["ts"]) for p in r},
                                 alive=resumed.alive)  # fmt: skip
        time.sleep(1.5)  # the last Redis writes of the batch in hand
    finally:
        resumed.stop()
    keys = [(str(r["symbol"]), int(r["ts"])) for r in got_records]  # type: ignore[call-overload]
    assert len(keys) == len(set(keys)), "a tick was processed twice after the restore"
    got = features_by_key(got_records)
    assert want_b <= set(got)
    differ = [k for k in got if not same(got[k], want[k])]
    assert not differ, f"{len(differ)} feature vectors differ from the source's, e.g. {differ[:3]}"
    final = feature_blobs(dst.redis_url, dst.redis_key_prefix, symbols)
    for symbol, blob in final.items():
        event_ts, version, values = served(blob)
        want_ts, want_version, want_values = served(want_blobs[symbol])
        assert (event_ts, version) == (want_ts, want_version)
        assert same(values, want_values), symbol
    scored = {p["model_version"] for p in predictions if p["role"] == "CHAMPION"}
    assert scored == {"1"}, "the restored registry's champion did not score"

    # 6. the restored sink goes on from its restored offsets: every tick's champion score is
    # in ClickHouse once (the history before the backup, the rest after the restore)
    sink = ServiceProcess(dst, ["sink", "run"], tmp_path / "sink-dst.log").start()
    try:
        wait_caught_up(dst, f"{dst.consumer_group}-clickhouse-sink", ["predictions"], 120)
    finally:
        sink.stop()
    history = clickhouse_rows(dst)["champion"]
    assert history == {"rows": len(frame), "keys": len(frame)}


def test_a_damaged_or_incomplete_backup_is_refused_and_changes_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    client.set(f"{settings.redis_key_prefix}x", b"1", ex=600)
    backup = tmp_path / "backup"
    made = tickcast(settings, "backup", "--to", str(backup), "--components", "redis")
    assert made.returncode == 0, made.stderr
    assert tickcast(settings, "backup", "--to", str(backup)).returncode == 2  # never overwrites
    target = settings.model_copy(update={"redis_key_prefix": f"{settings.redis_key_prefix}r:"})

    keys = backup / "redis" / "keys.avro"
    good = keys.read_bytes()
    keys.write_bytes(good[:-10] + bytes(10))
    damaged = tickcast(target, "restore", "--from", str(backup))
    assert damaged.returncode == 2
    assert "keys.avro does not match its checksum" in damaged.stderr
    assert "Traceback" not in damaged.stderr
    assert not list(client.scan_iter(match=f"{target.redis_key_prefix}*"))

    keys.write_bytes(good)
    (backup / "manifest.json").unlink()
    incomplete = tickcast(target, "restore", "--from", str(backup))
    assert incomplete.returncode == 2
    assert "manifest.json is missing" in incomplete.stderr
    assert not list(client.scan_iter(match=f"{target.redis_key_prefix}*"))

    unknown = tickcast(settings, "backup", "--to", str(tmp_path / "b2"), "--components", "nope")
    assert unknown.returncode == 2
    assert "unknown components" in unknown.stderr
