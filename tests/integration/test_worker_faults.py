"""Dependency outages on real brokers and redis-servers: nothing lost, nothing wrong.

Redis is stopped mid-stream (the worker must pause, not exit nor commit past its state),
then restarted empty (the worker must rebuild every owned symbol's features, also those
whose last tick came before the outage). At the end the features topic, deduplicated,
equals an uninterrupted computation value for value; duplicates are identical replays.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from devtools.stack import kafka_broker
from sinks.feature_blob import decode as decode_blob
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, dedupe_features, read_topic
from tests.integration.test_features_pipeline import (
    assert_frames_equal,
    expected_features,
    make_bars,
    same_vectors,
)
from tests.support.broker import private_broker
from tests.support.redis_fault import PrivateRedis
from tickcast.config import Settings
from tickcast.processes import child_env

pytestmark = pytest.mark.integration


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Callable[..., PrivateRedis]]:
    """Start private redis-servers (extra arguments allowed); all stopped at teardown."""
    started: list[PrivateRedis] = []

    def start(*extra: str) -> PrivateRedis:
        server = PrivateRedis(tmp_path / f"redis{len(started)}", *extra)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def _wait_for_log(worker: WorkerProcess, needle: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.alive()
        if needle in worker.log_tail(200_000):
            return
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not logged; tail:\n{worker.log_tail()}")


@pytest.mark.parametrize("runner", ["direct", "faust"])
def test_redis_outage_and_empty_restart_lose_nothing(
    settings: Settings, tmp_path: Path, runner: str, private_redis: Callable[..., PrivateRedis]
) -> None:
    private = private_redis()
    settings = settings.model_copy(update={"redis_url": private.url, "scoring_enabled": False})
    apply_topics(settings)
    frame = make_bars(30, 240, seed=5)
    want = expected_features(frame)
    first = frame[frame.ts_ms < frame.ts_ms.min() + 160 * 60_000]
    # After the outage only half the symbols tick: the others' features in Redis can only
    # come back from the worker's state.
    rest = frame.drop(first.index)
    rest = rest[rest.symbol < "S015"]
    want = want[(want.ts < rest.ts_ms.min()) | want.symbol.isin(rest.symbol.unique())]
    want = want.reset_index(drop=True)
    publish(settings, first, "test")
    worker = WorkerProcess(settings, tmp_path / "worker.log", runner).start()
    try:
        read_topic(settings, "features", "FeatureVector", lambda r: len(r) >= len(first),
                   alive=worker.alive)  # fmt: skip
        private.stop()
        publish(settings, rest, "test")
        _wait_for_log(worker, "dependency_down")
        time.sleep(4)  # the outage lasts: the worker waits, paused, and stays up
        assert worker.alive()
        private.start()  # back, and empty
        _wait_for_log(worker, "dependency_up")
        _wait_for_log(worker, "redis_view_rebuilt")
        got = read_topic(
            settings, "features", "FeatureVector",
            lambda r: dedupe_features(r).shape[0] >= len(want), alive=worker.alive,
        )  # fmt: skip
        time.sleep(2)  # a rebuild after the last batch would come within a checkpoint
        # An operator's rebuild: a lost key comes back from the running worker's state.
        lost = f"{settings.redis_key_prefix}features:S020"
        private.client().delete(lost)
        done = subprocess.run(
            [sys.executable, "-m", "tickcast.cli", "features", "rebuild"],
            env=child_env(settings), capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "mark(s) dropped" in done.stdout
        deadline = time.monotonic() + 20
        while private.client().get(lost) is None:
            assert time.monotonic() < deadline, "features rebuild did not bring S020 back"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert worker.proc is not None
    assert worker.proc.returncode == 0, worker.log_tail()

    replays = pd.DataFrame(
        [(r["symbol"], r["ts"], tuple(r["values"])) for r in got], columns=["symbol", "ts", "v"]
    )
    for _, group in replays.groupby(["symbol", "ts"]):
        assert all(same_vectors(v, group.v.iloc[0]) for v in group.v), "a replay differed"
    assert_frames_equal(dedupe_features(got), want)

    client = private.client()
    try:
        for symbol, group in want.groupby("symbol"):
            raw = client.get(f"{settings.redis_key_prefix}features:{symbol}")
            assert raw is not None, f"{symbol} lost its features in Redis"
            blob = decode_blob(raw)
            assert blob.event_ts_ms == group.ts.iloc[-1], symbol
            assert same_vectors(blob.values, group["values"].iloc[-1]), symbol
    finally:
        client.close()
        private.stop()


def _committed(settings: Settings) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.topic("ticks")
    consumer = Consumer(
        {"bootstrap.servers": settings.kafka_bootstrap, "group.id": settings.consumer_group}
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def test_an_error_that_cannot_be_retried_exits_non_zero_and_commits_nothing_past_it(
    settings: Settings, tmp_path: Path, private_redis: Callable[..., PrivateRedis]
) -> None:
    # A full Redis refuses writes (OOM): not an outage to wait out, an error to report.
    private = private_redis("--maxmemory-policy", "noeviction")
    settings = settings.model_copy(update={"redis_url": private.url, "scoring_enabled": False})
    apply_topics(settings)
    frame = make_bars(30, 200, seed=9)
    want = expected_features(frame)
    filler = private.client()
    filler.set("ballast", b"x" * 4_000_000)
    filler.config_set("maxmemory", "2mb")  # now over it: every later write is refused
    publish(settings, frame, "test")
    worker = WorkerProcess(settings, tmp_path / "worker1.log").start()
    assert worker.proc is not None
    assert worker.proc.wait(timeout=60) != 0  # it stops by itself, with an error
    assert "tickcast: stopped by an error it cannot retry" in worker.log_tail(20_000)
    assert "OutOfMemory" in worker.log_tail(20_000)
    assert all(o < 0 for o in _committed(settings).values()), "offsets moved past the failure"
    filler.delete("ballast")
    filler.close()
    second = WorkerProcess(settings, tmp_path / "worker2.log").start()
    try:
        got = read_topic(
            settings, "features", "FeatureVector",
            lambda r: dedupe_features(r).shape[0] >= len(want), alive=second.alive,
        )  # fmt: skip
    finally:
        second.stop()
        private.stop()
    assert_frames_equal(dedupe_features(got), want)


@pytest.mark.parametrize("runner", ["direct", "faust"])
def test_broker_restart_mid_stream_loses_nothing(
    settings: Settings, tmp_path: Path, runner: str
) -> None:
    with private_broker(settings.model_copy(update={"scoring_enabled": False}),
                        tmp_path / "kafka") as own:  # fmt: skip
        apply_topics(own)
        frame = make_bars(20, 160, seed=4)
        want = expected_features(frame)
        first = frame[frame.ts_ms < frame.ts_ms.min() + 80 * 60_000]
        publish(own, first, "test")
        worker = WorkerProcess(own, tmp_path / "worker.log", runner).start()
        try:
            read_topic(own, "features", "FeatureVector", lambda r: len(r) >= len(first),
                       alive=worker.alive)  # fmt: skip
            kafka_broker.stop(own)
            time.sleep(5)  # the worker waits for its broker, and stays up
            assert worker.alive()
            assert kafka_broker.start(own).ok
            publish(own, frame.drop(first.index), "test")
            got = read_topic(
                own, "features", "FeatureVector",
                lambda r: dedupe_features(r).shape[0] >= len(want), alive=worker.alive,
            )  # fmt: skip
        finally:
            worker.stop()
        assert worker.proc is not None
        assert worker.proc.returncode == 0, worker.log_tail()
    assert_frames_equal(dedupe_features(got), want)
