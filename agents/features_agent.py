"""The feature stage as a Faust agent on ``ticks``: a thin adapter over agents.feature_stage.

Same stage, same commit rule (:meth:`FeatureStage.checkpoint`), Faust's ways of consuming:
events arrive in micro-batches through ``stream.noack_take`` and are acked only when the
checkpoint commits their offsets (a commit of offset *o* on a partition = ack every pending
event of that partition below *o*; Faust commits the acked prefix). A full checkpoint runs
every ``checkpoint_interval_s``, also when idle.

Faults: a dependency down is waited out inside :meth:`FeatureStage.handle` (the agent stops
pulling; Faust's flow control pauses the fetch when its buffer fills). A revoke during the
wait abandons the batch. Any other error ends the process with exit code 1 at once — Faust's
supervisor would otherwise restart the agent after the failed batch, and later snapshots
would cover ticks whose outputs were never produced (the loss an outside review measured).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import faust
import structlog
from faust.types import EventT, StreamT

from agents.dependencies import BatchAbandoned
from agents.feature_stage import FeatureStage
from streams.raw_record import RawRecord

log = structlog.get_logger(__name__)


def register_feature_agent(app: faust.App, stage: FeatureStage) -> FeatureStage:
    """Declare the topic, agent and timers of ``stage`` on ``app``."""
    settings = stage.settings
    pending: list[EventT] = []
    streams: list[StreamT] = []
    owned: set[int] = set()
    ticks_topic = settings.topic("ticks")

    def current(events: list[EventT]) -> list[EventT]:
        """The events this worker may apply: of a partition it owns now, fetched in the
        current group generation. ``noack_take`` collects events for up to ``within``
        seconds, so a batch can straddle a rebalance; an event fetched before it belongs to
        the partition's owner now (or, re-assigned here, comes again from the committed
        offset). Applying it would move the symbol's state past ticks that are then
        skipped as already applied — the divergence a three-worker rolling restart found.
        """
        generation = app.consumer_generation_id
        return [
            e for e in events
            if e.message.partition in owned and e.message.generation_id == generation
        ]  # fmt: skip

    async def commit(offsets: dict[int, int]) -> None:
        """Ack the pending events below each partition's committable offset."""
        ack = streams[0].ack
        keep: list[EventT] = []
        for event in pending:
            message = event.message
            if message.offset < offsets.get(message.partition, -1):
                await ack(event)
            else:
                keep.append(event)
        pending[:] = keep

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
            async with stage.lock:
                events = current(list(events))
                records = [
                    RawRecord(
                        e.message.topic,
                        e.message.partition,
                        e.message.offset,
                        e.key,
                        e.value,
                        0,
                        e.message.headers,  # a traced tick's traceparent (tickcast.tracing)
                    )
                    for e in events
                ]
                try:
                    if records:
                        with stage.metrics.stage_timer("features"):
                            await stage.handle(records)
                        pending.extend(events)
                    if stage.commit_due():
                        await stage.checkpoint(commit, full=True)
                    await stage.refresh()
                except BatchAbandoned:
                    log.warning("batch abandoned: partitions revoked", records=len(records))
                except Exception as exc:  # any other failure ends the process
                    _die(exc)
                finally:
                    stage.guard.abandoned = False
            yield len(events)

    @app.timer(interval=max(settings.checkpoint_interval_s, 0.05))
    async def idle_checkpoint() -> None:
        async with stage.lock:
            if streams and stage.commit_due():
                try:
                    await stage.checkpoint(commit, full=True)
                except BatchAbandoned:  # revoked while it waited: nothing committed, as a batch
                    log.warning("checkpoint abandoned: partitions revoked")
                except Exception as exc:  # any other failure ends the process
                    _die(exc)
                finally:
                    stage.guard.abandoned = False

    @app.on_partitions_revoked.connect
    async def on_revoked(*_: Any, **__: Any) -> None:
        owned.clear()  # before the lock: a batch in hand keeps none of its events
        if stage.lock.locked():
            stage.guard.abandoned = True  # a batch waiting for a dependency gives up
        async with stage.lock:
            stage.forget()
            pending.clear()

    @app.on_partitions_assigned.connect
    async def on_assigned(*args: Any, **__: Any) -> None:
        assigned = args[1] if len(args) > 1 else set()  # (sender, assigned)
        async with stage.lock:
            owned.clear()
            owned.update(tp.partition for tp in assigned if tp.topic == ticks_topic)

    @app.task
    async def on_startup() -> None:
        stage.open()

    @app.on_before_shutdown.connect
    async def on_shutdown(*_: Any, **__: Any) -> None:
        await stage.close()

    return stage


def _die(exc: BaseException) -> None:
    """End the worker now, committing nothing more (the next start replays from the commit)."""
    log.critical("worker stopped by an error it cannot retry", error=repr(exc)[:500])
    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(1)
