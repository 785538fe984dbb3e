"""Ticks held in memory until their sector columns are final (agents.held_records), on the
real broker: one ticks partition stops early, so the worker holds the other's later ticks.

* a worker SIGKILLed while it holds them: nothing lost, and every (symbol, ts) on
  ``features`` has one value (replayed duplicates identical), the training frame's;
* a second worker joining (a rebalance) while the first holds them: the same;
* the lagging partition never advancing: after ``TICKCAST_SIDE_SECTOR_IDLE_S`` the held
  ticks are released and counted (``tickcast_side_records_total{outcome="not_final"}``).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, TopicPartition

from devtools.synthetic.bars import random_walk_panel
from indicators import compute_frame
from indicators.feature_set import FeatureSet
from sidestreams.features import spec_from_settings
from sidestreams.frame import join_side
from streams.replay import publish
from streams.topics import apply_topics
from tests.integration.pipeline import WorkerProcess, dedupe_features, read_topic
from tests.support.ports import free_port
from tickcast.config import Settings
from tickcast.processes import ServiceProcess

pytestmark = pytest.mark.integration

START = 1_243_886_400_000
SYMBOLS = ("AAPL", "MSFT", "XOM", "JPM", "CVX", "BAC", "IBM", "WMT")


class MetricsWorker(ServiceProcess):
    """A worker serving ``/metrics`` on a known port."""

    def __init__(self, settings: Settings, log: Path) -> None:
        self.port = free_port()
        args = ["worker", "--metrics-port", str(self.port)]
        super().__init__(settings, args, log, TICKCAST_LOG_LEVEL="INFO")

    def metric(self, name: str, labels: str = "") -> float:
        body = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
        found = re.search(pattern, body, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def alive(self) -> bool:
        if self.running():
            return True
        raise AssertionError(f"the worker died; log tail:\n{self.log_tail()}")


def _settings(settings: Settings, idle_s: float) -> Settings:
    settings = settings.model_copy(
        update={"partitions": 2, "side_features": True, "side_macro_series": "",
                "scoring_enabled": False, "side_sector_idle_s": idle_s,
                "side_sector_sync": True, "checkpoint_interval_s": 0.3}
    )  # fmt: skip
    apply_topics(settings)
    return settings


def _partitions(settings: Settings) -> dict[str, int]:
    """Each symbol's ticks partition, read back from the topic."""
    topic = settings.topic("ticks")
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "probe",
                         "enable.auto.commit": False})  # fmt: skip
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    found: dict[str, int] = {}
    deadline = time.monotonic() + 30
    while len(found) < len(SYMBOLS) and time.monotonic() < deadline:
        for message in consumer.consume(1000, timeout=0.5):
            if message.error() is None and message.key():
                found[message.key().decode()] = int(message.partition() or 0)
    consumer.close()
    assert len(found) == len(SYMBOLS)
    return found


