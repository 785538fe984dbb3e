"""The learner agent: ``outcomes`` → online challengers, evaluation, champion/challenger test.

It runs in a process of its own (``tickcast learner run``), never on the scoring path, in
its own consumer group (``<group>-learner``) so one learner sees every partition: the online
challengers and the promotion test are global, not per symbol.

Per micro-batch (``noack_take``): decode the outcomes, skip what the restored checkpoint
already covers (per-partition offsets), update the rolling evaluation, add the pairs to the
champion/challenger test, let every challenger learn from the outcomes (their features
ride on the outcome, see :mod:`online_learning.challengers`), take one promotion decision
in event time, and export the gauges. Per checkpoint (every ``checkpoint_interval_s`` of
wall time, and at shutdown): save challengers plus evaluation/test state as one MLflow run
(:mod:`online_learning.checkpoint`), publish a CHECKPOINT model-event, flush the producer,
and only then ack the events. At start the newest checkpoint is restored, so learning
resumes where it stopped; the scoring pipeline loads the same checkpoints.

With ``register_online`` a winning online challenger is frozen and registered as a new
version of the champion's registered model before the promoter moves the alias to it
(:mod:`online_learning.frozen`); the registration runs inside the batch that decided, so it
blocks the learner for the second or two an MLflow model log takes, once per promotion.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import faust
import structlog
from faust.types import EventT, StreamT

from online_learning.challengers import FeatureLookup, OnlineChallenger, default_challengers
from online_learning.checkpoint import Checkpoint, restore_checkpoint, save_checkpoint
from online_learning.evaluation import OnlineEvaluator
from online_learning.promotion import (
    ChampionChallengerTest,
    Decision,
    ModelRef,
    Promoter,
    PromotionController,
    PromotionPolicy,
    Registrar,
    model_event,
)
from sinks import redis_keys
from streams.codec import get_codec
from streams.raw_record import RawRecord
from tickcast.config import Settings
from tickcast.errors import SchemaError, TickcastError
from tickcast.metrics import Metrics

log = structlog.get_logger(__name__)

Saver = Callable[..., str]
Loader = Callable[[Settings], Checkpoint | None]
Publisher = Callable[[str, bytes, bytes], None]


class LearnerStage:
    """All learner state of one process and the batch/checkpoint steps (Faust-free core)."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        policy: PromotionPolicy | None = None,
        challengers: list[OnlineChallenger] | None = None,
        promoter: Promoter | None = None,
        feature_lookup: FeatureLookup | None = None,
        checkpoint_interval_s: float = 60.0,
        save: Saver = save_checkpoint,
        load: Loader = restore_checkpoint,
        register_online: bool = False,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.challengers = challengers if challengers is not None else default_challengers()
        self.evaluator = OnlineEvaluator()
        self.registrar = self._registrar() if register_online else None
        self.controller = PromotionController(
            ChampionChallengerTest(policy or PromotionPolicy()), promoter, self._publish_event,
            register=self.registrar,
        )  # fmt: skip
        self.promoter = promoter
        self.feature_lookup = feature_lookup
        self.checkpoint_interval_s = checkpoint_interval_s
        self.save, self.load = save, load
        self.codec = get_codec("Outcome")
        self.event_codec = get_codec("ModelEvent")
        self.outcomes_topic = settings.topic("outcomes")
        self.events_topic = settings.topic("model-events")
        self.offsets: dict[tuple[str, int], int] = {}
        self.watermark = 0
        self.publish: Publisher | None = None
        self.run_id: str | None = None
        self.last_checkpoint = time.monotonic()
        self.dirty = False
        self.last_decision: Decision | None = None

    # --- state --------------------------------------------------------------------------------
    def challenger(self, name: str) -> OnlineChallenger | None:
        """The live learner called ``name`` (what a winning challenger key points at)."""
        return next((c for c in self.challengers if c.name == name), None)

    def _registrar(self) -> Registrar:
        from online_learning.frozen import RegistryRegistrar

        return RegistryRegistrar(self.settings, self.challenger, lambda: self.run_id)

    def state(self) -> dict[str, Any]:
        """What a checkpoint stores besides the challengers."""
        return {"evaluator": self.evaluator, "controller": self.controller,
                "offsets": dict(self.offsets), "watermark": self.watermark}  # fmt: skip

    def restore(self) -> bool:
        """Load the newest checkpoint; False when there is none (fresh challengers)."""
        checkpoint = self.load(self.settings)
        if checkpoint is None:
            return False
        self.challengers = checkpoint.challengers
        state = checkpoint.state or {}
        self.evaluator = state.get("evaluator", self.evaluator)
        controller = state.get("controller")
        if isinstance(controller, PromotionController):
            controller.promoter, controller.publish = self.promoter, self._publish_event
            controller.register = self.registrar
            self.controller = controller
        self.offsets = dict(state.get("offsets", {}))
        self.watermark = int(state.get("watermark", 0))
        self.run_id = checkpoint.run_id
        log.info("learner_restored", run_id=checkpoint.run_id,
                 challengers=[c.info() for c in self.challengers])  # fmt: skip
        return True

    def _publish_event(self, event: dict[str, Any]) -> None:
        log.info("model_event", **{k: v for k, v in event.items() if k != "inputs"})
        if self.publish is not None:
            self.publish(self.events_topic, event["model_name"].encode(),
                         self.event_codec.encode(event))  # fmt: skip

    # --- one micro-batch ----------------------------------------------------------------------
    def handle(self, records: Sequence[RawRecord]) -> dict[str, int]:
        """Learn from a batch of outcome records; returns counts (for logs and tests)."""
        outcomes: list[dict[str, Any]] = []
        skipped = bad = 0
        for rec in records:
            key = (rec.topic, rec.partition)
            if rec.offset <= self.offsets.get(key, -1):
                skipped += 1  # already in the restored checkpoint
                continue
            self.offsets[key] = rec.offset
            try:
                outcomes.append(self.codec.decode(rec.value))  # type: ignore[arg-type]
            except SchemaError as exc:
                bad += 1
                self.metrics.record_dead_letter(rec.topic, exc.reason)
        self.metrics.record_events(self.outcomes_topic, "in", len(records))
        if not outcomes:
            return {"outcomes": 0, "skipped": skipped, "bad": bad, "learned": 0}
        self.watermark = max(self.watermark, max(int(o["realized_ts"]) for o in outcomes))
        self.evaluator.update(outcomes)
        self.controller.test.add(outcomes)
        learned = 0
        for c in self.challengers:
            try:
                learned += c.learn_from_outcomes(outcomes, self.feature_lookup, self.watermark)
            except TickcastError as exc:  # one broken learner must not stop the others
                log.warning("learner_failed", challenger=c.name, error=str(exc))
        decision = self.controller.step(self.watermark)
        self.last_decision = decision
        champion = decision.champion or ModelRef("none", "")
        kind = "promote" if decision.promote else ("keep" if decision.evaluated else "insufficient")
        self.metrics.promotion_decisions.labels(model=champion.name, decision=kind).inc()
        self.evaluator.export(self.metrics)
        self.dirty = True
        return {"outcomes": len(outcomes), "skipped": skipped, "bad": bad, "learned": learned}

    def live_state(self, now_ms: int) -> tuple[dict[str, Any], dict[str, Any]]:
        """The API's view of the learner (``model-metrics`` and ``model-test`` JSON)."""
        test = self.controller.test
        decision = self.last_decision
        metrics = {"updated_at": now_ms, "models": self.evaluator.snapshot()}
        state = {
            "updated_at": now_ms,
            "champion": str(test.champion) if test.champion else None,
            "cooldown_until": test.cooldown_until,
            "policy": dataclasses.asdict(test.policy),
            "pairs": {key: len(pairs) for key, pairs in test.pairs.items()},
            "last_decision": None
            if decision is None
            else {
                "promote": decision.promote,
                "challenger": str(decision.challenger) if decision.challenger else None,
                "p_value": decision.p_value,
                "statistic": decision.statistic,
                "effect": decision.effect,
                "n": decision.n,
                "reason": decision.reason,
            },
        }
        return metrics, state

    # --- checkpoints --------------------------------------------------------------------------
    def checkpoint_now(self) -> str | None:
        """Save a checkpoint (blocking: call it in a worker thread from the event loop)."""
        if not self.dirty:
            return None
        run_id = self.save(self.settings, self.challengers, state=self.state())
        self.run_id, self.dirty = run_id, False
        for c in self.challengers:
            self._publish_event(model_event(
                "CHECKPOINT", ModelRef(c.name, c.version), from_version=None, role="CHALLENGER",
                reason="online learner checkpoint", actor="online_learning.learner",
                ts=c.last_event_ts or self.watermark,
                statistics={"n_learned": c.n_learned, "memory_bytes": c.memory_bytes()},
                inputs={"run_id": run_id, "experiment": "tickcast-online"},
            ))  # fmt: skip
        return run_id

    def due(self) -> bool:
        """Whether the checkpoint interval has passed."""
        return time.monotonic() - self.last_checkpoint >= self.checkpoint_interval_s


