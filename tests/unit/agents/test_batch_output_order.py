"""FeatureStage output order: predictions are produced before the side work of a batch.

The tick → prediction latency ends when the prediction record is produced; feature and
outcome records and the Redis writes gate no prediction, so they come after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from agents.feature_engine import BatchOutput, FeatureEngine
from agents.feature_stage import FeatureStage
from agents.stages import StageOutput
from indicators.feature_set import FeatureSet
from streams.raw_record import RawRecord
from tests.unit.agents.test_rolling_checkpoint import RecordingStore, tick
from tickcast.config import Settings
from tickcast.metrics import Metrics

Publish = Any


class Journal:
    """One ordered log of what the producer and Redis were asked to do."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []


class RecordingProducer:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.journal.events.append(("produce", topic.rsplit(".", 1)[-1]))

    def poll(self) -> None:
        pass


class RecordingRedis:
    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.writes: list[tuple[dict[str, bytes], dict[str, dict[str, Any]]]] = []

    async def write_many(
        self, blobs: Mapping[str, bytes], predictions: Mapping[str, Mapping[str, Any]]
    ) -> None:
        self.journal.events.append(("redis", "write_many"))
        self.writes.append((dict(blobs), {k: dict(v) for k, v in predictions.items()}))


def _prediction(symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol, "ts": 1, "horizon": 1, "prob_up": 0.6, "expected_return": 0.001,
        "model_name": "m", "model_version": "1", "role": "CHAMPION",
        "feature_set_version": "x", "scoring_latency_ms": 1.0, "correlation_id": "c",
        "produced_at": 1,
    }  # fmt: skip


def _outcome_free(out: BatchOutput, early: Publish | None) -> StageOutput:
    """One champion prediction per feature record; published early when ``early`` is set."""
    predictions = [_prediction(r["symbol"]) for r in out.features]
    if early is not None:
        early(predictions)
    latest = {p["symbol"]: {"model": "m", "value": p["prob_up"]} for p in predictions}
    return StageOutput(predictions=predictions, latest=latest)


class EarlyStage:
    """A stage that offers ``publish_early`` (as :class:`agents.predictions.PredictionStage`)."""

    def __init__(self) -> None:
        self.publish: Publish | None = None

    def open(self) -> None:
        pass

    async def refresh(self) -> None:
        pass

    def publish_early(self, publish: Publish) -> None:
        self.publish = publish

    def process(self, out: BatchOutput, now_ms: int) -> StageOutput:
        return _outcome_free(out, self.publish)


class PlainStage(EarlyStage):
    """A stage without ``publish_early``: the feature stage produces its predictions."""

    publish_early = None  # type: ignore[assignment]


def _run(stage: Any) -> tuple[Journal, RecordingRedis]:
    journal = Journal()
    settings = Settings(scoring_enabled=False)
    fs = FeatureStage(settings, FeatureEngine(FeatureSet.default()), Metrics(process=False),
                      [stage])  # fmt: skip
    fs.producer = RecordingProducer(journal)  # type: ignore[assignment]
    redis = RecordingRedis(journal)
    fs.redis = redis  # type: ignore[assignment]
    fs.store = RecordingStore()  # type: ignore[assignment]
    batch = [RawRecord("t", 0, o, s.encode(), tick(s, o)) for o, s in enumerate("ABCA")]
    asyncio.run(fs.handle(batch))
    return journal, redis


def _order(journal: Journal) -> list[tuple[str, str]]:
    """The journal with runs of the same event collapsed."""
    collapsed: list[tuple[str, str]] = []
    for event in journal.events:
        if not collapsed or collapsed[-1] != event:
            collapsed.append(event)
    return collapsed


def test_early_predictions_come_first_and_once() -> None:
    journal, redis = _run(EarlyStage())
    assert _order(journal) == [
        ("produce", "predictions"),
        ("produce", "features"),
        ("redis", "write_many"),
    ]
    assert journal.events.count(("produce", "predictions")) == 4
    assert journal.events.count(("produce", "features")) == 4
    # One round trip: every touched symbol's features and its latest prediction.
    [(blobs, predictions)] = redis.writes
    assert set(blobs) == {"A", "B", "C"}
    assert set(predictions[""]) == {"A", "B", "C"}
    assert predictions[":challenger"] == {}


def test_a_stage_without_publish_early_still_has_its_predictions_produced_once() -> None:
    journal, _ = _run(PlainStage())
    assert journal.events.count(("produce", "predictions")) == 4
    assert _order(journal)[-1] == ("redis", "write_many")
