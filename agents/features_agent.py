"""The feature stage as a Faust agent on ``ticks`` (see agents.feature_stage).

Events arrive in micro-batches through ``stream.noack_take``; they are acked only at a
checkpoint, after the state covering them is durable, so Faust commits safe offsets.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import faust
from faust.types import EventT, StreamT

from agents.feature_engine import FeatureEngine
from agents.feature_stage import FeatureStage
from agents.records import RawRecord
from agents.stages import BatchStage
from monitoring.metrics import Metrics
from tickcast.config import Settings


def register_feature_agent(
    app: faust.App,
    settings: Settings,
    engine: FeatureEngine,
    metrics: Metrics,
    stages: list[BatchStage] | None = None,
) -> FeatureStage:
    """Declare the topic, agent and timers of the feature stage on ``app``."""
    stage = FeatureStage(settings, engine, metrics, stages)
    pending: list[EventT] = []
    streams: list[StreamT] = []

    async def ack_pending() -> None:
        ack = streams[0].ack
        for event in pending:
            await ack(event)
        pending.clear()

    ticks = app.topic(
        settings.topic("ticks"),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )

    @app.agent(ticks, name=f"{settings.consumer_group}-features")
    async def features(stream: StreamT) -> AsyncIterator[Any]:
        streams[:] = [stream]
        async for events in stream.noack_take(  # type: ignore[attr-defined]
            settings.batch_max_events, within=settings.batch_within_s
        ):
            records = [
                RawRecord(e.message.topic, e.message.partition, e.message.offset, e.key, e.value)
                for e in events
            ]
            async with stage.lock:
                with stage.metrics.stage_timer("features"):
                    await stage.handle(records)
                pending.extend(events)
                await stage.maybe_checkpoint(ack_pending)
                await stage.refresh()
            yield len(events)

    @app.timer(interval=max(settings.checkpoint_interval_s, 0.05))
    async def idle_checkpoint() -> None:
        async with stage.lock:
            if streams:
                await stage.maybe_checkpoint(ack_pending)

    @app.on_partitions_revoked.connect
    async def on_revoked(*_: Any, **__: Any) -> None:
        async with stage.lock:
            stage.forget()
            pending.clear()

    @app.task
    async def on_startup() -> None:
        stage.open()

    @app.on_before_shutdown.connect
    async def on_shutdown(*_: Any, **__: Any) -> None:
        await stage.close()

    return stage
