"""FeatureStage hooks that feed the alerts (no I/O needed)."""

from __future__ import annotations

import time

from agents.feature_engine import FeatureEngine
from agents.feature_stage import FeatureStage
from agents.stages import StageOutput
from indicators.feature_set import FeatureSet
from tickcast.config import Settings
from tickcast.metrics import Metrics


def test_prediction_age_tracks_the_oldest_symbol_and_models_last_write() -> None:
    metrics = Metrics(process=False)
    stage = FeatureStage(Settings(), FeatureEngine(FeatureSet.default()), metrics)
    stage._prediction_freshness(StageOutput(latest={"AAA": {"model": "m1"}}))
    stage.prediction_written["AAA"] -= 400  # AAA was last predicted 400 s ago
    stage._prediction_freshness(StageOutput(latest={"BBB": {"model": "m1"}}))
    age = metrics.value("tickcast_prediction_age_seconds")
    assert age is not None
    assert 399 < age < 402
    last = metrics.value("tickcast_last_prediction_timestamp_seconds", model="m1")
    assert last is not None
    assert abs(last - time.time()) < 5