class LearnerRunner:
    """The Faust side: pending events, producer, and acks after durable checkpoints."""

    def __init__(self, app: faust.App, stage: LearnerStage) -> None:
        self.app = app
        self.stage = stage
        self.pending: list[EventT] = []
        self.stream: StreamT | None = None
        self.producer: Any = None
        self.lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.redis: Any = None

    async def open(self) -> None:
        """Connect the producer (the checkpoint was restored before the worker started)."""
        from streams.producer import BatchProducer

        self.producer = BatchProducer(self.stage.settings)
        self.stage.publish = self.producer.produce
        self.ready.set()

    async def handle(self, events: list[EventT]) -> None:
        """One micro-batch."""
        records = [
            RawRecord(e.message.topic, e.message.partition, e.message.offset, e.key, e.value)
            for e in events
        ]
        with self.stage.metrics.stage_timer("learner"):
            self.stage.handle(records)
        self.pending.extend(events)
        await self._publish_live_state()

    async def _publish_live_state(self) -> None:
        """Write the evaluation snapshot and the test's state where the API reads them."""
        import orjson
        import redis.asyncio as aioredis

        if self.redis is None:
            self.redis = aioredis.Redis.from_url(self.stage.settings.redis_url, socket_timeout=2)
        prefix = self.stage.settings.redis_key_prefix
        metrics, state = self.stage.live_state(int(time.time() * 1000))
        try:
            pipe = self.redis.pipeline(transaction=False)
            pipe.set(redis_keys.model_metrics_key(prefix), orjson.dumps(metrics, default=str))
            pipe.set(redis_keys.model_test_key(prefix), orjson.dumps(state, default=str))
            await pipe.execute()
        except (OSError, aioredis.RedisError) as exc:  # the API shows stale state; learning goes on
            log.warning("learner_live_state_failed", error=str(exc))

    async def checkpoint(self, force: bool = False) -> None:
        """Save, publish, flush, then ack what the checkpoint covers."""
        if not (force or self.stage.due()):
            return
        try:
            await asyncio.to_thread(self.stage.checkpoint_now)
            if self.producer is not None:
                await self.producer.flush_async()
        except TickcastError as exc:  # MLflow or Kafka down: keep learning, retry later
            log.warning("learner_checkpoint_failed", error=str(exc))
            self.stage.last_checkpoint = time.monotonic()
            return
        if self.stream is not None:
            for event in self.pending:
                await self.stream.ack(event)
        self.pending.clear()
        self.stage.last_checkpoint = time.monotonic()


