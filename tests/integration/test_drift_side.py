"""The drift process compares the columns the stream carries: with the side features on, a
shift planted in a side column is flagged on it alone (#22)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from monitoring.drift_process import DriftAgent
from sidestreams.feature_sets import named
from streams.codec import get_codec
from streams.producer import BatchProducer
from streams.topics import apply_topics
from tests.integration.pipeline import read_topic
from tickcast.config import Settings
from tickcast.metrics import Metrics

pytestmark = pytest.mark.integration
DAY = 86_400_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % DAY


def test_drift_takes_the_side_columns_of_the_stream(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(
        update={"drift_reference_size": 600, "data_dir": tmp_path, "drift_window_ms": DAY,
                "side_features": True, "side_macro_series": "realgdp"}
    )  # fmt: skip
    apply_topics(settings)
    fs = named("classic+side", settings)
    shifted = fs.names.index("news_sent_hl24h")
    rng = np.random.default_rng(5)
    codec, producer = get_codec("FeatureVector"), BatchProducer(settings)
    symbols, per_day, days, sent = 20, 40, 3, 0
    for day in range(days):
        for step in range(per_day):
            for s in range(symbols):
                values = rng.normal(size=len(fs))
                values[shifted] += 1.5 if day == 2 else 0.0
                record = {"symbol": f"S{s:02d}", "ts": T0 + day * DAY + step * 60_000,
                          "feature_set_version": fs.version, "values": values.tolist()}  # fmt: skip
                producer.produce(settings.topic("features"), record["symbol"].encode(),
                                 codec.encode(record))  # fmt: skip
                sent += 1
    producer.flush()
    agent = DriftAgent(settings, metrics=Metrics(process=False))  # no feature set given
    assert agent.names == fs.names
    agent.start()
    deadline, consumed = time.monotonic() + 120, 0
    while consumed < sent:
        assert time.monotonic() < deadline, f"consumed {consumed} of {sent}"
        consumed += agent.step(0.2)
    agent.flush_partial()
    agent.close()
    assert agent.skipped == 0
    stats = read_topic(settings, "drift", "DriftStat", lambda out: len(out) >= 2 * len(fs))
    by = {(r["feature"], r["window_start"]): r for r in stats}
    assert {f for f in fs.names if by[(f, T0 + DAY)]["level"] != "OK"} == set()
    assert {f for f in fs.names if by[(f, T0 + 2 * DAY)]["level"] != "OK"} == {"news_sent_hl24h"}