def _publish_uneven(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """Every symbol's first 40 % of bars, then the rest of one partition's symbols only.

    Returns (all bars, the lagging partition's rest, the last time the lagging one reached).
    The partition is the one holding fewer symbols, so the other holds ticks past its end.
    """
    bars = random_walk_panel(SYMBOLS, 200, start_ts_ms=START)
    cut = int(np.quantile(bars["ts_ms"].unique(), 0.4))
    publish(settings, bars[bars["ts_ms"] <= cut], "test")
    where = _partitions(settings)
    counts = pd.Series(where).value_counts()
    assert len(counts) == 2, where  # both partitions hold symbols
    lagging = {s for s, p in where.items() if p == counts.idxmin()}
    lag_rest = bars["symbol"].isin(lagging) & (bars["ts_ms"] > cut)
    publish(settings, bars[~lag_rest & (bars["ts_ms"] > cut)], "test")
    return bars, bars[lag_rest], cut


def _expected(settings: Settings, bars: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    spec = spec_from_settings(settings)
    frame = join_side(compute_frame(bars), bars, spec, [], [])
    names = [*FeatureSet.default().names, *spec.names]
    return frame.sort_values(["symbol", "ts_ms"]).reset_index(drop=True), names


def _assert_exact(got: list[dict[str, object]], want: pd.DataFrame, names: list[str]) -> None:
    """One value per (symbol, ts) on the topic, and it is the training frame's."""
    raw = pd.DataFrame(
        [(r["symbol"], r["ts"], tuple(r["values"])) for r in got],  # type: ignore[arg-type]
        columns=["symbol", "ts", "values"],
    )
    distinct = raw.assign(v=raw["values"].map(repr)).groupby(["symbol", "ts"])["v"].nunique()
    assert distinct.max() == 1, distinct[distinct > 1].head()  # replays repeat, never differ
    live = dedupe_features(got)
    assert list(zip(live["symbol"], live["ts"], strict=True)) == list(
        zip(want["symbol"], want["ts_ms"], strict=True)
    )
    values = np.array([list(v) for v in live["values"]])
    expected = want[names].to_numpy()
    same = (values == expected) | (np.isnan(values) & np.isnan(expected))
    assert [n for n, ok in zip(names, same.all(axis=0), strict=True) if not ok] == []


def _hold(settings: Settings, worker: MetricsWorker, bars: pd.DataFrame, cut: int) -> None:
    """Until the worker has answered every row up to ``cut`` and holds the later ones."""
    final = int((bars["ts_ms"] <= cut).sum())
    got = read_topic(settings, "features", "FeatureVector",
                     lambda r: len({(x["symbol"], x["ts"]) for x in r}) >= final,
                     timeout_s=120, alive=worker.alive)  # fmt: skip
    assert max(int(r["ts"]) for r in got) <= cut  # nothing past the lagging partition answered
    deadline = time.monotonic() + 30
    while worker.metric("tickcast_side_sector_held_records") <= 0:
        assert time.monotonic() < deadline, "the worker holds no ticks"
        time.sleep(0.3)


@pytest.mark.timeout(420)
def test_a_worker_killed_while_holding_ticks_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(settings, idle_s=120.0)
    bars, rest, cut = _publish_uneven(settings)
    want, names = _expected(settings, bars)
    first = MetricsWorker(settings, tmp_path / "first.log").start()
    try:
        _hold(settings, first, bars, cut)
        held = first.metric("tickcast_side_sector_held_records")
        assert held > 0
    finally:
        first.kill()
    publish(settings, rest, "test")
    second = WorkerProcess(settings, tmp_path / "second.log").start()
    try:
        got = read_topic(settings, "features", "FeatureVector",
                         lambda r: dedupe_features(r).shape[0] >= len(bars),
                         timeout_s=240, alive=second.alive)  # fmt: skip
    finally:
        second.stop(timeout=25)
    _assert_exact(got, want, names)


@pytest.mark.timeout(420)
def test_a_rebalance_while_ticks_are_held_loses_and_duplicates_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    from confluent_kafka.admin import AdminClient

    settings = _settings(settings, idle_s=120.0)
    bars, rest, cut = _publish_uneven(settings)
    want, names = _expected(settings, bars)
    first = MetricsWorker(settings, tmp_path / "first.log").start()
    second = WorkerProcess(settings, tmp_path / "second.log")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    group = settings.consumer_group
    try:
        _hold(settings, first, bars, cut)
        second.start()  # the group rebalances while the first holds ticks
        deadline = time.monotonic() + 60
        while len(admin.describe_consumer_groups([group])[group].result().members) < 2:
            assert time.monotonic() < deadline, "the second worker never joined"
            time.sleep(0.5)
        time.sleep(3.0)
        publish(settings, rest, "test")

        def alive() -> bool:
            return first.alive() and second.alive()

        got = read_topic(settings, "features", "FeatureVector",
                         lambda r: dedupe_features(r).shape[0] >= len(bars),
                         timeout_s=240, alive=alive)  # fmt: skip
        members = admin.describe_consumer_groups([group])[group].result().members
        assert len(members) == 2
        assert all(m.assignment.topic_partitions for m in members)
    finally:
        first.stop(timeout=25)
        second.stop(timeout=25)
    _assert_exact(got, want, names)


@pytest.mark.timeout(300)
def test_ticks_held_by_a_partition_that_never_advances_are_released_and_counted(
    settings: Settings, tmp_path: Path
) -> None:
    settings = _settings(settings, idle_s=4.0)
    bars, rest, cut = _publish_uneven(settings)
    published = bars.drop(rest.index)
    worker = MetricsWorker(settings, tmp_path / "worker.log").start()
    try:
        got = read_topic(settings, "features", "FeatureVector",
                         lambda r: dedupe_features(r).shape[0] >= len(published),
                         timeout_s=180, alive=worker.alive)  # fmt: skip
        label = '{outcome="not_final",topic="sector-returns"}'
        not_final = worker.metric("tickcast_side_records_total", label)
        held = worker.metric("tickcast_side_sector_held_records")
    finally:
        worker.stop(timeout=25)
    late = int((published["ts_ms"] > cut).sum())  # the other partition's rows past the end
    assert late > 0
    assert not_final == late  # the rows answered while the idle partition was left out
    assert held == 0
    # nothing came after the idle partition's end, so even those equal the training frame
    _assert_exact(got, *_expected(settings, published))
