"""Drift agent on the real broker: a planted shift in one feature is flagged on it alone."""

from __future__ import annotations

import time

import numpy as np
import pytest

from indicators.feature_set import FeatureSet
from monitoring.drift_process import DriftAgent
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.topics import apply_topics
from tests.integration.pipeline import read_topic
from tickcast.config import Settings
from tickcast.metrics import Metrics

pytestmark = pytest.mark.integration
T0 = 1_600_000_000_000 - 1_600_000_000_000 % 86_400_000
DAY = 86_400_000


def test_planted_shift_is_flagged_on_that_feature_only(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = settings.model_copy(
        update={"drift_reference_size": 600, "data_dir": tmp_path, "drift_window_ms": DAY}
    )
    apply_topics(settings)
    fs = FeatureSet.default()
    shifted = fs.names.index("rsi_14")
    rng = np.random.default_rng(17)
    codec = get_codec("FeatureVector")
    producer = BatchProducer(settings)
    symbols, per_day, days = 20, 40, 5
    sent = 0
    for day in range(days):
        for step in range(per_day):
            ts = T0 + day * DAY + step * 60_000
            for s in range(symbols):
                values = rng.normal(size=len(fs.names))
                if day >= 3:
                    values[shifted] += 1.5
                if step == 0:
                    values[0] = np.nan  # warm-up marker: ignored
                record = {
                    "symbol": f"S{s:02d}", "ts": ts, "feature_set_version": fs.version,
                    "values": values.tolist(),
                }  # fmt: skip
                producer.produce(
                    settings.topic("features"), record["symbol"].encode(), codec.encode(record)
                )
                sent += 1
    producer.produce(settings.topic("features"), b"S00", b"garbage")
    producer.flush()

    metrics = Metrics(process=False)
    agent = DriftAgent(settings, feature_set=fs, metrics=metrics)
    agent.start()
    deadline = time.monotonic() + 120
    consumed = 0
    while consumed < sent + 1:
        assert time.monotonic() < deadline, f"consumed {consumed} of {sent + 1}"
        consumed += agent.step(0.2)
    agent.flush_partial()
    agent.close()
    assert agent.skipped == 1

    stats = read_topic(
        settings, "drift", "DriftStat", lambda out: len(out) >= days * len(fs.names) - len(fs.names)
    )
    by = {(r["feature"], r["window_start"]): r for r in stats}
    # day 0 holds the 600-vector reference window; days 1..4 are compared against it
    for day in range(1, days):
        start = T0 + day * DAY
        flagged = {f for f in fs.names if by[(f, start)]["level"] != "OK"}
        if day >= 3:
            assert flagged == {"rsi_14"}, (day, flagged)
            assert by[("rsi_14", start)]["level"] == "ALERT"
        else:
            assert flagged == set(), (day, flagged)
        assert by[("rsi_14", start)]["n"] == symbols * per_day, (
            sorted((r["window_start"], r["n"]) for r in stats if r["feature"] == "rsi_14"),
            agent.monitor.late if agent.monitor else None,
        )
        assert by[(fs.names[0], start)]["n"] == symbols * (per_day - 1)
    assert metrics.value("data_drift_psi", feature="rsi_14") > 0.25
    assert metrics.value("data_drift_psi", feature="sma_5") < 0.1
    assert agent.reference_path.exists()