def register_learner_agent(app: faust.App, stage: LearnerStage) -> LearnerRunner:
    """Declare the outcomes agent, the checkpoint timer and the lifecycle hooks on ``app``."""
    settings = stage.settings
    runner = LearnerRunner(app, stage)
    outcomes = app.topic(
        settings.topic("outcomes"), key_type=bytes, value_type=bytes,
        key_serializer="raw", value_serializer="raw", partitions=settings.partitions,
    )  # fmt: skip

    @app.agent(outcomes, name=f"{settings.consumer_group}-outcomes")
    async def learner(stream: StreamT) -> AsyncIterator[Any]:
        runner.stream = stream
        await runner.ready.wait()  # the producer exists before the first decision
        async for events in stream.noack_take(  # type: ignore[attr-defined]
            settings.batch_max_events, within=max(settings.batch_within_s, 0.2)
        ):
            async with runner.lock:
                await runner.handle(list(events))
                await runner.checkpoint()
            yield len(events)

    @app.timer(interval=max(min(stage.checkpoint_interval_s, 5.0), 0.05))
    async def idle_checkpoint() -> None:
        async with runner.lock:
            await runner.checkpoint()

    @app.task
    async def on_startup() -> None:
        await runner.open()

    @app.on_before_shutdown.connect
    async def on_shutdown(*_: Any, **__: Any) -> None:
        async with runner.lock:
            await runner.checkpoint(force=True)

    return runner


def learner_settings(settings: Settings) -> Settings:
    """The learner's own consumer group (one learner sees every partition)."""
    return settings.model_copy(update={"consumer_group": f"{settings.consumer_group}-learner"})


def build_learner_app(
    settings: Settings, metrics: Metrics, **stage_options: Any
) -> tuple[faust.App, LearnerRunner]:
    """The learner's Faust app with its stage restored from the newest checkpoint."""
    from streams.faust_app import faust_app

    own = learner_settings(settings)
    stage = LearnerStage(own, metrics, **stage_options)
    stage.restore()  # before the worker starts: no batch is learned on a stale model
    app = faust_app(own)
    return app, register_learner_agent(app, stage)
