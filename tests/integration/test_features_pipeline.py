"""End to end on the real broker and Redis: ticks → worker → features, DLQ, Redis."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import redis

from indicators.bar import Bar
from indicators.feature_set import FeatureSet
from sinks.feature_blob import decode as decode_blob
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.replay import publish, tick_records
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, dedupe_features, read_topic
from tests.support.bars import make_bars
from tickcast.config import Settings

pytestmark = pytest.mark.integration


def expected_features(frame: pd.DataFrame) -> pd.DataFrame:
    fs = FeatureSet.default()
    rows = []
    for symbol, group in frame.groupby("symbol", sort=True):
        state = fs.new_state()
        for r in group.itertuples():
            rows.append(
                (
                    symbol,
                    r.ts_ms,
                    tuple(state.update(Bar(r.ts_ms, r.open, r.high, r.low, r.close, r.volume))),
                )
            )
    return (
        pd.DataFrame(rows, columns=["symbol", "ts", "values"])
        .sort_values(["symbol", "ts"])
        .reset_index(drop=True)
    )


def same_vectors(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return len(a) == len(b) and all(
        (math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True)
    )


def assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(zip(got.symbol, got.ts, strict=True)) == list(
        zip(want.symbol, want.ts, strict=True)
    )
    mismatched = [
        i for i in range(len(want)) if not same_vectors(got["values"][i], want["values"][i])
    ]
    assert not mismatched, f"{len(mismatched)} vectors differ, first at row {mismatched[:3]}"


@pytest.fixture
def topics(settings: Settings) -> Settings:
    apply_topics(settings)
    return settings


@pytest.mark.parametrize("runner", ["faust", "direct"])
def test_features_dead_letters_and_redis(topics: Settings, tmp_path: Path, runner: str) -> None:
    settings = topics
    frame = make_bars(8, 120)
    publish(settings, frame, "test")
    codec = get_codec("Tick")
    good = next(tick_records(frame.iloc[:1], "test"))
    huge_symbol = "X" * 10_000
    bad: list[tuple[bytes | None, bytes, str]] = [
        (b"S000", b"not avro at all", "UNDECODABLE"),
        (
            b"S001",
            codec.encode(
                {**good, "symbol": "S001", "ts": 1_700_000_000_000, "close": float("nan")}
            ),
            "BAD_PRICE",
        ),
        (
            b"S002",
            codec.encode(
                {**good, "symbol": "S002", "ts": 1_700_000_000_000, "high": 1.0, "low": 2.0}
            ),
            "BAD_RANGE",
        ),
        (
            b"S003",
            codec.encode({**good, "symbol": "S003", "ts": 1_600_000_000_000}),
            "OUT_OF_ORDER",
        ),
        (
            b"S004",
            codec.encode({**good, "symbol": "S004", "ts": 1_700_000_000_000, "volume": -5.0}),
            "NEGATIVE_VOLUME",
        ),
        (
            b"S005",
            codec.encode({**good, "symbol": "S005", "ts": 4_102_444_800_000}),  # 2100-01-01
            "FUTURE_TIMESTAMP",
        ),
        (  # keyless: would land in any partition, not necessarily the one owning S006
            None,
            codec.encode({**good, "symbol": "S006", "ts": 1_700_000_000_000}),
            "KEY_MISMATCH",
        ),
        (
            huge_symbol.encode(),
            codec.encode({**good, "symbol": huge_symbol, "ts": 1_700_000_000_000}),
            "BAD_SYMBOL",
        ),
    ]
    producer = BatchProducer(settings)
    for key, value, _ in bad:
        producer.produce(settings.topic("ticks"), key, value)
    producer.flush()

    if runner == "direct":  # every turn counts as slow: its phases must all be in the log
        settings = settings.model_copy(update={"worker_slow_turn_ms": 1e-6})
    worker = WorkerProcess(settings, tmp_path / "worker.log", runner).start()
    try:
        want = expected_features(frame)
        got = read_topic(
            settings, "features", "FeatureVector", lambda r: len(r) >= len(want), alive=worker.alive
        )
        dead = read_topic(
            settings, "ticks.dlq", "DeadLetter", lambda r: len(r) >= len(bad), timeout_s=30
        )
    finally:
        worker.stop()
    assert_frames_equal(dedupe_features(got), want)
    assert sorted((d["reason"], d["key"]) for d in dead) == sorted((r, k) for k, _, r in bad)
    assert {d["reason"]: d["payload"] for d in dead} == {r: v for _, v, r in bad}

    if runner == "direct":
        turns = [json.loads(line) for line in (tmp_path / "worker.log").read_text().splitlines()
                 if '"slow_turn"' in line]  # fmt: skip
        busy = [t for t in turns if t["records"] > 0]
        assert busy, "the direct runner logged no timed turn"
        assert sum(t["records"] for t in busy) >= len(want) + len(bad)
        assert set(busy[0]["phases"]) == {
            "consume", "features", "stages", "produce", "redis", "handle_rest", "snapshot",
            "commit", "refresh",
        }  # fmt: skip
        assert all(t["total_ms"] >= sum(t["phases"].values()) - 0.1 for t in busy)

    client = redis.Redis.from_url(settings.redis_url)
    assert not client.exists(f"{settings.redis_key_prefix}features:{huge_symbol}")
    assert not client.exists(f"{settings.redis_key_prefix}prediction:{huge_symbol}")
    assert all(len(k) < 100 for k in client.scan_iter(match=f"{settings.redis_key_prefix}*"))
    for symbol, group in want.groupby("symbol"):
        blob = decode_blob(client.get(f"{settings.redis_key_prefix}features:{symbol}"))
        assert blob.event_ts_ms == group.ts.iloc[-1]
        assert blob.feature_set_version == FeatureSet.default().version
        assert same_vectors(blob.values, group["values"].iloc[-1])
        assert (
            0
            < client.ttl(f"{settings.redis_key_prefix}features:{symbol}")
            <= settings.feature_ttl_s
        )


@pytest.mark.parametrize("runner", ["faust", "direct"])
def test_sigkill_mid_replay_recovers_value_for_value(
    topics: Settings, tmp_path: Path, runner: str
) -> None:
    settings = topics
    frame = make_bars(40, 300, seed=11)
    want = expected_features(frame)
    publish(settings, frame, "test")
    first = WorkerProcess(settings, tmp_path / "worker1.log", runner).start()
    seen = read_topic(
        settings, "features", "FeatureVector", lambda r: len(r) >= len(want) // 3, alive=first.alive
    )
    first.kill()
    assert len(seen) < len(want), "the worker finished before it could be killed"
    second = WorkerProcess(settings, tmp_path / "worker2.log", runner).start()
    try:
        got = read_topic(
            settings,
            "features",
            "FeatureVector",
            lambda r: dedupe_features(r).shape[0] >= len(want) if len(r) >= len(want) else False,
            alive=second.alive,
        )
    finally:
        second.stop()
    frame_got = pd.DataFrame(
        [(r["symbol"], r["ts"], tuple(r["values"])) for r in got],
        columns=["symbol", "ts", "values"],
    )
    for _, group in frame_got.groupby(["symbol", "ts"]):
        first_values = group["values"].iloc[0]
        assert all(same_vectors(v, first_values) for v in group["values"]), (
            "a replayed tick gave other values"
        )
    assert_frames_equal(dedupe_features(got), want)


def test_replay_is_deterministic(stack: Settings, tmp_path: Path) -> None:
    frame = make_bars(5, 80, seed=3)
    runs = []
    for run in ("a", "b"):
        settings = stack.model_copy(
            update={
                "topic_prefix": f"{tmp_path.name}{run}.",
                "redis_key_prefix": f"{tmp_path.name}{run}:",
                "consumer_group": f"{tmp_path.name}{run}",
            }
        )
        apply_topics(settings)
        publish(settings, frame, "determinism")
        worker = WorkerProcess(settings, tmp_path / f"worker-{run}.log").start()
        try:
            got = read_topic(
                settings,
                "features",
                "FeatureVector",
                lambda r: len(r) >= len(frame),
                alive=worker.alive,
            )
        finally:
            worker.stop()
        runs.append(
            sorted((r["symbol"], r["ts"], tuple(r["values"]), r["correlation_id"]) for r in got)
        )
    assert len(runs[0]) == len(frame)
    assert all(
        a[:2] == b[:2] and a[3] == b[3] and same_vectors(a[2], b[2])
        for a, b in zip(*runs, strict=True)
    )
