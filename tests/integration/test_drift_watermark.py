"""Drift's event-time watermark on the real broker: an empty partition holds windows open
until it is idle, so a replay into empty topics loses no vector to lateness; once idle it
stops holding them, and what then arrives for a closed window is counted as late."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable

import numpy as np
import pytest

from indicators.feature_set import FeatureSet
from monitoring.drift_process import DriftAgent
from monitoring.drift_reference import parse_reference
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.topics import apply_topics
from tests.integration.pipeline import read_topic
from tickcast.config import Settings
from tickcast.metrics import Metrics
from training.reference import ReferenceDistributions, reference_from_matrix

pytestmark = pytest.mark.integration
DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY
FS = FeatureSet.default()
PER_DAY = 30  # vectors per partition and day


def reference() -> ReferenceDistributions:
    rng = np.random.default_rng(3)
    return reference_from_matrix(rng.normal(size=(2000, len(FS.names))), FS.names, FS.version)


def produce(settings: Settings, partition: int, days: Iterable[int]) -> int:
    codec, producer = get_codec("FeatureVector"), BatchProducer(settings)
    rng = np.random.default_rng(partition)
    sent = 0
    for day in days:
        for step in range(PER_DAY):
            record = {
                "symbol": f"P{partition}", "ts": T0 + day * DAY + step * 60_000,
                "feature_set_version": FS.version,
                "values": rng.normal(size=len(FS.names)).tolist(),
            }  # fmt: skip
            producer.produce(
                settings.topic("features"),
                b"P%d" % partition,
                codec.encode(record),
                partition=partition,
            )
            sent += 1
    producer.flush()
    return sent


def agent_for(settings: Settings, metrics: Metrics) -> DriftAgent:
    ref = reference()
    references = parse_reference(json.loads(ref.to_json()), FS.names)
    return DriftAgent(
        settings, feature_set=FS, metrics=metrics, references=references,
        reference_model=("m", "1"),
    )  # fmt: skip


def consume(agent: DriftAgent, want: int, timeout_s: float = 60) -> None:
    deadline, got = time.monotonic() + timeout_s, 0
    while got < want:
        assert time.monotonic() < deadline, f"consumed {got} of {want}"
        got += agent.step(0.2)


@pytest.fixture
def drift_settings(settings: Settings, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    out = settings.model_copy(
        update={"data_dir": tmp_path, "drift_window_ms": DAY, "partitions": 2}
    )
    apply_topics(out)
    return out


def test_empty_partition_holds_windows_until_its_data_arrives(drift_settings: Settings) -> None:
    metrics = Metrics(process=False)
    agent = agent_for(drift_settings, metrics)
    agent.start()  # both partitions empty: a replay that has not begun
    try:
        consume(agent, produce(drift_settings, 0, range(4)))  # partition 0 runs ahead
        consume(agent, produce(drift_settings, 1, range(4)))  # partition 1 catches up
        agent.flush_partial()
    finally:
        agent.close()
    assert agent.monitor is not None
    assert agent.monitor.late == 0
    assert metrics.value("tickcast_drift_late_records_total") == 0
    name = FS.names[0]
    stats = read_topic(
        drift_settings, "drift", "DriftStat", lambda out: len(out) >= 4 * len(FS.names)
    )
    counts = {r["window_start"]: r["n"] for r in stats if r["feature"] == name}
    # every window holds both partitions' vectors (before the fix, windows 0-2 held one's)
    assert counts == {T0 + d * DAY: 2 * PER_DAY for d in range(4)}, counts


def test_idle_partition_stops_holding_and_late_records_are_counted(
    drift_settings: Settings,
) -> None:
    settings = drift_settings.model_copy(update={"drift_idle_partition_s": 1.0})
    metrics = Metrics(process=False)
    agent = agent_for(settings, metrics)
    agent.start()
    try:
        consume(agent, produce(settings, 0, range(2)))
        time.sleep(1.5)  # partition 1 is idle now
        consume(agent, produce(settings, 0, range(2, 4)))
        assert agent.published >= 3 * len(FS.names)  # days 0-2 closed without partition 1
        consume(agent, produce(settings, 1, [0]))  # day 0 is long closed
    finally:
        agent.close()
    assert agent.monitor is not None
    assert agent.monitor.late == PER_DAY
    assert metrics.value("tickcast_drift_late_records_total") == PER_DAY
