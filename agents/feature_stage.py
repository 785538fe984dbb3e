"""The feature stage, whatever drives it: ``ticks`` → validation → indicators → outputs.

Per micro-batch: run :class:`FeatureEngine`, then the later stages (scoring, outcome join)
on the same batch, producing the predictions as soon as they are scored; then enqueue
feature, dead-letter and outcome records on a fast producer and write each touched
symbol's latest vector and prediction to Redis in one pipeline. Per checkpoint (every
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
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from itertools import islice
from typing import Any

import structlog

from agents.feature_engine import BatchOutput, FeatureEngine, SymbolStream
from agents.records import RawRecord
from agents.stages import BatchStage, StageOutput
from agents.state_store import ChangelogStateStore
from agents.turn_timer import TurnTimer
from monitoring.correlation import HEADER, kafka_headers
from monitoring.metrics import Metrics
from sinks.feature_blob import encode as encode_blob
from sinks.kafka_producer import BatchProducer
from sinks.redis_table import RedisTable
from streams.codec import get_codec
from streams.feature_encoder import FeatureVectorEncoder
from streams.hot_codec import OutcomeEncoder, PredictionEncoder
from tickcast.config import Settings

log = structlog.get_logger(__name__)

Confirm = Callable[[], Awaitable[None]]
Commit = Callable[[dict[int, int]], Awaitable[None]]


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
        self.prediction_codec = PredictionEncoder()  # fastavro-identical, ~2-3x faster
        self.outcome_codec = OutcomeEncoder()
        self.engine = engine
        self.metrics = metrics
        self.ticks_topic = settings.topic("ticks")
        self.features_topic = settings.topic("features")
        self.dlq_topic = settings.topic("ticks.dlq")
        self.feature_codec = FeatureVectorEncoder()
        self.dlq_codec = get_codec("DeadLetter")
        self.dirty: dict[str, SymbolStream] = {}
        self.dirty_since: dict[str, int] = {}
        """Per dirty symbol, the offset of its first tick not covered by a written snapshot
        (insertion order = the order symbols got dirty: the rolling checkpoint's queue)."""
        self.last_spread = time.monotonic()
        self.unconfirmed = 0
        self.prediction_written: dict[str, float] = {}
        self.lock = asyncio.Lock()
        self.last_checkpoint = time.monotonic()
        self.producer: BatchProducer | None = None
        self.store: ChangelogStateStore | None = None
        self.redis: RedisTable | None = None
        self.timer: TurnTimer | None = None
        """Set by a runner that times its turns (agents.direct_runner); phases of handle()."""
        self._early = {id(s) for s in self.stages if _bind_early(s, self._produce_predictions)}
        """Stages that produce their predictions through :meth:`_produce_predictions`."""

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
        self.dirty_since.clear()
        self.unconfirmed = 0

    async def handle(self, records: list[RawRecord]) -> BatchOutput:
        """Process one micro-batch and enqueue its outputs.

        Order (latency): indicators, then the later stages, whose predictions are produced
        as soon as they are scored (:meth:`_produce_predictions`); only then the side work
        that gates no prediction: feature and outcome records, and one Redis round trip.
        """
        assert self.producer is not None
        assert self.store is not None
        mark = self.timer.mark if self.timer is not None else _no_mark
        now_ms = int(time.time() * 1000)
        out = self.engine.process(records, self.store.get, now_ms)
        mark("features")
        results = [(stage, stage.process(out, now_ms)) for stage in self.stages]
        mark("stages")
        produce, topic = self.producer.produce, self.features_topic
        encode = self.feature_codec.encode
        for record in out.features:
            produce(
                topic,
                record["symbol"].encode(),
                encode(record),
                headers=_headers(record["correlation_id"]),
            )
        for dead in out.dead_letters:
            produce(
                self.dlq_topic,
                dead["key"],
                self.dlq_codec.encode(dead),
                headers=kafka_headers(dead["correlation_id"]),
            )
        for stage, result in results:
            self._emit(stage, result)
        mark("produce")
        await self._write_redis(out, [result for _, result in results], now_ms)
        mark("redis")
        self.producer.poll()
        self.store.keep(out.touched)
        self.dirty.update(out.touched)
        since = self.dirty_since
        for symbol, offset in out.first_offsets.items():
            if symbol not in since:
                since[symbol] = offset
        self.unconfirmed += len(records)
        self._count(len(records), out)
        return out

    def _produce_predictions(self, predictions: list[dict[str, Any]]) -> None:
        """Enqueue prediction records (called by a stage right after scoring)."""
        assert self.producer is not None
        produce, topic = self.producer.produce, self.predictions_topic
        encode = self.prediction_codec.encode
        for record in predictions:
            headers = _headers(record.get("correlation_id"))
            produce(topic, record["symbol"].encode(), encode(record), headers)

    def _emit(self, stage: BatchStage, result: StageOutput) -> None:
        """Enqueue a stage's records (its predictions unless it published them early)."""
        assert self.producer is not None
        if id(stage) not in self._early:
            self._produce_predictions(result.predictions)
        produce = self.producer.produce
        encode = self.outcome_codec.encode
        for record in result.outcomes:
            headers = _headers(record.get("correlation_id"))
            produce(self.outcomes_topic, record["symbol"].encode(), encode(record), headers)
        self.metrics.record_events(self.predictions_topic, "out", len(result.predictions))
        self.metrics.record_events(self.outcomes_topic, "out", len(result.outcomes))

    async def _write_redis(self, out: BatchOutput, results: list[StageOutput], now_ms: int) -> None:
        """Each touched symbol's latest feature blob and the stages' latest predictions, in
        one pipelined round trip (later stages win a key, as sequential writes did)."""
        assert self.redis is not None
        version = self.engine.version
        blobs = {
            symbol: encode_blob(rec["ts"], now_ms, version, rec["values"])
            for symbol, rec in out.latest().items()
        }
        champion: dict[str, dict[str, Any]] = {}
        challenger: dict[str, dict[str, Any]] = {}
        for result in results:
            champion.update(result.latest)
            challenger.update(result.latest_challenger)
        with self.metrics.redis_op("write_batch"):
            await self.redis.write_many(blobs, {"": champion, ":challenger": challenger})
        for result in results:
            if result.latest or result.latest_challenger:
                self._prediction_freshness(result)

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
        self.dirty_since.clear()
        self.unconfirmed = 0
        self.last_checkpoint = time.monotonic()

    # --- rolling checkpoints (agents.direct_runner) -------------------------------------------
    def snapshot_some(self, now: float | None = None) -> int:
        """Snapshot the longest-dirty symbols, a share proportional to the time elapsed.

        Why: pickling every dirty symbol at once (~100 µs each, 500 symbols) stalled the
        stream for 50-400 ms per checkpoint on a busy 2-core machine. Spread over the
        batches, each symbol is still written about once per ``checkpoint_interval_s``, but a
        batch pays only for ``len(dirty) * elapsed / interval`` of them. The snapshots are
        enqueued only: :meth:`commit_point` makes them durable before any offset moves.
        """
        now = time.monotonic() if now is None else now
        elapsed, self.last_spread = now - self.last_spread, now
        if not self.dirty or self.store is None:
            return 0
        interval = max(self.settings.checkpoint_interval_s, 1e-3)
        # At most a tenth of the dirty symbols per turn, even after a long batch: a burst
        # of pickling would be the very stall this spreading avoids (commits lag instead).
        n = spread_share(len(self.dirty), min(elapsed, interval / 10), interval)
        chosen = {s: self.dirty[s] for s in islice(self.dirty, n)}
        self.store.put_many(chosen)
        for symbol in chosen:
            del self.dirty[symbol]
            self.dirty_since.pop(symbol, None)
        return len(chosen)

    async def commit_point(self, consumed: Mapping[int, int], commit: Commit) -> None:
        """Flush, then commit per partition up to the first tick no durable snapshot covers.

        ``consumed`` is partition → next offset handed to :meth:`handle`. Everything enqueued
        before the flush (outputs and the snapshots of :meth:`snapshot_some`) is in Kafka
        after it, so the offsets computed before the flush are safe to commit.
        """
        self.last_checkpoint = time.monotonic()
        if self.producer is None or not consumed:
            return
        offsets = safe_offsets(consumed, self._dirty_offsets())
        clean = not self.dirty
        await self.producer.flush_async()
        await commit(offsets)
        if clean:
            self.unconfirmed = 0

    def _dirty_offsets(self) -> dict[int, int]:
        """Per partition, the smallest offset of a tick not yet covered by a snapshot."""
        lowest: dict[int, int] = {}
        for symbol, offset in self.dirty_since.items():
            state = self.dirty.get(symbol)
            if state is None:
                continue
            current = lowest.get(state.partition)
            if current is None or offset < current:
                lowest[state.partition] = offset
        return lowest

    def commit_due(self) -> bool:
        """True when the checkpoint interval has passed since the last commit point."""
        return time.monotonic() - self.last_checkpoint >= self.settings.checkpoint_interval_s

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


def _no_mark(phase: str) -> None:
    """The phase mark of an untimed runner."""


def _bind_early(stage: BatchStage, publish: Callable[[list[dict[str, Any]]], None]) -> bool:
    """Let ``stage`` publish its predictions as soon as scored, when it offers that."""
    bind = getattr(stage, "publish_early", None)
    if not callable(bind):
        return False
    bind(publish)
    return True


def _headers(correlation_id: str | None) -> list[tuple[str, bytes]] | None:
    """``kafka_headers(correlation_id)`` without its extras: three calls per tick here."""
    return [(HEADER, correlation_id.encode())] if correlation_id else None


def spread_share(n_dirty: int, elapsed_s: float, interval_s: float) -> int:
    """How many of ``n_dirty`` symbols to snapshot after ``elapsed_s`` (all after a pause)."""
    if n_dirty <= 0 or elapsed_s <= 0:
        return 0
    return min(n_dirty, math.ceil(n_dirty * elapsed_s / interval_s))


def safe_offsets(consumed: Mapping[int, int], dirty: Mapping[int, int]) -> dict[int, int]:
    """Committable offset per partition: the next offset, held back to the first tick of a
    partition that a durable snapshot does not cover yet (see :meth:`FeatureStage.commit_point`)."""
    return {p: min(o, dirty.get(p, o)) for p, o in consumed.items()}
