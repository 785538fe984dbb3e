"""The feature stage, whatever drives it: ``ticks`` → validation → indicators → outputs.

Per micro-batch: run :class:`FeatureEngine`, write each touched symbol's latest vector to
Redis in one pipeline, enqueue feature and dead-letter records on a fast producer, then run
the later stages (scoring, outcome join) on the same batch. Per checkpoint (every
``checkpoint_interval_s``, also when idle): flush the producer, snapshot every dirty symbol
state to the changelog topic (agents.state_store), flush again, and only then confirm the
events to Kafka (a Faust ack, or an offset commit), so committed offsets never run ahead of
durable state. A crash replays from the last commit; per-symbol offsets in the state make
the replay skip what the state already holds (see agents.feature_engine).

Runners: agents.features_agent (a Faust agent, the default) and agents.direct_runner (a
plain batch consumer for the highest throughput).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from agents.feature_engine import BatchOutput, FeatureEngine, SymbolStream
from agents.records import RawRecord
from agents.stages import BatchStage, StageOutput
from agents.state_store import ChangelogStateStore
from monitoring.correlation import kafka_headers
from monitoring.metrics import Metrics
from sinks.feature_blob import encode as encode_blob
from sinks.kafka_producer import BatchProducer
from sinks.redis_table import RedisTable
from streams.codec import get_codec
from streams.feature_encoder import FeatureVectorEncoder
from tickcast.config import Settings

log = structlog.get_logger(__name__)

Confirm = Callable[[], Awaitable[None]]


class FeatureStage:
    """State, outputs and checkpoints of the feature agent (one per worker process)."""

    def __init__(
        self,
        settings: Settings,
        engine: FeatureEngine,
        metrics: Metrics,
        stages: list[BatchStage] | None = None,
    ) -> None:
        self.settings = settings
        self.stages = stages or []
        self.predictions_topic = settings.topic("predictions")
        self.outcomes_topic = settings.topic("outcomes")
        self.prediction_codec = get_codec("Prediction")
        self.outcome_codec = get_codec("Outcome")
        self.engine = engine
        self.metrics = metrics
        self.ticks_topic = settings.topic("ticks")
        self.features_topic = settings.topic("features")
        self.dlq_topic = settings.topic("ticks.dlq")
        self.feature_codec = FeatureVectorEncoder()
        self.dlq_codec = get_codec("DeadLetter")
        self.dirty: dict[str, SymbolStream] = {}
        self.unconfirmed = 0
        self.prediction_written: dict[str, float] = {}
        self.lock = asyncio.Lock()
        self.last_checkpoint = time.monotonic()
        self.producer: BatchProducer | None = None
        self.store: ChangelogStateStore | None = None
        self.redis: RedisTable | None = None

    def open(self) -> None:
        """Open the output connections (called when the worker starts)."""
        self.producer = BatchProducer(self.settings)
        self.store = ChangelogStateStore(
            self.settings, self.settings.topic("feature-state"), self.producer
        )
        self.redis = RedisTable.from_url(
            self.settings.redis_url, self.settings.redis_key_prefix, self.settings.feature_ttl_s
        )
        for stage in self.stages:
            stage.open()

    def forget(self) -> None:
        """Partitions moved: drop in-memory state; the changelog is the truth again."""
        log.info("partitions revoked: state dropped", dirty=len(self.dirty))
        if self.store is not None:
            self.store.forget()
        self.dirty.clear()
        self.unconfirmed = 0

    async def handle(self, records: list[RawRecord]) -> BatchOutput:
        """Process one micro-batch and enqueue its outputs."""
        assert self.producer is not None
        assert self.redis is not None
        assert self.store is not None
        now_ms = int(time.time() * 1000)
        out = self.engine.process(records, self.store.get, now_ms)
        version = self.engine.version
        blobs = {
            symbol: encode_blob(rec["ts"], now_ms, version, rec["values"])
            for symbol, rec in out.latest().items()
        }
        with self.metrics.redis_op("write_features"):
            await self.redis.write_features(blobs)
        produce, topic = self.producer.produce, self.features_topic
        encode = self.feature_codec.encode
        for record in out.features:
            produce(
                topic,
                record["symbol"].encode(),
                encode(record),
                headers=kafka_headers(record["correlation_id"]),
            )
        for dead in out.dead_letters:
            produce(
                self.dlq_topic,
                dead["key"],
                self.dlq_codec.encode(dead),
                headers=kafka_headers(dead["correlation_id"]),
            )
        for stage in self.stages:
            await self._run_stage(stage, out, now_ms)
        self.producer.poll()
        self.store.keep(out.touched)
        self.dirty.update(out.touched)
        self.unconfirmed += len(records)
        self._count(len(records), out)
        return out

    async def _run_stage(self, stage: BatchStage, out: BatchOutput, now_ms: int) -> None:
        assert self.producer is not None
        assert self.redis is not None
        result = stage.process(out, now_ms)
        if result.latest or result.latest_challenger:
            with self.metrics.redis_op("write_predictions"):
                await self.redis.write_predictions(result.latest)
                await self.redis.write_predictions(result.latest_challenger, suffix=":challenger")
            self._prediction_freshness(result)
        produce = self.producer.produce
        encode = self.prediction_codec.encode
        for record in result.predictions:
            headers = kafka_headers(record.get("correlation_id"))
            produce(self.predictions_topic, record["symbol"].encode(), encode(record), headers)
        encode = self.outcome_codec.encode
        for record in result.outcomes:
            headers = kafka_headers(record.get("correlation_id"))
            produce(self.outcomes_topic, record["symbol"].encode(), encode(record), headers)
        self.metrics.record_events(self.predictions_topic, "out", len(result.predictions))
        self.metrics.record_events(self.outcomes_topic, "out", len(result.outcomes))

    def _prediction_freshness(self, result: StageOutput) -> None:
        """Feed the stale/stopped-prediction alerts: write times per symbol and per model."""
        now = time.time()
        for symbol in result.latest:
            self.prediction_written[symbol] = now
        for record in result.latest.values():
            self.metrics.last_prediction_ts.labels(model=str(record.get("model"))).set(now)
        oldest = min(self.prediction_written.values())
        self.metrics.prediction_age_seconds.set(now - oldest)

    async def refresh(self) -> None:
        """Let later stages reload (e.g. models) between batches, never inside one."""
        for stage in self.stages:
            await stage.refresh()

    def _count(self, n_in: int, out: BatchOutput) -> None:
        self.metrics.record_events(self.ticks_topic, "in", n_in)
        self.metrics.record_events(self.features_topic, "out", len(out.features))
        for dead in out.dead_letters:
            self.metrics.record_dead_letter(self.ticks_topic, dead["reason"])

    async def checkpoint(self, confirm: Confirm) -> None:
        """Make outputs and state durable, then ``confirm`` (ack / commit) what they cover."""
        if not self.unconfirmed or self.producer is None or self.store is None:
            return
        await self.producer.flush_async()
        self.store.put_many(self.dirty)
        await self.producer.flush_async()
        await confirm()
        log.debug("checkpoint", states=len(self.dirty), events=self.unconfirmed)
        self.dirty.clear()
        self.unconfirmed = 0
        self.last_checkpoint = time.monotonic()

    async def maybe_checkpoint(self, confirm: Confirm) -> None:
        """Checkpoint when the interval has passed."""
        elapsed = time.monotonic() - self.last_checkpoint
        if elapsed >= self.settings.checkpoint_interval_s:
            await self.checkpoint(confirm)

    async def close(self) -> None:
        """Deliver what was enqueued and close connections (worker shutdown).

        No state is written here: the events after the last checkpoint are simply
        replayed (and skipped where the state has them) at the next start.
        """
        async with self.lock:
            if self.producer is not None:
                await self.producer.flush_async()
        if self.redis is not None:
            await self.redis.close()
