"""The feature stage, whatever drives it: ``ticks`` → validation → indicators → outputs.

Per micro-batch: run :class:`FeatureEngine`, then the later stages (scoring, outcome join)
on the same batch, producing the predictions as soon as they are scored; then enqueue
feature, dead-letter and outcome records on a fast producer and write each touched
symbol's latest vector and prediction to Redis in one command. :meth:`FeatureStage.checkpoint`
holds the one commit rule of every runner: offsets move only over records whose batch was
handled to the end and whose symbols' states are in durable snapshots, themselves produced
only after the outputs they cover were flushed. A crash replays from the last commit;
per-symbol offsets in the state make the replay skip what the state already holds (see
agents.feature_engine). Redis and Kafka outages are waited out, never skipped
(agents.dependencies), and Redis is rebuilt from the state when it comes back empty.

Runners: agents.direct_runner (a plain batch consumer group, the default) and
agents.features_agent (a Faust agent over the same stage and protocol).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from itertools import islice
from typing import Any

import structlog
from opentelemetry.trace import SpanContext, Tracer

from agents.dependencies import DependencyGuard
from agents.feature_engine import BatchOutput, FeatureEngine, SymbolStream
from agents.stages import BatchStage, StageOutput
from agents.state_store import ChangelogStateStore
from agents.turn_timer import TurnTimer
from schemas.records import Prediction
from schemas.serving import ServingPrediction
from sinks import redis_keys
from sinks.feature_blob import encode as encode_blob
from sinks.redis_table import RedisTable
from streams.codec import get_codec
from streams.correlation import HEADER, from_headers, kafka_headers
from streams.feature_encoder import FeatureVectorEncoder
from streams.hot_codec import OutcomeEncoder, PredictionEncoder
from streams.producer import BatchProducer
from streams.raw_record import RawRecord
from tickcast.config import Settings
from tickcast.errors import TickcastError
from tickcast.metrics import Metrics
from tickcast.tracing import TRACEPARENT, batch_spans, format_traceparent, kafka_context
from tickcast.tracing import active as active_tracing

log = structlog.get_logger(__name__)

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
        """Per dirty symbol, the offset of its first tick not covered by a snapshot made so far
        (insertion order = the order symbols got dirty: the rolling checkpoint's queue)."""
        self.pending: dict[str, tuple[int, bytes]] = {}
        """Snapshots pickled but not yet produced: symbol → (partition, payload)."""
        self.handled: dict[int, int] = {}
        """Per partition, the offset after the last record whose batch :meth:`handle` finished."""
        self.awaiting: dict[int, int] = {}
        """Offsets that the snapshots produced at the last checkpoint cover once durable."""
        self.last_spread = time.monotonic()
        self.prediction_written: dict[str, float] = {}
        self.lock = asyncio.Lock()
        self.last_checkpoint = time.monotonic()
        self.guard = DependencyGuard(metrics, settings.worker_retry_max_s)
        self.producer: BatchProducer | None = None
        self.store: ChangelogStateStore | None = None
        self.redis: RedisTable | None = None
        self.assignment: Callable[[], Iterable[int]] | None = None
        """Set by a runner that knows which partitions it owns (see :meth:`owned`)."""
        self.timer: TurnTimer | None = None
        """Set by a runner that times its turns (agents.direct_runner); phases of handle()."""
        self._early = {id(s) for s in self.stages if _bind_early(s, self._produce_predictions)}
        """Stages that produce their predictions through :meth:`_produce_predictions`."""
        tracing = active_tracing()
        self.tracer: Tracer | None = None if tracing is None else tracing.tracer
        """Set while tracing is on (tickcast.tracing): one span per batch, see :meth:`handle`."""
        self.trace_parents: dict[str, str] = {}
        """During a traced batch: correlation id of each traced tick → the ``traceparent`` its
        outputs carry (Kafka headers; the ``traceparent`` key of its serving JSON)."""

    def open(self) -> None:
        """Open the output connections (called when the worker starts)."""
        # Never time out a message: a broker outage is waited out (agents.dependencies), and
        # a message that expired in the queue would be an output lost behind the state.
        self.producer = BatchProducer(self.settings, **{"message.timeout.ms": 0})
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
        self.pending.clear()
        self.handled.clear()
        self.awaiting.clear()

    async def handle(self, records: list[RawRecord]) -> BatchOutput:
        """Process one micro-batch and enqueue its outputs.

        Order (latency): indicators, then the later stages, whose predictions are produced
        as soon as they are scored (:meth:`_produce_predictions`); only then the side work
        that gates no prediction: feature and outcome records, and one Redis round trip.

        While tracing: the batch is one span, linked to the traces of its traced ticks (a
        ``traceparent`` header), each of which gets a child span whose context the tick's
        outputs carry on (:func:`tickcast.tracing.batch_spans`).
        """
        if self.tracer is None:
            return await self._handle(records)
        traced = traced_ticks(records)
        with batch_spans(self.tracer, "worker batch", traced, len(records)) as spans:
            self.trace_parents = {cid: format_traceparent(c) for cid, c in spans.items()}
            try:
                return await self._handle(records)
            finally:
                self.trace_parents = {}

    async def _handle(self, records: list[RawRecord]) -> BatchOutput:
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
        headers = self._traced_headers if self.trace_parents else _headers
        for record in out.features:
            produce(
                topic,
                record["symbol"].encode(),
                encode(record),
                headers=headers(record["correlation_id"]),
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
        # Only now is the batch handled: its states may be snapshotted, its offsets committed.
        self.store.keep(out.touched)
        self.dirty.update(out.touched)
        since = self.dirty_since
        for symbol, offset in out.first_offsets.items():
            if symbol not in since:
                since[symbol] = offset
        handled, held, taken = self.handled, self.engine.held, 0
        for raw in records:
            if raw.offset >= held.get(raw.partition, raw.offset + 1):
                continue  # left for a later turn (agents.held_records): not handled
            taken += 1
            if raw.offset >= handled.get(raw.partition, -1):
                handled[raw.partition] = raw.offset + 1
        self._count(taken, out)
        return out

    def _produce_predictions(self, predictions: list[Prediction]) -> None:
        """Enqueue prediction records (called by a stage right after scoring)."""
        assert self.producer is not None
        produce, topic = self.producer.produce, self.predictions_topic
        encode = self.prediction_codec.encode
        headers_of = self._traced_headers if self.trace_parents else _headers
        for record in predictions:
            headers = headers_of(record.get("correlation_id"))
            produce(topic, record["symbol"].encode(), encode(record), headers)

    def _emit(self, stage: BatchStage, result: StageOutput) -> None:
        """Enqueue a stage's records (its predictions unless it published them early)."""
        assert self.producer is not None
        if id(stage) not in self._early:
            self._produce_predictions(result.predictions)
        produce = self.producer.produce
        encode = self.outcome_codec.encode
        headers_of = self._traced_headers if self.trace_parents else _headers
        for record in result.outcomes:
            headers = headers_of(record.get("correlation_id"))
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
        champion: dict[str, ServingPrediction] = {}
        challenger: dict[str, ServingPrediction] = {}
        for result in results:
            champion.update(result.latest)
            challenger.update(result.latest_challenger)
        if self.trace_parents:
            self._trace_serving(champion, challenger)
        touched = out.touched
        predictions = {redis_keys.CHAMPION: champion, redis_keys.CHALLENGER: challenger}
        for suffix, records in predictions.items():
            for symbol, record in records.items():  # kept with the state: Redis is rebuildable
                touched[symbol].extra.setdefault("serving", {})[suffix] = record
        redis = self.redis

        async def write() -> None:
            with self.metrics.redis_op("write_batch"):
                await redis.write_many(blobs, predictions)

        await self.guard.call("redis", write)
        for result in results:
            if result.latest or result.latest_challenger:
                self._prediction_freshness(result)

    def _traced_headers(self, correlation_id: str | None) -> list[tuple[str, bytes]] | None:
        """:func:`_headers`, plus the ``traceparent`` of a traced tick's outputs."""
        headers = _headers(correlation_id)
        parent = self.trace_parents.get(correlation_id) if correlation_id else None
        if headers is not None and parent is not None:
            headers.append((TRACEPARENT, parent.encode()))
        return headers

    def _trace_serving(self, *latest: dict[str, ServingPrediction]) -> None:
        """Give the serving JSON of a traced tick's prediction its ``traceparent``: the API
        answer that serves it joins the tick's trace (serving/routes/predictions.py)."""
        parents = self.trace_parents
        for records in latest:
            for record in records.values():
                parent = parents.get(record["correlation_id"] or "")
                if parent is not None:
                    record["traceparent"] = parent

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

    # --- the commit rule: one protocol for every runner ------------------------------------
    async def checkpoint(self, commit: Commit, *, full: bool = False) -> None:
        """Make outputs and snapshots durable, then ``commit`` only what they cover.

        THE commit rule (docs/stream.md): a partition's offset is committed only up to its
        first record that is not both *handled* (its outputs enqueued: :attr:`handled`
        moves only when :meth:`handle` returned) and *covered* by a durable snapshot of its
        symbol (:meth:`_uncovered`). Snapshots are produced only after the outputs they
        cover were flushed, so no durable state ever holds a tick whose outputs could be
        lost. Every runner calls this and nothing else commits.

        Rolling (``full=False``, every ``checkpoint_interval_s``): flush (outputs and the
        snapshots produced at the previous checkpoint become durable), commit the offsets
        computed then, produce the snapshots pickled since (:meth:`snapshot_some`) and
        compute the offsets they will cover: commits lag one interval, no second flush.
        Full (``full=True``: shutdown, the Faust adapter): snapshot every dirty symbol,
        flush twice, commit at once.
        """
        self.last_checkpoint = time.monotonic()
        if self.producer is None or self.store is None:
            return
        await self._flush()
        if self.awaiting:
            awaiting, self.awaiting = self.awaiting, {}
            await commit(awaiting)
        if full:
            self._pickle(list(self.dirty))
        produced = self._produce_pending()
        offsets = safe_offsets(self.handled, self._uncovered())
        if full:
            if produced:
                await self._flush()
            await commit(offsets)
        else:
            self.awaiting = offsets
        await self.ensure_view()

    async def _flush(self) -> None:
        """Deliver everything enqueued, waiting out a broker outage (never skipping)."""
        assert self.producer is not None
        await self.guard.call("kafka", self.producer.flush_async)

    def snapshot_some(self, now: float | None = None) -> int:
        """Pickle the longest-dirty symbols, a share proportional to the time elapsed.

        Why: pickling every dirty symbol at once (~100 µs each, 500 symbols) stalled the
        stream for 50-400 ms per checkpoint on a busy 2-core machine. Spread over the
        batches, each symbol is still written about once per ``checkpoint_interval_s``, but a
        batch pays only for ``len(dirty) * elapsed / interval`` of them. The snapshots are
        held until the next :meth:`checkpoint` produces them (after the flush that makes
        the outputs they cover durable).
        """
        now = time.monotonic() if now is None else now
        elapsed, self.last_spread = now - self.last_spread, now
        if not self.dirty:
            return 0
        interval = max(self.settings.checkpoint_interval_s, 1e-3)
        # At most a tenth of the dirty symbols per turn, even after a long batch: a burst
        # of pickling would be the very stall this spreading avoids (commits lag instead).
        n = spread_share(len(self.dirty), min(elapsed, interval / 10), interval)
        return self._pickle(list(islice(self.dirty, n)))

    def _pickle(self, symbols: list[str]) -> int:
        """Snapshot ``symbols`` now (bytes held in :attr:`pending`); they are clean after."""
        for symbol in symbols:
            state = self.dirty.pop(symbol)
            self.dirty_since.pop(symbol, None)
            self.pending[symbol] = (state.partition, state.dumps())
        return len(symbols)

    def _produce_pending(self) -> int:
        """Enqueue the held snapshots (call only right after a successful flush)."""
        assert self.store is not None
        pending, self.pending = self.pending, {}
        for symbol, (partition, payload) in pending.items():
            self.store.produce(symbol, partition, payload)
        return len(pending)

    def _uncovered(self) -> dict[int, int]:
        """Per partition, the smallest offset of a tick no snapshot (made so far) covers."""
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
        """True when the checkpoint interval has passed since the last checkpoint."""
        return time.monotonic() - self.last_checkpoint >= self.settings.checkpoint_interval_s

    # --- the serving view ---------------------------------------------------------------------
    async def ensure_view(self) -> int:
        """Rebuild Redis for owned partitions whose view mark is gone; returns symbols written.

        Redis is a view of the worker's state: when it comes back empty (restart without
        persistence, a flush, ``tickcast features rebuild``), the mark of each partition is
        gone, and every owned symbol's latest feature vector and predictions are written
        again from the state (restored from the changelog first where needed).
        """
        if self.redis is None or self.store is None:
            return 0
        partitions = sorted(self.owned())
        if not partitions:
            return 0
        redis = self.redis
        missing = await self.guard.call("redis", lambda: redis.missing_view_marks(partitions))
        if not missing:
            return 0
        for partition in missing:
            if partition not in self.store.restored:
                self.store.restore(partition)
        wanted = set(missing)
        now_ms = int(time.time() * 1000)
        version = self.engine.version
        blobs: dict[str, bytes] = {}
        predictions: dict[str, dict[str, dict[str, Any]]] = {s: {} for s in redis_keys.SUFFIXES}
        for symbol, state in self.store.states.items():
            if state.partition not in wanted or state.last_ts < 0:
                continue
            blobs[symbol] = encode_blob(state.last_ts, now_ms, version, state.last_values)
            for suffix, record in (state.extra.get("serving") or {}).items():
                predictions.setdefault(suffix, {})[symbol] = record

        async def rebuild() -> None:
            await redis.write_many(blobs, predictions)
            await redis.set_view_marks(missing)

        await self.guard.call("redis", rebuild)
        log.warning("redis_view_rebuilt", partitions=missing, symbols=len(blobs))
        return len(blobs)

    def owned(self) -> set[int]:
        """Partitions this worker owns: the runner's assignment when it told us
        (:attr:`assignment`), else those whose state it restored."""
        if self.assignment is not None:
            return set(self.assignment())
        return set(self.store.restored) if self.store is not None else set()

    async def close(self) -> None:
        """Deliver what was enqueued and close connections (worker shutdown).

        No state is written here: the events after the last checkpoint are simply
        replayed (and skipped where the state has them) at the next start. A broker that
        does not take the outputs within the time-out loses nothing either: they are
        produced again by that replay.
        """
        async with self.lock:
            if self.producer is not None:
                try:
                    await self.producer.flush_async(timeout=10.0)
                except TickcastError as exc:
                    log.warning("outputs not delivered at close", error=str(exc)[:300])
        if self.redis is not None:
            await self.redis.close()
        self.engine.close()


def _no_mark(phase: str) -> None:
    """The phase mark of an untimed runner."""


def _bind_early(stage: BatchStage, publish: Callable[[list[Prediction]], None]) -> bool:
    """Let ``stage`` publish its predictions as soon as scored, when it offers that."""
    bind = getattr(stage, "publish_early", None)
    if not callable(bind):
        return False
    bind(publish)
    return True


def _headers(correlation_id: str | None) -> list[tuple[str, bytes]] | None:
    """``kafka_headers(correlation_id)`` without its extras: three calls per tick here."""
    return [(HEADER, correlation_id.encode())] if correlation_id else None


def traced_ticks(records: list[RawRecord]) -> dict[str, SpanContext]:
    """The trace context of each traced tick of a batch, by correlation id (its header; the
    record's position when it has none: then only the batch span's link reaches it)."""
    traced: dict[str, SpanContext] = {}
    for raw in records:
        if raw.headers:
            context = kafka_context(raw.headers)
            if context is not None:
                traced[from_headers(raw.headers) or f"{raw.partition}@{raw.offset}"] = context
    return traced


def spread_share(n_dirty: int, elapsed_s: float, interval_s: float) -> int:
    """How many of ``n_dirty`` symbols to snapshot after ``elapsed_s`` (all after a pause)."""
    if n_dirty <= 0 or elapsed_s <= 0:
        return 0
    return min(n_dirty, math.ceil(n_dirty * elapsed_s / interval_s))


def safe_offsets(consumed: Mapping[int, int], dirty: Mapping[int, int]) -> dict[int, int]:
    """Committable offset per partition: the next offset, held back to the first tick of a
    partition that a durable snapshot does not cover yet (see :meth:`FeatureStage.commit_point`)."""
    return {p: min(o, dirty.get(p, o)) for p, o in consumed.items()}
